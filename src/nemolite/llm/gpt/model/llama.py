"""Llama-family config specs (published NeMo 2.0 / Meta values), `LlamaModel`, a laptop-sized Llama.

Llama 2, 3, 3.1 (RoPE scaling), 3.2 (1B/3B, tied embeddings) and 3.3 share one architecture;
`LlamaTinyConfig` keeps its shape at a size that trains on a CPU. How a Hugging Face Llama maps onto
these configs and weights is written down once, in `nemolite.llm.gpt.model.conversion.families`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nemolite.llm.gpt.model.base import GPTConfig, GPTModel


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
    ffn_hidden_size: int | None = 11008
    num_attention_heads: int = 32
    vocab_size: int | None = 32000


@dataclass(kw_only=True)
class Llama2Config13B(LlamaConfig):
    """Llama 2 13B (40 layers, hidden 5120, 40 heads)."""

    num_layers: int = 40
    hidden_size: int = 5120
    ffn_hidden_size: int | None = 13824
    num_attention_heads: int = 40
    vocab_size: int | None = 32000


@dataclass(kw_only=True)
class Llama2Config70B(LlamaConfig):
    """Llama 2 70B (80 layers, hidden 8192, 64 heads, 8 query groups)."""

    num_layers: int = 80
    hidden_size: int = 8192
    ffn_hidden_size: int | None = 28672
    num_attention_heads: int = 64
    num_query_groups: int | None = 8
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
class Llama31Config(Llama3Config):
    """Llama 3.1: Llama 3 with RoPE frequencies rescaled for a 128k context (Meta's "llama3" type)."""

    rope_scaling: bool = True
    scale_factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    old_context_len: int = 8192
    seq_length: int = 131072
    init_method_std: float = 0.02


@dataclass(kw_only=True)
class Llama31Config8B(Llama31Config):
    """Llama 3.1 8B: the Llama 3 8B shape with 3.1's RoPE scaling."""

    num_layers: int = 32
    hidden_size: int = 4096
    ffn_hidden_size: int | None = 14336
    num_attention_heads: int = 32


@dataclass(kw_only=True)
class Llama31Config70B(Llama31Config):
    """Llama 3.1 70B: 80 layers, hidden 8192, ffn 28672, 64 heads, 8 query groups."""

    num_layers: int = 80
    hidden_size: int = 8192
    ffn_hidden_size: int | None = 28672
    num_attention_heads: int = 64


@dataclass(kw_only=True)
class Llama31Config405B(Llama31Config):
    """Llama 3.1 405B: 126 layers, hidden 16384, ffn 53248, 128 heads, 8 query groups."""

    num_layers: int = 126
    hidden_size: int = 16384
    ffn_hidden_size: int | None = 53248
    num_attention_heads: int = 128


@dataclass(kw_only=True)
class Llama32Config1B(Llama31Config):
    """Llama 3.2 1B: 16 layers, hidden 2048, tied input/output embeddings, RoPE scale factor 32."""

    scale_factor: float = 32.0
    share_embeddings_and_output_weights: bool = True
    num_layers: int = 16
    hidden_size: int = 2048
    ffn_hidden_size: int | None = 8192
    num_attention_heads: int = 32


@dataclass(kw_only=True)
class Llama32Config3B(Llama31Config):
    """Llama 3.2 3B: 28 layers, hidden 3072, 24 heads, tied embeddings, RoPE scale factor 32."""

    scale_factor: float = 32.0
    share_embeddings_and_output_weights: bool = True
    num_layers: int = 28
    hidden_size: int = 3072
    ffn_hidden_size: int | None = 8192
    num_attention_heads: int = 24


@dataclass(kw_only=True)
class Llama33Config70B(Llama31Config70B):
    """Llama 3.3 70B: the Llama 3.1 70B architecture (new weights)."""


@dataclass
class LlamaModel(GPTModel):
    """A Llama-architecture `GPTModel` (NeMo's `llm.LlamaModel`): `LlamaModel(Llama32Config1B())`."""

    config: GPTConfig = field(default_factory=LlamaConfig)


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
