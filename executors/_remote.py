"""Helpers shared by the remote executors (slurm, docker, lepton): nemo-run's dry run.

`dryrun_text` runs nemo-run's own dry run, used by `render()` so that what is shown is what is sent.

`run.Experiment.dryrun()` packages the task exactly as a launch does (serialized config files,
torchrun command, scheduler request) and stops before submitting. We run it on a copy of the
executor, in a scratch directory that is deleted afterwards, and render the scheduler's request.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
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


def dryrun_text(
    executor: run.Executor, task: run.Partial, name: str, show: Callable[[Any], str]
) -> str:
    """Text made by `show` from the request nemo-run would submit for `task`, without submitting.

    The dry run happens under a scratch NEMORUN_HOME, deleted afterwards, so nothing is left in
    the user's; paths in the text are then written as under the real NEMORUN_HOME, where the real
    launch puts them (nemo-run derives job directories, LocalTunnel's and Lepton's remote ones
    included, from `get_nemorun_home()`).

    Args:
        executor: a built nemo-run executor; it is copied, never changed.
        task: the `run.Partial` to launch.
        name: the task name (also the experiment title).
        show: turns the scheduler's request (`SlurmBatchRequest`, `DockerJobRequest`, ...)
            into text.
    """
    import nemo_run as run
    from nemo_run.config import get_nemorun_home, set_nemorun_home

    executor = executor.clone()  # nemo-run's copy: an SSHTunnel holds a console, which deepcopy refuses
    real_home = get_nemorun_home()
    with tempfile.TemporaryDirectory(prefix="nemolite-dryrun-") as scratch, _quiet_nemo_run():
        set_nemorun_home(scratch)
        try:
            exp = run.Experiment(
                name,
                executor=executor,
                id=experiment_id(name),
                clean_mode=True,
                enable_goodbye_message=False,
            )
            with exp:
                exp.add(task, executor=executor, name=name)
                exp.dryrun(log=False)
                text = show(exp.jobs[0]._dryrun_info.request)
        finally:
            set_nemorun_home(real_home)
    return text.replace(scratch, real_home)
