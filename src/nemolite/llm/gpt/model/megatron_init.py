"""Heavy: initial weights that depend on the seed only, not on the parallel layout.

megatron-core draws each rank's weights from RNG streams that depend on the layout: on GPU from a
per-TP-rank CUDA generator (tensor_parallel/random.py `model_parallel_cuda_manual_seed`), and with
`use_cpu_initialization` from one CPU stream consumed in construction order, which changes with
the pipeline stage's layers and with the TP-dependent padded vocabulary. The same recipe thus
starts from different weights at TP=2 or PP=2 than in one process.

`reinitialize(chunks, ...)` redraws every random weight (every parameter of 2+ dimensions: linear,
embedding, router) from a generator seeded by (seed, the parameter's *global* name), with the init
function megatron would have used, as the whole (unsharded) tensor, and keeps this rank's shard:
layer indices are global (PP/VP), expert indices are global (EP), TP shards are cut the way megatron
cuts them (fused gate/up of gated MLPs per half), and the rows of the padded vocabulary beyond the
tokenizer's are zero (their logits are masked). Norm weights and biases are constants already.
What it costs: one full tensor at a time on each rank, drawn on the parameter's device (on GPU,
the largest is the embedding: vocab x hidden x 4 bytes, e.g. 4 GiB for Llama 3 70B); turn it off
with `model.config.layout_independent_init=False` to keep megatron's own initialisation.
Grouped-GEMM experts (`moe_grouped_gemm`) keep megatron's initialisation.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

import torch
from megatron.core import parallel_state

_LAYER = re.compile(r"(^|\.)decoder\.layers\.(\d+)\.")
_EXPERT = re.compile(r"\.local_experts\.(\d+)\.")
_VOCAB = ("embedding.word_embeddings.weight", "output_layer.weight")


def reinitialize(chunks: list[torch.nn.Module], tf_config: Any, *, seed: int, vocab_size: int,
                 tied: bool) -> None:
    """Redraws each chunk's random weights from (seed, global name); see the module docstring.

    Args:
        chunks: this rank's megatron GPTModel chunks (before DDP / Float16Module wrapping).
        tf_config: their TransformerConfig (the init methods).
        seed: the model's seed.
        vocab_size: the tokenizer's vocabulary (rows beyond it are padding, initialised to 0).
        tied: output layer shares the embedding (then both draw the embedding's values).
    """
    for chunk in chunks:
        offsets = {i: layer.layer_number - 1 for i, layer in enumerate(getattr(chunk.decoder, "layers", []))}
        for name, param in chunk.named_parameters():
            if param.dim() < 2 or "grouped" in type(_owner(chunk, name)).__name__.lower():
                continue
            key = _global_name(name, offsets, tf_config)
            if tied and key == "output_layer.weight":
                key = "embedding.word_embeddings.weight"
            with torch.no_grad():
                param.copy_(_shard(key, param, tf_config, seed=seed, vocab_size=vocab_size))


def _owner(chunk: torch.nn.Module, name: str) -> torch.nn.Module:
    return chunk.get_submodule(name.rpartition(".")[0]) if "." in name else chunk


def _global_name(name: str, offsets: dict[int, int], config: Any) -> str:
    """The parameter's name in a 1-process, 1-chunk model (global layer and expert indices)."""
    name = _LAYER.sub(lambda m: f"{m.group(1)}decoder.layers.{offsets[int(m.group(2))]}.", name)
    match = _EXPERT.search(name)
    ep = parallel_state.get_expert_model_parallel_world_size()
    if match and ep > 1:
        index = parallel_state.get_expert_model_parallel_rank() * (config.num_moe_experts // ep) + int(match.group(1))
        name = name[: match.start()] + f".local_experts.{index}." + name[match.end():]
    return name


def _init_method(key: str, config: Any) -> Any:
    if key.startswith("embedding."):
        return config.embedding_init_method
    if key.endswith(("linear_proj.weight", "linear_fc2.weight")):
        return config.output_layer_init_method
    return config.init_method


def _tp(key: str) -> tuple[int, int]:
    if ".experts." in key:
        return (parallel_state.get_expert_tensor_parallel_world_size(),
                parallel_state.get_expert_tensor_parallel_rank())
    return parallel_state.get_tensor_model_parallel_world_size(), parallel_state.get_tensor_model_parallel_rank()


def _shard(key: str, param: torch.Tensor, config: Any, *, seed: int, vocab_size: int) -> torch.Tensor:
    parallel = bool(getattr(param, "tensor_model_parallel", False))
    dim = int(getattr(param, "partition_dim", 0)) if parallel else 0
    world, rank = _tp(key) if parallel else (1, 0)
    shape = list(param.shape)
    shape[dim] *= world
    rows = vocab_size if key in _VOCAB else shape[dim]
    drawn = _draw(key, [rows if i == dim else n for i, n in enumerate(shape)], param.device, config, seed)
    if rows < shape[dim]:  # padded vocabulary rows: zeros (their logits are masked out)
        pad = list(shape)
        pad[dim] = shape[dim] - rows
        drawn = torch.cat([drawn, drawn.new_zeros(pad)], dim=dim)
    if world == 1:
        return drawn
    if key.endswith("linear_fc1.weight") and config.gated_linear_unit:
        # megatron's gated fc1 holds [gate_r; up_r] on rank r of the whole [gate; up].
        gate, up = drawn.chunk(2, dim=dim)
        return torch.cat([gate.chunk(world, dim=dim)[rank], up.chunk(world, dim=dim)[rank]], dim=dim)
    return drawn.chunk(world, dim=dim)[rank]


def _draw(key: str, shape: list[int], device: torch.device, config: Any, seed: int) -> torch.Tensor:
    """The whole tensor, drawn by megatron's init function from a stream seeded by (seed, key)."""
    full = torch.empty(shape, dtype=torch.float32, device=device)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed((seed * 1_000_003 + zlib.crc32(key.encode())) % 2**63)
        _init_method(key, config)(full)
    return full
