"""`executor=local`: the task in one new local process (nemo-run's LocalExecutor, no launcher).

Without any `executor=` the CLI runs the task in its own process; `executor=local` runs it in a
child process managed by nemo-run, with its logs and status under nemo-run's experiment directory
(`nemo experiment logs ...`).
"""

from __future__ import annotations

import shlex

import nemo_run as run

from nemolite.errors import ConfigError
from nemolite.executors import _local_cancel
from nemolite.lightning.run import launch as _ft_launch

#: The job runs on this machine, so its hardware checks apply here.
REMOTE = False

# `nemo experiment cancel ID N` from another shell (see _local_cancel); torchrun jobs share it.
_local_cancel.install()
# `executor.launcher=ft` / `run.FaultTolerance(max_restarts=N)`: torchrun --max-restarts=N.
_ft_launch.install()


def factory(env_vars: dict[str, str] | None = None) -> run.Config[run.LocalExecutor]:
    """One local process."""
    return run.Config(run.LocalExecutor, ntasks_per_node=1, env_vars=env_vars or {})


def launch_shape(executor: run.LocalExecutor) -> tuple[int, int]:
    """(nodes, processes per node)."""
    return 1, executor.nproc_per_node()


def validate(executor: run.LocalExecutor) -> None:
    """A local executor runs one process unless it uses torchrun (see `executor=torchrun`)."""
    if executor.ntasks_per_node != 1 and executor.launcher is None:
        raise ConfigError(
            "executor.ntasks_per_node", executor.ntasks_per_node,
            "several local processes need a launcher",
            "use executor=torchrun executor.ntasks_per_node=N",
        )


def render(executor: run.LocalExecutor, task: run.Partial, name: str) -> str:
    """The command nemo-run would start, with the serialized task abbreviated."""
    return render_app(executor, task, name)


def render_app(executor: run.Executor, task: run.Partial, name: str) -> str:
    """Shell lines for nemo-run's packaged app: environment, then the command."""
    from nemo_run.run.torchx_backend.packaging import package

    app = package(name, task, executor)
    lines = []
    for role in app.roles:
        env = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in sorted(role.env.items()))
        args = [_abbreviate(a) for a in role.args]
        command = " ".join(shlex.quote(p) for p in [role.entrypoint, *args])
        lines.append(f"{env} {command}".strip() if env else command)
    return "\n".join(lines)


def _abbreviate(arg: str) -> str:
    # The task travels as one zlib+base64 JSON argument; the resolved task is printed above it.
    return "<serialized task: zlib+base64 JSON>" if len(arg) > 200 else arg
