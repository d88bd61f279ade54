"""Megatron's checkpoint-writer queue, served by a process that dies with the trainer.

Works around megatron/core/dist_checkpointing/strategies/filesystem_async.py
`_get_write_results_queue`: it starts a multiprocessing Manager ("spawn") on the first save and
never stops it. When the trainer is SIGKILLed (OOM killer, a crashed peer under torchrun, a node
going away) that Manager and its resource tracker stay behind, about 280 MB each; every in-job
restart leaks another. We create the queue first, through a Manager whose server asks Linux to kill
it when its parent dies (`prctl(PR_SET_PDEATHSIG)`), and hand it to megatron's module global.
Delete this module when megatron stops the Manager itself.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_manager: Any = None  # kept alive for the life of the process


def die_with_parent() -> None:
    """Runs in the Manager's server process: SIGKILL it when the process that started it dies."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def install_writer_queue() -> bool:
    """Pre-creates megatron's results queue (Linux only); True when ours is in place."""
    global _manager
    if not sys.platform.startswith("linux"):
        return False
    try:
        from megatron.core.dist_checkpointing.strategies import filesystem_async
    except ImportError:
        return False
    if getattr(filesystem_async, "_results_queue", "missing") is not None:
        return _manager is not None  # already created (by us, or by megatron: leave it)
    import multiprocessing as mp
    from multiprocessing.managers import SyncManager

    manager = SyncManager(ctx=mp.get_context("spawn"))
    manager.start(initializer=die_with_parent)
    filesystem_async._results_queue = manager.Queue()
    _manager = manager
    return True
