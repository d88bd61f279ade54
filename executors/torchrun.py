"""`executor=torchrun`: N local processes under torchrun (gloo on CPU, NCCL on GPUs).

`executor=torchrun executor.ntasks_per_node=2 trainer.devices=2` runs a recipe as two processes
on this machine: on a CPU laptop, the same tensor/pipeline/data-parallel code paths a GPU node runs.
"""

from __future__ import annotations

import nemo_run as run

from nemolite.errors import ConfigError
from nemolite.executors.local import render_app

REMOTE = False


def factory(
    ntasks_per_node: int = 2, env_vars: dict[str, str] | None = None
) -> run.Config[run.LocalExecutor]:
    """`ntasks_per_node` processes started by torchrun on this machine."""
    # One intra-op thread per process: two processes on two cores otherwise oversubscribe them.
    env = {"OMP_NUM_THREADS": "1"} | (env_vars or {})
    return run.Config(
        run.LocalExecutor, ntasks_per_node=ntasks_per_node, launcher="torchrun", env_vars=env
    )


def launch_shape(executor: run.LocalExecutor) -> tuple[int, int]:
    """(nodes, processes per node)."""
    return 1, executor.nproc_per_node()


def validate(executor: run.LocalExecutor) -> None:
    """At least one process."""
    if executor.ntasks_per_node < 1:
        raise ConfigError(
            "executor.ntasks_per_node", executor.ntasks_per_node, "must be at least 1",
            "set executor.ntasks_per_node to the number of processes, e.g. 2",
        )


def render(executor: run.LocalExecutor, task: run.Partial, name: str) -> str:
    """The torchrun command nemo-run would start."""
    return render_app(executor, task, name)
