"""Fraction of a CPU training step spent waiting on data, for the llama_tiny recipe.

Builds `llama_tiny.pretrain_recipe`, runs ~30 optimizer steps in this process and times every
`__next__` of the training dataloader's iterator (the micro-batches `training_step` pulls through
`dataloader_iter`) against the wall time between consecutive `on_train_batch_end` hooks (one full
step: data, forward/backward, optimizer, logging). The first steps are warm-up and left out.

    python benchmarks/data_wait.py [--steps 30 --warmup 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import report  # noqa: E402


class _Timings:
    def __init__(self) -> None:
        self.waits: list[float] = []  # seconds in __next__, one entry per call
        self.step_wait: list[float] = []  # seconds waited, per finished step
        self.step_total: list[float] = []  # seconds per finished step
        self._pending = 0.0
        self._last_end: float | None = None

    def add_wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self._pending += seconds

    def step_end(self) -> None:
        now = time.perf_counter()
        if self._last_end is not None:
            self.step_total.append(now - self._last_end)
            self.step_wait.append(self._pending)
        self._last_end = now
        self._pending = 0.0

    def step_start_of_first(self) -> None:
        if self._last_end is None:
            self._last_end = time.perf_counter()


TIMINGS = _Timings()


class _TimedIterator:
    """Wraps a DataLoader iterator; counts the time spent in each `__next__`."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __iter__(self):
        return self

    def __next__(self):
        start = time.perf_counter()
        try:
            return next(self._inner)
        finally:
            TIMINGS.add_wait(time.perf_counter() - start)

    def __len__(self) -> int:
        return len(self._inner)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _patch_datamodule() -> None:
    """Makes every training DataLoader hand out a timed iterator (the class stays a DataLoader)."""
    from nemolite.llm.gpt.data.datamodule import GPTDataModule as base

    original = base.train_dataloader

    def train_dataloader(self):
        loader = original(self)
        cls = loader.__class__
        loader.__class__ = type("Timed" + cls.__name__, (cls,),
                                {"__iter__": lambda s: _TimedIterator(cls.__iter__(s))})
        return loader

    base.train_dataloader = train_dataloader


def _step_timer():
    from lightning.pytorch.callbacks import Callback

    class StepTimer(Callback):
        def on_train_batch_start(self, *args, **kwargs) -> None:
            TIMINGS.step_start_of_first()

        def on_train_batch_end(self, *args, **kwargs) -> None:
            TIMINGS.step_end()

    return StepTimer()


def _patch_trainer_callbacks() -> None:
    """Adds the step timer to the Lightning trainer that the runtime builds."""
    from nemolite.llm import training

    original = training.build_run

    def build_run(**kwargs):
        pl_trainer, datamodule, module = original(**kwargs)
        pl_trainer.callbacks.append(_step_timer())
        return pl_trainer, datamodule, module

    training.build_run = build_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out")
    args = parser.parse_args()

    import fiddle as fdl

    from nemolite.recipes import llama_tiny

    _patch_datamodule()
    _patch_trainer_callbacks()
    with tempfile.TemporaryDirectory() as tmp:
        recipe = llama_tiny.pretrain_recipe(dir=tmp)
        recipe.trainer.max_steps = args.steps
        recipe.trainer.val_check_interval = args.steps + 1
        recipe.trainer.limit_val_batches = 0
        recipe.trainer.num_sanity_val_steps = 0
        recipe.log.ckpt.every_n_train_steps = 10 * args.steps
        recipe.log.ckpt.save_last = False
        num_workers = getattr(recipe.data, "num_workers", 0)
        start = time.perf_counter()
        fdl.build(recipe)()
        elapsed = time.perf_counter() - start

    waits, totals = TIMINGS.step_wait[args.warmup:], TIMINGS.step_total[args.warmup:]
    if not totals:
        raise SystemExit(f"only {len(TIMINGS.step_total)} steps timed; raise --steps")
    wait_ms, total_ms = 1000 * sum(waits) / len(waits), 1000 * sum(totals) / len(totals)
    micro = len(TIMINGS.waits) / max(len(TIMINGS.step_total), 1)
    rows = [[
        "llama_tiny (CPU, fp32, MBS 4, GBS 8, seq 256)",
        f"{wait_ms:.2f}",
        f"{total_ms:.1f}",
        f"{100 * wait_ms / total_ms:.2f}%",
        f"{1000 * statistics.median(waits):.2f}",
        f"{1000 * statistics.median(totals):.1f}",
    ]]
    notes = (f"{len(totals)} steps timed (steps {args.warmup + 1}-{len(TIMINGS.step_total)} of "
             f"{args.steps}; warm-up left out), ~{micro:.0f} `__next__` calls per step, "
             f"DataLoader num_workers={num_workers}; whole run {elapsed:.1f} s including set-up. "
             "Wait = time inside the training dataloader iterator's `__next__`; step = wall time "
             "from `on_train_batch_start` of step 1 / `on_train_batch_end` of the previous step to this step's "
             "`on_train_batch_end`.")
    report("data_wait", "Time per training step spent waiting on data (llama_tiny, CPU)",
           ["recipe", "wait ms/step (mean)", "step ms (mean)", "fraction waiting",
            "wait ms/step (median)", "step ms (median)"], rows, notes)


if __name__ == "__main__":
    main()
