"""Which directory a run writes to, agreed on by every rank.

`<log_dir>/<name>/<version>/`, or exactly `explicit_log_dir`. A new run gets a datetime version;
a resumed run (`resume_if_exists`) reuses the newest version that holds a complete checkpoint (else
the newest version), as NeMo reuses its run directory when resuming.

Ranks must agree although each computes its own clock: global rank 0's choice wins, shared through
`torch.distributed` when it is up, else through torchrun's agent store, else through the
`NEMOLITE_RUN_VERSION` environment variable a launcher may set for all ranks.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from nemolite.lightning.exp_ckpt_dir import CKPT_SUBDIR, latest_complete
from nemolite.lightning.logger import VERSION_ENV

if TYPE_CHECKING:
    from nemolite.lightning.logger import NeMoLogger

DEFAULT_LOG_DIR = "nemo_experiments"
_AGREE_TIMEOUT_S = 300.0


def global_rank() -> int:
    """This process's global rank from the launcher's environment (0 when not distributed)."""
    for var in ("RANK", "SLURM_PROCID", "PMI_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def local_rank() -> int:
    """This process's rank on its node (0 when not distributed)."""
    for var in ("LOCAL_RANK", "SLURM_LOCALID"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def world_size() -> int:
    """Number of ranks in the job (1 when not distributed)."""
    for var in ("WORLD_SIZE", "SLURM_NTASKS"):
        if var in os.environ:
            return int(os.environ[var])
    return 1


def resolve_run_dir(log: NeMoLogger, resume_if_exists: bool = False) -> Path:
    """The run directory for `log`, as this rank would choose it (see `agree_on_run_dir`)."""
    if log.explicit_log_dir is not None:
        return Path(log.explicit_log_dir).absolute()
    root = Path(log.log_dir or Path.cwd() / DEFAULT_LOG_DIR).absolute() / log.name
    version = log.version or os.environ.get(VERSION_ENV)
    if version is None and resume_if_exists:
        version = _latest_version(root)
    if version is None and log.use_datetime_version:
        version = time.strftime("%Y-%m-%d_%H-%M-%S")
    return root / version if version else root


def _latest_version(root: Path) -> str | None:
    """The newest version under `root` holding a complete checkpoint, else the newest at all."""
    if not root.is_dir():
        return None
    versions = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                      key=lambda d: (d.stat().st_mtime, d.name))
    with_ckpt = [d for d in versions if latest_complete(d / CKPT_SUBDIR) is not None]
    candidates = with_ckpt or versions
    return candidates[-1].name if candidates else None


def agree_on_run_dir(candidate: Path) -> Path:
    """Global rank 0's `candidate`, on every rank."""
    if world_size() <= 1:
        return candidate
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a dependency
        return candidate
    if dist.is_available() and dist.is_initialized():
        box = [str(candidate)]
        dist.broadcast_object_list(box, src=0)
        return Path(box[0])
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and "MASTER_PORT" in os.environ:
        return Path(_agree_via_agent_store(str(candidate)))
    return candidate


def _agree_via_agent_store(value: str) -> str:
    """Shares rank 0's `value` through the key-value store torchrun's agent hosts for its workers.

    torchrun (torch/distributed/elastic/agent/server/local_elastic_agent.py) serves a TCPStore on
    MASTER_ADDR:MASTER_PORT and tells workers so with TORCHELASTIC_USE_AGENT_STORE=True; we can use it
    before the process group exists. The key carries the restart count: each attempt agrees anew.
    """
    from datetime import timedelta

    import torch.distributed as dist

    store = dist.TCPStore(os.environ.get("MASTER_ADDR", "127.0.0.1"), int(os.environ["MASTER_PORT"]),
                          is_master=False, timeout=timedelta(seconds=_AGREE_TIMEOUT_S))
    key = f"nemolite/run_dir/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    if global_rank() == 0:
        store.set(key, value)
        return value
    return store.get(key).decode()
