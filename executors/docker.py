"""`executor=docker`: the task in a container on this machine, on nemo-run's DockerExecutor.

Settings come from `$NEMOLITE_DOCKER_PROFILE`, else `~/.config/nemolite/docker.yaml`, then from
CLI overrides (`executor.num_gpus=8`):

    container_image: nvcr.io/nvidia/nemo:25.02    # required, with a tag
    num_gpus: 8                                    # -1: all GPUs; one process per GPU
    shm_size: 16g
    volumes: [/data:/data]
    env_vars: {NCCL_DEBUG: WARN}
    secrets: [MY_TOKEN]                            # names only: `docker run -e MY_TOKEN`

`render()` prints the `docker run` invocation equivalent to the Docker Engine API call nemo-run
makes (nemo_run/core/execution/docker.py `DockerContainer.run`), with the experiment directory
mounted at `/nemo_run` as nemo-run's scheduler adds it at launch.
"""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import subprocess
from typing import Any

import nemo_run as run

from nemolite.errors import ClusterError, UnknownChoiceError
from nemolite.executors import _secrets
from nemolite.executors._profile import load_profile
from nemolite.executors._remote import dryrun_text
from nemolite.executors._slurm_checks import check_image
from nemolite.executors.slurm import DEFAULT_ENV

#: The container runs on this machine's hardware, so its GPU checks apply.
REMOTE = False

#: What NVIDIA's containers ask for to run PyTorch jobs: large shared memory for data loaders
#: and NCCL, the host IPC namespace, and no memlock limit for pinned memory.
DEFAULTS: dict[str, Any] = {
    "shm_size": "16g",
    "ipc_mode": "host",
    # nemo-run's format, NAME:SOFT[:HARD] (nemo_run/core/execution/docker.py), not docker's NAME=...
    "ulimits": ["memlock:-1", "stack:67108864"],
}
_INTERNAL = {"packager", "experiment_id", "job_dir", "launcher"}
_ENGINE_TIMEOUT_S = 15


def profile_keys() -> list[str]:
    """The settings a Docker profile may hold: DockerExecutor's fields plus secrets/launcher."""
    fields = {f.name for f in dataclasses.fields(run.DockerExecutor) if f.init} - _INTERNAL
    return sorted(fields | {"secrets", "launcher"})


def factory(**overrides: Any) -> run.Config[run.DockerExecutor]:
    """A container from the profile file; keyword `overrides` win over the profile."""
    settings = DEFAULTS | load_profile("docker", profile_keys()) | overrides
    settings.pop("secrets", None)  # names only, read again by validate() and render()
    launcher = settings.pop("launcher", "torchrun")
    if launcher not in ("torchrun", None):
        raise UnknownChoiceError("executor.launcher", str(launcher), ["torchrun"], what="launcher")
    gpus = settings.get("num_gpus")
    settings.setdefault("ntasks_per_node", gpus if gpus and gpus > 0 else 1)
    settings.setdefault("container_image", "")  # validate() names it when missing
    env = DEFAULT_ENV | dict(settings.pop("env_vars", None) or {})
    return run.Config(
        run.DockerExecutor,
        launcher=run.Config(run.Torchrun) if launcher else None,
        env_vars=env,
        packager=run.Config(run.Packager),  # the image brings nemolite; nothing to ship
        **settings,
    )


def launch_shape(executor: run.DockerExecutor) -> tuple[int, int]:
    """(nodes, processes per node): one machine, `ntasks_per_node` torchrun processes."""
    return 1, executor.ntasks_per_node


def _marked() -> list[str]:
    return list(load_profile("docker", profile_keys()).get("secrets") or [])


#: What `validate(..., offline=True)` (a dry run) leaves unchecked.
OFFLINE_UNCHECKED = "that a Docker engine answers on this machine"


def validate(executor: run.DockerExecutor, *, offline: bool = False) -> None:
    """Checks the image, the GPU count, secrets, then (unless `offline`) that a Docker engine answers."""
    if not executor.container_image:
        raise ClusterError(
            "executor.container_image", "", "required setting is missing",
            "set container_image in the docker profile or pass executor.container_image=IMAGE:TAG",
        )
    check_image(executor.container_image, "executor.container_image")
    gpus = executor.num_gpus
    if gpus and gpus > 0 and executor.ntasks_per_node != gpus:
        raise ClusterError(
            "executor.ntasks_per_node", executor.ntasks_per_node,
            f"starts {executor.ntasks_per_node} process(es) but executor.num_gpus={gpus}",
            f"pass executor.ntasks_per_node={gpus} (one process per GPU)",
        )
    _secrets.check_env_vars(executor.env_vars, _secrets.secret_names(_marked()), "executor.env_vars")
    for name in _marked():
        if name not in _secrets.present([name]):
            raise ClusterError(
                "secrets", name, "marked secret is not set in this environment",
                f"export {name}=... before launching (docker run -e {name} copies it from here)",
            )
    if not offline:
        check_engine()


def check_engine() -> None:
    """A `docker` command and a Docker engine that answers it must be present on this machine."""
    if shutil.which("docker") is None:
        raise ClusterError(
            "executor", "docker", "no `docker` command on this machine",
            "install Docker Engine, or use executor=slurm / executor=local",
        )
    try:
        probe = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True, text=True, timeout=_ENGINE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        probe = None
    if probe is None or probe.returncode != 0:
        said = (probe.stderr.strip().splitlines() or ["no answer"])[-1] if probe else "timed out"
        raise ClusterError(
            "executor", "docker", f"the Docker engine does not answer ({said})",
            "start the Docker daemon (or set DOCKER_HOST), or use executor=slurm / executor=local",
        )


def render(executor: run.DockerExecutor, task: run.Partial, name: str) -> str:
    """The `docker run` command line(s) nemo-run's launch amounts to, secrets by name only."""
    names = _secrets.secret_names(_marked())

    def show(request: Any) -> str:
        return "\n\n".join(_docker_run(c, request.id, names) for c in request.containers)

    return _secrets.redact(dryrun_text(executor, task, name, show), names)


def _docker_run(container: Any, app_id: str, secret_names: list[str]) -> str:
    from nemo_run.config import RUNDIR_NAME, RUNDIR_SPECIAL_NAME

    ex = container.executor
    args = ["docker", "run", "--detach", "--rm", "--name", container.name,
            "--hostname", container.name[-32:], "--network", ex.network,
            "--workdir", f"/{RUNDIR_NAME}/code"]
    labels = {"nemo-run/experiment-id": ex.experiment_id, "nemo-run/name": container.name,
              "nemo-run/id": app_id}
    args += [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
    if ex.runtime:
        args += ["--runtime", ex.runtime]
    if ex.num_gpus:
        args += ["--gpus", "all" if ex.num_gpus < 0 else str(ex.num_gpus)]
    if ex.shm_size:
        args += ["--shm-size", ex.shm_size]
    args += [a for u in ex.ulimits for a in ("--ulimit", _docker_ulimit(u))]
    if ex.ipc_mode:
        args += ["--ipc", ex.ipc_mode]
    if ex.privileged:
        args.append("--privileged")
    if ex.retries:
        args += ["--restart", f"on-failure:{ex.retries}"]
    # nemo-run's scheduler mounts the job directory at launch (schedulers/docker.py `schedule`).
    volumes = [v.replace(RUNDIR_SPECIAL_NAME, ex.job_dir, 1) for v in ex.volumes]
    args += [a for v in (*volumes, f"{ex.job_dir}:/{RUNDIR_NAME}") for a in ("-v", v)]
    env = ex.env_vars | container.extra_env
    args += [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    # `-e NAME` without a value: docker copies NAME from the environment of `docker run`.
    args += [a for k in _secrets.present(secret_names) if k not in env for a in ("-e", k)]
    args += [ex.container_image, *_entrypoint(container, app_id)]
    return " ".join(shlex.quote(str(a)) for a in args)


def _docker_ulimit(ulimit: str) -> str:
    """nemo-run's NAME:SOFT[:HARD] as `docker run --ulimit NAME=SOFT:HARD`."""
    name, soft, *hard = ulimit.split(":")
    return f"{name}={soft}:{hard[0] if hard else soft}"


def _entrypoint(container: Any, app_id: str) -> list[str]:
    """The `bash -c` wrapper nemo-run puts around the command (logs tee'd, exit code saved).

    Built as nemo_run/core/execution/docker.py `DockerContainer.run` builds its command string,
    then split as docker-py splits a string command (shlex), so the argv is the engine's.
    """
    from nemo_run.config import RUNDIR_NAME

    tee = f" 2>&1 | tee -a /{RUNDIR_NAME}/log_{container.name}.out; "
    status = r"export EXIT_CODE=${PIPESTATUS[0]}; "
    status += (
        f'printf \'{{\\"id\\": \\"{app_id}\\", \\"exit_code\\": \\"%s\\"}}\\n\' "$EXIT_CODE" '
        f"> /{RUNDIR_NAME}/status_{container.name}.out; exit $EXIT_CODE;"
    )
    return shlex.split(f'bash -c "{" ".join(container.command)}{tee}{status}"')
