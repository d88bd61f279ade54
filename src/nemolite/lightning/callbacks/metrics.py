"""Per-step scalars under NeMo's names, and a JSON-lines record of them in the run directory.

The model logs `reduced_train_loss` (and `val_loss`); this adds `lr`, `global_step`,
`consumed_samples` and `train_step_timing in s` unless the model logged them already, so
TensorBoard shows what NeMo users look for. Global rank 0 appends every step to
`<run dir>/train_metrics.jsonl`, which survives kills and resumes (a re-run step appends a newer
line for the same step; readers keep the last), and feeds the loss-curve picture.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from nemolite.lightning.callbacks._state import consumed_samples, learning_rate, scalar

METRICS_FILE = "train_metrics.jsonl"
STEP_TIME = "train_step_timing in s"


class NeMoMetrics(pl.Callback):
    """Logs NeMo-named step scalars and appends them to `train_metrics.jsonl` on global rank 0."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self._t0 = 0.0
        self._own: set[str] = set()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        step_time = time.perf_counter() - self._t0
        extra = {STEP_TIME: step_time, "global_step": float(trainer.global_step),
                 "consumed_samples": float(consumed_samples(trainer))}
        if (lr := learning_rate(trainer)) is not None:
            extra["lr"] = lr
        for name, value in extra.items():
            if name in self._own or name not in trainer.callback_metrics:
                self._own.add(name)
                pl_module.log(name, value, on_step=True, on_epoch=False, batch_size=1, rank_zero_only=True)
        if trainer.is_global_zero:
            record: dict[str, Any] = {"step": trainer.global_step, "time": time.time(), **extra}
            # val_loss stays in callback_metrics between validations: only on_validation_end records it.
            for name in ("reduced_train_loss", "global_batch_size"):  # the model's own, when logged
                if (logged := scalar(trainer, name)) is not None:
                    record[name] = logged
            self._append(record)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            if (value := scalar(trainer, "val_loss")) is not None:
                record = {"step": trainer.global_step, "time": time.time(), "val_loss": value}
                if (ppl := scalar(trainer, "val_ppl")) is not None:
                    record["val_ppl"] = ppl
                self._append(record)

    def _append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(run_dir: Path | str) -> dict[int, dict[str, float]]:
    """Per-step train metrics of a run (the last record of each step wins, as after a resume)."""
    steps: dict[int, dict[str, float]] = {}
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return steps
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a line cut short by a kill
            continue
        if "reduced_train_loss" in record or STEP_TIME in record:
            steps[int(record["step"])] = record
        elif "val_loss" in record:
            steps.setdefault(int(record["step"]), {}).update(
                {k: record[k] for k in ("val_loss", "val_ppl") if k in record})
    return dict(sorted(steps.items()))
