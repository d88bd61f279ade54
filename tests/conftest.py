"""Shared fixtures: running the real `nemo` CLI in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NEMO = shutil.which("nemo") or str(Path(sys.executable).with_name("nemo"))


def run_nemo(*args: str, cwd: Path, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `nemo <args>` with no terminal on stdin and returns the finished process."""
    full_env = os.environ | {"NO_COLOR": "1", "COLUMNS": "200", "HOME": str(cwd)} | (env or {})
    return subprocess.run(
        [NEMO, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL, env=full_env,
    )


@pytest.fixture(autouse=True)
def _restore_environment():
    """Each test starts from the same environment.

    In-process training (Lightning's single-process launch) sets MASTER_ADDR/MASTER_PORT, RANK,
    WORLD_SIZE... in os.environ and keeps its TCP store listening on that port; a later test's
    subprocess would inherit the port and fail with EADDRINUSE.
    """
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def llm_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`llm_cli(*args)`: the `nemo llm` verbs run in this process (fast), in an empty tmp_path.

    Returns (exit_code, stdout, stderr). The same typer commands as `nemo llm ...`; tests that need
    the real `nemo` binary (entry-point registration) use the `nemo` fixture instead.
    """
    import typer
    from typer.testing import CliRunner

    from nemolite import llm

    app = typer.Typer()
    for verb in (llm.pretrain, llm.finetune, llm.train, llm.validate):
        verb.cli_entrypoint.cli(app)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200"})
        return result.exit_code, result.stdout, result.stderr

    return invoke


@pytest.fixture
def nemo(tmp_path: Path):
    """`nemo(*args)` in an empty working directory (tmp_path), which tests can inspect afterwards."""
    return lambda *args, **kw: run_nemo(*args, cwd=tmp_path, **kw)
