"""Megatron's checkpoint-writer queue, served by a process that dies with the trainer.

Works around megatron/core/dist_checkpointing/strategies/filesystem_async.py
`_get_write_results_queue`: it starts a multiprocessing Manager ("spawn") on the first save and
never stops it. When the trainer is SIGKILLed (OOM killer, a crashed peer under torchrun, a node
going away) that Manager and its resource tracker stay behind, about 280 MB each; every in-job
restart leaks another. We create the queue first, through a Manager whose server asks Linux to kill
it when its parent dies (`prctl(PR_SET_PDEATHSIG)`), and hand it to megatron's module global.
Delete this module when megatron stops the Manager itself.

The Manager's server is started without re-running the user's script: "spawn" normally imports
`__main__` again in the child (multiprocessing/spawn.py `get_preparation_data`), so a script that
trains at top level, as NeMo 2.0's `run.run(recipe, direct=True)` examples do, would start a
second training inside the writer process, which dies with `EOFError`. The server needs nothing
from `__main__`.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import types
from collections.abc import Iterator
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
    with main_module_hidden():
        manager.start(initializer=die_with_parent)
    filesystem_async._results_queue = manager.Queue()
    _manager = manager
    return True


@contextlib.contextmanager
def main_module_hidden() -> Iterator[None]:
    """While a "spawn" child starts, its parent's `__main__` is an empty module (nothing to re-run).

    The preparation data a spawned child receives is computed in `Process.start()`, synchronously:
    restoring `__main__` right after it is safe.
    """
    real = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = real
