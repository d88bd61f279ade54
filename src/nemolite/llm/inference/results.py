"""What `llm.generate` returns per prompt when `text_only=False` (NeMo 2.0's InferenceRequest names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class InferenceRequest:
    """One prompt and what was generated for it.

    Attributes:
        request_id: position of the prompt in the input list.
        prompt: the prompt as given (a string, or chat messages).
        prompt_tokens: the token ids the model saw (chat template and BOS applied).
        generated_text: the decoded continuation (cut before a stop word, EOS dropped).
        generated_tokens: the generated ids (EOS included when generation ended on it).
        generated_length: number of generated ids.
        generated_log_probs: log-probability of each generated id under the model (raw logits,
            before temperature/top-k/top-p), when `return_log_probs`.
        prompt_log_probs: log-probability of each prompt id after the first, when
            `return_log_probs` and not `skip_prompt_log_probs`.
        stop_reason: "eos", "stop_word", "length" (num_tokens_to_generate) or "context"
            (the model's seq_length was reached).
    """

    request_id: int
    prompt: Any
    prompt_tokens: list[int]
    generated_text: str = ""
    generated_tokens: list[int] = field(default_factory=list)
    generated_length: int = 0
    generated_log_probs: list[float] | None = None
    prompt_log_probs: list[float] | None = None
    stop_reason: str = "length"
    inference_parameters: Any = None
