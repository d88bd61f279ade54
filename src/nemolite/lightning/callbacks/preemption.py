"""Save at the next step boundary and stop when the scheduler says the job will be killed.

Signals arrive per process (torchrun forwards SIGTERM to every worker and SIGKILLs them about 30 s
later; Slurm's `--signal=USR1@90` reaches each task), possibly not on all ranks at once, so every
step the ranks agree with one tiny all-reduce whether anyone was signalled. Then all save together
and stop; the same command resumes from that checkpoint.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Any

import lightning.pytorch as pl

from nemolite.lightning.callbacks._state import find_callback
from nemolite.lightning.callbacks.checkpoint import CheckpointCallback

log = logging.getLogger("nemolite.resume")


class PreemptionHandler(pl.Callback):
    """Turns a preemption signal into a checkpoint and a clean stop."""

    def __init__(self, signals: list[str]) -> None:
        self.signals = [getattr(signal, name) for name in signals]
        self.received: int | None = None
        self.preempted = False
        self._previous: dict[int, Any] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Replaces (does not chain to) Lightning's own SIGTERM handler for the training loop:
        # Lightning's sets `trainer.received_sigterm`, and its loops then raise SIGTERMException
        # (lightning/pytorch/loops/training_epoch_loop.py), exiting without a checkpoint.
        for sig in self.signals:
            try:
                self._previous[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread: signals cannot be caught here
                log.warning("cannot catch %s outside the main thread", signal.Signals(sig).name)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only set a flag: saving inside a signal handler could interrupt a collective mid-way.
        self.received = signum

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if not trainer.strategy.reduce_boolean_decision(self.received is not None, all=False):
            return
        name = signal.Signals(self.received).name if self.received is not None else "a peer's signal"
        log.warning("preemption (%s) at step %d: saving a checkpoint and stopping", name,
                    trainer.global_step)
        ckpt = find_callback(trainer, CheckpointCallback)
        if ckpt is not None:
            ckpt.save(trainer)
            ckpt.finalize_async(trainer, blocking=True)
        else:
            log.warning("no checkpoint callback (log.ckpt is None): nothing saved before stopping")
        self.preempted = True
        trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exc: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
