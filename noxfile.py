"""Developer sessions: `nox -s tests`, `lint`, `typecheck`, `mutations`, `benchmarks`, `docs`, `megatron_newest`.

Every session installs the CPU build of torch first (`torch==2.13.0`), so that nothing pulls
CUDA wheels on a CPU machine.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
TORCH = "torch==2.13.0"


def _install(session: nox.Session, extras: str = "dev") -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]")


@nox.session
def tests(session: nox.Session) -> None:
    """The default test suite (CPU; multi-process and Slurm tests included)."""
    _install(session)
    session.run("pytest", "-q", *session.posargs)


@nox.session
def nightly(session: nox.Session) -> None:
    """The slow end-to-end runs and the exhaustive sweeps CI has no time for (`-m nightly`)."""
    _install(session)
    session.run("pytest", "-q", "-m", "slow or nightly", *session.posargs)


@nox.session
def mutations(session: nox.Session) -> None:
    """Each deliberate breakage in tests/mutations.toml must make its test fail (`--only NAME`)."""
    _install(session)
    session.run("python", "tests/mutations.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: style and common bugs."""
    session.install("ruff")
    session.run("ruff", "check", "src", "recipes", "executors", "tests", "benchmarks")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over the library."""
    _install(session)
    session.run("mypy", "src/nemolite")


@nox.session
def benchmarks(session: nox.Session) -> None:
    """Every benchmark; each prints a table and writes benchmarks/results/<name>.md."""
    _install(session)
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Runs every `nemo ... --dryrun` command quoted in README.md and docs/ (they must work)."""
    _install(session)
    session.run("python", "docs/check_commands.py")


@nox.session(python="3.12")
def megatron_newest(session: nox.Session) -> None:
    """The newest supported megatron-core (0.19.x, which needs Python 3.12; the default Python 3.11
    install gets 0.16.1): the backend, model, engine and multi-process tests. On Python 3.12 the
    local wheels hold no CPU torch 2.13.0: point pip at PyTorch's CPU index, or it pulls CUDA torch."""
    _install(session)
    session.install("megatron-core==0.19.2", TORCH)
    session.run("pytest", "-q", "tests/backends", "tests/llm", "tests/lightning", "tests/multiproc",
                *session.posargs)
