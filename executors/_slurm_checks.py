"""Checks of a Slurm executor before anything is submitted: settings, tunnel, then Slurm's verdict.

Slurm is asked through the executor's own tunnel (local commands on a login node, or SSH):
`sinfo` for the partitions, `sacctmgr` for the accounts the user may charge, and finally
`sbatch --test-only` for the whole request (node count, GPUs, time limit, QoS), which schedules
nothing. Each failure is one `ClusterError` line naming the `executor.` field.
"""

from __future__ import annotations

import re
import shlex
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NoReturn

from nemolite.errors import ClusterError, did_you_mean
from nemolite.executors import _secrets
from nemolite.executors._profile import profile_path

if TYPE_CHECKING:
    import nemo_run as run

_CONNECT_TIMEOUT_S = 5.0
# Registry paths may hold a port (`host:5000/img`), so the tag is looked for after the last '/'.
_TAGGED = re.compile(r"(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$")
# What `sbatch --test-only` says, and which field it is about.
_SBATCH_ERRORS = (
    (re.compile(r"invalid account|account/partition", re.I), "account"),
    (re.compile(r"invalid partition", re.I), "partition"),
    (re.compile(r"invalid qos|qos", re.I), "qos"),
    (re.compile(r"time limit|invalid time", re.I), "time"),
    (re.compile(r"gres|gpu", re.I), "gpus_per_node"),
    (re.compile(r"node configuration|node count|nodes", re.I), "nodes"),
)
_WHERE_TO_LOOK = {
    "account": "sacctmgr show associations user=$USER",
    "partition": "sinfo -s",
    "qos": "sacctmgr show qos",
    "time": "sinfo -o '%P %l' lists each partition's time limit",
    "gpus_per_node": "sinfo -o '%P %G' lists the GPUs (gres) per node",
    "nodes": "sinfo -o '%P %D' lists the nodes per partition",
}


def missing(field: str, fix: str) -> NoReturn:
    """Raises the error for a required setting that is not set."""
    raise ClusterError(field, None, "required setting is missing", fix)


def check_settings(executor: run.SlurmExecutor, shape: tuple[int, int], secret_names: list[str]) -> None:
    """Checks that need no cluster: required fields, counts, image tag, mounts, secrets."""
    where = f"set it in {profile_path('slurm')} or pass it on the command line"
    if not executor.account:
        raise ClusterError(
            "executor.account", executor.account, "required setting is missing",
            f"{where}, e.g. executor.account=my_account",
        )
    nodes, per_node = shape
    for field, value in (("nodes", nodes), ("ntasks_per_node", per_node)):
        if not isinstance(value, int) or value < 1:
            raise ClusterError(f"executor.{field}", value, "must be a whole number >= 1", where)
    gpus = executor.gpus_per_node
    if gpus and per_node != gpus:
        raise ClusterError(
            "executor.ntasks_per_node", per_node,
            f"starts {per_node} process(es) per node but executor.gpus_per_node={gpus}",
            f"pass executor.ntasks_per_node={gpus} (one process per GPU)",
        )
    check_image(executor.container_image, "executor.container_image")
    for mount in executor.container_mounts:
        if ":" not in mount or mount.startswith(":"):
            raise ClusterError(
                "executor.container_mounts", mount, "a mount must be SRC:DST[:FLAGS]",
                "write it like /lustre/data:/data",
            )
    _secrets.check_env_vars(executor.env_vars, secret_names, "executor.env_vars")
    check_job_dir(executor)


def check_job_dir(executor: run.SlurmExecutor) -> None:
    """Without a container, the job directory's path must not contain `/nemo_run`.

    nemo_run/core/execution/slurm.py `SlurmBatchRequest.materialize` rewrites every `/nemo_run`
    in a container-less sbatch script to the job directory (meant for the container mount
    point), which would also mangle a job directory such as /lustre/me/nemo_run/experiments.
    """
    from nemo_run.config import get_nemorun_home

    if executor.container_image is not None:
        return
    job_dir = executor.tunnel.job_dir or get_nemorun_home()
    if "/nemo_run" in job_dir:
        field = "executor.tunnel.job_dir" if executor.tunnel.job_dir else "NEMORUN_HOME"
        raise ClusterError(
            field, job_dir,
            "nemo-run rewrites '/nemo_run' in container-less sbatch scripts, so job paths would break",
            "use a directory whose path has no '/nemo_run' component (e.g. .../nemo-run-jobs)",
        )


def check_image(image: str | None, field: str) -> None:
    """A container image must name a tag or digest, so that reruns use the same software."""
    if image is None or image.startswith(("/", "./", "~")) or image.endswith((".sqsh", ".squashfs")):
        return  # no container, or an enroot squashfs file
    name = image.rsplit("/", 1)[-1]
    if not _TAGGED.search(name):
        raise ClusterError(
            field, image, "container image has no tag, so `latest` would change under reruns",
            f"pin a tag or digest, e.g. {image}:25.02",
        )


def check_tunnel(tunnel: Any) -> None:
    """An SSH tunnel's host must answer on its port; a local tunnel needs nothing here."""
    host = getattr(tunnel, "host", "localhost")
    if type(tunnel).__name__ != "SSHTunnel":
        return
    port = tunnel.port or 22
    try:
        socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ClusterError(
            "executor.tunnel.host", host, f"cannot reach {host}:{port} ({reason})",
            f"check the host name and network (VPN), or fix tunnel.host in {profile_path('slurm')}",
        ) from err


def _run(tunnel: Any, command: str) -> tuple[int, str, str]:
    # in_stream=False: invoke would otherwise forward our stdin, which a CI job may not have.
    result = tunnel.run(command, hide=True, warn=True, in_stream=False)
    return result.return_code, result.stdout.strip(), result.stderr.strip()


def check_with_scheduler(executor: run.SlurmExecutor, shape: tuple[int, int], torchrun: bool) -> None:
    """Asks Slurm (through the tunnel) about the partition, the account and the whole request."""
    tunnel = executor.tunnel
    code, _, _ = _run(tunnel, "command -v sbatch && command -v sinfo")
    if code != 0:
        raise ClusterError(
            "executor.tunnel", getattr(tunnel, "host", "localhost"),
            "no Slurm commands (sbatch, sinfo) there",
            "run on a Slurm login node, or set tunnel.host to one in the profile",
        )
    _check_partition(tunnel, executor.partition)
    _check_account(tunnel, executor.account)
    flags = _request_flags(executor, shape, torchrun)
    code, out, err = _run(tunnel, f"sbatch --test-only {' '.join(flags)} --wrap=true")
    if code != 0:
        _raise_sbatch_error(executor, err or out)


def _check_partition(tunnel: Any, partition: str | None) -> None:
    code, out, _ = _run(tunnel, "sinfo -h -o %P")
    if partition is None or code != 0:
        return
    names = [p.rstrip("*") for p in out.split()]
    if partition not in names:
        raise ClusterError(
            "executor.partition", partition,
            f"Slurm has no such partition{did_you_mean(partition, names)}",
            f"use one of: {', '.join(sorted(set(names)))}",
        )


def _check_account(tunnel: Any, account: str) -> None:
    user = getattr(tunnel, "user", "") or "$(id -un)"
    code, out, _ = _run(tunnel, f"sacctmgr -nP show associations where user={user} format=account")
    accounts = sorted({a for a in out.split() if a})
    if code != 0 or not accounts:
        return  # no accounting database: sbatch --test-only is the judge
    if account not in accounts:
        raise ClusterError(
            "executor.account", account,
            f"Slurm has no association of this user with that account{did_you_mean(account, accounts)}",
            f"use one of: {', '.join(accounts)}",
        )


def _request_flags(executor: run.SlurmExecutor, shape: tuple[int, int], torchrun: bool) -> list[str]:
    from nemo_run.core.execution.slurm import SlurmExecutor

    nodes, per_node = shape
    values: dict[str, Any] = {
        name: getattr(executor, name)
        for name in SlurmExecutor.SBATCH_FLAGS
        if getattr(executor, name, None) is not None and name != "job_name"
    }
    values |= {"nodes": nodes, "ntasks_per_node": 1 if torchrun else per_node}
    values |= executor.additional_parameters or {}
    flags = []
    for name, value in sorted(values.items()):
        flag = "--" + name.replace("_", "-")
        flags.append(flag if value is True else f"{flag}={shlex.quote(str(value))}")
    return flags


def _raise_sbatch_error(executor: run.SlurmExecutor, message: str) -> NoReturn:
    lines = [ln for ln in message.splitlines() if ln.strip()]
    said = re.sub(r"^(sbatch: error: |allocation failure: )", "", lines[-1] if lines else message)
    for pattern, field in _SBATCH_ERRORS:
        if pattern.search(said):
            raise ClusterError(
                f"executor.{field}", getattr(executor, field, None), f"Slurm says: {said}",
                f"change executor.{field} to what the cluster offers ({_WHERE_TO_LOOK[field]})",
            )
    raise ClusterError("executor", "slurm", f"Slurm rejects the request: {said}", "fix the settings it names")


def check_secrets_set(tunnel: Any, marked: Iterable[str]) -> None:
    """Secrets the user marked must be set where sbatch runs, or the job would start without them."""
    for name in marked:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ClusterError(
                f"{profile_path('slurm')}:secrets", name, "not an environment variable name",
                "list names like MY_TOKEN",
            )
        code, _, _ = _run(tunnel, f'test -n "${{{name}:-}}"')
        if code != 0:
            raise ClusterError(
                "secrets", name, "marked secret is not set in the submitting environment",
                f"export {name}=... in the shell that submits (on the login node for an SSH tunnel)",
            )
