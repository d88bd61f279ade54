"""Mistral config specs (NeMo 2.0 names) and `MistralModel`.

Mistral 7B v0.2/v0.3 is a Llama with 8 query groups, a 32k context and RoPE base 1e6; v0.1's
sliding-window attention is not implemented (its import is refused, see `conversion.hf_config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nemolite.llm.gpt.model.base import GPTConfig, GPTModel
from nemolite.llm.gpt.model.llama import LlamaConfig


@dataclass(kw_only=True)
class MistralConfig7B(LlamaConfig):
    """Mistral 7B: 32 layers, hidden 4096, ffn 14336, 32 heads, 8 query groups, vocab 32768."""

    num_layers: int = 32
    hidden_size: int = 4096
    ffn_hidden_size: int | None = 14336
    num_attention_heads: int = 32
    num_query_groups: int | None = 8
    seq_length: int = 32768
    rotary_base: int = 1_000_000
    vocab_size: int | None = 32768


@dataclass(kw_only=True)
class MistralNeMoConfig12B(MistralConfig7B):
    """Mistral NeMo 12B: 40 layers, hidden 5120, head width 128, vocab 131072."""

    num_layers: int = 40
    hidden_size: int = 5120
    kv_channels: int | None = 128
    vocab_size: int | None = 131072


@dataclass
class MistralModel(GPTModel):
    """A Mistral `GPTModel` (NeMo's `llm.MistralModel`)."""

    config: GPTConfig = field(default_factory=MistralConfig7B)
