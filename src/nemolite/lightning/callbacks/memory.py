"""Heavy: NeMo's garbage-collection and memory-profile callbacks as Lightning callbacks."""

from __future__ import annotations

import gc
import json
import os
import resource
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch


class GarbageCollection(pl.Callback):
    """Turns Python's automatic GC off for training and collects every N train / validation steps.

    Automatic collections start at arbitrary allocations and stall one rank while the others wait
    in a collective; collecting on a fixed step count keeps the ranks in step (NeMo's rationale).
    """

    def __init__(self, gc_interval_train: int, gc_interval_val: int) -> None:
        self.train_every, self.val_every = gc_interval_train, gc_interval_val
        self.collections = 0

    def _collect(self) -> None:
        gc.collect()
        self.collections += 1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        gc.disable()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        gc.enable()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step % self.train_every == 0:
            self._collect()

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if (batch_idx + 1) % self.val_every == 0:
            self._collect()


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


class MemoryProfile(pl.Callback):
    """Per-step memory of each chosen rank to `<dir>/memory_rank<r>.jsonl`; on CUDA also NeMo's snapshot.

    Each line: step, resident set size and peak RSS of the process (bytes); on CUDA also allocated,
    reserved and peak allocated bytes, and at the end `memory_snapshot_rank<r>.pickle` from
    `torch.cuda.memory._dump_snapshot` (view it at pytorch.org/memory_viz), as NeMo's callback writes.
    """

    def __init__(self, dir: str, ranks: list[int], warn_cycles: bool = True) -> None:
        self.dir, self.ranks, self.warn_cycles = Path(dir), ranks, warn_cycles

    def _on(self, trainer: pl.Trainer) -> bool:
        return not self.ranks or trainer.global_rank in self.ranks

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._on(trainer):
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"memory_rank{trainer.global_rank}.jsonl"
        if torch.cuda.is_available():
            torch.cuda.memory._record_memory_history(max_entries=100_000)
            if self.warn_cycles:
                from torch.utils.viz._cycles import warn_tensor_cycles

                warn_tensor_cycles()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if not self._on(trainer):
            return
        record: dict[str, Any] = {"step": trainer.global_step, "rss": _rss_bytes(),
                                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
        if torch.cuda.is_available():
            record.update(allocated=torch.cuda.memory_allocated(), reserved=torch.cuda.memory_reserved(),
                          peak_allocated=torch.cuda.max_memory_allocated())
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._on(trainer) and torch.cuda.is_available():
            torch.cuda.memory._dump_snapshot(str(self.dir / f"memory_snapshot_rank{trainer.global_rank}.pickle"))
            torch.cuda.memory._record_memory_history(enabled=None)
