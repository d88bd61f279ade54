"""The test command leaves the machine as it found it: no packages, no services, no writes to $HOME."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_session_home_is_temporary():
    """Every default location tools write to (~/.nemo_run, caches, profiles) is a temporary dir."""
    import nemo_run.config

    tmp = Path(tempfile.gettempdir()).resolve()
    for var in ("HOME", "NEMORUN_HOME", "NEMO_HOME", "HF_HOME", "XDG_CACHE_HOME"):
        assert tmp in Path(os.environ[var]).resolve().parents, f"{var}={os.environ[var]} is not temporary"
    assert tmp in Path(nemo_run.config.get_nemorun_home()).resolve().parents
    assert Path("~").expanduser().resolve() == Path(os.environ["HOME"]).resolve()


def test_slurm_tests_skip_without_cluster_and_install_nothing(tmp_path: Path):
    """Without a cluster the slurm tests skip with the reason, and no install script or apt-get runs.

    A fake `apt-get`, `bash`-reachable `sinfo` absence and a marker file prove nothing was attempted.
    """
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    marker = tmp_path / "apt-get-ran"
    (fake_bin / "apt-get").write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    (fake_bin / "apt-get").chmod(0o755)
    # Only the venv, the fake bin and the system basics: no sinfo anywhere on PATH.
    path = os.pathsep.join([str(fake_bin), str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    env = dict(os.environ, PATH=path)
    env.pop("NEMOLITE_REQUIRE_SLURM", None)
    if any((Path(d) / "sinfo").exists() for d in ("/usr/bin", "/bin")):
        import pytest

        pytest.skip("a Slurm install is on this machine's PATH; the no-cluster case cannot be staged here")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         str(REPO / "tests" / "slurm"), "-x"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "skipped" in out and "no Slurm cluster answers" in out, out
    assert "passed" not in out and "failed" not in out, out
    assert not marker.exists(), "the slurm tests tried to install packages"


def test_install_metadata_has_no_setuptools_deprecation():
    """`pip install -e .` printed setuptools' `project.license` deprecation (a TOML table)."""
    import warnings

    from setuptools.config.pyprojecttoml import read_configuration

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = read_configuration(REPO / "pyproject.toml")
    assert config["project"]["license"] == "Apache-2.0"
