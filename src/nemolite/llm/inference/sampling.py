"""Heavy: picks the next token from logits (greedy, temperature, top-k, top-p) with a seeded generator."""

from __future__ import annotations

import torch

from nemolite.llm.inference.params import CommonInferenceParams


def mask_padded_vocab(logits: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Sets the rows megatron padded the vocabulary with to -inf: they are not tokens."""
    if logits.shape[-1] > vocab_size:
        logits = logits.clone()
        logits[..., vocab_size:] = float("-inf")
    return logits


def sample(logits: torch.Tensor, params: CommonInferenceParams, generator: torch.Generator) -> torch.Tensor:
    """One token per row of `logits` [batch, vocab] (float32)."""
    if params.greedy:
        return logits.argmax(dim=-1)
    scaled = logits / params.temperature
    if params.top_k > 0:
        kth = torch.topk(scaled, min(params.top_k, scaled.shape[-1]), dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    if 0.0 < params.top_p < 1.0:
        scaled = _top_p(scaled, params.top_p)
    probs = torch.softmax(scaled, dim=-1)
    return torch.multinomial(probs.to(generator.device), 1, generator=generator).squeeze(-1).to(logits.device)


def _top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keeps the smallest set of most likely tokens whose probabilities reach `top_p`."""
    ordered, order = torch.sort(logits, descending=True, dim=-1)
    cumulative = torch.softmax(ordered, dim=-1).cumsum(dim=-1)
    drop = cumulative - torch.softmax(ordered, dim=-1) >= top_p  # mass before this token already enough
    ordered = ordered.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, ordered)
