"""Heavy: builds the Lightning trainer from the `Trainer` spec."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch

from nemolite.errors import ConfigError
from nemolite.lightning.ddp_strategy import DDPStrategy
from nemolite.lightning.strategy import MegatronStrategy
from nemolite.lightning.trainer import check_clip, check_trainer, devices_per_node

if TYPE_CHECKING:
    from nemolite.lightning.trainer import Trainer

# Lightning options the spec passes through unchanged when set (None = Lightning's default).
PASSTHROUGH = (
    "max_epochs",
    "min_steps",
    "val_check_interval",
    "check_val_every_n_epoch",
    "limit_val_batches",
    "limit_test_batches",
    "log_every_n_steps",
    "num_sanity_val_steps",
    "default_root_dir",
)


def _fit_val_interval(kwargs: dict[str, Any], max_steps: int) -> None:
    """A validation interval beyond a short run (`trainer.max_steps=5` on a 100-step recipe)
    validates once, at the end, and says so: Lightning would refuse it with a long traceback
    (lightning/pytorch/loops/fit_loop.py: "val_check_interval ... must be less than or equal to
    the number of the training batches").
    """
    interval = kwargs.get("val_check_interval")
    if isinstance(interval, int) and not isinstance(interval, bool) and 0 < max_steps < interval:
        logging.getLogger("nemolite").warning(
            "note: trainer.val_check_interval=%d is beyond trainer.max_steps=%d: validating at step %d",
            interval, max_steps, max_steps)
        kwargs["val_check_interval"] = max_steps


def build_callbacks(callbacks: list[Any]) -> list[Any]:
    """Builds callback specs (objects with `build()`); Lightning callbacks pass through."""
    built = []
    for cb in callbacks:
        built.append(cb.build() if hasattr(cb, "build") and not isinstance(cb, pl.Callback) else cb)
    return built


def launched_devices(spec: Trainer, per_node: int) -> int:
    """Processes per node, reconciled with a launcher (torchrun/Slurm) that already started them.

    `devices="auto"` takes the launcher's count; an explicit count that disagrees is a user error
    (Lightning would fail later, after the process group started).
    """
    launched = os.environ.get("LOCAL_WORLD_SIZE")
    if launched is None:
        return per_node
    if spec.devices == "auto":
        return int(launched)
    if per_node != int(launched):
        raise ConfigError(
            "trainer.devices",
            spec.devices,
            f"the launcher started {launched} processes on this node",
            f"set trainer.devices={launched} (or launch {per_node} processes per node)",
        )
    return per_node


def build_trainer(spec: Trainer, *, clip_grad: float | None = None, **overrides: Any) -> pl.Trainer:
    """The Lightning trainer with `MegatronLightningStrategy` and manual (megatron) optimization."""
    cuda = torch.cuda.is_available()
    check_trainer(spec, model_config=None, cuda=cuda)
    check_clip(spec, clip_grad)
    on_gpu = cuda and spec.accelerator != "cpu"
    devices = launched_devices(
        spec, devices_per_node(spec, cuda=on_gpu, gpu_count=torch.cuda.device_count() if on_gpu else None)
    )
    plain_ddp = isinstance(spec.strategy, DDPStrategy)
    if isinstance(spec.strategy, DDPStrategy):
        strategy = spec.strategy.build(world_size=devices * spec.num_nodes, on_gpu=on_gpu)
    else:
        strategy = (spec.strategy or MegatronStrategy()).build()
    kwargs: dict[str, Any] = {
        "accelerator": "gpu" if on_gpu else "cpu",
        "devices": devices,
        "num_nodes": spec.num_nodes,
        "strategy": strategy,
        "callbacks": build_callbacks(spec.callbacks),
        "max_steps": spec.max_steps,
        "accumulate_grad_batches": spec.accumulate_grad_batches if plain_ddp else 1,
        "use_distributed_sampler": False,
        "enable_checkpointing": spec.enable_checkpointing,
        "enable_progress_bar": spec.enable_progress_bar,
        "enable_model_summary": spec.enable_model_summary,
        "logger": spec.logger,
        "deterministic": spec.deterministic,
        # Mixed precision is megatron's (Float16Module + fp32 main params), not Lightning's;
        # under plain DDP it is Lightning's, and so is gradient clipping.
        "precision": (spec.precision or "32-true") if plain_ddp else "32-true",
    }
    if plain_ddp and spec.gradient_clip_val is not None:
        kwargs["gradient_clip_val"] = spec.gradient_clip_val
    if plain_ddp and isinstance(spec.val_check_interval, int):
        # Speech epochs are short: an integer interval counts steps across epochs (Lightning does
        # that only with check_val_every_n_epoch=None, which PASSTHROUGH cannot express).
        kwargs["check_val_every_n_epoch"] = spec.check_val_every_n_epoch
    kwargs.update({k: getattr(spec, k) for k in PASSTHROUGH if getattr(spec, k) is not None})
    _fit_val_interval(kwargs, spec.max_steps)
    if not spec.enable_checkpointing:
        kwargs["enable_checkpointing"] = False
    kwargs.update(overrides)
    from nemolite.lightning.callbacks.hang import from_env

    watchdog = from_env()  # heartbeat timeouts from a fault-tolerant launch (LLM and ASR alike)
    if watchdog is not None:
        kwargs["callbacks"] = [*kwargs["callbacks"], watchdog]
    _check_interactive(kwargs["devices"] * spec.num_nodes)
    return pl.Trainer(**kwargs)


def _check_interactive(world_size: int) -> None:
    """Several processes cannot start from a notebook's kernel: say which executor does it."""
    from lightning.fabric.utilities.imports import _IS_INTERACTIVE

    if _IS_INTERACTIVE and world_size > 1 and "LOCAL_WORLD_SIZE" not in os.environ:
        raise ConfigError(
            "trainer.devices", world_size, "processes cannot start from a notebook's kernel",
            f"run it with an executor: run.run(recipe, executor=run.LocalExecutor(ntasks_per_node="
            f"{world_size}, launcher='torchrun')), or train one process in the notebook",
        )
