"""A real one-node Slurm cluster on this machine for the `slurm` tests.

The session fixture uses a cluster that already answers `sinfo` (and `sacctmgr`), and skips the
`slurm` tests, with the reason, when none does. The test command never installs system packages or
starts services itself: `.ci/run` starts the cluster with `.ci/install_slurm.sh` before pytest (as
root in CI) and stops it afterwards; by hand, `sudo bash .ci/install_slurm.sh` then
`sudo bash .ci/install_slurm.sh stop`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PARTITION = os.environ.get("NEMOLITE_SLURM_PARTITION", "debug")
ACCOUNT = os.environ.get("NEMOLITE_SLURM_ACCOUNT", "nemolite")


def _cluster_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        return _probe()
    except subprocess.TimeoutExpired:  # a half-started cluster: not one to test against
        return False


def _probe() -> bool:
    probe = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0 or not any(s in probe.stdout for s in ("idle", "mixed", "allocated")):
        return False
    # Accounting too: with slurmdbd's database gone, sacct (job status) and account checks fail,
    # so the install script (idempotent) must restart what is down.
    accounting = subprocess.run(["sacctmgr", "-n", "show", "cluster"], capture_output=True, timeout=30)
    return accounting.returncode == 0


@pytest.fixture(scope="session")
def slurm_cluster() -> dict[str, str]:
    """Partition and account of a running local Slurm cluster; skips when none answers."""
    if not _cluster_answers():
        if os.environ.get("NEMOLITE_REQUIRE_SLURM") == "1":  # .ci/run started one: its absence is a failure
            pytest.fail("NEMOLITE_REQUIRE_SLURM=1 but no Slurm cluster answers (sinfo/sacctmgr)")
        pytest.skip(
            "no Slurm cluster answers (sinfo/sacctmgr); start one with `sudo bash .ci/install_slurm.sh` "
            "(.ci/run does in CI) - the tests never install or start services themselves"
        )
    return {"partition": PARTITION, "account": ACCOUNT}


@pytest.fixture()
def slurm_env(slurm_cluster, tmp_path) -> dict[str, str]:
    """Environment for `nemo ...` subprocesses: own profile and NEMORUN_HOME, this venv first on PATH.

    The job inherits it (sbatch's --export=ALL), so torchrun and nemolite resolve to this venv.
    """
    profile = tmp_path / "slurm.yaml"
    profile.write_text(
        f"account: {slurm_cluster['account']}\npartition: {slurm_cluster['partition']}\n"
        "time: '00:10:00'\npoll_estimated_start_time: false\n"
    )
    env = dict(os.environ)
    env.update(
        NEMOLITE_SLURM_PROFILE=str(profile),
        # Not ".../nemo_run": see _slurm_checks.check_job_dir.
        NEMORUN_HOME=str(tmp_path / "nrhome"),
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        # Two cores run the job and the test: keep torch to one thread.
        OMP_NUM_THREADS="1",
    )
    return env
