"""Rich progress bar for training steps: step, loss, tokens/s and ETA (global rank 0 only).

Draws on the terminal the process started with, not on the tee into the run directory's console
log (rich's redraw codes would litter it); every `log_every_n_steps` a plain line goes to the
`nemolite` logger instead, which reaches both.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks.progress import ProgressBar
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nemolite.lightning.callbacks._state import consumed_samples, scalar, seq_length

log = logging.getLogger("nemolite.train")


class RichStepProgress(ProgressBar):
    """Counts optimizer steps (not batches) up to `max_steps`, resumed runs included."""

    def __init__(self, refresh_rate: int = 1, log_every_n_steps: int = 10) -> None:
        super().__init__()
        self.refresh_rate = max(1, refresh_rate)
        self.log_every_n_steps = log_every_n_steps
        self._enabled = True
        self._progress: Progress | None = None
        self._task: Any = None
        self._t_last = 0.0
        self._step_last = self._samples_last = 0
        self._val_start: float | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t_last, self._step_last = time.perf_counter(), trainer.global_step
        self._samples_last = consumed_samples(trainer)
        if not (self._enabled and trainer.is_global_zero):
            return
        console = Console(file=sys.__stdout__ or sys.stdout)
        self._progress = Progress(
            TextColumn("[bold]step"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
            TextColumn("ETA"), TimeRemainingColumn(), console=console, redirect_stdout=False,
            redirect_stderr=False, transient=False,
        )
        total = trainer.max_steps if trainer.max_steps > 0 else None
        self._task = self._progress.add_task("train", total=total, completed=trainer.global_step,
                                             loss="-", tps="-")
        self._progress.start()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if step % self.refresh_rate and not (self.log_every_n_steps and step % self.log_every_n_steps == 0):
            return
        now = time.perf_counter()
        samples = consumed_samples(trainer)
        rate = self._tokens_per_s(trainer, samples - self._samples_last, now - self._t_last)
        self._t_last, self._step_last, self._samples_last = now, step, samples
        loss = scalar(trainer, "reduced_train_loss")
        loss_s = f"{loss:.4f}" if loss is not None else "-"
        if self._progress is not None:
            self._progress.update(self._task, completed=step, loss=loss_s, tps=rate)
        if trainer.is_global_zero and self.log_every_n_steps and step % self.log_every_n_steps == 0:
            log.info("step %d/%s loss %s tokens/s %s", step, trainer.max_steps, loss_s, rate)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Validation is not training throughput: the window of the next rate starts after it.
        if self._val_start is not None and not trainer.sanity_checking:
            self._t_last += time.perf_counter() - self._val_start
        self._val_start = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exc: BaseException) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @staticmethod
    def _tokens_per_s(trainer: pl.Trainer, samples: int, seconds: float) -> str:
        # Samples, not steps x global batch: a batch-size ramp-up changes the batch between steps.
        seq = seq_length(trainer)
        if samples <= 0 or seconds <= 0:
            return "-"
        return f"{samples * (seq or 1) / seconds:,.0f}"
