"""executor=slurm against real Slurm daemons: submit, logs/status, scancel, requeue+resume, bad input.

Every job here runs on the one-node cluster that tests/slurm/conftest.py starts on this machine.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

TINY = ["--factory", "llama_tiny", "executor=slurm", "trainer.max_steps=4"]


def nemo(env: dict[str, str], *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    """Runs the real `nemo` CLI of this venv."""
    exe = str(Path(sys.executable).parent / "nemo")
    return subprocess.run(
        [exe, *args], env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def job_id(output: str) -> str:
    found = re.search(r"Job id: (\d+)", output)
    assert found, output
    return found.group(1)


def experiment_id(output: str) -> str:
    found = re.search(r"nemo experiment status (\S+)", output)
    assert found, output
    return found.group(1)


def sacct_state(job: str) -> str:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", job, "-o", "State"], capture_output=True, text=True
    ).stdout.split()
    return out[0] if out else ""


def wait_for(predicate, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def queued(name_part: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if name_part in line]


def task_dir(env: dict[str, str], name: str) -> Path:
    dirs = sorted((Path(env["NEMORUN_HOME"]) / "experiments" / name).glob(f"{name}_*/{name}"))
    assert dirs, f"no experiment directory for {name}"
    return dirs[-1]


def checkpoints(task: Path) -> list[Path]:
    """Finished checkpoints (a `.tmp` suffix marks one still being written)."""
    found = task.glob("code/nemo_experiments/*/*/checkpoints/*")
    return sorted(p for p in found if not p.name.endswith(".tmp"))


def test_llama_tiny_runs_to_a_checkpoint_with_logs_and_status(slurm_env):
    slurm_env["WANDB_API_KEY"] = "wandb-test-secret-4242"
    done = nemo(slurm_env, "llm", "pretrain", *TINY, "--name", "tiny", "-y")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"Job \d+ finished: SUCCEEDED", done.stdout), done.stdout
    task = task_dir(slurm_env, "tiny")
    assert [p.name for p in checkpoints(task) if "step=4" in p.name], list(task.rglob("*"))
    log = next(task.glob("log-*_0.out")).read_text()
    assert "saved checkpoint" in log
    # The secret reached nothing that was written: script, configs, logs.
    for path in task.parent.rglob("*"):
        if path.is_file() and path.stat().st_size < 10_000_000:
            assert b"wandb-test-secret-4242" not in path.read_bytes(), path

    exp = experiment_id(done.stdout)
    status = nemo(slurm_env, "experiment", "status", exp, timeout=120)
    assert status.returncode == 0 and "SUCCEEDED" in status.stdout, status.stdout + status.stderr
    logs = nemo(slurm_env, "experiment", "logs", exp, "0", timeout=120)
    assert "saved checkpoint" in logs.stdout + logs.stderr, logs.stdout + logs.stderr


def test_scancel_ends_the_job_and_secrets_reach_it_by_environment(slurm_env, tmp_path, monkeypatch):
    import fiddle as fdl
    import nemo_run as run
    from nemo_run.config import get_nemorun_home, set_nemorun_home

    secret = "wandb-cancel-secret-9999"
    for key in ("NEMOLITE_SLURM_PROFILE", "PATH", "OMP_NUM_THREADS"):
        monkeypatch.setenv(key, slurm_env[key])
    monkeypatch.setenv("WANDB_API_KEY", secret)
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    monkeypatch.syspath_prepend(here)
    monkeypatch.setattr("sys.stdin", open(os.devnull))  # invoke forwards stdin; pytest refuses reads
    import slurm_jobs

    from nemolite.executors import slurm

    real_home = get_nemorun_home()
    set_nemorun_home(slurm_env["NEMORUN_HOME"])
    try:
        executor = fdl.build(slurm.factory())
        slurm.validate(executor)
        marker = tmp_path / "marker"
        with run.Experiment("cancelme", executor=executor, clean_mode=True) as exp:
            exp.add(run.Partial(slurm_jobs.report_then_wait, marker=str(marker)), name="cancelme")
            exp.run(detach=True)
            handle = exp.jobs[0].handle
    finally:
        set_nemorun_home(real_home)
    job = handle.rsplit("/", 1)[-1]
    wait_for(marker.exists, 90, "the job to start")
    reported_job, digest = marker.read_text().split()
    assert reported_job == job
    assert digest == hashlib.sha256(secret.encode()).hexdigest()  # it reached the job...
    for path in Path(slurm_env["NEMORUN_HOME"]).rglob("*"):  # ...and no file on the way
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path

    subprocess.run(["scancel", job], check=True)
    state = wait_for(lambda: (s := sacct_state(job)) and s != "RUNNING" and s, 60, "the cancel")
    assert state.startswith("CANCELLED"), state
    wait_for(lambda: not queued(job), 60, "the job to leave the queue")


@pytest.mark.slow  # ~3 min: Slurm holds a requeued job back before restarting it
def test_requeued_job_resumes_from_its_checkpoint(slurm_env):
    submitted = nemo(
        slurm_env, "llm", "pretrain", "--factory", "llama_tiny", "executor=slurm", "--name", "requeue",
        "trainer.max_steps=16", "log.ckpt.every_n_train_steps=4", "--detach", "-y",
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job = job_id(submitted.stdout)
    task = wait_for(lambda: (Path(slurm_env["NEMORUN_HOME"]) / "experiments" / "requeue").exists()
                    and task_dir(slurm_env, "requeue"), 30, "the experiment directory")
    first = wait_for(lambda: checkpoints(task), 120, "a finished checkpoint")
    saved_step = int(re.search(r"step=(\d+)", first[0].name).group(1))
    subprocess.run(["scontrol", "requeue", job], check=True)

    wait_for(lambda: sacct_state(job) == "COMPLETED", 180, "the requeued job to complete", 2)
    second_log = next(task.glob("log-*_1.out")).read_text()
    resumed = re.search(r"resuming from \S+ \(step (\d+)\)", second_log)
    assert resumed, second_log[-3000:]
    assert int(resumed.group(1)) >= saved_step
    assert any("step=16" in p.name for p in checkpoints(task))


@pytest.mark.parametrize(
    ("args", "profile_extra", "error"),
    [
        (["executor.partition=nosuch"], "", "executor.partition='nosuch': Slurm has no such partition"),
        (["executor.account=nosuch"], "", "executor.account='nosuch': Slurm has no association"),
        (["executor.container_image=nvcr.io/nvidia/nemo"], "", "executor.container_image="),
        (["executor.nodes=2"], "", "executor.nodes=2: Slurm says: Requested node configuration"),
        (["trainer.devices=2"], "", "executor=slurm starts 1 process(es) per node"),
        ([], "tunnel: {host: 127.0.0.1, port: 1, job_dir: /tmp/jobs}\n", "executor.tunnel.host="),
    ],
    ids=["partition", "account", "untagged-image", "nodes", "devices-vs-trainer", "unreachable-tunnel"],
)
def test_bad_input_is_one_line_and_submits_nothing(slurm_env, args, profile_extra, error):
    if profile_extra:
        profile = Path(slurm_env["NEMOLITE_SLURM_PROFILE"])
        profile.write_text(profile.read_text() + profile_extra)
    done = nemo(slurm_env, "llm", "pretrain", *TINY, "--name", "badinput", *args, "-y", timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and error in lines[0], done.stderr
    assert not queued("badinput")
    assert not (Path(slurm_env["NEMORUN_HOME"]) / "experiments" / "badinput").exists()
