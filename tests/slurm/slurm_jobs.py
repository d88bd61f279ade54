"""Small tasks the Slurm tests submit through nemo-run (imported by name inside the job)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path


def report_then_wait(marker: str, seconds: int = 600) -> None:
    """Writes the job id and a hash of WANDB_API_KEY to `marker`, then waits to be cancelled."""
    secret = os.environ.get("WANDB_API_KEY", "")
    digest = hashlib.sha256(secret.encode()).hexdigest() if secret else "unset"
    Path(marker).write_text(f"{os.environ.get('SLURM_JOB_ID')} {digest}\n")
    time.sleep(seconds)
