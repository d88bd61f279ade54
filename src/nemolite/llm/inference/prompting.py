"""Prompts to token ids: plain text, or chat messages through the tokenizer's template (light).

Used before the model loads (the CLI checks prompt lengths first) and by generation itself.
"""

from __future__ import annotations

import inspect
from typing import Any

from nemolite.errors import ConfigError


def encode(tokenizer: Any, prompt: Any, *, chat: bool, add_bos: bool) -> list[int]:
    """Token ids for a prompt: plain text, or chat messages through the tokenizer's template."""
    if chat or not isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        return chat_ids(tokenizer, messages)
    ids = list(tokenizer.text_to_ids(prompt))
    if add_bos and tokenizer.bos_id is not None:
        ids = [tokenizer.bos_id, *ids]
    return ids


def chat_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The chat, then the assistant's turn opened (the template's generation prompt)."""
    from nemolite.llm.tokenizers.base import default_chat_text

    if "add_generation_prompt" in inspect.signature(tokenizer.apply_chat_template).parameters:
        return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True))
    # Tokenizers without the option (the byte tokenizer) use the plain `<|role|>` turns.
    opened = default_chat_text([{"role": "assistant", "content": ""}])[:-1]
    return list(tokenizer.apply_chat_template(messages)) + list(tokenizer.text_to_ids(opened))


def encode_all(tokenizer: Any, prompts: list[Any], *, chat: bool, add_bos: bool, seq_length: int) -> list[list[int]]:
    """Every prompt's ids; an empty prompt, or one that fills the model's context, is a ConfigError."""
    encoded = [encode(tokenizer, p, chat=chat, add_bos=add_bos) for p in prompts]
    for i, ids in enumerate(encoded):
        if not ids:
            raise ConfigError(f"prompts[{i}]", prompts[i], "encodes to no tokens", "give a non-empty prompt")
        if len(ids) >= seq_length:
            raise ConfigError(f"prompts[{i}]", _short(prompts[i]),
                              f"is {len(ids)} tokens; the model's context is {seq_length}",
                              f"shorten it below {seq_length} tokens")
    return encoded


def _short(prompt: Any, limit: int = 40) -> str:
    text = prompt if isinstance(prompt, str) else str(prompt)
    return text if len(text) <= limit else text[:limit] + "..."
