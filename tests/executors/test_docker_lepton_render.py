"""executor=docker and executor=lepton: what nemo-run would start, golden-tested; secrets by name only.

Regenerate the golden files after an intended change with
`NEMOLITE_UPDATE_GOLDEN=1 pytest tests/executors/test_docker_lepton_render.py`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import fiddle as fdl
import nemo_run as run
import pytest
from nemo_run.config import get_nemorun_home, set_nemorun_home

from nemolite.errors import ClusterError
from nemolite.executors import docker, lepton

GOLDEN = Path(__file__).parent / "golden"
SECRET = "hf_secretvalue_0123456789"


def train(steps: int = 1) -> int:
    return steps


def assert_golden(name: str, text: str) -> None:
    text = re.sub(r"--rdzv-id \d+", "--rdzv-id <ID>", text)
    # nemo-run names each Docker app with a random suffix (torchx make_unique).
    text = re.sub(r"pretrain-[a-z0-9]{10,}", "pretrain-<APP>", text)
    path = GOLDEN / name
    if os.environ.get("NEMOLITE_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; if intended, rerun with NEMOLITE_UPDATE_GOLDEN=1"


@pytest.fixture(autouse=True)
def setup(tmp_path, monkeypatch):
    with open(os.devnull) as devnull:
        monkeypatch.setattr("sys.stdin", devnull)  # invoke forwards stdin; pytest refuses reads
        monkeypatch.setenv("HF_TOKEN", SECRET)
        monkeypatch.setenv("MY_TOKEN", "my-own-secret-value")
        real_home = get_nemorun_home()
        set_nemorun_home("/home/me/.nemo_run")
        yield
        set_nemorun_home(real_home)


def write_profile(tmp_path, monkeypatch, kind: str, text: str) -> None:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(text)
    monkeypatch.setenv(f"NEMOLITE_{kind.upper()}_PROFILE", str(path))


DOCKER = """
container_image: nvcr.io/nvidia/nemo:25.02
num_gpus: 8
volumes: [/data:/data]
env_vars: {NCCL_DEBUG: WARN}
secrets: [MY_TOKEN]
"""


def test_docker_run_line_is_golden(tmp_path, monkeypatch):
    write_profile(tmp_path, monkeypatch, "docker", DOCKER)
    executor = fdl.build(docker.factory())
    assert docker.launch_shape(executor) == (1, 8)
    line = docker.render(executor, run.Partial(train, steps=2), "pretrain")
    argv = shlex.split(line)
    assert argv[:2] == ["docker", "run"]
    assert argv[argv.index("--gpus") + 1] == "8" and argv[argv.index("--shm-size") + 1] == "16g"
    assert "/home/me/.nemo_run/experiments/pretrain/pretrain_dryrun/pretrain:/nemo_run" in argv
    # Secrets are named, never valued: `docker run -e NAME` copies them from this environment.
    assert ["-e", "HF_TOKEN"] == argv[argv.index("HF_TOKEN") - 1: argv.index("HF_TOKEN") + 1]
    assert "MY_TOKEN" in argv and SECRET not in line and "my-own-secret-value" not in line
    assert "nvcr.io/nvidia/nemo:25.02" in argv and "--nproc-per-node 8" in argv[-1]
    assert_golden("docker_run.sh", line + "\n")


def test_docker_render_matches_the_engine_call_nemo_run_makes(tmp_path, monkeypatch):
    """nemo-run starts containers through the Docker Engine API (docker-py), not the CLI: record
    the arguments of that call and check that the rendered line says the same."""
    from nemo_run.core.execution.docker import DockerContainer

    write_profile(tmp_path, monkeypatch, "docker", DOCKER)
    executor = fdl.build(docker.factory())
    line = docker.render(executor, run.Partial(train), "pretrain")
    argv = shlex.split(line)

    class Recorder:  # stands in for the Docker engine, which these machines do not have
        calls: list = []

        class networks:  # noqa: N801 - docker-py's attribute name
            @staticmethod
            def create(**kwargs):
                return None

        class containers:  # noqa: N801
            @staticmethod
            def run(image, command, **kwargs):
                Recorder.calls.append((image, command, kwargs))

    ex = fdl.build(docker.factory())
    ex.experiment_id, ex.job_dir = "pretrain_dryrun", "/home/me/.nemo_run/experiments/pretrain/pretrain_dryrun/pretrain"
    ex.volumes.append(f"{ex.job_dir}:/nemo_run")
    name = argv[argv.index("--name") + 1]
    command = shlex.split(argv[-1].split(" 2>&1 |")[0])
    DockerContainer(name=name, command=command, executor=ex, extra_env={"LOGLEVEL": "INFO"}).run(
        Recorder, id=argv[argv.index("--label") + 5].split("=", 1)[1]
    )
    image, engine_command, kwargs = Recorder.calls[0]
    assert image == argv[argv.index(image)]
    assert shlex.split(engine_command) == argv[-3:]
    assert kwargs["shm_size"] == argv[argv.index("--shm-size") + 1]
    assert kwargs["device_requests"][0]["Count"] == int(argv[argv.index("--gpus") + 1])
    assert kwargs["volumes"] == [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]
    env = [argv[i + 1] for i, a in enumerate(argv) if a == "-e" and "=" in argv[i + 1]]
    assert env == [f"{k}={v}" for k, v in kwargs["environment"].items()]
    assert kwargs["ipc_mode"] == argv[argv.index("--ipc") + 1]
    ulimits = [argv[i + 1] for i, a in enumerate(argv) if a == "--ulimit"]
    assert ulimits == [f"{u['Name']}={u['Soft']}:{u['Hard']}" for u in kwargs["ulimits"]]


def test_docker_without_engine_is_one_line_error(tmp_path, monkeypatch):
    write_profile(tmp_path, monkeypatch, "docker", DOCKER)
    with pytest.raises(ClusterError) as err:
        docker.validate(fdl.build(docker.factory()))
    assert str(err.value).startswith("executor='docker': ")
    assert "\n" not in str(err.value)


def test_docker_needs_a_tagged_image(tmp_path, monkeypatch):
    write_profile(tmp_path, monkeypatch, "docker", DOCKER.replace("nemo:25.02", "nemo"))
    with pytest.raises(ClusterError, match="executor.container_image='nvcr.io/nvidia/nemo'"):
        docker.validate(fdl.build(docker.factory()))


LEPTON = """
container_image: nvcr.io/nvidia/nemo:25.02
node_group: my-node-group
resource_shape: gpu.8xh100-80gb
nemo_run_dir: /mnt/shared/nemo-run
nodes: 2
gpus_per_node: 8
mounts: [{path: /shared, mount_path: /mnt/shared, from: "node-nfs:lepton-shared-fs"}]
secret_vars: {WANDB_API_KEY: team-wandb-key}
secrets: [HF_TOKEN]
"""


def test_lepton_job_spec_is_golden(tmp_path, monkeypatch):
    write_profile(tmp_path, monkeypatch, "lepton", LEPTON)
    executor = fdl.build(lepton.factory())
    assert lepton.launch_shape(executor) == (2, 8)
    lepton.validate(executor)
    text = lepton.render(executor, run.Partial(train, steps=2), "pretrain")
    spec = json.loads(text.split("# Lepton job spec\n", 1)[1])
    envs = {e["name"]: e for e in spec["spec"]["envs"]}
    assert envs["HF_TOKEN"] == {"name": "HF_TOKEN", "value_from": {"secret_name_ref": "HF_TOKEN"}}
    assert envs["WANDB_API_KEY"]["value_from"] == {"secret_name_ref": "team-wandb-key"}
    assert spec["spec"]["completions"] == spec["spec"]["parallelism"] == 2
    assert "torchrun --nnodes 2 --nproc-per-node 8" in text and SECRET not in text
    assert_golden("lepton_job.txt", text)


@pytest.mark.parametrize("missing", ["node_group", "resource_shape", "nemo_run_dir"])
def test_lepton_required_settings(tmp_path, monkeypatch, missing):
    write_profile(tmp_path, monkeypatch, "lepton", re.sub(rf"{missing}: .*\n", "", LEPTON))
    with pytest.raises(ClusterError, match=f"executor.{missing}=''"):
        lepton.validate(fdl.build(lepton.factory()))


def test_lepton_rejects_a_secret_value_in_env_vars(tmp_path, monkeypatch):
    write_profile(tmp_path, monkeypatch, "lepton", LEPTON + "env_vars: {HF_TOKEN: hf_abc}\n")
    with pytest.raises(ClusterError, match=r"executor.env_vars.HF_TOKEN='\*\*\*'"):
        lepton.validate(fdl.build(lepton.factory()))
