"""Reading training counters off a Lightning trainer the same way in every callback."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl


def scalar(trainer: pl.Trainer, name: str) -> float | None:
    """The latest value of a logged metric as a float (None when not logged)."""
    value = trainer.callback_metrics.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def global_batch_size(trainer: pl.Trainer) -> int | None:
    """Samples per optimizer step over all data-parallel ranks, if it can be known."""
    dm: Any = getattr(trainer, "datamodule", None)
    gbs = getattr(dm, "global_batch_size", None)
    if isinstance(gbs, int):
        return gbs
    loader = getattr(trainer.fit_loop, "_combined_loader", None)
    flat = getattr(loader, "flattened", None) or []
    batch_size = getattr(flat[0], "batch_size", None) if flat else None
    if not isinstance(batch_size, int):
        return None
    return batch_size * trainer.accumulate_grad_batches * trainer.world_size


def seq_length(trainer: pl.Trainer) -> int | None:
    """Tokens per sample, from the data module (`seq_length`) or the model config."""
    for owner in (getattr(trainer, "datamodule", None), getattr(trainer.lightning_module, "config", None)):
        value = getattr(owner, "seq_length", None)
        if isinstance(value, int):
            return value
    return None


def consumed_samples(trainer: pl.Trainer) -> int:
    """Samples consumed so far: step x global batch, else the model's logged `consumed_samples`.

    The global batch comes first: the logged value may be our own from the previous step
    (`NeMoMetrics` logs it when the model does not).
    """
    gbs = global_batch_size(trainer)
    if gbs is not None:
        return trainer.global_step * gbs
    logged = scalar(trainer, "consumed_samples")
    return int(logged) if logged is not None and math.isfinite(logged) else 0


def learning_rate(trainer: pl.Trainer) -> float | None:
    """The first parameter group's learning rate of the first optimizer."""
    for opt in trainer.optimizers:
        groups = getattr(opt, "param_groups", None)
        if groups:
            return float(groups[0]["lr"])
    return None


def find_callback(trainer: pl.Trainer, kind: type) -> Any:
    """The trainer's first callback of type `kind`, or None."""
    return next((cb for cb in trainer.callbacks if isinstance(cb, kind)), None)
