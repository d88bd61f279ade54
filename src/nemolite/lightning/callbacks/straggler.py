"""Reports per-rank step times and flags ranks slower than a multiple of the median.

In synchronous training every rank's wall time per step is the same: the fast ranks wait for the
slow one inside the gradient all-reduce. So the time measured is each rank's *own* work before its
first wait: from batch start to `on_before_backward` (data to device and forward; DDP's all-reduce
runs during backward). Modules that run forward and backward inside `training_step` (megatron's
schedules, manual optimization) give no such hook; there the whole step is timed, which only
shows ranks slowed after the step's last collective. Every `report_every_n_steps` the ranks all-gather their mean step time of the window (one small
collective per report, none in between). Global rank 0 logs the table; every rank can read
`last_report` (used by tests) and, with `stop_if_detected`, all stop after checkpointing.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl

from nemolite.lightning.callbacks._state import find_callback
from nemolite.lightning.callbacks.checkpoint import CheckpointCallback

if TYPE_CHECKING:
    from nemolite.lightning.callbacks import StragglerDetection

log = logging.getLogger("nemolite.straggler")


class StragglerCallback(pl.Callback):
    """Times each step on every rank and names the slow ranks."""

    def __init__(self, spec: StragglerDetection) -> None:
        self.spec = spec
        self._t0 = 0.0
        self._local: float | None = None
        self._times: list[float] = []
        self.last_report: dict[str, Any] | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        self._t0 = time.perf_counter()
        self._local = None

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Any) -> None:
        if self._local is None:
            self._local = time.perf_counter() - self._t0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self._times.append(self._local if self._local is not None else time.perf_counter() - self._t0)
        if trainer.global_step % self.spec.report_every_n_steps:
            return
        mean = sum(self._times) / len(self._times)
        self._times.clear()
        per_rank = gather_floats(trainer, mean)
        self.last_report = straggler_report(per_rank, self.spec.threshold, trainer.global_step)
        if trainer.is_global_zero:
            log.info("step times at step %d: %s", trainer.global_step, ", ".join(
                f"rank {r}: {t * 1e3:.1f} ms" for r, t in enumerate(per_rank)))
            for rank in self.last_report["stragglers"]:
                log.warning("straggler: rank %d takes %.2fx the median step time (%.1f ms)", rank,
                            self.last_report["ratios"][rank], per_rank[rank] * 1e3)
        if self.last_report["stragglers"] and self.spec.stop_if_detected:
            ckpt = find_callback(trainer, CheckpointCallback)
            if ckpt is not None:
                ckpt.save(trainer)
            trainer.should_stop = True


def gather_floats(trainer: pl.Trainer, value: float) -> list[float]:
    """`value` of every rank, in rank order."""
    import torch

    gathered = trainer.strategy.all_gather(torch.tensor([value], dtype=torch.float64))
    return [float(v) for v in gathered.reshape(-1).tolist()]


def straggler_report(per_rank: list[float], threshold: float, step: int) -> dict[str, Any]:
    """Ranks whose time exceeds `threshold` x the median, with every rank's ratio to the median."""
    median = statistics.median(per_rank)
    ratios = [t / median if median > 0 else 1.0 for t in per_rank]
    return {"step": step, "median_s": median, "times_s": per_rank, "ratios": ratios,
            "stragglers": [r for r, ratio in enumerate(ratios) if ratio > threshold]}
