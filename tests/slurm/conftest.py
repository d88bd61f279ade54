"""A real one-node Slurm cluster on this machine for the `slurm` tests.

The session fixture uses a cluster that already answers `sinfo`, else starts one with
`.ci/install_slurm.sh` (apt-get install of slurm-wlm, slurmdbd, munge, mariadb; needs root). It
skips only where installing is impossible: not root, or no apt-get.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / ".ci" / "install_slurm.sh"
PARTITION = os.environ.get("NEMOLITE_SLURM_PARTITION", "debug")
ACCOUNT = os.environ.get("NEMOLITE_SLURM_ACCOUNT", "nemolite")


def _cluster_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    probe = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0 or not any(s in probe.stdout for s in ("idle", "mixed", "allocated")):
        return False
    # Accounting too: with slurmdbd's database gone, sacct (job status) and account checks fail,
    # so the install script (idempotent) must restart what is down.
    accounting = subprocess.run(["sacctmgr", "-n", "show", "cluster"], capture_output=True, timeout=30)
    return accounting.returncode == 0


@pytest.fixture(scope="session")
def slurm_cluster() -> dict[str, str]:
    """Partition and account of a running local Slurm cluster (started here if need be)."""
    if not _cluster_answers():
        if os.geteuid() != 0:
            pytest.skip("no running Slurm cluster, and installing one needs root")
        if shutil.which("apt-get") is None:
            pytest.skip("no running Slurm cluster, and no apt-get to install slurm-wlm with")
        done = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"{INSTALL} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
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
