"""`executor=lepton`: a distributed job on a Lepton (DGX Cloud Lepton) workspace, on nemo-run's LeptonExecutor.

Settings come from `$NEMOLITE_LEPTON_PROFILE`, else `~/.config/nemolite/lepton.yaml`, then from
CLI overrides (`executor.nodes=2`):

    container_image: nvcr.io/nvidia/nemo:25.02   # required, with a tag
    node_group: my-node-group                     # required
    resource_shape: gpu.8xh100-80gb               # required
    nemo_run_dir: /mnt/shared/nemo-run            # required: shared storage the job sees
    nodes: 2
    gpus_per_node: 8
    mounts: [{path: /shared, mount_path: /mnt/shared, from: node-nfs:lepton-shared-fs}]
    secret_vars: {WANDB_API_KEY: my-wandb-secret}  # env name -> secret stored in the workspace
    secrets: [HF_TOKEN]                            # env name = workspace secret name

Secrets are references to the workspace's secret store (`value_from.secret_name_ref`): their
values never leave Lepton. `render()` prints the launch script and the job spec (JSON) that
nemo-run's `LeptonExecutor.create_lepton_job` sends; the node group's id and node list are
looked up at launch, so the spec shows the node group by name.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import nemo_run as run

from nemolite.errors import ClusterError
from nemolite.executors import _secrets
from nemolite.executors._profile import load_profile, profile_path
from nemolite.executors._remote import dryrun_text
from nemolite.executors._slurm_checks import check_image
from nemolite.executors.slurm import DEFAULT_ENV

#: The job runs in the Lepton workspace, so this machine's hardware checks do not apply.
REMOTE = True

_REQUIRED = ("container_image", "node_group", "resource_shape", "nemo_run_dir")
_INTERNAL = {"packager", "experiment_id", "job_dir", "launcher"}
# nemo_run/core/execution/lepton.py `launch`: Kubernetes names, at most 35 characters.
_MAX_NAME = 35


def profile_keys() -> list[str]:
    """The settings a Lepton profile may hold: LeptonExecutor's fields plus `secrets`."""
    fields = {f.name for f in dataclasses.fields(run.LeptonExecutor) if f.init} - _INTERNAL
    return sorted(fields | {"secrets"})


def factory(**overrides: Any) -> run.Config[run.LeptonExecutor]:
    """A Lepton job from the profile file; keyword `overrides` win over the profile."""
    settings = load_profile("lepton", profile_keys()) | overrides
    marked = settings.pop("secrets", None) or []
    # A marked secret is read from the workspace secret of the same name unless mapped otherwise.
    secret_vars = {name: name for name in marked} | dict(settings.pop("secret_vars", None) or {})
    env = DEFAULT_ENV | dict(settings.pop("env_vars", None) or {})
    for name in _REQUIRED:
        settings.setdefault(name, "")  # validate() names a missing one
    return run.Config(
        run.LeptonExecutor,
        launcher=run.Config(run.Torchrun),
        env_vars=env,
        secret_vars=secret_vars,
        packager=run.Config(run.Packager),  # the image brings nemolite; nothing to ship
        **settings,
    )


def launch_shape(executor: run.LeptonExecutor) -> tuple[int, int]:
    """(nodes, processes per node): one process per GPU, else `nprocs_per_node`."""
    return executor.nnodes(), executor.nproc_per_node()


def validate(executor: run.LeptonExecutor) -> None:
    """Checks required settings, the image tag, mounts and secrets; contacts nothing."""
    for name in _REQUIRED:
        if not getattr(executor, name):
            raise ClusterError(
                f"executor.{name}", getattr(executor, name), "required setting is missing",
                f"set {name} in {profile_path('lepton')} or pass executor.{name}=...",
            )
    check_image(executor.container_image, "executor.container_image")
    if executor.nodes < 1:
        raise ClusterError("executor.nodes", executor.nodes, "must be >= 1", "pass executor.nodes=1 or more")
    for mount in executor.mounts:
        if not {"path", "mount_path"} <= set(mount):
            raise ClusterError(
                "executor.mounts", mount, "a mount needs `path` and `mount_path`",
                "write it like {path: /shared, mount_path: /mnt/shared, from: node-nfs:fs}",
            )
    marked = list(executor.secret_vars)
    _secrets.check_env_vars(executor.env_vars, _secrets.secret_names(marked), "executor.env_vars")


def render(executor: run.LeptonExecutor, task: run.Partial, name: str) -> str:
    """The launch script and Lepton job spec (JSON) nemo-run would create, secrets by reference."""

    def show(request: Any) -> str:
        ex = request.executor
        script = _launch_script(ex, request.cmd)
        spec = json.dumps(_job_spec(ex, _job_name(request.name)), indent=2)
        return f"# {ex.lepton_job_dir}/launch_script.sh\n{script}\n# Lepton job spec\n{spec}\n"

    text = dryrun_text(executor, task, name, show)
    return _secrets.redact(text, _secrets.secret_names(list(executor.secret_vars)))


def _job_name(name: str) -> str:
    name = name.replace("_", "-").replace(".", "-").lower()
    return name[: _MAX_NAME - 1] if len(name) > _MAX_NAME else name


def _launch_script(ex: run.LeptonExecutor, cmd: list[str]) -> str:
    """The script nemo_run/core/execution/lepton.py `launch` writes next to the job's configs."""
    pre = "\n".join(ex.pre_launch_commands) + "\n" if ex.pre_launch_commands else ""
    return (
        f"\n{pre}wget -O init.sh https://raw.githubusercontent.com/leptonai/scripts/main/lepton_env_to_pytorch.sh\n"
        "chmod +x init.sh\nsource init.sh\n"
        f"ln -s {ex.lepton_job_dir}/ /nemo_run\ncd /nemo_run/code\n{' '.join(cmd)}\n"
    )


def _job_spec(ex: run.LeptonExecutor, job_name: str) -> dict[str, Any]:
    """The `LeptonJob` of nemo_run/core/execution/lepton.py `create_lepton_job`, as JSON data."""
    from leptonai.api.v1.types.affinity import LeptonResourceAffinity
    from leptonai.api.v1.types.common import Metadata
    from leptonai.api.v1.types.deployment import (
        EnvValue,
        EnvVar,
        LeptonContainer,
        Mount,
        QueueConfig,
    )
    from leptonai.api.v1.types.job import LeptonJob, LeptonJobUserSpec, ReservationConfig

    envs = [EnvVar(name=k, value=v) for k, v in ex.env_vars.items()]
    envs += [EnvVar(name=k, value_from=EnvValue(secret_name_ref=v)) for k, v in ex.secret_vars.items()]
    preemptible = ex.can_be_preempted or ex.can_preempt
    spec = LeptonJobUserSpec(
        resource_shape=ex.resource_shape,
        # Resolved from the node group's name through the Lepton API when the job is created.
        affinity=LeptonResourceAffinity(allowed_dedicated_node_groups=[f"<id of node group {ex.node_group}>"]),
        container=LeptonContainer(
            image=ex.container_image,
            command=["/bin/bash", "-c", f"bash {ex.lepton_job_dir}/launch_script.sh"],
        ),
        shared_memory_size=ex.shared_memory_size,
        completions=ex.nodes,
        parallelism=ex.nodes,
        max_failure_retry=None,
        max_job_failure_retry=None,
        envs=envs,
        mounts=[Mount(**mount) for mount in ex.mounts],
        image_pull_secrets=ex.image_pull_secrets,
        ttl_seconds_after_finished=None,
        intra_job_communication=True,
        privileged=False,
        queue_config=QueueConfig(
            priority_class=ex.queue_priority or "mid-4000",
            can_be_preempted=ex.can_be_preempted or None,
            can_preempt=ex.can_preempt or None,
        ) if preemptible else None,
    )
    if ex.node_reservation:
        spec.reservation_config = ReservationConfig(reservation_id=ex.node_reservation)
    job = LeptonJob(spec=spec, metadata=Metadata(id=job_name))
    return job.model_dump(mode="json", exclude_none=True, by_alias=True)
