"""Shared fixtures: running the real `nemo` CLI in a subprocess."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

NEMO = shutil.which("nemo") or str(Path(sys.executable).with_name("nemo"))

# Where tools write by default (~/.nemo_run, ~/.cache, HF's and NeMo's caches, ~/.config profiles):
# the whole test session gets one temporary home, so the test command writes nothing outside
# temporary directories. Set in pytest_configure, before any test module imports nemo_run (which
# reads NEMORUN_HOME once, at import).
HOME_VARS = ("HOME", "NEMORUN_HOME", "NEMO_HOME", "HF_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
             "MPLCONFIGDIR", "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR")
_SESSION_HOME: Path | None = None
# The environment pytest started with, and what Lightning's one-process launch adds to it.
_SESSION_ENV = dict(os.environ)
_DIST_VARS = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK",
              "LOCAL_WORLD_SIZE", "GROUP_RANK")


def pytest_configure(config: pytest.Config) -> None:
    global _SESSION_HOME
    _SESSION_HOME = Path(tempfile.mkdtemp(prefix="nemolite-test-home-"))
    home = _SESSION_HOME
    places = dict(HOME=home, NEMORUN_HOME=home / ".nemo_run", NEMO_HOME=home / ".cache" / "nemo",
                  HF_HOME=home / ".cache" / "huggingface", XDG_CACHE_HOME=home / ".cache",
                  XDG_CONFIG_HOME=home / ".config", MPLCONFIGDIR=home / ".config" / "matplotlib",
                  TRITON_CACHE_DIR=home / ".triton", TORCHINDUCTOR_CACHE_DIR=home / ".inductor")
    for var in HOME_VARS:
        os.environ[var] = str(places[var])


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION_HOME is not None:
        shutil.rmtree(_SESSION_HOME, ignore_errors=True)


def run_nemo(*args: str, cwd: Path, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `nemo <args>` with no terminal on stdin and returns the finished process."""
    home = {"HOME": str(cwd), "NEMORUN_HOME": str(cwd / ".nemo_run")}
    full_env = os.environ | {"NO_COLOR": "1", "COLUMNS": "200"} | home | (env or {})
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
    # A module-scoped fixture that trained in this process ran before this fixture saved the
    # environment: drop the rendezvous variables it left, or every later test inherits them.
    for var in _DIST_VARS:
        if var not in _SESSION_ENV:
            os.environ.pop(var, None)
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
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / ".nemo_run"))
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200"})
        return result.exit_code, result.stdout, result.stderr

    return invoke


@pytest.fixture
def nemo(tmp_path: Path):
    """`nemo(*args)` in an empty working directory (tmp_path), which tests can inspect afterwards."""
    return lambda *args, **kw: run_nemo(*args, cwd=tmp_path, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def parallel():
    """A 1-process gloo world with megatron's model-parallel groups and RNG tracker (torn down afterwards)."""
    import torch
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    from nemolite.backends import cpu

    cpu.apply()
    started = not torch.distributed.is_initialized()
    if started:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
        torch.distributed.init_process_group("gloo", rank=0, world_size=1)
    parallel_state.initialize_model_parallel()
    model_parallel_cuda_manual_seed(1234)
    yield
    parallel_state.destroy_model_parallel()
    if started:
        torch.distributed.destroy_process_group()
