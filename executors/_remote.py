"""Helpers shared by the remote executors (slurm, docker, lepton): nemo-run's dry run.

`dryrun_request` is nemo-run's own dry run, used by `render()` so that what is shown is what is sent.

`run.Experiment.dryrun()` packages the task exactly as a launch does (serialized config files,
torchrun command, scheduler request) and stops before submitting. We run it on a copy of the
executor, in a scratch experiment directory that is deleted afterwards, and hand back the
scheduler's request (`SlurmBatchRequest`, `DockerJobRequest`, ...).
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import nemo_run as run

DRYRUN_SUFFIX = "dryrun"


@contextlib.contextmanager
def _quiet_nemo_run() -> Iterator[None]:
    """Silences nemo-run's console while it dry-runs.

    nemo_run/core/execution/slurm.py `_setup_launcher` and the Experiment log to a global rich
    console even with `clean_mode=True`; render() output must be the script alone.
    """
    from nemo_run.core.frontend.console.api import CONSOLE

    was_quiet = CONSOLE.quiet
    CONSOLE.quiet = True
    try:
        yield
    finally:
        CONSOLE.quiet = was_quiet


def experiment_id(name: str) -> str:
    """The experiment id a dry run uses: `<name>_dryrun`, so rendered paths are stable."""
    return f"{name}_{DRYRUN_SUFFIX}"


def dryrun_request(executor: run.Executor, task: run.Partial, name: str) -> Any:
    """The scheduler request nemo-run would submit for `task` on `executor`, without submitting.

    Args:
        executor: a built nemo-run executor; it is copied, never changed.
        task: the `run.Partial` to launch.
        name: the task name (also the experiment title).

    Returns:
        The request object from the scheduler's `_submit_dryrun`.
    """
    import nemo_run as run

    executor = copy.deepcopy(executor)
    with tempfile.TemporaryDirectory(prefix="nemolite-dryrun-") as base_dir, _quiet_nemo_run():
        exp = run.Experiment(
            name,
            executor=executor,
            id=experiment_id(name),
            base_dir=base_dir,
            clean_mode=True,
            enable_goodbye_message=False,
        )
        with exp:
            exp.add(task, executor=executor, name=name)
            exp.dryrun(log=False)
            return exp.jobs[0]._dryrun_info.request

