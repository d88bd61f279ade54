"""Heavy: megatron dist-checkpointing (`torch_dist`) of the model chunks and the optimizer.

Layout of a checkpoint directory (what Lightning calls the checkpoint "file"):
  - sharded tensors: the model (`state_dict.model0..N`, one per virtual-pipeline chunk, keyed by
    global layer so any TP/PP/VP layout can load them) and the optimizer state;
  - common part (rank 0; `common.pt` with megatron-core 0.16, inside the torch_dist shards with
    0.19, which still reads 0.16's `common.pt`): everything else Lightning puts in the checkpoint
    (global_step, loops, callbacks, LR scheduler, datamodule state, RNG states).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from megatron.core import dist_checkpointing

# The distributed optimizer saves its flat buffers per DP rank; this format reshards across DP
# sizes without gathering (see megatron/core/optimizer/distrib_optimizer.py sharded_state_dict).
OPTIMIZER_METADATA = {"distrib_optim_sharding_type": "dp_reshardable"}


def unwrap(chunk: Any) -> Any:
    """The megatron GPTModel inside DDP / Float16Module wrappers."""
    while hasattr(chunk, "module") and not hasattr(chunk, "decoder"):
        chunk = chunk.module
    return chunk


def model_sharded_state_dict(chunks: list[torch.nn.Module], prefix: str = "") -> dict[str, Any]:
    """One sharded state dict per chunk; tensor keys are global, so the grouping does not matter."""
    return {f"model{i}": unwrap(c).sharded_state_dict(prefix=prefix) for i, c in enumerate(chunks)}


def _init_empty_optimizer_state(mcore: Any) -> None:
    """Gives a freshly built distributed optimizer Adam states to load into.

    Works around megatron/core/optimizer/distrib_optimizer.py `DistributedOptimizer.state_dict`,
    which (without Apex or TransformerEngine, e.g. on CPU) asserts that every Adam state holds one
    common "step", and is called by `sharded_state_dict(is_loading=True)` before any step has run.
    """
    from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer

    for opt in getattr(mcore, "chained_optimizers", [mcore]):
        if not isinstance(opt, DistributedOptimizer) or opt.init_state_fn is None:
            continue
        inner = opt.optimizer
        opt.init_state_fn(inner, opt.config)
        for group in inner.param_groups:
            for param in group["params"]:
                inner.state[param].setdefault("step", torch.tensor(0.0))


def sync_adam_steps(mcore: Any) -> None:
    """Sets every Adam state's "step" to its param group's loaded "step" (distributed optimizer).

    Works around megatron/core/optimizer/distrib_optimizer.py: without Apex/TE the iteration is
    saved in the param groups, but `load_parameter_state_from_dp_reshardable` then copies the
    loading template's per-param "step" back over it, which would restart Adam's bias correction.
    """
    from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer

    for opt in getattr(mcore, "chained_optimizers", [mcore]):
        if not isinstance(opt, DistributedOptimizer):
            continue
        for group in opt.optimizer.param_groups:
            if group.get("step") is None:
                continue
            for param in group["params"]:
                state = opt.optimizer.state[param]
                if "step" in state:
                    state["step"] = torch.tensor(float(group["step"]))


def optimizer_sharded_state_dict(
    optimizer: Any, chunks: list[torch.nn.Module], *, is_loading: bool = False
) -> dict[str, Any]:
    """megatron's sharded optimizer state, keyed by the model's sharded tensors."""
    model_ssd: dict[str, Any] = {}
    for i, chunk in enumerate(chunks):
        model_ssd.update({f"{i}.{k}": v for k, v in unwrap(chunk).sharded_state_dict().items()})
    mcore = getattr(optimizer, "mcore_optimizer", optimizer)
    if is_loading:
        _init_empty_optimizer_state(mcore)
    return mcore.sharded_state_dict(model_ssd, is_loading=is_loading, metadata=OPTIMIZER_METADATA)


RNG_KEY = "megatron_rng_state"
RNG_LAYOUT_KEY = "megatron_rng_layout"


def rng_layout() -> dict[str, int]:
    """The parallel layout the per-rank RNG states belong to (they restore only into the same)."""
    from megatron.core import parallel_state as ps

    return {
        "world": torch.distributed.get_world_size(),
        "tp": ps.get_tensor_model_parallel_world_size(),
        "pp": ps.get_pipeline_model_parallel_world_size(),
        "cp": ps.get_context_parallel_world_size(),
        "ep": ps.get_expert_model_parallel_world_size(),
    }


def rng_sharded_object(state: Any) -> Any:
    """This rank's RNG states as a ShardedObject: every rank keeps its own (dropout differs per TP rank)."""
    from megatron.core.dist_checkpointing.mapping import ShardedObject

    world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
    return ShardedObject(RNG_KEY, state, (world,), (rank,), replica_id=0)


def capture_rng_state() -> dict[str, Any]:
    """CPU, CUDA and megatron tracker (TP/EP/DP dropout streams) RNG states of this rank."""
    import random

    from megatron.core.tensor_parallel import get_cuda_rng_tracker

    return {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
        "tracker": get_cuda_rng_tracker().get_states(),
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Puts back what `capture_rng_state` took, so dropout continues exactly after a resume."""
    import random

    from megatron.core.tensor_parallel import get_cuda_rng_tracker

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    get_cuda_rng_tracker().set_states(state["tracker"])


def saved_rng_layout(path: str | Path) -> dict[str, int] | None:
    """The RNG layout recorded in a checkpoint's common part (None when it has none)."""
    common = dist_checkpointing.load_common_state_dict(str(path))
    return common.get(RNG_LAYOUT_KEY) if isinstance(common, dict) else None


def save(checkpoint: dict[str, Any], path: str | Path, *, async_save: bool = False) -> Any:
    """Writes `checkpoint` (sharded and common parts) to the directory `path`.

    Returns megatron's AsyncRequest when `async_save`, else None.
    """
    path = Path(path)
    if torch.distributed.get_rank() == 0:
        path.mkdir(parents=True, exist_ok=True)
    torch.distributed.barrier()
    kwargs: dict[str, Any] = {}
    if "async_strategy" in inspect.signature(dist_checkpointing.save).parameters:
        # megatron-core 0.19 defaults to "nvrx" (nvidia-resiliency-ext, not a dependency);
        # "mcore" is the writer 0.16 always used, the one nemolite's AsyncCallsQueue drives.
        kwargs["async_strategy"] = "mcore"
    return dist_checkpointing.save(checkpoint, str(path), async_sharded_save=async_save, **kwargs)


def load(template: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """Loads the sharded tensors named by `template` and the common part from `path`."""
    return dist_checkpointing.load(template, str(path))


def load_model_state(chunks: list[torch.nn.Module], state: dict[str, Any], *, strict: bool = True) -> None:
    """Copies loaded model tensors (from `load`) into the chunks."""
    for i, chunk in enumerate(chunks):
        unwrap(chunk).load_state_dict(state[f"model{i}"], strict=strict)


def load_model_weights(chunks: list[torch.nn.Module], path: str | Path) -> None:
    """Loads only the model weights of a checkpoint (any layout) into the chunks."""
    template = {"state_dict": model_sharded_state_dict(chunks)}
    loaded = load(template, path)
    load_model_state(chunks, loaded["state_dict"])
