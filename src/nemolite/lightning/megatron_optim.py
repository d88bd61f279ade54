"""Heavy: megatron-core's optimizer and LR scheduler, and a `torch.optim.Optimizer` face for Lightning.

Lightning counts optimizer steps (`trainer.global_step`, `max_steps`) through the optimizers it
knows, and megatron's `MegatronOptimizer` is not a `torch.optim.Optimizer`; `MegatronOptimizerAdapter`
lets Lightning hold it without changing how it steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from megatron.core.optimizer import OptimizerConfig as McoreOptimizerConfig
from megatron.core.optimizer import get_megatron_optimizer
from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

if TYPE_CHECKING:
    from nemolite.lightning.optim import MegatronOptimizerModule
    from nemolite.lightning.precision import MegatronMixedPrecision

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# What torch's fused Adam kernel takes on CPU.
FUSED_ADAM_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


class MegatronOptimizerAdapter(torch.optim.Optimizer):
    """A torch Optimizer that delegates to a megatron-core optimizer.

    `step()` returns megatron's `(update_successful, grad_norm, num_zeros_in_grad)` and keeps them
    on the adapter for logging.
    """

    def __init__(self, mcore_optimizer: Any) -> None:
        # Deliberately no super().__init__: the param groups and state are megatron's own.
        self.mcore_optimizer = mcore_optimizer
        self.defaults: dict[str, Any] = {}
        self.last_step: tuple[bool, float | None, int | None] = (True, None, None)
        self._optimizer_step_pre_hooks: dict[int, Callable] = {}
        self._optimizer_step_post_hooks: dict[int, Callable] = {}

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.mcore_optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value: Any) -> None:
        pass

    @property
    def state(self) -> Any:  # type: ignore[override]
        return self.mcore_optimizer.state

    @state.setter
    def state(self, value: Any) -> None:
        pass

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.mcore_optimizer.zero_grad(set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        if closure is not None:
            closure()
        self.last_step = self.mcore_optimizer.step()
        return self.last_step

    def state_dict(self) -> dict[str, Any]:
        return self.mcore_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # megatron/core/optimizer/distrib_optimizer.py `_set_main_param_and_optimizer_states`
        # copies into views of fp32 params outside no_grad (fails for fp32 training).
        from nemolite.lightning.megatron_checkpoint import sync_adam_steps

        with torch.no_grad():
            self.mcore_optimizer.load_state_dict(state_dict)
        sync_adam_steps(self.mcore_optimizer)

    def sharded_state_dict(self, model_sharded_state_dict: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """megatron's sharded optimizer state (dist-checkpointing), keyed by the model's tensors."""
        return self.mcore_optimizer.sharded_state_dict(model_sharded_state_dict, **kwargs)


def mcore_optimizer_config(
    module: MegatronOptimizerModule, precision: MegatronMixedPrecision | None
) -> McoreOptimizerConfig:
    """megatron's OptimizerConfig from the spec; the precision plugin decides bf16/fp16 params."""
    c = module.config
    dtype = precision.dtype_name if precision is not None else c.params_dtype
    min_lr = c.min_lr
    if min_lr is None:
        min_lr = module.lr_scheduler.min_lr if module.lr_scheduler is not None else c.lr
    return McoreOptimizerConfig(
        optimizer=c.optimizer,
        lr=c.lr,
        min_lr=min_lr,
        weight_decay=c.weight_decay,
        decoupled_weight_decay=c.decoupled_weight_decay,
        adam_beta1=c.adam_beta1,
        adam_beta2=c.adam_beta2,
        adam_eps=c.adam_eps,
        sgd_momentum=c.sgd_momentum,
        clip_grad=c.clip_grad,
        use_distributed_optimizer=c.use_distributed_optimizer,
        overlap_param_gather_with_optimizer_step=c.overlap_param_gather_with_optimizer_step,
        bf16=c.bf16 or dtype == "bfloat16",
        fp16=c.fp16 or dtype == "float16",
        params_dtype=DTYPES[dtype],
        loss_scale=(precision.fp16_loss_scale if precision is not None else None) or c.loss_scale,
        initial_loss_scale=c.initial_loss_scale,
        min_loss_scale=c.min_loss_scale,
        loss_scale_window=c.loss_scale_window,
        hysteresis=c.hysteresis,
        log_num_zeros_in_grad=c.log_num_zeros_in_grad,
    )


def _torch_optimizers(optimizer: Any) -> list[torch.optim.Optimizer]:
    """The torch optimizers inside megatron's wrappers (chained for expert / dense groups)."""
    chained = getattr(optimizer, "chained_optimizers", None)
    if chained is not None:
        return [inner for part in chained for inner in _torch_optimizers(part)]
    inner = getattr(optimizer, "optimizer", None)
    return [inner] if isinstance(inner, torch.optim.Optimizer) else []


def _set_fused(optimizer: torch.optim.Optimizer) -> None:
    for group in optimizer.param_groups:
        group["fused"], group["foreach"] = True, False


def fuse_cpu_adam(optimizer: Any) -> int:
    """Runs torch's Adam/AdamW over CPU parameters with its fused CPU kernel; returns how many it set.

    Without TransformerEngine or apex, megatron-core falls back to `torch.optim.AdamW` with torch's
    defaults, which on CPU are the per-tensor loop: about eight passes over every parameter and both
    moments per step (lerp, mul, addcmul, sqrt, div, addcdiv, ...). The fused kernel (torch >= 2.4
    on CPU; megatron's own CPU-offload optimizer asks for it) updates each element in one pass, with
    the same arithmetic up to rounding. Parameters on an accelerator keep what megatron chose. The
    flag lives in the param groups, which a checkpoint restores: a post-load hook sets it again so
    that checkpoints from before this keep the fast path when resumed.
    """
    count = 0
    for inner in _torch_optimizers(optimizer):
        if not isinstance(inner, torch.optim.Adam | torch.optim.AdamW):
            continue
        params = [p for group in inner.param_groups for p in group["params"]]
        if not params or any(p.device.type != "cpu" or p.dtype not in FUSED_ADAM_DTYPES for p in params):
            continue
        if any(group.get("differentiable") or group.get("capturable") for group in inner.param_groups):
            continue
        _set_fused(inner)
        inner.register_load_state_dict_post_hook(_set_fused)
        count += 1
    return count


def fold_nan_check(optimizer: Any, model_chunks: list[Any]) -> bool:
    """One pass over the gradients for megatron DDP's NaN/Inf check and the optimizer's norm.

    `check_for_nan_in_grad` (NeMo's default) has DDP take the norm of every gradient bucket before
    the data-parallel reduction, and the optimizer takes the gradients' norm again for clipping:
    two reads of every gradient per step (each about as long as a small model's Adam update on a
    CPU). In a one-process run there is no reduction to guard and the optimizer's norm covers
    exactly the gradients DDP would check (with tensor parallelism it would skip the replicas it
    counts on another rank), so the check moves onto that norm: a NaN or Inf gradient makes the
    norm NaN or Inf and stops the step with the same kind of error, before any parameter changes.
    Applies only where that norm is taken every step (megatron's `ChainedOptimizer`, or gradient
    clipping on) and the large-gradient check is off.
    """
    from megatron.core.optimizer.optimizer import ChainedOptimizer

    configs = [chunk.ddp_config for chunk in model_chunks if getattr(chunk, "ddp_config", None) is not None]
    norm_every_step = isinstance(optimizer, ChainedOptimizer) or optimizer.config.clip_grad > 0.0
    if (not configs or not norm_every_step or torch.distributed.get_world_size() != 1
            or not all(c.check_for_nan_in_grad and not c.check_for_large_grads for c in configs)):
        return False
    norm = optimizer.get_grad_norm

    def checked_grad_norm() -> Any:
        total = norm()
        if total is not None and not math.isfinite(float(total)):
            raise FloatingPointError(
                f"found {'NaN' if math.isnan(float(total)) else 'Inf'} in the gradients (their norm is "
                f"{float(total)}); stopping before the optimizer step (check_for_nan_in_grad)"
            )
        return total

    optimizer.get_grad_norm = checked_grad_norm
    for c in configs:
        c.check_for_nan_in_grad = False
    return True


def build_optimizer(
    module: MegatronOptimizerModule,
    model_chunks: list[Any],
    *,
    max_steps: int,
    precision: MegatronMixedPrecision | None = None,
) -> tuple[MegatronOptimizerAdapter, OptimizerParamScheduler]:
    """The megatron optimizer over DDP-wrapped chunks and an LR scheduler stepped once per step."""
    config = mcore_optimizer_config(module, precision)
    optimizer = get_megatron_optimizer(config, model_chunks)
    fuse_cpu_adam(optimizer)
    fold_nan_check(optimizer, model_chunks)
    sched_args: dict[str, Any] = {
        "lr_warmup_steps": 0,
        "lr_decay_steps": max(max_steps, 1),
        "lr_decay_style": "constant",
        "min_lr": config.min_lr,
    }
    if module.lr_scheduler is not None:
        sched_args = module.lr_scheduler.megatron_args(max(max_steps, 1))
    scheduler = OptimizerParamScheduler(
        optimizer,
        init_lr=0.0 if sched_args["lr_warmup_steps"] else config.lr,
        max_lr=config.lr,
        start_wd=config.weight_decay,
        end_wd=config.weight_decay,
        wd_incr_steps=max(max_steps, 1),
        wd_incr_style="constant",
        use_checkpoint_opt_param_scheduler=True,
        **sched_args,
    )
    return MegatronOptimizerAdapter(optimizer), scheduler
