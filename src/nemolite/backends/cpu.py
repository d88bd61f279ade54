"""The CPU backend: every patch megatron-core needs to train without CUDA, in one place.

megatron-core (0.16.x and 0.19.x, see `nemolite.backends.megatron_version`) assumes a GPU in a few ways, none of which
matter for the arithmetic: it allocates scratch tensors with `device="cuda"` or
`torch.cuda.current_device()`, creates CUDA streams, keeps its model-parallel RNG states in the CUDA
generator, and checks parameter types against `torch.cuda.*Tensor` names. `apply()` patches exactly
those places, only when CUDA is absent, so the same megatron code paths (TP/PP/DP/CP/EP over gloo)
run on a laptop. Each patch names the upstream code it works around; `tests/backends/test_cpu.py`
fails when upstream drops an assumption, so the patch can be deleted that day. See
docs/cpu-backend.md.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch

# Modules whose *module-global* `torch` is replaced by `_CpuTorch`, which maps the device "cuda"
# (and `torch.cuda.current_device()`) to the CPU and turns CUDA streams/syncs into no-ops.
# Value: what upstream does there that needs CUDA. Paths are under megatron/core/.
CUDA_DEVICE_MODULES: dict[str, str] = {
    "utils": "GlobalMemoryBuffer and local_multi_tensor_l2_norm allocate on torch.cuda.current_device()/'cuda'",
    "tensor_parallel.layers": "weights and all-gather buffers on torch.cuda.current_device()",
    "tensor_parallel.mappings": "gather/scatter buffers on torch.cuda.current_device()",
    "tensor_parallel.utils": "split/gather buffers on torch.cuda.current_device()",
    "distributed.distributed_data_parallel": "torch.cuda.Stream for overlapped grad reduction",
    "distributed.param_and_grad_buffer": "grad/param buffers on torch.cuda.current_device(), CUDA streams",
    "optimizer.optimizer": "found_inf/_scale tensors with device='cuda'",
    "optimizer.distrib_optimizer": "shard buffers on torch.cuda.current_device()",
    "optimizer.clip_grads": "norm and overflow buffers with device='cuda'",
    "optimizer.grad_scaler": "loss-scale tensors with device='cuda'",
    "pipeline_parallel.schedules": "total_num_tokens with device='cuda'",
    "pipeline_parallel.p2p_communication": "receive buffers on torch.cuda.current_device(), torch.cuda.synchronize()",
    "models.common.embeddings.rotary_pos_embedding": "inv_freq on torch.cuda.current_device()",
    "models.gpt.gpt_model": "MTP/loss buffers on torch.cuda.current_device()",
    "transformer.module": "Float16Module buffers on torch.cuda.current_device()",
    "transformer.attention": "KV/rotary buffers on torch.cuda.current_device()",
    "transformer.dot_product_attention": "attention-mask buffers on torch.cuda.current_device()",
    "transformer.utils": "causal masks with device='cuda'",
    "transformer.transformer_layer": "buffers on torch.cuda.current_device()",
    "transformer.moe.router": "router weights moved to torch.cuda.current_device()",
    "transformer.moe.experts": "expert weights on torch.cuda.current_device()",
    "transformer.moe.moe_utils": "aux-loss trackers with device='cuda', record_stream",
    "transformer.moe.token_dispatcher": "device-to-host copies on a torch.cuda.Stream",
    "transformer.moe.shared_experts": "shared-expert overlap on a torch.cuda.Stream",
    "dist_checkpointing.exchange_utils": "exchange buffers with device='cuda'",
    "dist_checkpointing.strategies.state_dict_saver": "verification tensors with device='cuda'",
    "dist_checkpointing.strategies.async_utils": "liveness tensors on torch.cuda.current_device()",
    "dist_checkpointing.strategies.filesystem_async": "torch.cuda.synchronize() before writing",
}
# Modules of the list above that stop naming CUDA from a megatron-core release on: patched only
# before it (tests/backends/test_cpu.py checks both sides of the line).
CUDA_DEVICE_MODULES_UNTIL: dict[str, tuple[int, int]] = {
    # 0.19's experts.py no longer allocates on torch.cuda.current_device().
    "transformer.moe.experts": (0, 19),
}
# moe_utils.py defines `te_general_gemm = None` without TransformerEngine from this release on.
TE_NAMES_DEFINED_FROM = (0, 19)

# Functions that check `param.type()` against 'torch.cuda.FloatTensor' / 'torch.cuda.HalfTensor' /
# 'torch.cuda.BFloat16Tensor' and reject (or assert on) CPU tensors. They run with `Tensor.type()`
# answering the CUDA name for CPU tensors. (module, qualified name) under megatron/core/.
CUDA_TYPE_CHECKS: tuple[tuple[str, str], ...] = (
    ("optimizer.optimizer", "Float16OptimizerWithFloat16Params.__init__"),
    # __init__ also runs the _build_model_and_main_param_groups classmethod, which checks too.
    ("optimizer.distrib_optimizer", "DistributedOptimizer.__init__"),
    ("optimizer.clip_grads", "clip_grad_by_total_norm_fp32"),
)

_APPLIED = False
log = logging.getLogger(__name__)


def _cpu_device(device: Any) -> Any:
    """Maps 'cuda', 'cuda:N', torch.device('cuda') and bare GPU indices to the CPU."""
    if isinstance(device, int) and not isinstance(device, bool):
        return torch.device("cpu")
    if isinstance(device, str) and device.startswith("cuda"):
        return torch.device("cpu")
    if isinstance(device, torch.device) and device.type == "cuda":
        return torch.device("cpu")
    return device


def _on_cpu(factory: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(factory)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "device" in kwargs:
            kwargs["device"] = _cpu_device(kwargs["device"])
        kwargs.pop("pin_memory", None)
        return factory(*args, **kwargs)

    return wrapper


class _NullStream:
    """Stands in for torch.cuda.Stream/Event: CPU work is already ordered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # record_event() must give something that has synchronize(), and so on: return self.
        return lambda *args, **kwargs: self


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


class _CpuCuda(types.SimpleNamespace):
    """Stands in for `torch.cuda` inside patched megatron modules."""

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cuda, name)


def _make_cpu_cuda() -> _CpuCuda:
    null = _NullStream()
    return _CpuCuda(
        current_device=lambda: torch.device("cpu"),
        synchronize=_noop,
        empty_cache=_noop,
        Stream=_NullStream,
        Event=_NullStream,
        current_stream=lambda *a, **k: null,
        default_stream=lambda *a, **k: null,
        stream=lambda *a, **k: contextlib.nullcontext(),
        set_device=_noop,
        device_count=lambda: 0,
        nvtx=types.SimpleNamespace(range_push=_noop, range_pop=_noop),
        # The RNG tracker's CUDA generator becomes the CPU generator (see _patch_rng).
        get_rng_state=lambda *a, **k: torch.get_rng_state(),
        manual_seed=lambda seed: torch.manual_seed(seed),
    )


class _CpuDistributed(types.SimpleNamespace):
    """`torch.distributed` inside patched modules: uneven all-gather / reduce-scatter over gloo,
    and no work for a synchronous all-reduce over one rank.

    tensor_parallel/mappings.py `_gather_along_first_dim` / `_reduce_scatter_along_first_dim` pass
    per-rank split sizes (MoE token dispatch with TP > 1) to the list forms of `all_gather` /
    `reduce_scatter`; gloo requires equal sizes for the first and has no list form of the second.
    Both are done here on tensors padded to the longest split.

    An all-reduce over a one-rank group leaves its tensor as it is, yet gloo still passes the data
    through its algorithm: megatron DDP's gradient all-reduce reads and writes the whole gradient
    buffer every step of a one-process run (about a pass over all weights). `_all_reduce` returns
    at once there (synchronous calls with an order-free op: SUM, AVG, MIN, MAX, PRODUCT, bitwise).
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.distributed, name)


def _padded(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    out = tensor.new_zeros((rows, *tensor.shape[1:]))
    out[: tensor.shape[0]] = tensor
    return out


def _all_gather(tensor_list: list[torch.Tensor], tensor: torch.Tensor, group: Any = None,
                async_op: bool = False) -> Any:
    sizes = [t.shape[0] for t in tensor_list]
    if async_op or len(set(sizes)) == 1:
        return torch.distributed.all_gather(tensor_list, tensor, group=group, async_op=async_op)
    rows = max(sizes)
    gathered = [tensor.new_empty((rows, *tensor.shape[1:])) for _ in sizes]
    torch.distributed.all_gather(gathered, _padded(tensor, rows), group=group)
    for out, got, n in zip(tensor_list, gathered, sizes, strict=True):
        out.copy_(got[:n])
    return None


def _all_reduce(tensor: torch.Tensor, op: Any = None, group: Any = None, async_op: bool = False) -> Any:
    reduce_op = torch.distributed.ReduceOp
    op = reduce_op.SUM if op is None else op
    if (not async_op and torch.distributed.get_world_size(group) == 1
            and any(op == kind for kind in (reduce_op.SUM, reduce_op.AVG, reduce_op.MIN, reduce_op.MAX,
                                            reduce_op.PRODUCT, reduce_op.BAND, reduce_op.BOR, reduce_op.BXOR))):
        return None
    return torch.distributed.all_reduce(tensor, op=op, group=group, async_op=async_op)


def _reduce_scatter(output: torch.Tensor, input_list: list[torch.Tensor], op: Any = None,
                    group: Any = None, async_op: bool = False) -> Any:
    rows = max(t.shape[0] for t in input_list)
    stacked = torch.cat([_padded(t, rows) for t in input_list])
    out = output.new_empty((rows, *output.shape[1:]))
    torch.distributed.reduce_scatter_tensor(
        out, stacked, op=op or torch.distributed.ReduceOp.SUM, group=group
    )
    output.copy_(out[: output.shape[0]])
    return None


_FACTORIES = ("tensor", "zeros", "ones", "empty", "full", "arange", "rand", "randn", "randint",
              "empty_like", "zeros_like", "ones_like", "full_like", "as_tensor")


class _CpuTorch(types.ModuleType):
    """`torch` as megatron modules see it on CPU: 'cuda' devices become 'cpu'.

    Everything else forwards to the real torch module and is cached on first access, so the
    indirection costs one dict lookup per use, as a module global does.
    """

    def __init__(self) -> None:
        super().__init__("torch")
        self.cuda = _make_cpu_cuda()
        self.distributed = _CpuDistributed(all_gather=_all_gather, reduce_scatter=_reduce_scatter,
                                           all_reduce=_all_reduce)
        for name in _FACTORIES:
            setattr(self, name, _on_cpu(getattr(torch, name)))
        self.autocast = lambda device_type, *a, **k: torch.autocast("cpu", *a, **k)

    def __getattr__(self, name: str) -> Any:
        value = getattr(torch, name)
        setattr(self, name, value)
        return value


_CPU_TORCH: _CpuTorch | None = None


def cpu_torch() -> _CpuTorch:
    """The shared `torch` stand-in installed into patched modules."""
    global _CPU_TORCH
    if _CPU_TORCH is None:
        _CPU_TORCH = _CpuTorch()
    return _CPU_TORCH


def _module(name: str) -> Any:
    """A megatron-core module (typed Any: the patches set attributes mypy cannot know)."""
    return importlib.import_module(f"megatron.core.{name}")


def device_modules() -> list[str]:
    """The modules of `CUDA_DEVICE_MODULES` that the installed megatron-core needs patched."""
    from nemolite.backends import megatron_version

    return [name for name in CUDA_DEVICE_MODULES
            if name not in CUDA_DEVICE_MODULES_UNTIL
            or not megatron_version.at_least(CUDA_DEVICE_MODULES_UNTIL[name])]


def _patch_devices() -> None:
    for name in device_modules():
        mod = _module(name)
        if getattr(mod, "torch", None) is torch:
            mod.torch = cpu_torch()  # type: ignore[attr-defined]


_REAL_TYPE = torch.Tensor.type


def _cuda_type_name(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
    """`Tensor.type()` that answers 'torch.cuda.FloatTensor' for a CPU float tensor."""
    name = _REAL_TYPE(self, *args, **kwargs)
    if args or kwargs or not isinstance(name, str) or self.device.type != "cpu":
        return name
    return name.replace("torch.", "torch.cuda.", 1)


@contextlib.contextmanager
def cuda_type_names() -> Iterator[None]:
    """Within the block, CPU tensors report CUDA type names (for megatron's type checks)."""
    torch.Tensor.type = _cuda_type_name  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        torch.Tensor.type = _REAL_TYPE  # type: ignore[method-assign]


def _with_cuda_type_names(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with cuda_type_names():
            return fn(*args, **kwargs)

    wrapper.__nemolite_cpu_patch__ = True  # type: ignore[attr-defined]
    return wrapper


def _patch_type_checks() -> None:
    for module_name, qualname in CUDA_TYPE_CHECKS:
        owner: Any = _module(module_name)
        *path, attr = qualname.split(".")
        for part in path:
            owner = getattr(owner, part)
        fn = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        if getattr(fn, "__nemolite_cpu_patch__", False):
            continue
        setattr(owner, attr, _with_cuda_type_names(fn))
        if not isinstance(owner, type):
            # Callers that imported the function by name (`from .clip_grads import f`) too.
            _rebind_imports(fn, getattr(owner, attr))


def _rebind_imports(old: Any, new: Any) -> None:
    for name in ("optimizer.optimizer", "optimizer.distrib_optimizer", "optimizer"):
        mod = _module(name)
        for key, value in list(vars(mod).items()):
            if value is old:
                setattr(mod, key, new)


class _DropCpuRngWarning(logging.Filter):
    """megatron warns when the CPU RNG moves inside a CUDA-RNG fork; on CPU they are one generator."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "CPU RNG state changed within GPU RNG context" not in record.getMessage()


def _patch_rng() -> None:
    """tensor_parallel/random.py keeps the TP/EP/DP RNG states in the CUDA generator.

    `_get_cuda_rng_state`/`_set_cuda_rng_state` read and write `torch.cuda.default_generators`
    (lazily, so on CPU they silently do nothing) and `CudaRNGStatesTracker.add` calls
    `torch.cuda.get_rng_state()`. On CPU the tracker's states live in the CPU generator instead.
    """
    rnd = _module("tensor_parallel.random")
    rnd._get_cuda_rng_state = lambda *args, **kwargs: torch.get_rng_state()
    rnd._set_cuda_rng_state = lambda new_state, *args, **kwargs: torch.set_rng_state(new_state)
    rnd.torch = cpu_torch()
    logging.getLogger(rnd.__name__).addFilter(_DropCpuRngWarning())


def _patch_missing_te_names() -> None:
    """transformer/moe/moe_utils.py reads `te_general_gemm`, which megatron-core 0.16 defines only
    when TransformerEngine imports, so the MoE router raises NameError without TE (CPU installs).
    0.19 defines it as None itself (`TE_NAMES_DEFINED_FROM`); then this does nothing."""
    moe_utils = _module("transformer.moe.moe_utils")
    if not hasattr(moe_utils, "te_general_gemm"):
        moe_utils.te_general_gemm = None


def _patch_moe_split_sizes() -> None:
    """transformer/moe/moe_utils.py `maybe_move_tensor_to_cpu` converts the all-to-all split sizes
    to numpy only for CUDA tensors; CPU tensors stay tensors and `all_to_all_single` rejects them
    (alltoall token dispatcher under EP)."""
    moe_utils = _module("transformer.moe.moe_utils")
    original = moe_utils.maybe_move_tensor_to_cpu
    if getattr(original, "__nemolite_cpu_patch__", False):
        return

    @functools.wraps(original)
    def move(tensor: Any, as_numpy: bool = False, record_stream: bool = False) -> Any:
        if torch.is_tensor(tensor) and not tensor.is_cuda:
            return tensor.numpy() if as_numpy else tensor
        return original(tensor, as_numpy=as_numpy, record_stream=record_stream)

    move.__nemolite_cpu_patch__ = True  # type: ignore[attr-defined]
    for name in ("transformer.moe.moe_utils", "transformer.moe.token_dispatcher"):
        mod = _module(name)
        if getattr(mod, "maybe_move_tensor_to_cpu", None) is original:
            mod.maybe_move_tensor_to_cpu = move


def _patch_norm_sequence_parallel() -> None:
    """transformer/torch_norm.py `WrappedTorchNorm` asserts `not config.sequence_parallel`.

    Without apex (CPU installs) the local layer spec uses torch's LayerNorm/RMSNorm, which compute
    the same under sequence parallelism; megatron only needs the norm weights marked
    `sequence_parallel` so `finalize_model_grads` all-reduces their gradients over the TP group.
    """
    norm = _module("transformer.torch_norm").WrappedTorchNorm
    original = norm.__new__
    if getattr(original, "__nemolite_cpu_patch__", False):
        return

    def new(cls: type, config: Any, *args: Any, **kwargs: Any) -> Any:
        if not config.sequence_parallel:
            return original(cls, config, *args, **kwargs)
        config.sequence_parallel = False
        try:
            module = original(cls, config, *args, **kwargs)
        finally:
            config.sequence_parallel = True
        for param in module.parameters():
            param.sequence_parallel = True
        return module

    new.__nemolite_cpu_patch__ = True  # type: ignore[attr-defined]
    norm.__new__ = staticmethod(new)


def set_cpu_threads(local_world_size: int) -> int:
    """Gives each of the processes on this node an equal share of the cores (at least 1).

    Several processes each using every core oversubscribe the CPU and run slower than one.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // max(1, local_world_size))
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def apply(*, force: bool = False) -> bool:
    """Patches megatron-core for CPU when CUDA is absent (idempotent). Returns whether it patched.

    Args:
        force: patch even when CUDA is present (tests of the CPU backend on GPU machines).
    """
    global _APPLIED
    if _APPLIED:
        return True
    if torch.cuda.is_available() and not force:
        return False
    _check_version()
    _patch_devices()
    _patch_type_checks()
    _patch_rng()
    _patch_missing_te_names()
    _patch_norm_sequence_parallel()
    _patch_moe_split_sizes()
    from nemolite.backends import cpu_speed

    cpu_speed.apply()  # not needed to run, but to run fast: see backends/cpu_speed.py
    _APPLIED = True
    return True


def _check_version() -> None:
    from nemolite.backends import megatron_version

    megatron_version.check()
