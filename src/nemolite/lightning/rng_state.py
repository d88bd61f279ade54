"""Every rank's RNG states in a Lightning checkpoint, for exact resume of models trained under plain DDP.

Lightning saves no RNG state (a resumed run draws dropout, SpecAugment masks and dither from the
seed again). `gather()` runs on every rank while a checkpoint is assembled (Lightning calls
`on_save_checkpoint` on all ranks; rank 0 writes), so the file holds each rank's states;
`mine()` picks this rank's back out when the world size is the one that saved them. The
megatron strategy keeps its own (with megatron's CUDA RNG tracker): `megatron_checkpoint.py`;
`nl.ModelCheckpoint`'s state restores one process's only (`callbacks/checkpoint.py`).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

KEY = "nemolite_rng_states"


def capture() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states of this process."""
    return {
        "python": random.getstate(),
        # As plain values: Lightning loads checkpoints with torch.load(weights_only=True), which
        # refuses NumPy arrays.
        "numpy": _plain(tuple(np.random.get_state())),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore(state: dict[str, Any]) -> None:
    """Puts back what `capture` took."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(state: tuple[Any, ...]) -> tuple[Any, ...]:
    name, keys, pos, has_gauss, gauss = state
    return (str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(gauss))


def _world() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather() -> list[dict[str, Any]]:
    """Every rank's states, in rank order (a collective: call it on all ranks)."""
    rank, world = _world()
    if world == 1:
        return [capture()]
    states: list[Any] = [None] * world
    torch.distributed.all_gather_object(states, capture())
    return states


def mine(saved: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """This rank's states from `gather()`'s list; None when none were saved or the world size changed
    (then the resumed run continues with freshly seeded generators: same data, other random draws)."""
    rank, world = _world()
    if not saved or len(saved) != world:
        return None
    return saved[rank]
