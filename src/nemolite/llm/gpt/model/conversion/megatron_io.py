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
import socket
from collections.abc import Callable, Iterator
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


def sharded_layout(cfg: GPTConfig, vocab_size: int, dtype: torch.dtype) -> dict[str, Any]:
    """The one-process model's sharded state dict, the model built on the meta device.

    Each entry names a tensor's checkpoint key, shape, dtype and offsets (fused SwiGLU weights as
    a factory of their two halves) and holds no data: conversion puts real tensors in its place.
    """
    from nemolite.lightning.megatron_checkpoint import model_sharded_state_dict

    with torch.device("meta"):
        model = build_model(cfg, vocab_size, dtype)
    return model_sharded_state_dict([model])["model0"]


#: Lazily read tensors of a save, by (checkpoint key, global offset) of their shard.
Loaders = dict[tuple[str, tuple[int, ...]], Callable[[], torch.Tensor]]

#: Writer threads (and files) of a conversion's save, as megatron's torch_dist writer uses.
WRITE_THREADS = 2


def in_process_strategy(loaders: Loaders | None = None, threads: int = WRITE_THREADS) -> Any:
    """megatron's `torch_dist` save strategy, written in this process by torch's FileSystemWriter.

    The files are the ones megatron's own writer makes (the same planner, `__0_<i>.distcp` shards
    and `.metadata`), without its forked writer process, its per-file fsync or its results queue
    (megatron/core/dist_checkpointing/strategies/filesystem_async.py): a conversion publishes its
    output by renaming a temporary directory, so an interrupted one leaves no checkpoint behind.
    A tensor whose shard has a loader in `loaders` is read only when its turn to be written comes
    (its sharded tensor may hold a meta tensor): the save never holds the whole model in memory.
    Records are written without their zip CRC32, which neither torch.load nor megatron checks.
    """
    import threading

    import torch.distributed.checkpoint as dcp
    from megatron.core.dist_checkpointing.strategies.torch import (
        MCoreSavePlanner,
        TorchDistSaveShardedStrategy,
        _replace_state_dict_keys_with_sharded_keys,
        mcore_to_pyt_state_dict,
    )
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.planner import WriteItemType
    from torch.utils.serialization import config as serialization_config

    table = loaders or {}
    errors: list[BaseException] = []

    owner = threading.get_ident()

    class LazyPlanner(MCoreSavePlanner):  # type: ignore[misc]
        def resolve_data(self, write_item: Any) -> Any:
            if threading.get_ident() != owner:
                # torch's writer threads: the config patch in `save` below is thread-local
                # (torch/utils/_config_module.py), and they die with the save.
                serialization_config.save.compute_crc32 = False
            try:
                return self._resolve(write_item)
            except BaseException as err:  # raised in a writer thread: kept for the main thread
                errors.append(err)
                raise

        def _resolve(self, write_item: Any) -> Any:
            index = write_item.index
            loader = table.get((index.fqn, tuple(index.offset or ())))
            if write_item.type == WriteItemType.BYTE_IO or loader is None:
                return super().resolve_data(write_item)
            chunk = write_item.tensor_data
            tensor = loader().to(chunk.properties.dtype)
            if tensor.numel() != chunk.chunk.sizes.numel():
                raise ValueError(f"{index.fqn} at {tuple(index.offset)}: loaded {tuple(tensor.shape)}, "
                                 f"the checkpoint needs {tuple(chunk.chunk.sizes)}")
            return tensor.contiguous().view(chunk.chunk.sizes)

    class CheckedWriter(dcp.FileSystemWriter):  # type: ignore[misc]
        """Refuses to write `.metadata` unless every planned item was written.

        torch's writer threads die on an error without telling the caller (the results of their
        files are just missing); without this check the checkpoint would be published incomplete.
        """

        planned = 0

        def prepare_local_plan(self, plan: Any) -> Any:
            self.planned = len(plan.items)
            return super().prepare_local_plan(plan)

        def finish(self, metadata: Any, results: Any) -> None:
            if errors:
                raise errors[0]
            written = sum(len(r) for r in results)
            if written != self.planned:
                raise RuntimeError(f"checkpoint write failed: {written} of {self.planned} items written")
            super().finish(metadata, results)

    class InProcessStrategy(TorchDistSaveShardedStrategy):  # type: ignore[misc]
        def save(self, sharded_state_dict: Any, checkpoint_dir: Any) -> None:
            state, _, _ = _replace_state_dict_keys_with_sharded_keys(sharded_state_dict, self.keep_only_main_replica)
            writer = CheckedWriter(str(checkpoint_dir), thread_count=threads, sync_files=False)
            planner = LazyPlanner(dedup_replicated_tensors=not self.keep_only_main_replica, flatten_state_dict=False)
            # No zip CRC32 of each tensor's record (a third of torch.save's time): no reader checks it.
            try:
                with serialization_config.patch("save.compute_crc32", False):  # type: ignore[attr-defined]
                    dcp.save(mcore_to_pyt_state_dict(state, False), storage_writer=writer, planner=planner)
            except CheckpointException as err:  # a BaseException: the reader's own error instead
                if errors:
                    raise errors[0] from None
                raise RuntimeError(f"checkpoint write failed: {str(err).strip().splitlines()[-1]}") from None

    return InProcessStrategy("torch_dist", 1, thread_count=threads)


def save_checkpoint_state(state: dict[str, Any], path: Path, meta: dict[str, Any],
                          loaders: Loaders | None = None) -> None:
    """Writes a model's sharded state dict (`{"model0": ...}`) and the checkpoint marker.

    The same `torch_dist` checkpoint a training run saves (loads into any layout), written in this
    process (`in_process_strategy`, with `loaders` for tensors read as they are written).
    """
    import json

    from megatron.core import dist_checkpointing

    from nemolite.lightning.exp_ckpt_dir import MARKER

    path.mkdir(parents=True, exist_ok=True)
    dist_checkpointing.save({"state_dict": state}, str(path), sharded_strategy=in_process_strategy(loaders))
    with open(path / MARKER, "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)


def load_checkpoint(model: Any, path: Path) -> None:
    """Loads the weights of a checkpoint saved under any layout into the one-process `model`.

    LoRA adapters in the checkpoint are ignored here (see `nemolite.llm.peft.merge`).
    """
    from nemolite.lightning import megatron_checkpoint as ckpt

    ckpt.load_model_weights([model], path)
