"""Launching through an executor: the CLI's exit code follows the job's final state."""

from __future__ import annotations

from pathlib import Path

import nemo_run as run
import pytest

from nemolite.cli.launch import submit


def _write(path: str, text: str) -> None:
    Path(path).write_text(text)


def _fail(message: str) -> None:
    raise RuntimeError(message)


@pytest.fixture
def nemorun_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "nemorun"))
    monkeypatch.setattr("sys.stdin", open("/dev/null"))  # nemo-run's invoke reads stdin
    return tmp_path


def test_a_local_job_that_succeeds_reports_succeeded(nemorun_home: Path) -> None:
    out = nemorun_home / "out.txt"
    experiment, states = submit(run.Partial(_write, str(out), "done"), run.LocalExecutor(),
                                "ok-job", detach=False, tail_logs=False)
    assert states == ["SUCCEEDED"] and experiment.startswith("ok-job")
    assert out.read_text() == "done"


def test_a_local_job_that_raises_reports_failed(nemorun_home: Path) -> None:
    _, states = submit(run.Partial(_fail, "boom"), run.LocalExecutor(), "bad-job",
                       detach=False, tail_logs=False)
    assert states == ["FAILED"]


def test_a_failed_jobs_own_error_is_shown(nemorun_home: Path) -> None:
    from nemolite.cli.launch import job_error_tail, submit_jobs

    _, states, dirs = submit_jobs(run.Partial(_fail, "the job's own words"), run.LocalExecutor(),
                                  "bad-job", detach=False, tail_logs=False)
    assert states == ["FAILED"]
    tail = job_error_tail(dirs[0])
    assert "RuntimeError: the job's own words" in tail, tail
    assert tail.splitlines()[0].startswith("Traceback"), tail
