"""Heavy: a megatron-core GPT model in this one process, and its nemolite checkpoint on disk.

Conversion runs outside any training job: it starts a one-process gloo world (unless one is
running), builds the model with megatron-core's local layer spec and no random initialisation,
and reads or writes the same `torch_dist` checkpoint a training run writes
(`nemolite.lightning.megatron_checkpoint`), so what is imported loads into any TP/PP/EP layout and
what any layout saved can be exported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from nemolite.llm.gpt.model.base import GPTConfig


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def single_process_megatron() -> Iterator[None]:
    """megatron's parallel state with every size 1, in a one-process gloo world; torn down after."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    if not torch.cuda.is_available():
        from nemolite.backends import cpu

        cpu.apply()
    started = False
    if not dist.is_initialized():
        store = dist.TCPStore("127.0.0.1", _free_port(), 1, is_master=True)
        dist.init_process_group("gloo", store=store, rank=0, world_size=1)
        started = True
    elif dist.get_world_size() != 1:
        raise RuntimeError("checkpoint conversion runs in one process; call it outside torchrun")
    had_state = parallel_state.model_parallel_is_initialized()
    if not had_state:
        parallel_state.initialize_model_parallel()
    try:
        yield
    finally:
        if not had_state:
            parallel_state.destroy_model_parallel()
        if started:
            dist.destroy_process_group()


def build_model(cfg: GPTConfig, vocab_size: int, dtype: torch.dtype, *, initialize: bool = False) -> Any:
    """One megatron GPTModel (TP=PP=EP=1, local spec) with `dtype` weights, left uninitialised."""
    from megatron.core import tensor_parallel

    from nemolite.lightning.strategy import MegatronStrategy
    from nemolite.llm.gpt.model import megatron_config as mc

    local = dataclasses.replace(cfg, transformer_layer_spec="local")
    tf = mc.transformer_config(local, MegatronStrategy())
    tf.params_dtype = dtype
    tf.perform_initialization = initialize
    tf.use_cpu_initialization = True
    torch.manual_seed(cfg.seed)
    tensor_parallel.model_parallel_cuda_manual_seed(cfg.seed)
    padded = mc.padded_vocab_size(vocab_size, cfg.make_vocab_size_divisible_by, 1)
    (model,) = mc.build_chunks(local, tf, padded)
    return model


@contextlib.contextmanager
def _in_process_results_queue() -> Iterator[None]:
    """A thread queue for megatron's checkpoint-writer results, for this synchronous save.

    Works around megatron/core/dist_checkpointing/strategies/filesystem_async.py
    `_get_write_results_queue`, which starts a "spawn" multiprocessing Manager on the first save:
    that re-imports the caller's `__main__` (failing in scripts without a main guard) and outlives
    the conversion. A synchronous save puts and gets its results in this process, so a plain
    queue is enough; megatron's global is put back afterwards for a training run's async saves.
    """
    import queue

    from megatron.core.dist_checkpointing.strategies import filesystem_async

    if filesystem_async._results_queue is not None:
        yield
        return
    filesystem_async._results_queue = queue.Queue()
    try:
        yield
    finally:
        filesystem_async._results_queue = None


def sharded_layout(cfg: GPTConfig, vocab_size: int, dtype: torch.dtype) -> dict[str, Any]:
    """The one-process model's sharded state dict, the model built on the meta device.

    Each entry names a tensor's checkpoint key, shape, dtype and offsets (fused SwiGLU weights as
    a factory of their two halves) and holds no data: conversion puts real tensors in its place.
    """
    from nemolite.lightning.megatron_checkpoint import model_sharded_state_dict

    with torch.device("meta"):
        model = build_model(cfg, vocab_size, dtype)
    return model_sharded_state_dict([model])["model0"]


def save_checkpoint_state(state: dict[str, Any], path: Path, meta: dict[str, Any]) -> None:
    """Writes a model's sharded state dict (`{"model0": ...}`) and the checkpoint marker."""
    import json

    from nemolite.lightning import megatron_checkpoint as ckpt
    from nemolite.lightning.exp_ckpt_dir import MARKER

    path.mkdir(parents=True, exist_ok=True)
    with _in_process_results_queue():
        ckpt.save({"state_dict": state}, path)
    with open(path / MARKER, "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


def load_checkpoint(model: Any, path: Path) -> None:
    """Loads the weights of a checkpoint saved under any layout into the one-process `model`.

    LoRA adapters in the checkpoint are ignored here (see `nemolite.llm.peft.merge`).
    """
    from nemolite.lightning import megatron_checkpoint as ckpt

    ckpt.load_model_weights([model], path)
