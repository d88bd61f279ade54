"""Optimizer specs: megatron-core `OptimizerConfig` field names, NeMo's module and LR schedulers.

Light module. `MegatronOptimizerModule.build()` imports megatron-core in `megatron_optim.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nemolite.errors import ConfigError, UnknownChoiceError

OPTIMIZERS = ("adam", "sgd")
WSD_DECAY_STYLES = ("linear", "cosine", "exponential", "minus_sqrt")


@dataclass(kw_only=True)
class OptimizerConfig:
    """megatron-core's optimizer settings (same field names as `megatron.core.optimizer.OptimizerConfig`).

    Attributes:
        optimizer: "adam" (megatron's Adam is AdamW when decoupled_weight_decay is on) or "sgd".
        lr: peak learning rate.
        min_lr: floor of the LR schedule (None = the scheduler's min_lr, else 0).
        weight_decay: weight decay (not applied to biases and norms).
        decoupled_weight_decay: AdamW-style decoupled decay (False = L2 added to the gradient).
        adam_beta1: Adam beta1.
        adam_beta2: Adam beta2.
        adam_eps: Adam epsilon.
        sgd_momentum: SGD momentum.
        clip_grad: clip the global gradient L2 norm to this (0 = off).
        use_distributed_optimizer: shard optimizer state over data-parallel ranks (ZeRO-1).
        overlap_param_gather_with_optimizer_step: overlap the distributed optimizer's all-gather.
        bf16: keep fp32 main params for bf16 model params (set by MegatronMixedPrecision).
        fp16: keep fp32 main params and scale the loss for fp16 model params.
        params_dtype: dtype of model params ("float32", "bfloat16", "float16").
        loss_scale: static loss scale for fp16 (None = dynamic).
        initial_loss_scale: first dynamic loss scale.
        min_loss_scale: smallest dynamic loss scale.
        loss_scale_window: steps without overflow before the scale grows.
        hysteresis: overflows tolerated before the scale shrinks.
        log_num_zeros_in_grad: count zero gradients each step.
    """

    optimizer: str = "adam"
    lr: float = 3e-4
    min_lr: float | None = None
    weight_decay: float = 0.01
    decoupled_weight_decay: bool = True
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    sgd_momentum: float = 0.9
    clip_grad: float = 1.0
    use_distributed_optimizer: bool = False
    overlap_param_gather_with_optimizer_step: bool = False
    bf16: bool = False
    fp16: bool = False
    params_dtype: str = "float32"
    loss_scale: float | None = None
    initial_loss_scale: float = 2.0**32
    min_loss_scale: float = 1.0
    loss_scale_window: float = 1000
    hysteresis: int = 2
    log_num_zeros_in_grad: bool = False

    def validate(self, prefix: str = "optim.config") -> None:
        """Raises `ConfigError` on values megatron-core would reject later."""
        if self.optimizer not in OPTIMIZERS:
            raise UnknownChoiceError(f"{prefix}.optimizer", self.optimizer, OPTIMIZERS)
        if self.lr <= 0:
            raise ConfigError(f"{prefix}.lr", self.lr, "must be > 0", "use a positive learning rate")
        if self.bf16 and self.fp16:
            raise ConfigError(f"{prefix}.fp16", self.fp16, "bf16 and fp16 are both on", "keep one")


@dataclass(kw_only=True)
class CosineAnnealingScheduler:
    """Linear warmup, cosine decay to `min_lr`, then `constant_steps` at `min_lr` (NeMo's scheduler).

    Attributes:
        max_steps: length of the schedule (None = trainer.max_steps).
        warmup_steps: linear warmup from 0 to the peak LR.
        constant_steps: steps held at min_lr at the end of the schedule.
        min_lr: LR at the end of the decay.
    """

    max_steps: int | None = None
    warmup_steps: int = 750
    constant_steps: int = 0
    min_lr: float = 0.0

    def megatron_args(self, max_steps: int) -> dict[str, Any]:
        """Arguments for megatron-core's `OptimizerParamScheduler` (in optimizer steps)."""
        total = self.max_steps or max_steps
        return {
            "lr_warmup_steps": self.warmup_steps,
            "lr_decay_steps": max(total - self.constant_steps, self.warmup_steps + 1),
            "lr_decay_style": "cosine",
            "min_lr": self.min_lr,
        }


@dataclass(kw_only=True)
class WarmupStableDecayScheduler:
    """Warmup, hold the peak LR, then decay over the last steps (WSD; megatron's "WSD" style).

    Attributes:
        max_steps: length of the schedule (None = trainer.max_steps).
        warmup_steps: linear warmup from 0 to the peak LR.
        decay_steps: length of the final decay (None = decay_fraction x max_steps).
        decay_fraction: fraction of max_steps spent decaying, when decay_steps is None.
        decay_style: shape of the decay: linear, cosine, exponential or minus_sqrt.
        min_lr: LR at the end of the decay.
    """

    max_steps: int | None = None
    warmup_steps: int = 100
    decay_steps: int | None = None
    decay_fraction: float = 0.1
    decay_style: str = "linear"
    min_lr: float = 0.0

    def megatron_args(self, max_steps: int) -> dict[str, Any]:
        """Arguments for megatron-core's `OptimizerParamScheduler` (in optimizer steps)."""
        if self.decay_style not in WSD_DECAY_STYLES:
            raise UnknownChoiceError("optim.lr_scheduler.decay_style", self.decay_style, WSD_DECAY_STYLES)
        total = self.max_steps or max_steps
        decay = self.decay_steps if self.decay_steps is not None else int(total * self.decay_fraction)
        return {
            "lr_warmup_steps": self.warmup_steps,
            "lr_decay_steps": max(total, self.warmup_steps + 1),
            "lr_decay_style": "WSD",
            "wsd_decay_steps": decay,
            "lr_wsd_decay_style": self.decay_style,
            "min_lr": self.min_lr,
        }


@dataclass
class MegatronOptimizerModule:
    """megatron-core's optimizer (Adam/AdamW/SGD, distributed optimizer, clipping) plus an LR schedule.

    Attributes:
        config: optimizer settings.
        lr_scheduler: LR schedule (None = constant LR).
    """

    config: OptimizerConfig
    lr_scheduler: CosineAnnealingScheduler | WarmupStableDecayScheduler | None = None

    def __post_init__(self) -> None:
        from nemolite.lightning.megatron_configs import from_megatron

        # NeMo scripts pass megatron.core.optimizer.OptimizerConfig here.
        self.config = from_megatron(self.config, OptimizerConfig, "optim.config")

    def validate(self, prefix: str = "optim") -> None:
        """Raises `ConfigError` on optimizer or schedule values that cannot work."""
        self.config.validate(f"{prefix}.config")
        sched = self.lr_scheduler
        if sched is None:
            return
        if sched.warmup_steps < 0:
            raise ConfigError(f"{prefix}.lr_scheduler.warmup_steps", sched.warmup_steps, "must be >= 0", "use 0 or more")
        if isinstance(sched, WarmupStableDecayScheduler) and sched.decay_style not in WSD_DECAY_STYLES:
            raise UnknownChoiceError(f"{prefix}.lr_scheduler.decay_style", sched.decay_style, WSD_DECAY_STYLES)
        if sched.max_steps is not None and sched.max_steps <= sched.warmup_steps:
            raise ConfigError(
                f"{prefix}.lr_scheduler.max_steps",
                sched.max_steps,
                f"not longer than warmup_steps={sched.warmup_steps}",
                "make max_steps larger than warmup_steps (or None = trainer.max_steps)",
            )

    def build(self, model_chunks: list[Any], *, max_steps: int, precision: Any = None) -> tuple[Any, Any]:
        """Returns (megatron optimizer, megatron OptimizerParamScheduler) for DDP-wrapped chunks."""
        from nemolite.lightning.megatron_optim import build_optimizer

        self.validate()
        return build_optimizer(self, model_chunks, max_steps=max_steps, precision=precision)
