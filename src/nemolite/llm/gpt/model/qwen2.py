"""Qwen2 / Qwen2.5 config specs (NeMo 2.0 names) and `Qwen2Model`.

A Llama with a bias on the QKV projection, RMSNorm epsilon 1e-6, RoPE base 1e6, and tied
embeddings at the small sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nemolite.llm.gpt.model.base import GPTConfig, GPTModel
from nemolite.llm.gpt.model.llama import LlamaConfig


@dataclass(kw_only=True)
class Qwen2Config(LlamaConfig):
    """Qwen2 architecture: Llama plus QKV bias; vocabulary 151936."""

    add_qkv_bias: bool = True
    layernorm_epsilon: float = 1e-6
    rotary_base: int = 1_000_000
    vocab_size: int | None = 151936
    init_method_std: float = 0.02


@dataclass(kw_only=True)
class Qwen2Config500M(Qwen2Config):
    """Qwen2 0.5B: 24 layers, hidden 896, 14 heads, 2 query groups, tied embeddings."""

    num_layers: int = 24
    hidden_size: int = 896
    ffn_hidden_size: int | None = 4864
    num_attention_heads: int = 14
    num_query_groups: int | None = 2
    share_embeddings_and_output_weights: bool = True


@dataclass(kw_only=True)
class Qwen2Config1P5B(Qwen2Config):
    """Qwen2 1.5B: 28 layers, hidden 1536, 12 heads, 2 query groups, tied embeddings."""

    num_layers: int = 28
    hidden_size: int = 1536
    ffn_hidden_size: int | None = 8960
    num_attention_heads: int = 12
    num_query_groups: int | None = 2
    share_embeddings_and_output_weights: bool = True


@dataclass(kw_only=True)
class Qwen2Config7B(Qwen2Config):
    """Qwen2 7B: 28 layers, hidden 3584, 28 heads, 4 query groups, vocab 152064."""

    num_layers: int = 28
    hidden_size: int = 3584
    ffn_hidden_size: int | None = 18944
    num_attention_heads: int = 28
    num_query_groups: int | None = 4
    vocab_size: int | None = 152064


@dataclass(kw_only=True)
class Qwen2Config72B(Qwen2Config):
    """Qwen2 72B: 80 layers, hidden 8192, 64 heads, 8 query groups, vocab 152064."""

    num_layers: int = 80
    hidden_size: int = 8192
    ffn_hidden_size: int | None = 29568
    num_attention_heads: int = 64
    num_query_groups: int | None = 8
    vocab_size: int | None = 152064
    layernorm_epsilon: float = 1e-5


@dataclass(kw_only=True)
class Qwen25Config500M(Qwen2Config500M):
    """Qwen2.5 0.5B: the Qwen2 0.5B shape, 32k context."""

    seq_length: int = 32768


@dataclass(kw_only=True)
class Qwen25Config1P5B(Qwen2Config1P5B):
    """Qwen2.5 1.5B: the Qwen2 1.5B shape, 128k context."""

    seq_length: int = 131072


@dataclass(kw_only=True)
class Qwen25Config3B(Qwen2Config):
    """Qwen2.5 3B: 36 layers, hidden 2048, 16 heads, 2 query groups, tied embeddings."""

    num_layers: int = 36
    hidden_size: int = 2048
    ffn_hidden_size: int | None = 11008
    num_attention_heads: int = 16
    num_query_groups: int | None = 2
    share_embeddings_and_output_weights: bool = True


@dataclass(kw_only=True)
class Qwen25Config7B(Qwen2Config7B):
    """Qwen2.5 7B: the Qwen2 7B shape, 128k context."""

    seq_length: int = 131072


@dataclass(kw_only=True)
class Qwen25Config14B(Qwen2Config):
    """Qwen2.5 14B: 48 layers, hidden 5120, 40 heads, 8 query groups."""

    num_layers: int = 48
    hidden_size: int = 5120
    ffn_hidden_size: int | None = 13824
    num_attention_heads: int = 40
    num_query_groups: int | None = 8
    vocab_size: int | None = 152064
    layernorm_epsilon: float = 1e-5
    seq_length: int = 131072


@dataclass(kw_only=True)
class Qwen25Config32B(Qwen2Config):
    """Qwen2.5 32B: 64 layers, hidden 5120, 40 heads, 8 query groups."""

    num_layers: int = 64
    hidden_size: int = 5120
    ffn_hidden_size: int | None = 27648
    num_attention_heads: int = 40
    num_query_groups: int | None = 8
    vocab_size: int | None = 152064
    layernorm_epsilon: float = 1e-5
    seq_length: int = 131072


@dataclass(kw_only=True)
class Qwen25Config72B(Qwen2Config72B):
    """Qwen2.5 72B: the Qwen2 72B shape, 128k context."""

    seq_length: int = 131072


@dataclass
class Qwen2Model(GPTModel):
    """A Qwen2 / Qwen2.5 `GPTModel` (NeMo's `llm.Qwen2Model`)."""

    config: GPTConfig = field(default_factory=Qwen2Config)
