"""Hang detection: a rank that stops making progress exits, so that the launcher restarts the job.

A crashed rank exits and torchrun restarts the job (`nl.FaultTolerance`); a hung one does not: a
peer frozen or gone silent leaves every other rank waiting inside a collective until the process
group's timeout (30 minutes by default) or the job's time limit. Here a watchdog thread on each rank
expects a heartbeat (every training and validation batch, every checkpoint save) within
`rank_heartbeat_timeout` seconds, and within `initial_rank_heartbeat_timeout` of the start of
training for the first one (model build, checkpoint load, first step). When none comes it writes
one line naming the rank and the timeout, dumps every thread's stack (where it hung) and ends the
process with exit code 1; torchrun then stops the other ranks and starts them all again, and
`AutoResume` continues from the latest complete checkpoint. NeMo 2.0's field names and meaning
(nvidia-resiliency-ext's rank monitors); the launch carries them in the environment
(`nemolite.lightning.fault_tolerance.HEARTBEAT_ENV`).
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
from typing import Any

import lightning.pytorch as pl

EXIT_CODE = 1


class HangDetection(pl.Callback):
    """Ends this rank when no heartbeat comes in time (see the module docstring).

    Args:
        initial_rank_heartbeat_timeout: seconds from setup to the first heartbeat (None: unwatched).
        rank_heartbeat_timeout: seconds between later heartbeats (None: unwatched).
        poll_interval: how often the watchdog looks, in seconds.
    """

    def __init__(self, initial_rank_heartbeat_timeout: float | None = None,
                 rank_heartbeat_timeout: float | None = None, poll_interval: float = 1.0) -> None:
        self.initial = initial_rank_heartbeat_timeout
        self.timeout = rank_heartbeat_timeout
        self.poll_interval = poll_interval
        self.beats = 0
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- heartbeats ----
    def beat(self) -> None:
        """Progress was made: the clock starts again."""
        self._last = time.monotonic()
        self.beats += 1

    def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self.beat()

    def on_validation_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self.beat()

    def on_save_checkpoint(self, *args: Any, **kwargs: Any) -> None:
        self.beat()

    def on_validation_start(self, *args: Any, **kwargs: Any) -> None:
        self.beat()

    # ---- the watchdog ----
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._rank = trainer.global_rank
        self.start()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.stop()

    def start(self) -> None:
        """Starts the watchdog thread (idempotent); the initial timeout counts from here."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._last = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="nemolite-hang-detection", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def overdue(self, now: float | None = None) -> tuple[float, str] | None:
        """(seconds since the last heartbeat, the field whose timeout that exceeds), or None."""
        name, limit = (("rank_heartbeat_timeout", self.timeout) if self.beats
                       else ("initial_rank_heartbeat_timeout", self.initial))
        waited = (time.monotonic() if now is None else now) - self._last
        if limit is not None and waited > limit:
            return waited, f"{name}={limit:g}"
        return None

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            late = self.overdue()
            if late is not None:
                self._end(*late)

    def _end(self, waited: float, field: str) -> None:
        rank = getattr(self, "_rank", os.environ.get("RANK", "0"))
        print(f"[nemolite] rank {rank}: no progress for {waited:.0f} s (fault tolerance {field} s): "
              "treating it as a hang and exiting so that the job restarts from its last checkpoint; "
              "raise the timeout if a step or a save legitimately takes longer", file=sys.stderr, flush=True)
        err = sys.__stderr__
        if err is not None:
            try:
                faulthandler.dump_traceback(file=err, all_threads=True)
                err.flush()
            except (OSError, ValueError):  # no usable file descriptor
                pass
        os._exit(EXIT_CODE)


def from_env() -> HangDetection | None:
    """The watchdog the launcher asked for through this rank's environment, or None."""
    from nemolite.lightning.fault_tolerance import heartbeat_timeouts

    timeouts = heartbeat_timeouts()
    return HangDetection(**timeouts) if timeouts else None
