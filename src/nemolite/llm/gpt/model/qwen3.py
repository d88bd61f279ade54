"""Qwen3 config specs (dense and MoE, NeMo 2.0 names) and `Qwen3Model`.

Qwen3 drops Qwen2's QKV bias for per-head RMSNorm on queries and keys (qk-norm) and fixes the head
width at 128; the MoE sizes route each token to 8 of 128 experts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nemolite.llm.gpt.model.base import GPTConfig, GPTModel
from nemolite.llm.gpt.model.qwen2 import Qwen2Config


@dataclass(kw_only=True)
class Qwen3Config(Qwen2Config):
    """Qwen3 architecture: qk-norm, no QKV bias, head width 128, 8 query groups."""

    add_qkv_bias: bool = False
    qk_layernorm: bool = True
    kv_channels: int | None = 128
    num_query_groups: int | None = 8
    seq_length: int = 40960


@dataclass(kw_only=True)
class Qwen3MoEConfig(Qwen3Config):
    """Qwen3 mixture of experts: 128 experts, top-8, probabilities renormalised over the top 8."""

    num_moe_experts: int | None = 128
    moe_router_topk: int = 8
    moe_router_pre_softmax: bool = False
    moe_aux_loss_coeff: float = 1e-3
    moe_router_load_balancing_type: str = "aux_loss"
    moe_token_dispatcher_type: str = "alltoall"


@dataclass(kw_only=True)
class Qwen3Config600M(Qwen3Config):
    """Qwen3 0.6B: 28 layers, hidden 1024, 16 heads, tied embeddings."""

    num_layers: int = 28
    hidden_size: int = 1024
    ffn_hidden_size: int | None = 3072
    num_attention_heads: int = 16
    share_embeddings_and_output_weights: bool = True


@dataclass(kw_only=True)
class Qwen3Config1P7B(Qwen3Config):
    """Qwen3 1.7B: 28 layers, hidden 2048, 16 heads, tied embeddings."""

    num_layers: int = 28
    hidden_size: int = 2048
    ffn_hidden_size: int | None = 6144
    num_attention_heads: int = 16
    share_embeddings_and_output_weights: bool = True


@dataclass(kw_only=True)
class Qwen3Config4B(Qwen3Config):
    """Qwen3 4B: 36 layers, hidden 2560, 32 heads, tied embeddings."""

    num_layers: int = 36
    hidden_size: int = 2560
    ffn_hidden_size: int | None = 9728
    num_attention_heads: int = 32
    share_embeddings_and_output_weights: bool = True


@dataclass(kw_only=True)
class Qwen3Config8B(Qwen3Config):
    """Qwen3 8B: 36 layers, hidden 4096, 32 heads."""

    num_layers: int = 36
    hidden_size: int = 4096
    ffn_hidden_size: int | None = 12288
    num_attention_heads: int = 32


@dataclass(kw_only=True)
class Qwen3Config14B(Qwen3Config):
    """Qwen3 14B: 40 layers, hidden 5120, 40 heads."""

    num_layers: int = 40
    hidden_size: int = 5120
    ffn_hidden_size: int | None = 17408
    num_attention_heads: int = 40


@dataclass(kw_only=True)
class Qwen3Config32B(Qwen3Config):
    """Qwen3 32B: 64 layers, hidden 5120, 64 heads."""

    num_layers: int = 64
    hidden_size: int = 5120
    ffn_hidden_size: int | None = 25600
    num_attention_heads: int = 64


@dataclass(kw_only=True)
class Qwen3Config30B_A3B(Qwen3MoEConfig):  # noqa: N801 - NeMo's name
    """Qwen3 30B-A3B: 48 layers, hidden 2048, 32 heads, 4 query groups, experts of width 768."""

    num_layers: int = 48
    hidden_size: int = 2048
    ffn_hidden_size: int | None = 6144
    moe_ffn_hidden_size: int | None = 768
    num_attention_heads: int = 32
    num_query_groups: int | None = 4


@dataclass(kw_only=True)
class Qwen3Config235B_A22B(Qwen3MoEConfig):  # noqa: N801 - NeMo's name
    """Qwen3 235B-A22B: 94 layers, hidden 4096, 64 heads, 4 query groups, experts of width 1536."""

    num_layers: int = 94
    hidden_size: int = 4096
    ffn_hidden_size: int | None = 12288
    moe_ffn_hidden_size: int | None = 1536
    num_attention_heads: int = 64
    num_query_groups: int | None = 4


@dataclass
class Qwen3Model(GPTModel):
    """A Qwen3 `GPTModel`, dense or MoE (NeMo's `llm.Qwen3Model`)."""

    config: GPTConfig = field(default_factory=Qwen3Config)
