"""A progress bar for ASR training: step, CTC loss, training-batch WER and the last validation WER."""

from __future__ import annotations

import sys
from typing import Any

import lightning.pytorch as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nemolite.lightning.callbacks._state import scalar
from nemolite.lightning.callbacks.progress import RichStepProgress, log


class RichWERProgress(RichStepProgress):
    """`nl` step progress with the WER columns (rank 0 only; a plain log line every n steps)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not (self._enabled and trainer.is_global_zero):
            return
        self._progress = Progress(
            TextColumn("[bold]step"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("WER {task.fields[wer]}"),
            TextColumn("val WER {task.fields[val_wer]}"), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(file=sys.__stdout__ or sys.stdout), transient=False,
        )  # fmt: skip
        total = trainer.max_steps if trainer.max_steps > 0 else None
        self._task = self._progress.add_task("train", total=total, completed=trainer.global_step, loss="-", wer="-", val_wer="-")
        self._progress.start()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        fields = {name: _fmt(scalar(trainer, key), pct) for name, key, pct in
                  (("loss", "reduced_train_loss", False), ("wer", "train_wer", True), ("val_wer", "val_wer", True))}  # fmt: skip
        if self._progress is not None and step % self.refresh_rate == 0:
            self._progress.update(
                self._task, completed=step, loss=fields["loss"], wer=fields["wer"], val_wer=fields["val_wer"]
            )
        if trainer.is_global_zero and self.log_every_n_steps and step % self.log_every_n_steps == 0:
            log.info("step %d/%s loss %s WER %s val WER %s", step, trainer.max_steps, fields["loss"], fields["wer"], fields["val_wer"])


def _fmt(value: float | None, percent: bool) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"
