"""`nemo experiment cancel ID N` for a local job started by another process.

Works around nemo_run/run/torchx_backend/schedulers/local.py `PersistentLocalScheduler`: its job
registry (`$NEMORUN_HOME/.local_jobs.json`) keeps a job's state and log directory but not its
processes, and torchx's `LocalScheduler._cancel_existing` looks the job up in the in-memory table
of the process that launched it, so cancelling from another shell raises `KeyError` and the job
keeps running. Here a job that is not in that table is found by its processes' open log files
(torchx redirects each replica's stdout/stderr into `<log_dir>/<role>/<replica>/`), which are sent
SIGTERM (torchrun passes it on to its workers), and the registry records it as CANCELLED.
Delete this module when nemo-run persists process ids.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

_INSTALLED = False


def job_pids(log_dir: str, proc: Path = Path("/proc")) -> list[int]:
    """Processes (Linux) whose stdout or stderr is a file under `log_dir`."""
    root = os.path.realpath(log_dir) + os.sep
    found = []
    for entry in proc.iterdir() if proc.is_dir() else []:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        for fd in ("1", "2"):
            try:
                target = os.readlink(entry / "fd" / fd)
            except OSError:
                continue
            if target.startswith(root):
                found.append(int(entry.name))
                break
    return sorted(found)


def install() -> None:
    """Patches nemo-run's local scheduler once (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from nemo_run.run.torchx_backend.schedulers import local as nemo_local
    from torchx.specs import AppState

    scheduler = nemo_local.PersistentLocalScheduler
    original = scheduler._cancel_existing

    def _cancel_existing(self: object, app_id: str) -> None:
        if app_id in getattr(self, "_apps", {}):
            original(self, app_id)
            return
        saved = nemo_local._get_job_dirs().get(app_id)
        if saved is None:
            return
        for pid in job_pids(saved.log_dir):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        saved.set_state(AppState.CANCELLED)
        nemo_local._save_job_dir({app_id: saved})

    scheduler._cancel_existing = _cancel_existing  # type: ignore[method-assign]
    _INSTALLED = True
