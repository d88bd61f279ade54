"""The Hugging Face <-> nemolite tables, one per model family: the only place a layout is written.

Light module (no torch). Three kinds of data per family:

- `weights`: `Rule`s from HF tensor names to megatron-core's (one process, local layer spec)
  with the transform between them. `{L}` is the layer index and `{E}` the expert index; a rule
  holds while its `when` config field is truthy (`!field`: falsy). The generic converter
  (`converter.py`) reads a table forwards to import and backwards to export.
- `config`: `Field`s from HF `config.json` keys to `GPTConfig` fields (read both ways), plus
  `fixed` values the family always has.
- `supported`: HF fields whose values change the numerics in ways nemolite does not implement,
  with the values it accepts: anything else is a one-line `ConfigError` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Transforms between the two layouts (implemented once in converter.py).
COPY = "copy"  # the same tensor
QKV = "qkv"  # HF q, k, v <-> megatron's fused qkv, interleaved per query group: [q_g..., k_g, v_g] x G
GATE_UP = "gate_up"  # HF gate, up <-> megatron's fused fc1 [gate; up] (SwiGLU)
VOCAB = "vocab"  # rows = vocabulary: padded with zero rows to megatron's padded size, sliced back


@dataclass(frozen=True)
class Rule:
    """HF tensor name(s) <-> one megatron tensor name, and the transform between them."""

    hf: tuple[str, ...]
    ours: str
    op: str = COPY
    when: str | None = None


@dataclass(frozen=True)
class Field:
    """An HF config key <-> a GPTConfig field; `invert` for booleans of opposite sense."""

    hf: str
    ours: str
    invert: bool = False


@dataclass(frozen=True)
class Family:
    """One model family's HF architecture(s), nemolite classes and tables."""

    name: str
    architectures: tuple[str, ...]
    model_type: str
    model_class: str  # "module:Class" of the nemolite model
    config_class: str  # "module:Class" of the family's base config
    weights: tuple[Rule, ...]
    config: tuple[Field, ...]
    fixed: dict[str, Any] = field(default_factory=dict)
    supported: dict[str, tuple[Any, ...]] = field(default_factory=dict)


_P = "model.layers.{L}."
_M = "decoder.layers.{L}."

EMBEDDINGS = (
    Rule(("model.embed_tokens.weight",), "embedding.word_embeddings.weight", VOCAB),
    Rule(("model.norm.weight",), "decoder.final_layernorm.weight"),
    Rule(("lm_head.weight",), "output_layer.weight", VOCAB, when="!share_embeddings_and_output_weights"),
)
ATTENTION = (
    Rule((_P + "input_layernorm.weight",), _M + "input_layernorm.weight"),
    Rule(tuple(_P + f"self_attn.{x}_proj.weight" for x in "qkv"), _M + "self_attention.linear_qkv.weight", QKV),
    Rule(tuple(_P + f"self_attn.{x}_proj.bias" for x in "qkv"), _M + "self_attention.linear_qkv.bias", QKV,
         when="add_qkv_bias"),
    Rule((_P + "self_attn.q_norm.weight",), _M + "self_attention.q_layernorm.weight", when="qk_layernorm"),
    Rule((_P + "self_attn.k_norm.weight",), _M + "self_attention.k_layernorm.weight", when="qk_layernorm"),
    Rule((_P + "self_attn.o_proj.weight",), _M + "self_attention.linear_proj.weight"),
    Rule((_P + "post_attention_layernorm.weight",), _M + "pre_mlp_layernorm.weight"),
)
DENSE_MLP = (
    Rule((_P + "mlp.gate_proj.weight", _P + "mlp.up_proj.weight"), _M + "mlp.linear_fc1.weight", GATE_UP),
    Rule((_P + "mlp.down_proj.weight",), _M + "mlp.linear_fc2.weight"),
)
_X = _M + "mlp.experts.local_experts.{E}."
MIXTRAL_MOE = (
    Rule((_P + "block_sparse_moe.gate.weight",), _M + "mlp.router.weight"),
    Rule((_P + "block_sparse_moe.experts.{E}.w1.weight", _P + "block_sparse_moe.experts.{E}.w3.weight"),
         _X + "linear_fc1.weight", GATE_UP),
    Rule((_P + "block_sparse_moe.experts.{E}.w2.weight",), _X + "linear_fc2.weight"),
)
QWEN3_MOE = (
    Rule((_P + "mlp.gate.weight",), _M + "mlp.router.weight"),
    Rule((_P + "mlp.experts.{E}.gate_proj.weight", _P + "mlp.experts.{E}.up_proj.weight"),
         _X + "linear_fc1.weight", GATE_UP),
    Rule((_P + "mlp.experts.{E}.down_proj.weight",), _X + "linear_fc2.weight"),
)

COMMON_CONFIG = (
    Field("num_hidden_layers", "num_layers"),
    Field("hidden_size", "hidden_size"),
    Field("intermediate_size", "ffn_hidden_size"),
    Field("num_attention_heads", "num_attention_heads"),
    Field("num_key_value_heads", "num_query_groups"),
    Field("head_dim", "kv_channels"),
    Field("vocab_size", "vocab_size"),
    Field("rms_norm_eps", "layernorm_epsilon"),
    Field("rope_theta", "rotary_base"),
    Field("tie_word_embeddings", "share_embeddings_and_output_weights"),
    Field("initializer_range", "init_method_std"),
)
MOE_CONFIG = (
    Field("num_local_experts", "num_moe_experts"),
    Field("num_experts_per_tok", "moe_router_topk"),
)
#: HF's Llama 3.1 RoPE scaling ("rope_type": "llama3") <-> GPTConfig's fields of the same meaning.
ROPE_SCALING = (
    Field("factor", "scale_factor"),
    Field("low_freq_factor", "low_freq_factor"),
    Field("high_freq_factor", "high_freq_factor"),
    Field("original_max_position_embeddings", "old_context_len"),
)
#: Values every supported family needs; others change the numerics.
COMMON_SUPPORTED: dict[str, tuple[Any, ...]] = {
    "hidden_act": ("silu",),
    "rope_scaling.rope_type": ("default", "llama3"),
    "attention_bias": (False,),
    "mlp_bias": (False,),
    "use_sliding_window": (False,),
    "sliding_window": (None,),
}
_GPT = "nemolite.llm.gpt.model."

LLAMA = Family(
    name="llama", architectures=("LlamaForCausalLM",), model_type="llama",
    model_class=_GPT + "llama:LlamaModel", config_class=_GPT + "llama:LlamaConfig",
    weights=EMBEDDINGS + ATTENTION + DENSE_MLP, config=COMMON_CONFIG,
    supported=COMMON_SUPPORTED,
)
MISTRAL = Family(
    name="mistral", architectures=("MistralForCausalLM",), model_type="mistral",
    model_class=_GPT + "mistral:MistralModel", config_class=_GPT + "mistral:MistralConfig7B",
    weights=EMBEDDINGS + ATTENTION + DENSE_MLP, config=COMMON_CONFIG,
    supported=COMMON_SUPPORTED,
)
MIXTRAL = Family(
    name="mixtral", architectures=("MixtralForCausalLM",), model_type="mixtral",
    model_class=_GPT + "mixtral:MixtralModel", config_class=_GPT + "mixtral:MixtralConfig",
    weights=EMBEDDINGS + ATTENTION + MIXTRAL_MOE, config=COMMON_CONFIG + MOE_CONFIG,
    # Mixtral: softmax over all experts, top 2, renormalised = softmax over the top 2's logits.
    fixed={"moe_router_pre_softmax": False},
    supported=COMMON_SUPPORTED,
)
QWEN2 = Family(
    name="qwen2", architectures=("Qwen2ForCausalLM",), model_type="qwen2",
    model_class=_GPT + "qwen2:Qwen2Model", config_class=_GPT + "qwen2:Qwen2Config",
    weights=EMBEDDINGS + ATTENTION + DENSE_MLP, config=COMMON_CONFIG,
    fixed={"add_qkv_bias": True},
    supported={k: v for k, v in COMMON_SUPPORTED.items() if k not in ("sliding_window", "attention_bias")},
)
QWEN3 = Family(
    name="qwen3", architectures=("Qwen3ForCausalLM",), model_type="qwen3",
    model_class=_GPT + "qwen3:Qwen3Model", config_class=_GPT + "qwen3:Qwen3Config",
    weights=EMBEDDINGS + ATTENTION + DENSE_MLP, config=COMMON_CONFIG,
    fixed={"qk_layernorm": True},
    supported={k: v for k, v in COMMON_SUPPORTED.items() if k != "sliding_window"},
)
QWEN3_MOE_FAMILY = Family(
    name="qwen3_moe", architectures=("Qwen3MoeForCausalLM",), model_type="qwen3_moe",
    model_class=_GPT + "qwen3:Qwen3Model", config_class=_GPT + "qwen3:Qwen3MoEConfig",
    weights=EMBEDDINGS + ATTENTION + QWEN3_MOE,
    config=COMMON_CONFIG + (
        Field("num_experts", "num_moe_experts"),
        Field("num_experts_per_tok", "moe_router_topk"),
        Field("moe_intermediate_size", "moe_ffn_hidden_size"),
        # norm_topk_prob=true renormalises the top k (= softmax over their logits, megatron's
        # default); false keeps the full softmax's probabilities (megatron's pre-softmax router).
        Field("norm_topk_prob", "moe_router_pre_softmax", invert=True),
    ),
    fixed={"qk_layernorm": True},
    supported={**{k: v for k, v in COMMON_SUPPORTED.items() if k != "sliding_window"},
               "mlp_only_layers": ((), []), "decoder_sparse_step": (1,)},
)

FAMILIES = (LLAMA, MISTRAL, MIXTRAL, QWEN2, QWEN3, QWEN3_MOE_FAMILY)


def family_for_architecture(name: str) -> Family | None:
    """The family that reads an HF `architectures[0]`, or None."""
    return next((f for f in FAMILIES if name in f.architectures), None)


def family_for_model(model_class: str) -> Family | None:
    """The family whose nemolite model class is `model_class` ("module:Class")."""
    return next((f for f in FAMILIES if f.model_class == model_class), None)


def supported_architectures() -> list[str]:
    """Every HF architecture nemolite converts."""
    return [a for f in FAMILIES for a in f.architectures]
