"""executor=slurm: profile + overrides -> nemo-run SlurmExecutor -> the sbatch script it submits.

Golden files hold the scripts for a 1x8 and a 4x8 layout; regenerate them after an intended change
with `NEMOLITE_UPDATE_GOLDEN=1 pytest tests/executors/test_slurm_render.py`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import fiddle as fdl
import nemo_run as run
import pytest
from nemo_run.config import get_nemorun_home, set_nemorun_home

from nemolite.errors import ClusterError, ConfigError, DataFileError
from nemolite.executors import slurm

GOLDEN = Path(__file__).parent / "golden"
FAKE_HOME = "/home/me/.nemo_run"


def train(steps: int = 1) -> int:
    """Stands for llm.pretrain: the script only names the serialized task's file."""
    return steps


def assert_golden(name: str, text: str) -> None:
    # torchrun's rendezvous id is random per dry run (nemo-run's torchrun component).
    text = re.sub(r"--rdzv-id \d+", "--rdzv-id <ID>", text)
    path = GOLDEN / name
    if os.environ.get("NEMOLITE_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; if intended, rerun with NEMOLITE_UPDATE_GOLDEN=1"


@pytest.fixture(autouse=True)
def no_stdin(monkeypatch):
    """nemo-run runs `mkdir` through invoke, which forwards stdin; pytest's stdin refuses reads."""
    with open(os.devnull) as devnull:
        monkeypatch.setattr("sys.stdin", devnull)
        yield


@pytest.fixture()
def profile(tmp_path, monkeypatch):
    """Writes a Slurm profile file and points NEMOLITE_SLURM_PROFILE at it."""

    def write(text: str) -> Path:
        path = tmp_path / "slurm.yaml"
        path.write_text(text)
        monkeypatch.setenv("NEMOLITE_SLURM_PROFILE", str(path))
        return path

    real_home = get_nemorun_home()
    set_nemorun_home(FAKE_HOME)
    yield write
    set_nemorun_home(real_home)


PROFILE = """
account: llm_research
partition: batch
gpus_per_node: 8
time: "04:00:00"
env_vars: {NCCL_DEBUG: WARN}
"""


def test_1x8_script_is_golden(profile):
    profile(PROFILE)
    executor = fdl.build(slurm.factory())
    assert slurm.launch_shape(executor) == (1, 8)
    script = slurm.render(executor, run.Partial(train, steps=3), "pretrain")
    assert "#SBATCH --gpus-per-node=8" in script
    assert "--nnodes 1 --nproc-per-node 8" in script
    assert_golden("slurm_1x8.sbatch", script)


def test_4x8_script_is_golden_with_pyxis_and_ssh(profile):
    profile(PROFILE + """
container_image: nvcr.io/nvidia/nemo:25.02
container_mounts: [/lustre/data:/data]
tunnel: {host: login.example.com, user: me, job_dir: /lustre/me/jobs}
""")
    cfg = slurm.factory()
    cfg.nodes = 4  # what `executor.nodes=4` on the CLI does to the returned config
    executor = fdl.build(cfg)
    assert isinstance(executor.tunnel, run.SSHTunnel)
    assert slurm.launch_shape(executor) == (4, 8)
    script = slurm.render(executor, run.Partial(train, steps=3), "pretrain")
    # torchrun on every node meets at the first node of the allocation.
    assert 'head_node=${nodes_array[0]}' in script
    assert "--rdzv-endpoint $head_node_ip:29500" in script
    assert "--nnodes 4 --nproc-per-node 8 --node-rank $SLURM_NODEID" in script
    assert "#SBATCH --nodes=4" in script and "#SBATCH --ntasks-per-node=1" in script
    assert "--container-image nvcr.io/nvidia/nemo:25.02" in script
    assert "/lustre/me/jobs/pretrain/pretrain_dryrun/pretrain:/nemo_run" in script
    assert "export TORCH_NCCL_ASYNC_ERROR_HANDLING=1" in script
    assert "export CUDA_DEVICE_MAX_CONNECTIONS=1" in script
    assert_golden("slurm_4x8.sbatch", script)


def test_render_writes_nothing_under_nemorun_home(profile, tmp_path):
    set_nemorun_home(str(tmp_path / "home"))
    profile(PROFILE)
    slurm.render(fdl.build(slurm.factory()), run.Partial(train), "pretrain")
    assert not (tmp_path / "home").exists()


def test_overrides_win_over_profile(profile):
    profile(PROFILE)
    executor = fdl.build(slurm.factory(partition="debug", nodes=2))
    assert (executor.partition, executor.nodes, executor.account) == ("debug", 2, "llm_research")
    assert executor.env_vars["NCCL_DEBUG"] == "WARN"


def test_srun_launcher_runs_one_task_per_gpu(profile):
    profile(PROFILE + "launcher: srun\n")
    executor = fdl.build(slurm.factory())
    assert slurm.launch_shape(executor) == (1, 8)
    script = slurm.render(executor, run.Partial(train), "pretrain")
    assert "#SBATCH --ntasks-per-node=8" in script and "torchrun" not in script


def test_unknown_profile_key_is_one_line_error(profile):
    path = profile("acount: x\n")
    with pytest.raises(ConfigError) as err:
        slurm.factory()
    assert f"{path}:acount" in str(err.value) and "did you mean 'account'" in str(err.value)


def test_profile_that_is_not_a_mapping(profile):
    profile("- account\n")
    with pytest.raises(DataFileError, match="must be a mapping"):
        slurm.factory()


def test_unknown_launcher(profile):
    profile(PROFILE + "launcher: mpirun\n")
    with pytest.raises(ConfigError, match="executor.launcher='mpirun'"):
        slurm.factory()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"account": ""}, "executor.account"),
        ({"container_image": "nvcr.io/nvidia/nemo"}, "executor.container_image"),
        ({"container_image": "registry:5000/team/nemo"}, "executor.container_image"),
        ({"ntasks_per_node": 1}, "executor.ntasks_per_node"),
        ({"container_mounts": ["/data"]}, "executor.container_mounts"),
        ({"env_vars": {"HF_TOKEN": "hf_abc"}}, "executor.env_vars.HF_TOKEN"),
        ({"env_vars": {"MY_SERVICE_API_KEY": "k"}}, "executor.env_vars.MY_SERVICE_API_KEY"),
    ],
)
def test_bad_settings_are_one_line_errors_before_any_cluster_contact(profile, extra, field):
    profile(PROFILE)
    executor = fdl.build(slurm.factory(**extra))
    with pytest.raises(ClusterError) as err:
        slurm.validate(executor)
    message = str(err.value)
    assert message.startswith(f"{field}=") and "\n" not in message
    assert "hf_abc" not in message


def test_tagged_images_and_squashfs_pass_the_tag_check():
    from nemolite.executors._slurm_checks import check_image

    for image in ("nvcr.io/nvidia/nemo:25.02", "registry:5000/nemo:1.0", "/images/nemo.sqsh",
                  "nemo@sha256:" + "a" * 64):
        check_image(image, "executor.container_image")


def test_unreachable_tunnel_host(profile):
    profile(PROFILE + "tunnel: {host: 127.0.0.1, port: 1, job_dir: /jobs}\n")
    with pytest.raises(ClusterError, match=r"executor.tunnel.host='127.0.0.1': cannot reach 127.0.0.1:1"):
        slurm.validate(fdl.build(slurm.factory()))


def test_ssh_tunnel_needs_a_job_dir(profile):
    profile(PROFILE + "tunnel: {host: login.example.com}\n")
    with pytest.raises(ClusterError, match="executor.tunnel.job_dir"):
        slurm.factory()


def test_secret_values_never_rendered(profile, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret-0123456789")
    profile(PROFILE + f"comment: {'wandb-secret-0123456789'}\n")
    script = slurm.render(fdl.build(slurm.factory()), run.Partial(train), "pretrain")
    assert "wandb-secret-0123456789" not in script
    assert "#SBATCH --comment=***" in script


def test_job_dir_named_nemo_run_is_refused_without_container(profile):
    profile(PROFILE + "tunnel: {job_dir: /lustre/me/nemo_run/jobs}\n")
    with pytest.raises(ClusterError, match="executor.tunnel.job_dir='/lustre/me/nemo_run/jobs'"):
        slurm.validate(fdl.build(slurm.factory()))


@pytest.mark.parametrize("launcher,bound", [("launcher: ft\n", 3), ("", 2)], ids=["profile_ft", "run_FaultTolerance"])
def test_fault_tolerance_launches_torchrun_with_max_restarts(profile, launcher, bound):
    """`launcher: ft` in the profile, or NeMo's `executor.launcher = run.FaultTolerance(max_restarts=2)`:
    every node's torchrun restarts its ranks in place (no ft_launcher, which nemolite does not ship)."""
    profile(PROFILE + launcher)
    executor = fdl.build(slurm.factory())
    if not launcher:
        executor.launcher = run.FaultTolerance(max_restarts=2, initial_rank_heartbeat_timeout=1800)
    assert slurm.launch_shape(executor) == (1, 8)
    script = slurm.render(executor, run.Partial(train), "pretrain")
    assert f"torchrun --max-restarts={bound} --monitor-interval=1 --rdzv-backend c10d" in script
    assert "ft_launcher" not in script and "#SBATCH --ntasks-per-node=1" in script
    assert "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in script  # a fresh store per attempt
    # hang detection: the heartbeat timeout reaches every rank (only when asked for)
    assert ("NEMOLITE_FT_INITIAL_RANK_HEARTBEAT_TIMEOUT=1800" in script) is (not launcher)
    assert "NEMOLITE_FT_RANK_HEARTBEAT_TIMEOUT" not in script
