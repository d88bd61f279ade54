"""nemo-run plugins under NeMo 2.0's names (`nemo.lightning.run.plugins`)."""

from __future__ import annotations

from dataclasses import dataclass

import nemo_run as run

from nemolite.errors import ConfigError


@dataclass(kw_only=True)
class FaultTolerancePlugin(run.Plugin):
    """Restarts a crashed job in place (torchrun `--max-restarts`) and resubmits a failed one.

    NeMo 2.0's fields and defaults. nemolite launches `run.FaultTolerance` as torchrun (see
    `nemolite.lightning.run.launch`): a rank that exits makes torchrun restart all ranks, which
    resume from the latest complete checkpoint (`AutoResume(resume_if_exists=True)`).

    Args:
        num_in_job_restarts: restarts inside the job (torchrun's `--max-restarts`).
        num_job_retries_on_failure: new submissions of a failed job (the executor's `retries`).
        initial_rank_heartbeat_timeout: seconds from the start of training to a rank's first
            heartbeat (a training or validation batch, a checkpoint save); a rank past it is
            taken as hung and exits, and the job restarts in place.
        rank_heartbeat_timeout: seconds allowed between later heartbeats; likewise.
    """

    num_in_job_restarts: int = 3
    num_job_retries_on_failure: int = 2
    initial_rank_heartbeat_timeout: int = 1800
    rank_heartbeat_timeout: int = 300

    def setup(self, task: run.Partial | run.Script, executor: run.Executor) -> None:
        """Sets the executor's launcher and retries; the task is left as it is."""
        from nemolite.lightning.run.launch import install

        for name in ("num_in_job_restarts", "num_job_retries_on_failure"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"FaultTolerancePlugin.{name}", value, "must be an integer >= 0",
                                  f"set {name}=3")
        install()
        executor.launcher = run.FaultTolerance(
            max_restarts=self.num_in_job_restarts,
            initial_rank_heartbeat_timeout=self.initial_rank_heartbeat_timeout,
            rank_heartbeat_timeout=self.rank_heartbeat_timeout,
        )
        executor.retries = self.num_job_retries_on_failure
