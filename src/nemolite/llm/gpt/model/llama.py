"""Llama-family config specs (published NeMo 2.0 / Meta values) and a laptop-sized Llama."""

from __future__ import annotations

from dataclasses import dataclass

from nemolite.llm.gpt.model.base import GPTConfig


@dataclass(kw_only=True)
class LlamaConfig(GPTConfig):
    """Llama architecture: RMSNorm, SwiGLU, RoPE, no biases, untied embeddings, no dropout."""

    normalization: str = "RMSNorm"
    activation: str = "swiglu"
    add_bias_linear: bool = False
    position_embedding_type: str = "rope"
    share_embeddings_and_output_weights: bool = False
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    seq_length: int = 4096
    # NeMo turns these on; the runtime ignores them where their kernels are missing (CPU, no TE).
    bias_activation_fusion: bool = True
    masked_softmax_fusion: bool = True
    persist_layer_norm: bool = True
    bias_dropout_fusion: bool = True
    apply_rope_fusion: bool = True


@dataclass(kw_only=True)
class Llama2Config7B(LlamaConfig):
    """Llama 2 7B (32 layers, hidden 4096, 32 heads, vocab 32000)."""

    num_layers: int = 32
    hidden_size: int = 4096
    ffn_hidden_size: int = 11008
    num_attention_heads: int = 32
    vocab_size: int | None = 32000


@dataclass(kw_only=True)
class Llama3Config(LlamaConfig):
    """Llama 3: grouped-query attention with 8 groups, RoPE base 500000, 8k context."""

    num_query_groups: int | None = 8
    rotary_base: int = 500_000
    seq_length: int = 8192
    init_method_std: float = 0.01
    vocab_size: int | None = 128256


@dataclass(kw_only=True)
class Llama3Config8B(Llama3Config):
    """Llama 3 8B: 32 layers, hidden 4096, ffn 14336, 32 heads, 8 query groups."""

    num_layers: int = 32
    hidden_size: int = 4096
    ffn_hidden_size: int | None = 14336
    num_attention_heads: int = 32


@dataclass(kw_only=True)
class Llama3Config70B(Llama3Config):
    """Llama 3 70B: 80 layers, hidden 8192, ffn 28672, 64 heads, 8 query groups."""

    num_layers: int = 80
    hidden_size: int = 8192
    ffn_hidden_size: int | None = 28672
    num_attention_heads: int = 64
    init_method_std: float = 0.008


@dataclass(kw_only=True)
class LlamaTinyConfig(LlamaConfig):
    """A 4-layer Llama that trains visibly on a laptop CPU in minutes.

    8 heads and 4 query groups divide by TP=2 and TP=4; 4 layers divide by PP=2 x VP=2.
    The vocabulary comes from the tokenizer (None), padded to a multiple of 128.
    """

    num_layers: int = 4
    hidden_size: int = 256
    # ~8/3 x hidden rounded to a multiple of 64, as Llama sizes its SwiGLU MLP.
    ffn_hidden_size: int | None = 704
    num_attention_heads: int = 8
    num_query_groups: int | None = 4
    seq_length: int = 256
    vocab_size: int | None = None
