"""`executor=slurm`: submit the task as a Slurm batch job, on nemo-run's SlurmExecutor.

Settings come from the profile file (`$NEMOLITE_SLURM_PROFILE`, else
`~/.config/nemolite/slurm.yaml`) and then from CLI overrides (`executor.nodes=2`):

    account: my_account            # required
    partition: batch
    nodes: 1
    gpus_per_node: 8               # one process per GPU unless ntasks_per_node says otherwise
    time: "04:00:00"
    container_image: nvcr.io/nvidia/nemo:25.02   # pyxis; leave out to run without a container
    container_mounts: [/lustre/data:/data]
    env_vars: {NCCL_DEBUG: WARN}
    secrets: [MY_TOKEN]            # names only: values come from the submitting environment
    tunnel: {host: login.cluster, user: me, identity: ~/.ssh/id_ed25519, job_dir: /lustre/me/jobs}

Without `tunnel.host` the job is submitted from this machine (a login node). Each node runs
torchrun with `nproc_per_node` processes, rendezvousing at the first node of the allocation
(`SLURM_JOB_NODELIST`'s head, resolved by nemo-run's sbatch template). See docs/executors.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import nemo_run as run

from nemolite.errors import UnknownChoiceError
from nemolite.executors import _secrets, _slurm_checks
from nemolite.executors._profile import load_profile
from nemolite.executors._remote import dryrun_text
from nemolite.lightning.run import launch as _ft_launch

# `launcher: ft` / `run.FaultTolerance(...)`: torchrun with --max-restarts (nemolite.lightning.run.launch).
_ft_launch.install()

#: The job runs on the cluster, so this machine's hardware checks do not apply.
REMOTE = True

#: Environment every job gets unless the profile or `executor.env_vars.X=...` says otherwise.
#: NCCL_IB_* and NCCL_SOCKET_IFNAME are left to the cluster's own defaults on purpose.
DEFAULT_ENV = {
    # Fail a collective that hangs or errors instead of waiting forever (both names: the NCCL_
    # one is read by torch < 2.2, which some cluster containers still ship).
    "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",
    "NCCL_ASYNC_ERROR_HANDLING": "1",
    # Megatron-core's TP/SP overlap relies on kernels being issued in order on one queue.
    "CUDA_DEVICE_MAX_CONNECTIONS": "1",
}

LAUNCHERS = ("torchrun", "ft", "srun")
_TUNNEL_KEYS = ("host", "user", "identity", "port", "job_dir", "shell", "pre_command")
# Set by nemo-run itself or by this module; not settings a user writes in the profile.
_INTERNAL = {"packager", "experiment_id", "job_dir", "job_details", "tunnel", "launcher"}


def profile_keys() -> list[str]:
    """The settings a Slurm profile may hold: SlurmExecutor's fields plus tunnel/secrets/launcher."""
    fields = {f.name for f in dataclasses.fields(run.SlurmExecutor) if f.init} - _INTERNAL
    return sorted(fields | {"tunnel", "secrets", "launcher"})


def factory(**overrides: Any) -> run.Config[run.SlurmExecutor]:
    """A Slurm batch job from the profile file; keyword `overrides` win over the profile."""
    settings = load_profile("slurm", profile_keys()) | overrides
    settings.pop("secrets", None)  # read again by validate(): names only, never executor fields
    tunnel = _tunnel_config(settings.pop("tunnel", None) or {})
    launcher = _launcher_config(settings.pop("launcher", "torchrun"))
    env = DEFAULT_ENV | dict(settings.pop("env_vars", None) or {})
    # One process per GPU is what a GPU node runs; ntasks_per_node=1 with 8 GPUs would idle seven.
    settings.setdefault("ntasks_per_node", settings.get("gpus_per_node") or 1)
    # nemo-run requires `account`; an empty one is reported by validate() with the fix, before any
    # build error could surface as a traceback.
    settings.setdefault("account", "")
    # Warn the job 120 s before its time limit with SIGTERM: torchrun forwards SIGTERM to the
    # workers (it would die of SIGUSR1), whose preemption callback saves at the next step boundary.
    settings.setdefault("signal", "TERM@120")
    return run.Config(
        run.SlurmExecutor,
        tunnel=tunnel,
        launcher=launcher,
        env_vars=env,
        # The job imports the installed nemolite: no code archive to ship (GitArchivePackager
        # would tar the current git repository).
        packager=run.Config(run.Packager),
        **settings,
    )


def _tunnel_config(tunnel: dict[str, Any]) -> run.Config:
    for key in tunnel:
        if key not in _TUNNEL_KEYS:
            raise UnknownChoiceError(f"executor.tunnel.{key}", key, _TUNNEL_KEYS, what="tunnel setting")
    if tunnel.get("host"):
        if not tunnel.get("job_dir"):
            from nemolite.executors._profile import profile_path

            _slurm_checks.missing(
                "executor.tunnel.job_dir",
                f"set tunnel.job_dir (a directory on the cluster for job files) in {profile_path('slurm')}",
            )
        import getpass

        return run.Config(run.SSHTunnel, **({"user": getpass.getuser()} | tunnel))
    return run.Config(run.LocalTunnel, job_dir=str(tunnel.get("job_dir") or ""))


def _launcher_config(name: str | None) -> run.Config | None:
    if name in (None, "srun"):
        return None  # srun starts ntasks_per_node processes itself; Lightning reads SLURM_* vars
    if name == "torchrun":
        return run.Config(run.Torchrun)
    if name == "ft":  # in-job restarts: torchrun --max-restarts (nl.FaultTolerance's default bound)
        return run.Config(run.FaultTolerance)
    raise UnknownChoiceError("executor.launcher", str(name), LAUNCHERS, what="launcher")


def uses_torchrun(executor: run.SlurmExecutor) -> bool:
    """Whether each node runs torchrun (one task per node that starts the processes)."""
    from nemo_run.core.execution.launcher import FaultTolerance, Torchrun

    launcher = executor.launcher
    return isinstance(launcher, (Torchrun, FaultTolerance)) or launcher in ("torchrun", "ft")


def launch_shape(executor: run.SlurmExecutor) -> tuple[int, int]:
    """(nodes, processes per node) of a built executor."""
    if uses_torchrun(executor):
        # nemo-run moves ntasks_per_node into torchrun_nproc_per_node when it sets up torchrun.
        return executor.nodes, executor.torchrun_nproc_per_node or executor.ntasks_per_node
    return executor.nodes, executor.ntasks_per_node


#: What `validate(..., offline=True)` (a dry run) leaves unchecked, said after the rendered script.
OFFLINE_UNCHECKED = ("the tunnel host, the partition and account (sinfo, sacctmgr), and the request "
                     "as a whole (sbatch --test-only)")


def validate(executor: run.SlurmExecutor, *, offline: bool = False) -> None:
    """Checks the settings, the tunnel and what Slurm itself says of the request; submits nothing.

    Args:
        executor: the built executor.
        offline: check only what needs no cluster (a dry run renders the script without one).

    Raises:
        ClusterError: one line naming the field, its value and the fix.
    """
    marked = load_profile("slurm", profile_keys()).get("secrets") or []
    names = _secrets.secret_names(marked)
    _slurm_checks.check_settings(executor, launch_shape(executor), names)
    if offline:
        return
    _slurm_checks.check_tunnel(executor.tunnel)
    _slurm_checks.check_with_scheduler(executor, launch_shape(executor), uses_torchrun(executor))
    _slurm_checks.check_secrets_set(executor.tunnel, marked)


def render(executor: run.SlurmExecutor, task: run.Partial, name: str) -> str:
    """The sbatch command and script nemo-run would submit, secrets masked."""
    text = dryrun_text(
        executor, task, name,
        lambda request: f"{' '.join(request.launch_cmd)} <script below>\n\n{request.materialize()}",
    )
    marked = load_profile("slurm", profile_keys()).get("secrets") or []
    return _secrets.redact(text, _secrets.secret_names(marked))
