"""Per-GPU memory of a task's layout: parameters, gradients, optimizer state and activations.

Light module (no torch): the dry run prints `estimate(...)` and the launch refuses a layout whose
busiest GPU needs more than the declared memory. The accounting follows megatron-core:

- parameters in the training dtype, split by TP (vocab, attention, MLP), PP (layers) and EP/ETP
  (experts); norms and the router are replicated;
- gradients in megatron's DDP buffers: fp32 when gradients are reduced in fp32, else the params'
  dtype; only trainable (non-frozen) parameters have them;
- Adam state: fp32 master weights (16-bit training only) + two moments, divided over the
  data-parallel (x context-parallel) ranks by the distributed optimizer (megatron's
  docs/distrib_optimizer.md: 6 + 12/d bytes per parameter with bf16 params and fp32 grads);
- activations of one layer per token as Korthikanti et al. 2022 count them ("Reducing Activation
  Recomputation in Large Transformer Models", eq. 1-2: 34sbh + 5as^2b for GPT-3), generalised to
  grouped-query attention, gated MLPs, MoE top-k and flash attention; SP and CP shard them; full
  recomputation keeps only each layer's input; the first pipeline stage holds min(PP, micro-batches)
  micro-batches in flight, x (1 + (PP-1)/(PP VP)) when interleaved; the last stage holds the logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

GiB = 1024**3
FRAMEWORK_BYTES = 1 * GiB
"""CUDA context, NCCL and allocator slack, a fixed allowance per GPU."""


@dataclass(frozen=True)
class Estimate:
    """Bytes on the busiest GPU, by kind."""

    params: float
    grads: float
    optimizer: float
    activations: float
    framework: float
    layout: str

    @property
    def total(self) -> float:
        return self.params + self.grads + self.optimizer + self.activations + self.framework

    def line(self) -> str:
        """`per GPU: params 15.0 GiB + grads ... = 80.1 GiB (TP1 PP1 CP2 DP4, distributed optimizer)`."""
        parts = [("params", self.params), ("grads", self.grads), ("optimizer", self.optimizer),
                 ("activations", self.activations), ("framework", self.framework)]
        text = " + ".join(f"{name} {value / GiB:.1f}" for name, value in parts)
        return f"per GPU: {text} = {self.total / GiB:.1f} GiB ({self.layout})"


@dataclass(frozen=True)
class _Shape:
    """The parameters of one rank's share, counted by kind."""

    dense_per_layer: float  # split by TP
    replicated_per_layer: float  # norms, router
    expert_per_layer: float  # all experts of one layer, split by EP x ETP
    embedding: float  # vocab x hidden, split by TP
    final_norm: float


def _shape(cfg: Any, vocab: int, tp: int) -> _Shape:
    h = cfg.hidden_size
    heads, groups = cfg.num_attention_heads, cfg.num_query_groups or cfg.num_attention_heads
    d = cfg.kv_channels or h // heads
    gated = cfg.gated_linear_unit or cfg.activation in ("swiglu", "geglu")
    ffn = cfg.ffn_hidden_size or 4 * h
    norm = 2 * h if cfg.normalization == "LayerNorm" else h
    attention = h * (heads + 2 * groups) * d + heads * d * h
    if cfg.add_bias_linear or cfg.add_qkv_bias:
        attention += (heads + 2 * groups) * d
    if cfg.add_bias_linear:
        attention += h
    qk_norm = 2 * d * (2 if cfg.normalization == "LayerNorm" else 1) if cfg.qk_layernorm else 0
    mlp = h * ffn * (3 if gated else 2)
    experts = router = 0.0
    if cfg.num_moe_experts:
        expert_ffn = cfg.moe_ffn_hidden_size or ffn
        experts = cfg.num_moe_experts * h * expert_ffn * (3 if gated else 2)
        router = cfg.num_moe_experts * h
        mlp = 0
    padded = math.ceil(vocab / (cfg.make_vocab_size_divisible_by * tp)) * cfg.make_vocab_size_divisible_by * tp
    return _Shape(attention + mlp, 2 * norm + qk_norm + router, experts, padded * h, norm)


def layer_activation_bytes(cfg: Any, *, tp: int = 1, sp: bool = False, etp: int = 1,
                           flash: bool = True, seq: int) -> float:
    """Bytes one layer keeps for backward, per token, in 16-bit (Korthikanti et al. eq. 1-2)."""
    h = cfg.hidden_size
    heads, groups = cfg.num_attention_heads, cfg.num_query_groups or cfg.num_attention_heads
    d = cfg.kv_channels or h // heads
    gated = cfg.gated_linear_unit or cfg.activation in ("swiglu", "geglu")
    ffn = cfg.ffn_hidden_size or 4 * h
    dropout = 1 if cfg.hidden_dropout > 0 else 0
    outside = 2 * h + 2 * h + 2 * h + dropout * h  # norm 1 input, QKV input, norm 2 input, mask
    inside = 2 * (heads + 2 * groups) * d + 2 * heads * d  # Q, K, V and the attention output
    if cfg.qk_layernorm:
        inside += 2 * (heads + groups) * d
    if not flash:  # softmax output (+ its dropout mask and output) for every query x key
        inside += heads * seq * (5 if cfg.attention_dropout > 0 else 2)
    mlp_in, mlp_inside = 2 * h + dropout * h, 2 * ffn * (2 if gated else 1) + 2 * ffn
    if cfg.num_moe_experts:  # each token goes through top-k experts of width moe_ffn_hidden_size
        k, expert_ffn = cfg.moe_router_topk, cfg.moe_ffn_hidden_size or ffn
        mlp_in = 2 * h + 2 * h * k + 4 * cfg.num_moe_experts
        return (outside + mlp_in) / (tp if sp else 1) + inside / tp + k * (
            2 * expert_ffn * (2 if gated else 1) + 2 * expert_ffn) / etp
    return (outside + mlp_in) / (tp if sp else 1) + (inside + mlp_inside) / tp


def estimate(*, model_config: Any, strategy: Any, world_size: int, seq_length: int, micro_batch_size: int,
             global_batch_size: int, precision: str = "bf16-mixed", grad_reduce_in_fp32: bool = True,
             distributed_optimizer: bool = True, trainable_fraction: float | None = None,
             flash_attention: bool = True, vocab_size: int | None = None) -> Estimate:
    """The busiest GPU's memory for this layout (see the module docstring for the accounting).

    Args:
        trainable_fraction: share of parameters that train (None = all; PEFT leaves few).
        vocab_size: the tokenizer's vocabulary when the config leaves it open (None = 256).
    """
    cfg, s = model_config, strategy
    tp, pp, cp = s.tensor_model_parallel_size, s.pipeline_model_parallel_size, s.context_parallel_size
    vp = s.virtual_pipeline_model_parallel_size or 1
    ep = s.expert_model_parallel_size
    etp = s.expert_tensor_parallel_size or tp
    dp = max(world_size // (tp * pp * cp), 1)
    expert_dp = max(world_size // (etp * ep * pp), 1)
    shape = _shape(cfg, cfg.vocab_size or vocab_size or 256, tp)
    ends = int(getattr(s, "account_for_embedding_in_pipeline_split", False))
    layers = (cfg.num_layers + 2 * ends) / pp - ends if pp > 1 else cfg.num_layers
    dense = layers * (shape.dense_per_layer / tp + shape.replicated_per_layer) + shape.embedding / tp
    if pp == 1 and not cfg.share_embeddings_and_output_weights:
        dense += shape.embedding / tp  # first and last stage are the same rank
    dense += shape.final_norm if pp == 1 else 0
    expert = layers * shape.expert_per_layer / (ep * etp)
    param_bytes = 4 if precision in ("32", "32-true") else 2
    fraction = 1.0 if trainable_fraction is None else trainable_fraction
    grad_bytes = 4 if (grad_reduce_in_fp32 or param_bytes == 4) else 2
    state_bytes = 8 + (4 if param_bytes == 2 else 0)  # Adam moments (+ fp32 master weights)
    shard, expert_shard = (dp * cp, expert_dp) if distributed_optimizer else (1, 1)
    optimizer = fraction * state_bytes * (dense / shard + expert / expert_shard)
    # activations: the first stage holds the micro-batches in flight
    tokens = seq_length * micro_batch_size / cp
    micro_batches = max(global_batch_size // (micro_batch_size * dp), 1)
    in_flight = min(pp, micro_batches) * (1 + (pp - 1) / (pp * vp) if vp > 1 else 1)
    per_layer = layer_activation_bytes(cfg, tp=tp, sp=s.sequence_parallel, etp=etp, flash=flash_attention,
                                       seq=seq_length // cp)
    if getattr(cfg, "recompute_granularity", None) == "full":
        # each layer's input stays; one layer's full activations exist while it is recomputed
        per_layer_stack = layers * 2 * cfg.hidden_size / (tp if s.sequence_parallel else 1) + per_layer
        activations = tokens * (per_layer_stack * in_flight)
    else:
        activations = tokens * per_layer * layers * in_flight
    logits = tokens * (shape.embedding / cfg.hidden_size / tp) * 6  # bf16 logits + fp32 softmax
    activations += logits if pp == 1 else 0
    kinds = [f"TP{tp}", f"PP{pp}"] + ([f"VP{vp}"] if vp > 1 else []) + ([f"CP{cp}"] if cp > 1 else [])
    kinds += ([f"EP{ep}"] if ep > 1 else []) + ([ "SP"] if s.sequence_parallel else []) + [f"DP{dp}"]
    if distributed_optimizer:
        kinds.append("distributed optimizer")
    if getattr(cfg, "recompute_granularity", None):
        kinds.append(f"{cfg.recompute_granularity} recomputation")
    return Estimate(
        params=param_bytes * (dense + expert),
        grads=fraction * grad_bytes * (dense + expert),
        optimizer=optimizer,
        activations=activations,
        framework=FRAMEWORK_BYTES,
        layout=" ".join(kinds),
    )


DEFAULT_GPU_MEMORY_GIB = 80.0
"""What the GPU recipes target (H100/A100 80 GB) when `--gpu-memory` is not given."""


def task_estimate(*, model: Any, data: Any, trainer: Any, optim: Any = None, peft: Any = None,
                  vocab_size: int | None = None) -> Estimate | None:
    """The estimate for a task's built specs; None when the trainer's layout is not a number yet."""
    from nemolite.lightning.strategy import MegatronStrategy
    from nemolite.lightning.trainer import precision_plugin

    cfg = getattr(model, "config", None)
    if cfg is None or not isinstance(trainer.devices, int):
        return None
    strategy = trainer.strategy or MegatronStrategy()
    plugins = precision_plugin(trainer)  # one plugin, or the one in NeMo's list
    precision = getattr(plugins, "precision", "32") if plugins is not None else "32"
    optim_config = getattr(optim, "config", None)
    return estimate(
        model_config=cfg,
        strategy=strategy,
        world_size=trainer.num_nodes * trainer.devices,
        seq_length=getattr(data, "seq_length", cfg.seq_length),
        micro_batch_size=getattr(data, "micro_batch_size", 1),
        global_batch_size=getattr(data, "global_batch_size", 1),
        precision=precision,
        grad_reduce_in_fp32=bool(getattr(plugins, "grad_reduce_in_fp32", False)),
        distributed_optimizer=bool(getattr(optim_config, "use_distributed_optimizer", False)),
        trainable_fraction=_lora_fraction(cfg, peft) if peft is not None else None,
        flash_attention=trainer.accelerator not in ("cpu",),
        vocab_size=vocab_size,
    )


def _lora_fraction(cfg: Any, peft: Any) -> float:
    """Adapter parameters over the layer's parameters (A and B of rank `dim`; DoRA's magnitudes)."""
    h = cfg.hidden_size
    heads, groups = cfg.num_attention_heads, cfg.num_query_groups or cfg.num_attention_heads
    d = cfg.kv_channels or h // heads
    ffn = cfg.ffn_hidden_size or 4 * h
    gated = cfg.gated_linear_unit or cfg.activation in ("swiglu", "geglu")
    sides = {"linear_qkv": h + (heads + 2 * groups) * d, "linear_proj": heads * d + h,
             "linear_fc1": h + ffn * (2 if gated else 1), "linear_fc2": ffn + h}
    outputs = {"linear_qkv": (heads + 2 * groups) * d, "linear_proj": h,
               "linear_fc1": ffn * (2 if gated else 1), "linear_fc2": h}
    per_row = 1 if getattr(peft, "method", "lora") == "dora" else 0  # DoRA: a magnitude per output
    adapters = sum(peft.dim * sides[name] + per_row * outputs[name]
                   for name in getattr(peft, "target_modules", ()) if name in sides)
    shape = _shape(cfg, cfg.vocab_size or 256, 1)
    return min(1.0, adapters / max(shape.dense_per_layer + shape.expert_per_layer, 1))


def fits(found: Estimate, gpu_memory_gib: float) -> bool:
    """Whether the busiest GPU's estimate fits `gpu_memory_gib`."""
    return found.total <= gpu_memory_gib * GiB


def check_fit(found: Estimate, gpu_memory_gib: float, field: str = "--gpu-memory") -> None:
    """Raises a one-line `ConfigError` with the numbers when the busiest GPU cannot hold the task."""
    from nemolite.errors import ConfigError

    if not fits(found, gpu_memory_gib):
        raise ConfigError(
            field, gpu_memory_gib,
            f"the busiest GPU needs {found.total / GiB:.1f} GiB: {found.line()}",
            "raise tensor/pipeline parallelism, turn on the distributed optimizer or recomputation "
            "(model.config.recompute_granularity=full), lower data.micro_batch_size, or declare a larger --gpu-memory",
        )
