"""What generation is asked to do: NeMo 2.0's `CommonInferenceParams` and the checks on it (light).

NeMo 2.0 takes these from megatron-core (`megatron/core/inference/common_inference_params.py`);
here they are a plain dataclass with the same field names, so building one costs no torch import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nemolite.errors import ConfigError


@dataclass(kw_only=True)
class CommonInferenceParams:
    """How tokens are chosen and when generation stops (megatron-core / NeMo 2.0 names).

    Attributes:
        temperature: divides the logits before sampling; 0 means greedy (argmax).
        top_k: sample among the k most likely tokens only (0 = no limit; 1 = greedy).
        top_p: sample from the smallest set of tokens whose probabilities add up to top_p
            (nucleus sampling; 0.0 or 1.0 = no limit, as in megatron-core).
        num_tokens_to_generate: new tokens per prompt, at most.
        return_log_probs: also return the log-probability of every generated token (and of the
            prompt's tokens, unless skip_prompt_log_probs).
        skip_prompt_log_probs: with return_log_probs, leave out the prompt's log-probabilities.
        stop_words: strings that end a sequence's generation when its text contains one (the
            returned text stops before it).
        add_BOS: prepend the tokenizer's BOS token to every prompt.
        random_seed: seed of the sampling generator (None = 1234), so sampling is repeatable.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0
    num_tokens_to_generate: int = 30
    return_log_probs: bool = False
    skip_prompt_log_probs: bool = False
    stop_words: list[str] = field(default_factory=list)
    add_BOS: bool = False
    random_seed: int | None = None

    @property
    def greedy(self) -> bool:
        """Whether the most likely token is always taken."""
        return self.temperature == 0.0 or self.top_k == 1

    def validate(self, prefix: str = "inference_params") -> None:
        """Raises `ConfigError` naming the field for a value generation cannot use."""
        if not isinstance(self.num_tokens_to_generate, int) or self.num_tokens_to_generate <= 0:
            raise ConfigError(f"{prefix}.num_tokens_to_generate", self.num_tokens_to_generate,
                              "must be a positive integer", f"set {prefix}.num_tokens_to_generate=32")
        if self.temperature < 0:
            raise ConfigError(f"{prefix}.temperature", self.temperature, "must be >= 0",
                              "use 0 for greedy decoding or a positive value (e.g. 0.7) to sample")
        if not (0.0 < self.top_p <= 1.0 or self.top_p == 0.0):
            raise ConfigError(f"{prefix}.top_p", self.top_p, "must be in (0, 1] (or 0.0 = off)",
                              f"set {prefix}.top_p=0.9, or 0.0 to sample from all tokens")
        if self.top_k < 0:
            raise ConfigError(f"{prefix}.top_k", self.top_k, "must be >= 0",
                              f"set {prefix}.top_k=0 (no limit) or a positive number")
        if self.top_k > 0 and self.top_p not in (0.0, 1.0):
            raise ConfigError(f"{prefix}.top_p", self.top_p, f"cannot be combined with top_k={self.top_k}",
                              f"set one of {prefix}.top_k=0 or {prefix}.top_p=0.0 (as megatron-core requires)")
        if isinstance(self.stop_words, str) or not all(isinstance(w, str) and w for w in self.stop_words):
            raise ConfigError(f"{prefix}.stop_words", self.stop_words, "must be a list of non-empty strings",
                              f"write {prefix}.stop_words='[\"\\n\\n\"]'")


def check_prompts(prompts: Any, field_name: str = "prompts") -> list[Any]:
    """The prompts as a list: each a string, or (chat) a list of {"role", "content"} messages."""
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, (list, tuple)) or not prompts:
        raise ConfigError(field_name, prompts, "must be a non-empty list of strings",
                          f"write {field_name}='[\"Once upon a time\"]'")
    for i, prompt in enumerate(prompts):
        if isinstance(prompt, str):
            continue
        if _is_messages(prompt):
            continue
        raise ConfigError(f"{field_name}[{i}]", prompt, "is not a string (nor a list of chat messages)",
                          f"write {field_name}='[\"Once upon a time\"]'")
    return list(prompts)


def _is_messages(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and bool(value)
            and all(isinstance(m, dict) and isinstance(m.get("role"), str)
                    and isinstance(m.get("content"), str) for m in value))
