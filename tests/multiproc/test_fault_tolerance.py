"""In-job restarts through the real launch: `nemo llm pretrain ... executor=torchrun executor.launcher=ft`.

One rank of a 2-process run is SIGKILLed from outside once the first checkpoint is published;
torchrun (`--max-restarts`, from the `ft` launcher) restarts both ranks, `AutoResume` continues
from the latest complete checkpoint, and the run ends with an uninterrupted run's per-step losses.
A hang: one rank of a run launched from Python with NeMo's `FaultTolerancePlugin` (heartbeat
timeouts set) is frozen (SIGSTOP, as a node that stops answering); the other waits in a collective
until its hang detection ends it, torchrun restarts both, and the run ends on the same losses.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.multiproc.test_resume_llama import losses, tagged

RUN = ["llm", "pretrain", "--factory", "llama_tiny", "executor=torchrun", "trainer.devices=2",
       "trainer.max_steps=6", "log.ckpt.every_n_train_steps=2", "trainer.limit_val_batches=0",
       "data.seq_length=64", "model.config.seq_length=64", "-y"]


def launch(home: Path, run_dir: Path, argv: list[str], tag: str) -> subprocess.Popen:
    """Starts `argv` in `home` (a temporary HOME and caches), its output in `<run_dir name>.out`."""
    env = {**os.environ, "HOME": str(home), "NEMO_HOME": str(home / "nemo"), "NEMORUN_HOME": str(home / "nr"),
           "HF_HOME": str(home / "hf"), "NEMOLITE_TEST_TAG": tag, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(argv, env=env, cwd=home, stdout=(home / f"{run_dir.name}.out").open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def start(home: Path, run_dir: Path, *extra: str, tag: str) -> subprocess.Popen:
    nemo = shutil.which("nemo", path=str(Path(sys.executable).parent)) or "nemo"
    return launch(home, run_dir, [nemo, *RUN, f"log.explicit_log_dir={run_dir}", *extra], tag)


def signal_rank1_after_first_checkpoint(proc: subprocess.Popen, tag: str, run_dir: Path, sig: int) -> int:
    """Sends `sig` to rank 1's worker once the step-2 checkpoint is published; returns its pid."""
    out = run_dir.parent / f"{run_dir.name}.out"
    try:
        while not list((run_dir / "checkpoints").glob("*-step=2-*[0-9]")):  # published, not *.tmp
            assert proc.poll() is None, out.read_text()[-3000:]
            time.sleep(0.1)
        pid = worker(tag, rank=1)
        os.kill(pid, sig)
    except BaseException:
        finish(proc, tag, timeout=1)
        raise
    return pid


def worker(tag: str, rank: int) -> int:
    """The training process of global rank `rank` (not its checkpoint-writer helper)."""
    for pid in tagged(tag):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and b"fdl_runner" in cmdline:
            return pid
    raise AssertionError(f"no rank {rank} worker")


def finish(proc: subprocess.Popen, tag: str, timeout: float = 480) -> int:
    try:
        return proc.wait(timeout=timeout)
    finally:
        for pid in tagged(tag):  # whatever a failure left behind
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[int, float]:
    """Per-step losses of the uninterrupted 2-process run."""
    home = tmp_path_factory.mktemp("ref")
    tag = uuid.uuid4().hex
    assert finish(start(home, home / "ref", tag=tag), tag) == 0, (home / "ref.out").read_text()[-3000:]
    return losses(home / "ref")


PLUGIN_RUN = """
import sys

import nemo_run as run

from nemolite.lightning.run.plugins import FaultTolerancePlugin
from nemolite.recipes import llama_tiny

recipe = llama_tiny.pretrain_recipe(num_gpus_per_node=2)
recipe.trainer.max_steps = 6
recipe.trainer.limit_val_batches = 0
recipe.log.ckpt.every_n_train_steps = 2
recipe.log.explicit_log_dir = sys.argv[1]
recipe.data.seq_length = recipe.model.config.seq_length = 64
executor = run.LocalExecutor(ntasks_per_node=2, launcher="torchrun", env_vars={"OMP_NUM_THREADS": "1"})
plugin = FaultTolerancePlugin(num_in_job_restarts=2, initial_rank_heartbeat_timeout=600, rank_heartbeat_timeout=15)
run.run(recipe, executor=executor, plugins=[plugin], name="pretrain")
"""


@pytest.mark.multiproc
@pytest.mark.slow  # one 2-process run with a 15 s hang, then torchrun's 30 s stop of the frozen rank
def test_frozen_rank_is_detected_and_the_job_restarts_in_place(tmp_path: Path, reference: dict[int, float]) -> None:
    tag = uuid.uuid4().hex
    run_dir = tmp_path / "hang"
    out = tmp_path / "hang.out"
    proc = launch(tmp_path, run_dir, [sys.executable, "-c", PLUGIN_RUN, str(run_dir)], tag)
    frozen = signal_rank1_after_first_checkpoint(proc, tag, run_dir, signal.SIGSTOP)
    assert finish(proc, tag) == 0, out.read_text()[-3000:]
    logs = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("nr/**/*.log"))
    logs += out.read_text(errors="replace")
    assert "rank 0: no progress for" in logs and "rank_heartbeat_timeout=15 s" in logs, logs[-4000:]
    assert list(tmp_path.glob("nr/**/torchelastic/**/attempt_1")), "no in-job restart"
    assert losses(run_dir) == reference
    assert sorted(losses(run_dir)) == [1, 2, 3, 4, 5, 6]
    assert not any(pid == frozen for pid in tagged(tag))


@pytest.mark.multiproc
@pytest.mark.slow  # one 2-process CLI run and its restart (+ the shared reference run): ~1-2 min quiet
def test_killed_rank_restarts_in_job_and_finishes_on_the_uninterrupted_curve(
    tmp_path: Path, reference: dict[int, float]
) -> None:
    tag = uuid.uuid4().hex
    run_dir = tmp_path / "ft"
    proc = start(tmp_path, run_dir, "executor.launcher=ft", tag=tag)
    victim = signal_rank1_after_first_checkpoint(proc, tag, run_dir, signal.SIGKILL)
    assert finish(proc, tag) == 0
    # torchrun's second attempt, in the same job (nemo-run keeps each attempt's worker logs).
    assert list(tmp_path.glob("nr/**/torchelastic/**/attempt_1")), "no in-job restart"
    log = (run_dir / "nemo_log_globalrank-0_localrank-0.txt").read_text()
    assert "resuming from" in log and "step=" in log, log[-3000:]
    assert losses(run_dir) == reference
    assert sorted(losses(run_dir)) == [1, 2, 3, 4, 5, 6]
    assert not any(pid == victim for pid in tagged(tag))
