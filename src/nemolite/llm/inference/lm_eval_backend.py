"""Heavy: nemolite checkpoints as an lm-evaluation-harness model (`--model nemolite`).

Importing this module registers the class with lm-eval. Scores come from one full forward pass
per batch (right-padded; the causal mask keeps padding out of every scored position); generation
goes through `InferenceEngine.generate` (KV cache). Inputs longer than the model's context keep
their last `seq_length` tokens, as lm-eval's own `hf` backend does.
"""

from __future__ import annotations

from typing import Any

import torch
from lm_eval import utils as lm_utils
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model

from nemolite.llm.inference.engine import InferenceEngine
from nemolite.llm.inference.params import CommonInferenceParams


@register_model("nemolite")
class NemoliteLM(TemplateLM):
    """lm-eval's LM interface over a nemolite checkpoint (or an already loaded `InferenceEngine`)."""

    def __init__(self, path: str | None = None, batch_size: int | str = 8,
                 tensor_model_parallel_size: int = 1, max_gen_toks: int = 256,
                 engine: InferenceEngine | None = None, **_: Any) -> None:
        super().__init__()
        if engine is None:
            from nemolite.llm.inference.generate import load_engine

            engine = load_engine(str(path), int(tensor_model_parallel_size))
        self.engine = engine
        self.tok = engine.tokenizer
        self.batch_size = int(batch_size) if str(batch_size).isdigit() else 8
        self.max_gen_toks = int(max_gen_toks)

    # ---- tokenization ---------------------------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        eos = self.tok.eos_id if self.tok.eos_id is not None else self.tok.eod
        return int(eos)

    @property
    def prefix_token_id(self) -> int:
        return int(self.tok.bos_id) if self.tok.bos_id is not None else self.eot_token_id

    @property
    def max_length(self) -> int:
        return self.engine.seq_length

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **_: Any) -> list[int]:
        return list(self.tok.text_to_ids(string))

    def tok_decode(self, tokens: list[int], **_: Any) -> str:
        return self.tok.ids_to_text(list(tokens))

    # ---- scoring --------------------------------------------------------------------------
    def score(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(sum of log-probs of the continuation, whether greedy decoding would produce it) per pair."""
        out: list[tuple[float, bool]] = []
        for start in range(0, len(pairs), self.batch_size):
            out += self._score_batch(pairs[start : start + self.batch_size])
        return out

    def _score_batch(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        # The model sees context+continuation minus its last token, truncated on the left.
        inputs = [(ctx + cont)[-(self.max_length + 1):][:-1] for ctx, cont in pairs]
        width = max(len(x) for x in inputs)
        pad = self.tok.pad_id if self.tok.pad_id is not None else 0
        batch = torch.full((len(inputs), width), pad, dtype=torch.long)
        for row, ids in enumerate(inputs):
            batch[row, : len(ids)] = torch.tensor(ids)
        log_probs = self.engine.log_probs(batch).cpu()
        results = []
        for row, ((_, cont), ids) in enumerate(zip(pairs, inputs)):
            span = log_probs[row, len(ids) - len(cont) : len(ids)]
            target = torch.tensor(cont)
            total = float(span.gather(-1, target[:, None]).sum())
            results.append((total, bool((span.argmax(-1) == target).all())))
        return results

    def _loglikelihood_tokens(self, requests: list[tuple[Any, list[int], list[int]]], **_: Any) -> list[tuple[float, bool]]:
        results = self.score([(request[1], request[2]) for request in requests])
        for request, result in zip(requests, results):
            self.cache_hook.add_partial("loglikelihood", request[0], result)
        return results

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood of whole texts, in disjoint windows of the model's context (lm-eval's scheme)."""
        totals = []
        for (text,) in [req.args for req in requests]:
            windows = [lm_utils.make_disjoint_window(w) for w in lm_utils.get_rolling_token_windows(
                token_list=self.tok_encode(text), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1)]
            total = sum(lp for lp, _ in self.score(windows))
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), total)
            totals.append(total)
        return totals

    # ---- generation -----------------------------------------------------------------------
    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Greedy (or sampled, with do_sample) continuations, cut at the request's `until` strings."""
        from nemolite.llm.inference.generate import generate_with_engine

        outputs = []
        for context, gen_kwargs in [req.args for req in requests]:
            kwargs = dict(gen_kwargs or {})
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            eos_text = self.tok.ids_to_text([self.eot_token_id])
            params = CommonInferenceParams(
                temperature=float(kwargs.get("temperature", 0.0)) if kwargs.get("do_sample") else 0.0,
                num_tokens_to_generate=int(kwargs.get("max_gen_toks", self.max_gen_toks)),
                stop_words=[u for u in until if u and u != eos_text],
            )
            ids = self.tok_encode(context)
            prompt = context if len(ids) < self.max_length else self.tok_decode(ids[-(self.max_length - 1):])
            text = generate_with_engine(self.engine, [prompt], params)[0]
            outputs.append(text.generated_text)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text.generated_text)
        return outputs
