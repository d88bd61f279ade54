"""Fixtures for in-process megatron-core checks on CPU."""

from __future__ import annotations

import os
import socket

import pytest
import torch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def parallel():
    """A 1-process gloo world with megatron's model-parallel groups and RNG tracker (torn down afterwards)."""
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    from nemolite.backends import cpu

    cpu.apply()
    started = not torch.distributed.is_initialized()
    if started:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
        torch.distributed.init_process_group("gloo", rank=0, world_size=1)
    parallel_state.initialize_model_parallel()
    model_parallel_cuda_manual_seed(1234)
    yield
    parallel_state.destroy_model_parallel()
    if started:
        torch.distributed.destroy_process_group()
