"""Heavy: starts model parallelism for inference and rebuilds a checkpoint's model in it.

One process (a private gloo group, no launcher needed) or one rank of a torchrun launch with
WORLD_SIZE = tensor-parallel size. The checkpoint is `torch_dist` with global tensor keys, so a
model saved under any TP/PP layout loads into the layout generation runs in (resharding on load).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from nemolite.errors import ConfigError


def init_parallel(tensor_model_parallel_size: int = 1) -> None:
    """Process group and megatron's parallel state for TP=`tensor_model_parallel_size`, PP=1."""
    from megatron.core import parallel_state

    if not torch.cuda.is_available():
        from nemolite.backends import cpu

        cpu.apply()
    dist = torch.distributed
    if not dist.is_initialized():
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            if torch.cuda.is_available():
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        else:  # one process: a private in-memory store, no port to pick
            dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    world = dist.get_world_size()
    if world != tensor_model_parallel_size:
        raise ConfigError("trainer.strategy.tensor_model_parallel_size", tensor_model_parallel_size,
                          f"but {world} process(es) run generation",
                          f"start {tensor_model_parallel_size} process(es) (torchrun --nproc_per_node "
                          f"{tensor_model_parallel_size}) or set the size to {world}")
    if parallel_state.model_parallel_is_initialized():
        if parallel_state.get_tensor_model_parallel_world_size() == tensor_model_parallel_size:
            return
        parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel(tensor_model_parallel_size, 1)


def device() -> torch.device:
    """The device this rank computes on."""
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def saved_vocab_rows(path: Any) -> int | None:
    """Rows of the checkpoint's embedding table: the vocabulary as padded by the training layout."""
    from megatron.core import dist_checkpointing

    meta = dist_checkpointing.load_tensors_metadata(str(path))
    table = meta.get("embedding.word_embeddings.weight")
    return int(table.global_shape[0]) if table is not None else None


def build_model(config: Any, padded_vocab: int, tensor_model_parallel_size: int = 1) -> torch.nn.Module:
    """megatron-core's GPTModel for `config`, TP as given, PP=1, fp32, in eval mode.

    `padded_vocab` is the checkpoint's own table size (megatron pads by the *training* TP size, so
    recomputing it for another TP size could disagree); it must divide by the TP size.

    Sequence parallelism stays off: decoding feeds one token at a time, which cannot be split
    over the sequence (an inference choice that leaves the checkpoint's training layout alone).
    """
    from megatron.core import tensor_parallel

    from nemolite.lightning.strategy import MegatronStrategy
    from nemolite.llm.gpt.model import megatron_config as mc

    init_parallel(tensor_model_parallel_size)
    strategy = MegatronStrategy(tensor_model_parallel_size=tensor_model_parallel_size)
    tf_config = mc.transformer_config(config, strategy)
    torch.manual_seed(config.seed)
    tensor_parallel.model_parallel_cuda_manual_seed(config.seed)
    if padded_vocab % tensor_model_parallel_size:
        raise ConfigError("trainer.strategy.tensor_model_parallel_size", tensor_model_parallel_size,
                          f"does not divide the checkpoint's {padded_vocab} vocabulary rows",
                          "use a tensor-parallel size that divides it")
    chunk = mc.build_chunks(config, tf_config, padded_vocab)[0]
    return chunk.to(device()).eval()


def load_weights(model: torch.nn.Module, path: Any, peft: Any = None) -> None:
    """The checkpoint's weights into `model`; LoRA adapters (unmerged) are added first if the run had them."""
    from nemolite.lightning.megatron_checkpoint import load_model_weights

    if peft is not None:
        from nemolite.llm.peft.lora_transform import apply_lora

        apply_lora([model], peft, seed=0)
    load_model_weights([model], path)
