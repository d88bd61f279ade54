"""Preemption, in-job restarts, straggler detection and the progress bar, on real processes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from nemolite.errors import ConfigError, UnknownChoiceError
from nemolite.lightning.callbacks import PreemptionCallback, StragglerDetection
from nemolite.lightning.callbacks.metrics import read_metrics
from nemolite.lightning.callbacks.straggler import straggler_report
from nemolite.lightning.fault_tolerance import FaultTolerance

TOY = Path(__file__).with_name("test_checkpoint_toy.py")


def toy_cmd(run_dir: Path, steps: int = 8, every: int = 100) -> list[str]:
    return [sys.executable, str(TOY), str(run_dir), str(steps), str(every)]


def run(cmd: list[str], **env: str):  # noqa: ANN201
    import subprocess

    return subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def losses(run_dir: Path) -> dict[int, float]:
    return {s: r["reduced_train_loss"] for s, r in read_metrics(run_dir).items() if "reduced_train_loss" in r}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[int, float]:
    ref = tmp_path_factory.mktemp("ref")
    proc = run(toy_cmd(ref))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return losses(ref)


def test_sigterm_saves_at_the_next_step_and_the_same_command_resumes(tmp_path: Path, reference) -> None:  # noqa: ANN001
    # No scheduled checkpoint before step 100: only the preemption can save one.
    first = run(toy_cmd(tmp_path), TOY_SIGTERM_AT="3")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "preemption (SIGTERM) at step 3" in first.stderr
    saved = [p.name for p in (tmp_path / "checkpoints").iterdir()]
    assert len(saved) == 1 and "step=3" in saved[0], saved
    assert max(losses(tmp_path)) == 3  # stopped right there
    second = run(toy_cmd(tmp_path), TOY_SIGTERM_AT="3")
    assert second.returncode == 0 and "resuming from" in second.stderr and "step=3" in second.stderr
    assert losses(tmp_path) == reference


def test_crash_restarts_in_place_from_the_last_checkpoint(tmp_path: Path, reference) -> None:  # noqa: ANN001
    cmd = toy_cmd(tmp_path, every=2)
    env = {**os.environ, "TOY_KILL_AT": "3,7"}
    assert FaultTolerance(max_restarts=1).run_with_restarts(cmd, env) == -9  # two crashes, one restart
    # The restart resumed from step 2 and ran to the kill at step 7, which struck before step 7's
    # metrics were written: exactly steps 1-6 are logged (no restart would stop at 2).
    assert sorted(losses(tmp_path)) == [1, 2, 3, 4, 5, 6]
    assert FaultTolerance(max_restarts=2).run_with_restarts(cmd, env) == 0  # flags remember the kills
    assert losses(tmp_path) == reference


@pytest.mark.multiproc
def test_torchrun_max_restarts_resumes_a_killed_worker(tmp_path: Path, reference) -> None:  # noqa: ANN001
    flags = FaultTolerance(max_restarts=2, monitor_interval=0.2).torchrun_args()
    proc = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1", *flags,
                *toy_cmd(tmp_path, every=2)[1:]], TOY_KILL_AT="3,5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("INFO] resuming from") == 2
    assert losses(tmp_path) == reference


@pytest.mark.multiproc
def test_straggler_is_flagged_on_every_rank(tmp_path: Path) -> None:
    proc = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                *toy_cmd(tmp_path, steps=6)[1:]], TOY_STRAGGLER="0.2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads((tmp_path / f"straggler_rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0] == reports[1]
    assert reports[0]["stragglers"] == [1]
    assert reports[0]["times_s"][1] > reports[0]["times_s"][0] + 0.15
    assert "straggler: rank 1 takes" in proc.stderr


def test_straggler_report_uses_the_median() -> None:
    report = straggler_report([1.0, 1.1, 0.9, 2.0], threshold=1.5, step=10)
    assert report["stragglers"] == [3] and report["median_s"] == pytest.approx(1.05)


def test_progress_bar_and_step_lines_are_shown(tmp_path: Path) -> None:
    proc = run(toy_cmd(tmp_path, steps=10))
    assert proc.returncode == 0
    assert "step 10/10 loss" in proc.stderr and "tokens/s" in proc.stderr
    assert "10/10" in proc.stdout and "tok/s" in proc.stdout and "ETA" in proc.stdout


def test_callback_specs_refuse_bad_values() -> None:
    with pytest.raises(UnknownChoiceError, match="SIGFOO"):
        PreemptionCallback(signals=["SIGFOO"]).validate()
    with pytest.raises(ConfigError, match="threshold"):
        StragglerDetection(threshold=0.5).validate()
    with pytest.raises(ConfigError, match="fault_tolerance.max_restarts"):
        FaultTolerance(max_restarts=-1).validate()
    assert FaultTolerance(max_restarts=3).torchrun_args() == ["--max-restarts=3", "--monitor-interval=1"]
