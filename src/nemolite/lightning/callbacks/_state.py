"""Reading training counters off a Lightning trainer the same way in every callback."""

from __future__ import annotations

from typing import Any, Protocol, cast

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class ConnectorAttrs(Protocol):
    """`pl.Trainer` attributes that Lightning's connectors assign, so its class body never declares.

    `_CallbackConnector.on_trainer_init` sets `callbacks` and `_default_root_dir`,
    `_LoggerConnector.on_trainer_init` sets `log_every_n_steps` (lightning 2.x); a type checker
    cannot see them on `pl.Trainer`. Delete this the day Lightning annotates them in `Trainer`.
    """

    callbacks: list[Callback]
    log_every_n_steps: int
    _default_root_dir: str


def connector_attrs(trainer: pl.Trainer) -> ConnectorAttrs:
    """`trainer`, typed with the attributes its connectors set (every built Trainer has them)."""
    return cast(ConnectorAttrs, trainer)


def scalar(trainer: pl.Trainer, name: str) -> float | None:
    """The latest value of a logged metric as a float (None when not logged)."""
    value = trainer.callback_metrics.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _data_attr(trainer: pl.Trainer, name: str) -> Any:
    """`name` of the data module or of the data spec it was built from (`dm.spec`)."""
    dm: Any = getattr(trainer, "datamodule", None)
    for owner in (dm, getattr(dm, "spec", None)):
        value = getattr(owner, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def global_batch_size(trainer: pl.Trainer) -> int | None:
    """Samples per optimizer step over all data-parallel ranks, if it can be known."""
    if (gbs := _data_attr(trainer, "global_batch_size")) is not None:
        return gbs
    loader = getattr(trainer.fit_loop, "_combined_loader", None)
    flat = getattr(loader, "flattened", None) or []
    batch_size = getattr(flat[0], "batch_size", None) if flat else None
    if not isinstance(batch_size, int):
        return None
    return batch_size * trainer.accumulate_grad_batches * trainer.world_size


def seq_length(trainer: pl.Trainer) -> int | None:
    """Tokens per sample, from the data module (`seq_length`) or the model config."""
    if (value := _data_attr(trainer, "seq_length")) is not None:
        return value
    value = getattr(getattr(trainer.lightning_module, "config", None), "seq_length", None)
    return value if isinstance(value, int) else None


def consumed_samples(trainer: pl.Trainer) -> int:
    """Samples consumed so far over all ranks.

    The data module's own count comes first (megatron-style modules keep `consumed_samples`,
    resumes included), then step x global batch. A logged `consumed_samples` is not trusted: it
    may be our own from the previous step (`NeMoMetrics` logs it when the model does not).
    """
    if (value := _data_attr(trainer, "consumed_samples")) is not None:
        return value
    gbs = global_batch_size(trainer)
    return trainer.global_step * gbs if gbs is not None else 0


def learning_rate(trainer: pl.Trainer) -> float | None:
    """The first parameter group's learning rate of the first optimizer."""
    for opt in trainer.optimizers:
        groups = getattr(opt, "param_groups", None)
        if groups:
            return float(groups[0]["lr"])
    return None


def find_callback(trainer: pl.Trainer, kind: type) -> Any:
    """The trainer's first callback of type `kind`, or None."""
    return next((cb for cb in connector_attrs(trainer).callbacks if isinstance(cb, kind)), None)
