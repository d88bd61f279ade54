"""Batch-size ramp-up: the global batch of each step as a function of the samples consumed before it.

NeMo 2.0's `rampup_batch_size=[start, increment, ramp_samples]` goes to megatron-core's
`RampupBatchsizeNumMicroBatchesCalculator` (megatron/core/num_microbatches_calculator.py): the
batch grows from `start` by `increment` every `ramp_samples / ((global - start) / increment)`
consumed samples, and is the full `global_batch_size` once more than `ramp_samples` samples are
consumed. As in Megatron-LM's training loop, a step's batch is read from the samples consumed
before it, and the step then consumes that many samples. Everything here is a pure function of
the consumed-sample count, so a resumed run (which restores that count) gets the same batches.
Light: no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nemolite.errors import ConfigError

FIELD = "data.rampup_batch_size"


@dataclass(frozen=True)
class BatchRamp:
    """A validated ramp from `start` to `global_batch_size` over `ramp_samples` samples."""

    start: int
    increment: int
    ramp_samples: int
    global_batch_size: int

    def batch_at(self, consumed_samples: int) -> int:
        """The global batch of the step that starts after `consumed_samples` samples."""
        if consumed_samples > self.ramp_samples:
            return self.global_batch_size
        increments = (self.global_batch_size - self.start) // self.increment
        # megatron divides in floating point: int(consumed / (ramp_samples / increments)).
        done = int(consumed_samples / (self.ramp_samples / increments))
        return min(self.start + done * self.increment, self.global_batch_size)

    def consumed_after(self, consumed_samples: int, steps: int) -> int:
        """Samples consumed after `steps` more steps, starting from `consumed_samples`."""
        for done in range(steps):
            if consumed_samples > self.ramp_samples:  # past the ramp: constant batches
                return consumed_samples + (steps - done) * self.global_batch_size
            consumed_samples += self.batch_at(consumed_samples)
        return consumed_samples


def parse_ramp(value: Any, global_batch_size: int, micro_batch_size: int) -> BatchRamp | None:
    """Checks `data.rampup_batch_size` against the batch fields; raises a one-line ConfigError.

    Args:
        value: the user's `[start, increment, ramp_samples]`, or None for no ramp.
        global_batch_size: the batch the ramp ends at.
        micro_batch_size: samples per forward pass; start and increment must be multiples of it.
    """
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 3:
        raise ConfigError(FIELD, value, "must be a list of three integers [start_global_batch, "
                          "increment, ramp_samples]", f"e.g. data.rampup_batch_size=[{micro_batch_size}, "
                          f"{micro_batch_size}, 1000]")
    names = ("start_global_batch", "increment", "ramp_samples")
    for name, item in zip(names, value):
        if not isinstance(item, int) or isinstance(item, bool) or item < 1:
            raise ConfigError(FIELD, list(value), f"{name}={item!r} must be a positive integer",
                              f"set {name} to 1 or more")
    start, increment, samples = (int(v) for v in value)
    if start >= global_batch_size:
        raise ConfigError(FIELD, list(value), f"start_global_batch={start} must be smaller than "
                          f"data.global_batch_size={global_batch_size} (the batch the ramp reaches)",
                          "lower the start, or unset data.rampup_batch_size for a constant batch")
    if (global_batch_size - start) % increment:
        raise ConfigError(FIELD, list(value), f"the ramp from {start} by {increment} does not reach "
                          f"data.global_batch_size={global_batch_size}",
                          "pick an increment that divides global_batch_size - start")
    check_divisible(value, micro_batch_size, "data.micro_batch_size")
    return BatchRamp(start, increment, samples, global_batch_size)


def check_divisible(value: Sequence[int], step: int, what: str) -> None:
    """Every batch of the ramp is a whole number of micro-batches over the data-parallel ranks."""
    start, increment = value[0], value[1]
    for name, item in (("start_global_batch", start), ("increment", increment)):
        if item % step:
            raise ConfigError(FIELD, list(value), f"{name}={item} is not a multiple of {what} = {step}",
                              f"use multiples of {step} for start_global_batch and increment")
