"""`nl.FaultTolerance`: restart a crashed job from its last checkpoint, inside the same job (light spec).

The restart itself is torchrun's (torch.distributed.elastic): when any rank exits non-zero, the
agent stops all ranks and starts them again, up to `--max-restarts` times. Every restarted rank runs
the same command, so `AutoResume(resume_if_exists=True)` picks up the latest complete checkpoint.
The launcher (executor) reads `torchrun_args()`; a plain single process uses `run_with_restarts`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nemolite.errors import ConfigError

# torchrun exports this to every worker (torch/distributed/elastic/agent/server/api.py).
RESTART_COUNT_ENV = "TORCHELASTIC_RESTART_COUNT"
# The heartbeat timeouts reach each rank's trainer (`HangDetection`) through its environment.
HEARTBEAT_ENV = {
    "initial_rank_heartbeat_timeout": "NEMOLITE_FT_INITIAL_RANK_HEARTBEAT_TIMEOUT",
    "rank_heartbeat_timeout": "NEMOLITE_FT_RANK_HEARTBEAT_TIMEOUT",
}


@dataclass(kw_only=True)
class FaultTolerance:
    """How often a crashed job restarts in place from its last checkpoint.

    A rank that hangs (a peer frozen, a collective that never completes) does not exit by
    itself; with heartbeat timeouts set, each rank's trainer watches its own progress (a heartbeat
    at every training and validation batch and checkpoint save) and exits when none comes in
    time, which makes the launcher restart the job (NeMo 2.0's fields, nvidia-resiliency-ext's
    meaning; nemolite's own watchdog, `nemolite.lightning.callbacks.hang`).

    Args:
        max_restarts: restarts after a crash before the job fails (0: never restart).
        monitor_interval: seconds between torchrun's health checks of the ranks.
        restart_delay: seconds to wait before a restart (lets a flaky node settle).
        initial_rank_heartbeat_timeout: seconds from the start of training (model built,
            checkpoint loaded, first step) to the first heartbeat; None: not watched.
        rank_heartbeat_timeout: seconds allowed between later heartbeats; None: not watched.
    """

    max_restarts: int = 3
    monitor_interval: float = 1.0
    restart_delay: float = 0.0
    initial_rank_heartbeat_timeout: float | None = None
    rank_heartbeat_timeout: float | None = None

    def validate(self, prefix: str = "fault_tolerance") -> None:
        """Raises `ConfigError` for a negative restart count or interval."""
        if not isinstance(self.max_restarts, int) or self.max_restarts < 0:
            raise ConfigError(f"{prefix}.max_restarts", self.max_restarts, "must be an integer >= 0",
                              f"set {prefix}.max_restarts=3")
        for name in ("monitor_interval", "restart_delay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{prefix}.{name}", getattr(self, name), "must be >= 0",
                                  f"set {prefix}.{name}=1")
        for name in HEARTBEAT_ENV:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise ConfigError(f"{prefix}.{name}", value, "must be a number of seconds > 0 (or None: not watched)",
                                  f"set {prefix}.{name}=300")

    def worker_env(self) -> dict[str, str]:
        """The environment that carries the heartbeat timeouts to every rank (empty if none)."""
        return {env: f"{getattr(self, name):g}" for name, env in HEARTBEAT_ENV.items()
                if getattr(self, name) is not None}

    def torchrun_args(self) -> list[str]:
        """The torchrun flags that implement this policy (the executor appends them)."""
        self.validate()
        return [f"--max-restarts={self.max_restarts}", f"--monitor-interval={self.monitor_interval:g}"]

    def run_with_restarts(self, cmd: Sequence[str], env: dict[str, str] | None = None) -> int:
        """Runs `cmd` as a child process, restarting it after a crash; returns the last exit code.

        Exit codes 0 (done) and 2 (user error, the same on every try) are final. The child sees
        `TORCHELASTIC_RESTART_COUNT` as it would under torchrun.
        """
        self.validate()
        base_env = {**(os.environ if env is None else env), **self.worker_env()}
        code = 0
        for attempt in range(self.max_restarts + 1):
            code = _call_in_own_group(cmd, {**base_env, RESTART_COUNT_ENV: str(attempt)})
            if code in (0, 2):
                return code
            if attempt < self.max_restarts:
                print(f"[nemolite] run exited with code {code}; restart {attempt + 1}/"
                      f"{self.max_restarts} from the last checkpoint", file=sys.stderr, flush=True)
                time.sleep(self.restart_delay)
        return code


def _call_in_own_group(cmd: Sequence[str], env: dict[str, str]) -> int:
    """Runs `cmd` in a new process group and kills what a crash left behind in it.

    A SIGKILLed trainer orphans megatron's checkpoint-writer Manager process (multiprocessing
    "spawn", megatron/core/dist_checkpointing/strategies/filesystem_async.py); without the group
    kill every restart would leak one.
    """
    proc = subprocess.Popen(list(cmd), env=env, start_new_session=True)
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # let the run save (PreemptionCallback) before leaving
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        raise
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return code


def heartbeat_timeouts(environ: Mapping[str, str] | None = None) -> dict[str, float]:
    """The heartbeat timeouts the launcher gave this rank ({} when hangs are not watched).

    Raises `ConfigError` for a value that is not a positive number of seconds.
    """
    source: Mapping[str, str] = os.environ if environ is None else environ
    found = {}
    for name, env in HEARTBEAT_ENV.items():
        raw = source.get(env)
        if raw is None or raw == "":
            continue
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not value > 0:
            raise ConfigError(env, raw, "must be a number of seconds > 0", f"unset {env} or set it to 300")
        found[name] = value
    return found


def restart_count() -> int:
    """How many times this job was restarted in place (0 on the first try)."""
    return int(os.environ.get(RESTART_COUNT_ENV, "0") or 0)
