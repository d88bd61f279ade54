"""Heavy: `llm.generate` behind the verb: load the checkpoint, tokenize, generate in batches, decode."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nemolite.errors import ConfigError
from nemolite.llm.inference.checkpoint import CheckpointSpec, load_spec
from nemolite.llm.inference.engine import InferenceEngine, TokenCallback
from nemolite.llm.inference.params import CommonInferenceParams
from nemolite.llm.inference.prompting import encode_all
from nemolite.llm.inference.results import InferenceRequest

DEFAULT_SEED = 1234


def load_engine(spec: CheckpointSpec | str | Path, tensor_model_parallel_size: int = 1) -> InferenceEngine:
    """The checkpoint's model (with its LoRA adapters, unmerged) and tokenizer, ready to generate."""
    from nemolite.llm.inference import runtime

    if not isinstance(spec, CheckpointSpec):
        spec = load_spec(spec)
    tokenizer = spec.tokenizer.build() if hasattr(spec.tokenizer, "build") else spec.tokenizer
    config = spec.model.config
    config.validate()
    vocab = config.vocab_size or getattr(tokenizer, "vocab_size", None)
    if vocab is None:
        raise ConfigError("model.config.vocab_size", None, "no vocabulary size and no tokenizer to take it from",
                          "save the checkpoint with a tokenizer")
    runtime.init_parallel(tensor_model_parallel_size)
    rows = runtime.saved_vocab_rows(spec.path)
    model = runtime.build_model(config, rows or int(vocab), tensor_model_parallel_size)
    runtime.load_weights(model, spec.path, spec.peft)
    return InferenceEngine(model, tokenizer, vocab_size=int(vocab), seq_length=config.seq_length)


def generate_with_engine(
    engine: InferenceEngine,
    prompts: list[Any],
    params: CommonInferenceParams,
    *,
    chat: bool = False,
    max_batch_size: int = 8,
    on_token: Callable[[int, int], None] | None = None,
) -> list[InferenceRequest]:
    """Generates for every prompt, `max_batch_size` at a time; results in the prompts' order."""
    tok = engine.tokenizer
    encoded = encode_all(tok, prompts, chat=chat, add_bos=params.add_BOS, seq_length=engine.seq_length)
    generator = torch.Generator().manual_seed(DEFAULT_SEED if params.random_seed is None else params.random_seed)
    results: list[InferenceRequest] = []
    for start in range(0, len(prompts), max_batch_size):
        rows = list(range(start, min(start + max_batch_size, len(prompts))))
        callback: TokenCallback | None = None
        if on_token is not None:
            callback = (lambda off: (lambda row, token: on_token(off + row, token)))(start)  # type: ignore[misc]
        stop = _stop_check(tok, params.stop_words) if params.stop_words else None
        outs = engine.generate([encoded[r] for r in rows], params, generator=generator, on_token=callback,
                               stop_check=stop)
        for r, out in zip(rows, outs):
            results.append(InferenceRequest(
                request_id=r, prompt=prompts[r], prompt_tokens=encoded[r],
                generated_text=_text(tok, out.tokens, params.stop_words),
                generated_tokens=out.tokens, generated_length=len(out.tokens),
                generated_log_probs=out.log_probs, prompt_log_probs=out.prompt_log_probs,
                stop_reason=out.stop_reason, inference_parameters=params,
            ))
    return results


def _stop_check(tokenizer: Any, stop_words: list[str]) -> Callable[[int, list[int]], bool]:
    def check(row: int, tokens: list[int]) -> bool:
        text = tokenizer.ids_to_text(tokens)
        return any(word in text for word in stop_words)

    return check


def _text(tokenizer: Any, tokens: list[int], stop_words: list[str]) -> str:
    text = tokenizer.ids_to_text(tokens)
    cut = min((text.index(w) for w in stop_words if w in text), default=len(text))
    return text[:cut]
