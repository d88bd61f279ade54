"""GPT model specs: `GPTConfig` (megatron-core TransformerConfig field names) and `GPTModel`.

Light module: no torch, lightning or megatron at import time. `GPTModel.build()` imports the heavy
LightningModule from `megatron_module.py` next to this file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nemolite.errors import ConfigError, UnknownChoiceError

if TYPE_CHECKING:
    from nemolite.lightning.optim import MegatronOptimizerModule
    from nemolite.lightning.precision import MegatronMixedPrecision

ACTIVATIONS = ("gelu", "silu", "relu", "squared_relu", "swiglu", "geglu")
"""`swiglu` = silu + gated linear unit (Llama), `geglu` = gelu + gated linear unit."""
NORMALIZATIONS = ("LayerNorm", "RMSNorm")
POSITION_EMBEDDINGS = ("rope", "learned_absolute", "none")
LAYER_SPECS = ("auto", "local", "transformer_engine")
MOE_LOAD_BALANCING = ("aux_loss", "seq_aux_loss", "sinkhorn", "none")
MOE_DISPATCHERS = ("allgather", "alltoall")


@dataclass(kw_only=True)
class GPTConfig:
    """A decoder-only transformer, with megatron-core `TransformerConfig` field names.

    Attributes:
        num_layers: number of transformer layers.
        hidden_size: model width.
        ffn_hidden_size: MLP width (None = 4 x hidden_size).
        num_attention_heads: attention heads.
        num_query_groups: key/value heads for grouped-query attention (None = num_attention_heads).
        kv_channels: per-head width (None = hidden_size / num_attention_heads).
        seq_length: maximum sequence length.
        vocab_size: vocabulary size (None = take it from the tokenizer).
        make_vocab_size_divisible_by: pad the vocabulary to a multiple of this (x TP size).
        normalization: "LayerNorm" or "RMSNorm".
        layernorm_epsilon: epsilon of the norms.
        activation: MLP activation: gelu, silu, relu, squared_relu, swiglu, geglu.
        gated_linear_unit: gate the MLP (implied by swiglu/geglu).
        add_bias_linear: biases in linear layers.
        add_qkv_bias: bias in the QKV projection only (Qwen-style).
        qk_layernorm: normalise each head's queries and keys before RoPE (Qwen3-style), with
            the model's `normalization`.
        position_embedding_type: "rope", "learned_absolute" or "none".
        rotary_base: RoPE base.
        rotary_percent: fraction of each head's channels that RoPE rotates.
        rope_scaling: rescale RoPE frequencies as Llama 3.1 does (see `Llama31Config`).
        scale_factor: Llama 3.1 RoPE scaling: long wavelengths are divided by this.
        low_freq_factor: Llama 3.1 RoPE scaling: wavelengths above old_context_len / this are scaled.
        high_freq_factor: Llama 3.1 RoPE scaling: wavelengths below old_context_len / this are kept.
        old_context_len: Llama 3.1 RoPE scaling: the context length the model was pretrained at.
        share_embeddings_and_output_weights: tie input embedding and output layer.
        init_method_std: std of the normal weight init.
        hidden_dropout: dropout after attention and MLP.
        attention_dropout: dropout on attention probabilities.
        bias_activation_fusion: fused bias + activation kernel (GPU only; ignored on CPU).
        apply_rope_fusion: fused RoPE kernel (GPU only; ignored on CPU).
        masked_softmax_fusion: fused masked softmax (GPU only; ignored on CPU).
        persist_layer_norm: persistent LayerNorm kernel (TransformerEngine only).
        bias_dropout_fusion: fused bias + dropout + add (GPU only; ignored on CPU).
        cross_entropy_loss_fusion: fused cross-entropy (GPU only; ignored on CPU).
        calculate_per_token_loss: weight every loss token of the global batch alike (megatron's
            option); the default, as in NeMo, averages each micro-batch's mean token loss. The
            logged loss is the same quantity the gradient is taken of, either way.
        num_moe_experts: experts per MoE layer (None = dense MLP).
        moe_router_topk: experts each token is routed to.
        moe_router_pre_softmax: softmax over all experts, then take the top k without
            renormalising (Qwen3-MoE with norm_topk_prob=false); False = softmax over the top k's
            logits (Mixtral, and Qwen3-MoE with norm_topk_prob=true).
        moe_ffn_hidden_size: expert MLP width (None = ffn_hidden_size).
        moe_aux_loss_coeff: load-balancing loss weight.
        moe_router_load_balancing_type: aux_loss, seq_aux_loss, sinkhorn or none.
        moe_token_dispatcher_type: "allgather" or "alltoall".
        moe_grouped_gemm: grouped GEMM for experts (needs TransformerEngine or grouped_gemm).
        transformer_layer_spec: "auto" (TransformerEngine when it imports, else megatron-core's
            local spec), "local" or "transformer_engine".
        seed: model-parallel RNG seed for initialisation and dropout.
        layout_independent_init: draw each initial weight whole from (seed, its global name) and
            keep this rank's shard, so TP/PP/EP layouts start from one process's weights
            (costs one full tensor at a time per rank; False = megatron's own, layout-dependent).
        recompute_granularity: activation recomputation: None, "selective" (core attention) or
            "full" (whole layers; needs recompute_method and recompute_num_layers).
        recompute_method: with full: "uniform" (groups of recompute_num_layers) or "block" (the
            first recompute_num_layers layers of each pipeline chunk).
        recompute_num_layers: with full: layers per group (uniform) or recomputed layers (block).
    """

    num_layers: int = 12
    hidden_size: int = 768
    ffn_hidden_size: int | None = None
    num_attention_heads: int = 12
    num_query_groups: int | None = None
    kv_channels: int | None = None
    seq_length: int = 1024
    vocab_size: int | None = None
    make_vocab_size_divisible_by: int = 128
    normalization: str = "LayerNorm"
    layernorm_epsilon: float = 1e-5
    activation: str = "gelu"
    gated_linear_unit: bool = False
    add_bias_linear: bool = True
    add_qkv_bias: bool = False
    qk_layernorm: bool = False
    position_embedding_type: str = "learned_absolute"
    rotary_base: int = 10000
    rotary_percent: float = 1.0
    rope_scaling: bool = False
    scale_factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    old_context_len: int = 8192
    share_embeddings_and_output_weights: bool = True
    init_method_std: float = 0.02
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    bias_activation_fusion: bool = False
    apply_rope_fusion: bool = False
    masked_softmax_fusion: bool = False
    persist_layer_norm: bool = False
    bias_dropout_fusion: bool = False
    cross_entropy_loss_fusion: bool = False
    calculate_per_token_loss: bool = False
    num_moe_experts: int | None = None
    moe_router_topk: int = 2
    moe_router_pre_softmax: bool = False
    moe_ffn_hidden_size: int | None = None
    moe_aux_loss_coeff: float = 0.0
    moe_router_load_balancing_type: str = "aux_loss"
    moe_token_dispatcher_type: str = "alltoall"
    moe_grouped_gemm: bool = False
    transformer_layer_spec: str = "auto"
    seed: int = 1234
    layout_independent_init: bool = True
    recompute_granularity: str | None = None
    recompute_method: str | None = None
    recompute_num_layers: int | None = None

    @property
    def is_gated(self) -> bool:
        """Whether the MLP has a gated linear unit (swiglu/geglu or gated_linear_unit=True)."""
        return self.gated_linear_unit or self.activation in ("swiglu", "geglu")

    @property
    def query_groups(self) -> int:
        """Number of key/value heads actually used."""
        return self.num_query_groups or self.num_attention_heads

    def validate(self, prefix: str = "model.config") -> None:
        """Raises `ConfigError` on values that cannot build a model (no heavy imports)."""
        choices = {
            "activation": ACTIVATIONS,
            "normalization": NORMALIZATIONS,
            "position_embedding_type": POSITION_EMBEDDINGS,
            "transformer_layer_spec": LAYER_SPECS,
            "moe_router_load_balancing_type": MOE_LOAD_BALANCING,
            "moe_token_dispatcher_type": MOE_DISPATCHERS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UnknownChoiceError(f"{prefix}.{name}", getattr(self, name), allowed)
        for name in ("num_layers", "hidden_size", "num_attention_heads", "seq_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{prefix}.{name}", getattr(self, name), "must be >= 1", "use a positive integer")
        if self.kv_channels is None and self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"{prefix}.hidden_size",
                self.hidden_size,
                f"not divisible by num_attention_heads={self.num_attention_heads}",
                "pick a hidden_size that is a multiple of num_attention_heads, or set kv_channels",
            )
        if self.num_attention_heads % self.query_groups:
            raise ConfigError(
                f"{prefix}.num_query_groups",
                self.num_query_groups,
                f"does not divide num_attention_heads={self.num_attention_heads}",
                "use a divisor of num_attention_heads",
            )
        from nemolite.llm.gpt.model.recompute import check_recompute

        check_recompute(self, prefix)
        if self.num_moe_experts is not None and not 1 <= self.moe_router_topk <= self.num_moe_experts:
            raise ConfigError(
                f"{prefix}.moe_router_topk",
                self.moe_router_topk,
                f"must be between 1 and num_moe_experts={self.num_moe_experts}",
                "route each token to at most num_moe_experts experts",
            )


@dataclass
class GPTModel:
    """A megatron-core GPT model trained under Lightning (NeMo's `llm.GPTModel`).

    Attributes:
        config: the architecture.
        optim: optimizer and LR schedule (None = the runtime's default, or `llm.pretrain(optim=...)`).
        tokenizer: tokenizer spec (None = the data module's tokenizer).
    """

    config: GPTConfig = field(default_factory=GPTConfig)
    optim: MegatronOptimizerModule | None = None
    tokenizer: Any = None

    def build(
        self,
        *,
        tokenizer: Any = None,
        optim: MegatronOptimizerModule | None = None,
        precision: MegatronMixedPrecision | None = None,
        global_batch_size: int | None = None,
        micro_batch_size: int | None = None,
    ) -> Any:
        """Returns the heavy LightningModule; the megatron model itself is built in `configure_model`.

        Args:
            tokenizer: a built tokenizer (object with `vocab_size`), used when `config.vocab_size` is None.
            optim: overrides `self.optim`.
            precision: megatron mixed precision (None = fp32).
            global_batch_size: samples per optimizer step (None = the data module's).
            micro_batch_size: samples per forward pass (None = the data module's).
        """
        from nemolite.llm.gpt.model.megatron_module import MegatronGPTModule

        self.config.validate()
        return MegatronGPTModule(
            self.config,
            optim=optim or self.optim,
            tokenizer=tokenizer,
            precision=precision,
            global_batch_size=global_batch_size,
            micro_batch_size=micro_batch_size,
        )
