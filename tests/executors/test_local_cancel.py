"""`nemo experiment cancel ID 0` from another process stops a running local job (torchx KeyError)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

LAUNCH = """
import nemo_run as run
from nemolite.cli.launch import submit
experiment, states = submit(run.Script(inline="sleep 600"), run.LocalExecutor(), "sleepy",
                            detach=False, tail_logs=False)
print("STATES", states, flush=True)
"""

# `nemo experiment cancel` is nemo-run's CLI; deserializing the job's nemolite task
# (`nemolite.llm.api.pretrain`) then imports the `nemolite.llm` package with nemo-run loaded.
CANCEL = """
import sys
from nemo_run.__main__ import app
import nemolite.llm
sys.argv = ["nemo", "experiment", "cancel", sys.argv[1], "0"]
app()
"""


@pytest.mark.slow
def test_cancel_from_another_process_stops_a_running_local_job(tmp_path: Path) -> None:
    from nemolite.executors._local_cancel import job_pids

    env = dict(os.environ, HOME=str(tmp_path), NEMORUN_HOME=str(tmp_path / "nr"), NO_COLOR="1")
    log_dirs: list[Path] = []
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCH], cwd=tmp_path, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        experiments = tmp_path / "nr" / "experiments" / "sleepy"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not log_dirs:
            time.sleep(2)
            log_dirs = [p for p in experiments.glob("sleepy_*/sleepy/nemo_run/*") if p.is_dir()]
            log_dirs = [p for p in log_dirs if job_pids(str(p))]
        assert log_dirs, "the job did not start"
        experiment_id = log_dirs[0].parents[2].name
        done = subprocess.run([sys.executable, "-c", CANCEL, experiment_id], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=240)
        assert done.returncode == 0 and "KeyError" not in done.stdout + done.stderr, done.stdout + done.stderr
        out, _ = launcher.communicate(timeout=120)
        assert "STATES ['SUCCEEDED']" not in out, out
        assert not job_pids(str(log_dirs[0])), "the job's processes are still running"
    finally:
        if launcher.poll() is None:
            launcher.kill()
        for log_dir in log_dirs:  # a failed cancel must not leave `sleep 600` behind
            for pid in job_pids(str(log_dir)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
