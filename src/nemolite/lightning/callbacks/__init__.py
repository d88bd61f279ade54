"""Experiment and resiliency callbacks: light specs here, Lightning callbacks in the submodules.

Each spec's `build()` imports its heavy module and returns the Lightning callback, so a recipe can
name `PreemptionCallback()` in `trainer.callbacks` without importing lightning. `NeMoLogger.setup`
adds the progress bar, the loss-curve writer, the NeMo-named metrics and (when checkpoints are on)
preemption handling by itself, unless the trainer already has one of the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nemolite.errors import ConfigError, UnknownChoiceError

if TYPE_CHECKING:
    from lightning.pytorch.callbacks import Callback

SIGNAL_NAMES = ("SIGTERM", "SIGUSR1", "SIGUSR2", "SIGINT", "SIGHUP")


@dataclass(kw_only=True)
class PreemptionCallback:
    """On a preemption signal, save a checkpoint at the next step boundary and exit cleanly.

    Slurm's warning signal (`#SBATCH --signal=USR1@90`) and the SIGTERM that schedulers send before
    a kill both land here; the same command then resumes from that checkpoint.

    Args:
        signals: names of the signals that mean "preempted".
    """

    signals: list[str] = field(default_factory=lambda: ["SIGTERM", "SIGUSR1"])

    def validate(self, prefix: str = "trainer.callbacks.PreemptionCallback") -> None:
        """Raises `UnknownChoiceError` for a signal name that is not handled."""
        for name in self.signals:
            if name not in SIGNAL_NAMES:
                raise UnknownChoiceError(f"{prefix}.signals", name, SIGNAL_NAMES, "signal")

    def build(self) -> Callback:
        """The Lightning callback."""
        from nemolite.lightning.callbacks.preemption import PreemptionHandler

        self.validate()
        return PreemptionHandler(self.signals)


@dataclass(kw_only=True)
class StragglerDetection:
    """Reports per-rank step times and flags ranks slower than `threshold` x the median.

    Args:
        report_every_n_steps: gather and report the step times every N steps.
        threshold: a rank is a straggler when its mean step time exceeds this multiple of the median.
        stop_if_detected: stop training (after a checkpoint) when a straggler is found.
    """

    report_every_n_steps: int = 100
    threshold: float = 1.5
    stop_if_detected: bool = False

    def validate(self, prefix: str = "trainer.callbacks.StragglerDetection") -> None:
        """Raises `ConfigError` for a non-positive interval or a threshold not above 1."""
        if self.report_every_n_steps < 1:
            raise ConfigError(f"{prefix}.report_every_n_steps", self.report_every_n_steps,
                              "must be >= 1", f"set {prefix}.report_every_n_steps=100")
        if not self.threshold > 1.0:
            raise ConfigError(f"{prefix}.threshold", self.threshold, "must be > 1 (a multiple of the median)",
                              f"set {prefix}.threshold=1.5")

    def build(self) -> Callback:
        """The Lightning callback."""
        from nemolite.lightning.callbacks.straggler import StragglerCallback

        self.validate()
        return StragglerCallback(self)


@dataclass(kw_only=True)
class ProgressBar:
    """Rich progress bar: step, loss, tokens/s and ETA; plain log lines go to the console log.

    Args:
        refresh_rate: redraw every N steps.
        log_every_n_steps: also write a plain text line every N steps (0: never).
    """

    refresh_rate: int = 1
    log_every_n_steps: int = 10

    def build(self) -> Callback:
        """The Lightning callback."""
        from nemolite.lightning.callbacks.progress import RichStepProgress

        return RichStepProgress(self.refresh_rate, self.log_every_n_steps)


@dataclass(kw_only=True)
class GarbageCollectionCallback:
    """Python's automatic GC off during training; `gc.collect()` every N steps (NeMo's callback).

    Args:
        gc_interval_train: collect every this many training steps.
        gc_interval_val: collect every this many validation batches.
    """

    gc_interval_train: int
    gc_interval_val: int

    def validate(self, prefix: str = "trainer.callbacks.GarbageCollectionCallback") -> None:
        """Raises `ConfigError` for an interval below 1."""
        for name in ("gc_interval_train", "gc_interval_val"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{prefix}.{name}", getattr(self, name), "must be >= 1",
                                  f"set {prefix}.{name}=100 (steps between collections)")

    def build(self) -> Callback:
        """The Lightning callback."""
        from nemolite.lightning.callbacks.memory import GarbageCollection

        self.validate()
        return GarbageCollection(self.gc_interval_train, self.gc_interval_val)


@dataclass(kw_only=True)
class MemoryProfileCallback:
    """Writes each step's memory (RSS; on CUDA allocated/reserved and NeMo's snapshot) under `dir`.

    Args:
        dir: output directory (one `memory_rank<r>.jsonl` per profiled rank).
        warn_cycles: on CUDA, warn about reference cycles holding tensors (as NeMo's).
        ranks: global ranks to profile (empty = all).
    """

    dir: str = "mem_profile"
    warn_cycles: bool = True
    ranks: list[int] = field(default_factory=list)

    def build(self) -> Callback:
        """The Lightning callback."""
        from nemolite.lightning.callbacks.memory import MemoryProfile

        return MemoryProfile(self.dir, list(self.ranks), self.warn_cycles)


__all__ = ["GarbageCollectionCallback", "MemoryProfileCallback", "PreemptionCallback", "ProgressBar",
           "StragglerDetection"]
