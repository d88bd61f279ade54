"""Writes `loss_curve.png` (train and validation loss over steps) into the run directory at the end.

Reads `train_metrics.jsonl`, so the picture covers the whole run across kills and resumes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl

from nemolite.lightning.callbacks.metrics import read_metrics

log = logging.getLogger("nemolite.train")
PICTURE = "loss_curve.png"


def plot_loss_curve(run_dir: Path | str, out: Path | str | None = None) -> Path | None:
    """Plots the run's losses to `out` (default `<run_dir>/loss_curve.png`); None if nothing logged."""
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters and in tests
    import matplotlib.pyplot as plt

    steps = read_metrics(run_dir)
    train = [(s, r["reduced_train_loss"]) for s, r in steps.items() if "reduced_train_loss" in r]
    val = [(s, r["val_loss"]) for s, r in steps.items() if "val_loss" in r]
    if not train and not val:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="reduced_train_loss", linewidth=1.2)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="val_loss", linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(Path(run_dir).name)
    ax.grid(alpha=0.3)
    ax.legend()
    path = Path(out) if out is not None else Path(run_dir) / PICTURE
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


class LossCurveWriter(pl.Callback):
    """Calls `plot_loss_curve` on global rank 0 when training ends (also after a preemption)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            path = plot_loss_curve(self.run_dir)
            if path is not None:
                log.info("loss curve: %s", path)
