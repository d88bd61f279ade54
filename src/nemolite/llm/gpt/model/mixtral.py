"""Mixtral (mixture-of-experts) config specs and a laptop-sized MoE."""

from __future__ import annotations

from dataclasses import dataclass, field

from nemolite.llm.gpt.model.base import GPTConfig, GPTModel
from nemolite.llm.gpt.model.llama import LlamaConfig


@dataclass(kw_only=True)
class MixtralConfig(LlamaConfig):
    """Mixtral architecture: a Llama with top-2 routed SwiGLU experts in every layer."""

    num_query_groups: int | None = 8
    rotary_base: int = 1_000_000
    seq_length: int = 4096
    num_moe_experts: int | None = 8
    moe_router_topk: int = 2
    moe_aux_loss_coeff: float = 0.01
    moe_router_load_balancing_type: str = "aux_loss"
    moe_token_dispatcher_type: str = "alltoall"
    vocab_size: int | None = 32000


@dataclass(kw_only=True)
class MixtralConfig8x7B(MixtralConfig):
    """Mixtral 8x7B: 32 layers, hidden 4096, ffn 14336, 32 heads, 8 groups, 8 experts top-2."""

    num_layers: int = 32
    hidden_size: int = 4096
    ffn_hidden_size: int | None = 14336
    num_attention_heads: int = 32


@dataclass(kw_only=True)
class MixtralConfig8x22B(MixtralConfig):
    """Mixtral 8x22B: 56 layers, hidden 6144, ffn 16384, 48 heads, 8 groups, 8 experts top-2."""

    num_layers: int = 56
    hidden_size: int = 6144
    ffn_hidden_size: int | None = 16384
    num_attention_heads: int = 48
    vocab_size: int | None = 32768


@dataclass
class MixtralModel(GPTModel):
    """A Mixtral `GPTModel` (NeMo's `llm.MixtralModel`)."""

    config: GPTConfig = field(default_factory=MixtralConfig8x7B)


@dataclass(kw_only=True)
class MixtralTinyConfig(MixtralConfig):
    """A 4-layer, 4-expert top-2 MoE for CPU runs; EP=2 and EP=4 divide the experts."""

    num_layers: int = 4
    hidden_size: int = 128
    ffn_hidden_size: int | None = 352
    num_attention_heads: int = 4
    num_query_groups: int | None = 2
    seq_length: int = 256
    num_moe_experts: int | None = 4
    vocab_size: int | None = None
