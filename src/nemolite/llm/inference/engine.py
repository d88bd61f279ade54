"""Heavy: a checkpoint's model ready for inference: full-sequence log-probs and KV-cached generation.

Generation works as megatron-core's own `TextGenerationController` with its static KV cache
(`StaticInferenceContext`) does: every prompt of a batch is right-padded, the shortest prompt is
prefilled in one forward pass, and then one position per step is decoded for the whole batch; a
row whose prompt is longer keeps its own prompt token there instead of the sampled one. With a
causal mask this computes exactly what each prompt alone would, with no attention mask to build.

The steps run through `lean_decode.LeanDecoder` (the same arithmetic on the model's own tensors,
without megatron's per-layer module overhead) whenever the model is one it reproduces; otherwise
(mixture of experts, unmerged LoRA adapters, TransformerEngine layers, ...) through megatron's own
forward with its `StaticInferenceContext` KV cache, logged at debug level with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from nemolite.llm.inference.params import CommonInferenceParams
from nemolite.llm.inference.sampling import mask_padded_vocab, sample

log = logging.getLogger("nemolite.generate")

TokenCallback = Callable[[int, int], None]
"""Called with (row, token id) whenever a row receives a generated token."""


@dataclass
class Generated:
    """One row's outcome."""

    tokens: list[int]
    log_probs: list[float] | None
    prompt_log_probs: list[float] | None
    stop_reason: str


class InferenceEngine:
    """A megatron GPTModel (TP-sharded or not) with its tokenizer, in eval mode."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, *, vocab_size: int, seq_length: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size  # real ids; rows above are megatron's padding
        self.seq_length = seq_length
        self.device = next(model.parameters()).device
        self.lean = True  # False: always megatron's forward (for comparisons)
        self.path = ""  # the path the last `generate` took: "lean" or "megatron"

    # ---- forward --------------------------------------------------------------------------
    def _forward(self, tokens: torch.Tensor, start: int, context: Any = None) -> torch.Tensor:
        """Logits [batch, len, vocab] (fp32, TP-gathered, padding rows at -inf) for positions start.."""
        positions = torch.arange(start, start + tokens.shape[1], device=self.device).expand(tokens.shape[0], -1)
        kwargs: dict[str, Any] = {"runtime_gather_output": True}
        if context is not None:
            kwargs["inference_context"] = context
        logits = self.model(tokens.to(self.device), positions, None, **kwargs)
        return mask_padded_vocab(logits.float(), self.vocab_size)

    @torch.no_grad()
    def log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """log_softmax of one full forward pass over `tokens` [batch, len], no cache: [batch, len, vocab]."""
        return F.log_softmax(self._forward(tokens, 0), dim=-1)

    # ---- generation -----------------------------------------------------------------------
    def _session(self, batch: int, total: int, all_logits: bool) -> Callable[[torch.Tensor, int], torch.Tensor]:
        """A KV-cached step function: (tokens [batch, len], first position) -> masked fp32 logits."""
        from nemolite.llm.inference import lean_decode

        reason = lean_decode.unsupported_reason(self.model) if self.lean else "disabled on this engine"
        if reason is None:
            self.path = "lean"
            run = lean_decode.LeanDecoder(self.model).session(batch, total)
            return lambda tokens, start: mask_padded_vocab(
                run(tokens.to(self.device), start, all_logits).float(), self.vocab_size)
        from megatron.core.inference.contexts import StaticInferenceContext

        log.debug("generation runs megatron's forward: %s", reason)
        self.path = "megatron"
        context = StaticInferenceContext(batch, total)
        context.materialize_only_last_token_logits = not all_logits

        def step(tokens: torch.Tensor, start: int) -> torch.Tensor:
            logits = self._forward(tokens, start, context)
            context.sequence_len_offset += tokens.shape[1]
            return logits

        return step

    @torch.no_grad()
    def generate(
        self,
        prompts: list[list[int]],
        params: CommonInferenceParams,
        *,
        generator: torch.Generator,
        on_token: TokenCallback | None = None,
        stop_check: Callable[[int, list[int]], bool] | None = None,
    ) -> list[Generated]:
        """Generates for a batch of tokenized prompts (each shorter than `seq_length`)."""
        batch = len(prompts)
        lengths = [len(p) for p in prompts]
        total = min(max(lengths) + params.num_tokens_to_generate, self.seq_length)
        pad = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else 0
        tokens = torch.full((batch, total), pad, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            tokens[row, : len(prompt)] = torch.tensor(prompt)
        want_prompt = params.return_log_probs and not params.skip_prompt_log_probs
        step = self._session(batch, total, want_prompt)
        state = _RowState(prompts, params, total)
        prev = 0
        for cur in range(min(lengths), total):
            logits = step(tokens[:, prev:cur], prev)
            if want_prompt:
                state.record_prompt(F.log_softmax(logits, dim=-1), tokens, prev, cur)
            last = logits[:, -1]
            chosen = _same_on_all_ranks(sample(last, params, generator).cpu()).tolist()
            step_lp = None
            if params.return_log_probs:
                picked = torch.tensor(chosen, device=last.device)[:, None]
                step_lp = F.log_softmax(last, dim=-1).gather(-1, picked)[:, 0].tolist()
            for row in range(batch):
                if cur < lengths[row] or state.done[row]:
                    continue
                tokens[row, cur] = chosen[row]
                state.add(row, chosen[row], step_lp[row] if step_lp else 0.0, self.tokenizer.eos_id, stop_check)
                if on_token is not None:
                    on_token(row, chosen[row])
            if all(state.done):
                break
            prev = cur
        return state.results()


class _RowState:
    """Per-row bookkeeping of a generation batch: tokens so far, log-probs, why it stopped."""

    def __init__(self, prompts: list[list[int]], params: CommonInferenceParams, total: int) -> None:
        self.prompts, self.params, self.total = prompts, params, total
        self.tokens: list[list[int]] = [[] for _ in prompts]
        self.log_probs: list[list[float]] = [[] for _ in prompts]
        self.prompt_lp: list[list[float]] = [[] for _ in prompts]
        self.done = [False] * len(prompts)
        self.reason = ["context"] * len(prompts)

    def record_prompt(self, log_probs: torch.Tensor, tokens: torch.Tensor, prev: int, cur: int) -> None:
        """Log-probs of prompt tokens at positions prev+1..cur (each predicted from the one before)."""
        for row, prompt in enumerate(self.prompts):
            for pos in range(max(prev + 1, 1), min(cur + 1, len(prompt))):
                self.prompt_lp[row].append(float(log_probs[row, pos - 1 - prev, int(tokens[row, pos])]))

    def add(self, row: int, token: int, log_prob: float, eos: int | None,
            stop_check: Callable[[int, list[int]], bool] | None) -> None:
        self.tokens[row].append(token)
        self.log_probs[row].append(log_prob)
        if eos is not None and token == eos:
            self._finish(row, "eos")
        elif stop_check is not None and stop_check(row, self.tokens[row]):
            self._finish(row, "stop_word")
        elif len(self.tokens[row]) >= self.params.num_tokens_to_generate:
            self._finish(row, "length")

    def _finish(self, row: int, reason: str) -> None:
        self.done[row], self.reason[row] = True, reason

    def results(self) -> list[Generated]:
        keep = self.params.return_log_probs
        return [
            Generated(
                tokens=self.tokens[row],
                log_probs=self.log_probs[row] if keep else None,
                prompt_log_probs=self.prompt_lp[row] if keep and not self.params.skip_prompt_log_probs else None,
                stop_reason=self.reason[row],
            )
            for row in range(len(self.prompts))
        ]


def _same_on_all_ranks(chosen: torch.Tensor) -> torch.Tensor:
    """Tensor-parallel rank 0's tokens on every TP rank (their logits agree; their samplers might not)."""
    from megatron.core import parallel_state

    if parallel_state.get_tensor_model_parallel_world_size() == 1:
        return chosen
    group = parallel_state.get_tensor_model_parallel_group()
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else chosen.device
    moved = chosen.to(device)
    torch.distributed.broadcast(moved, src=parallel_state.get_tensor_model_parallel_src_rank(), group=group)
    return moved.cpu()
