"""The CPU backend: each patch is still needed upstream, and each patched call works on CPU.

The `upstream` tests fail when megatron-core drops a CUDA assumption (then delete that patch);
the `patched` tests fail when a patch stops doing its job.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nemolite.backends import cpu, megatron_version

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU backend applies without CUDA only")

CUDA_MARK = re.compile(r"torch\.cuda\.|device=['\"]cuda['\"]")


@pytest.fixture(scope="module")
def probes() -> dict[str, bool]:
    """Runs megatron-core unpatched in a fresh interpreter."""
    probe = Path(__file__).with_name("cpu_probe.py")
    proc = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, timeout=120)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROBES ")]
    assert proc.returncode == 0 and line, proc.stderr[-2000:]
    return json.loads(line[0].removeprefix("PROBES "))


@pytest.fixture(scope="module")
def patched() -> None:
    assert cpu.apply()


@pytest.mark.parametrize("name", sorted(cpu.CUDA_DEVICE_MODULES))
def test_upstream_module_still_names_cuda(name: str) -> None:
    spec = importlib.util.find_spec(f"megatron.core.{name}")
    assert spec is not None and spec.origin
    source = Path(spec.origin).read_text()
    if name in cpu.device_modules():
        assert CUDA_MARK.search(source), f"megatron/core/{name} no longer assumes CUDA: drop it from the list"
    else:  # upstream dropped the assumption in this release (CUDA_DEVICE_MODULES_UNTIL)
        assert not CUDA_MARK.search(source), f"megatron/core/{name} names CUDA again: patch it"


def test_device_modules_follow_the_installed_release() -> None:
    needed = set(cpu.device_modules())
    assert ("transformer.moe.experts" in needed) == (not megatron_version.at_least((0, 19)))
    assert needed >= set(cpu.CUDA_DEVICE_MODULES) - set(cpu.CUDA_DEVICE_MODULES_UNTIL)


@pytest.mark.parametrize("module,qualname", cpu.CUDA_TYPE_CHECKS)
def test_upstream_still_checks_cuda_type_names(module: str, qualname: str) -> None:
    owner = importlib.import_module(f"megatron.core.{module}")
    for part in qualname.split("."):
        owner = getattr(owner, part)
    source = inspect.getsource(inspect.unwrap(owner))
    assert "torch.cuda." in source and ".type()" in source, f"{qualname} no longer checks type names"


def test_upstream_still_gathers_uneven_splits_with_list_collectives() -> None:
    from megatron.core.tensor_parallel import mappings

    gather = inspect.getsource(mappings._gather_along_first_dim)
    scatter = inspect.getsource(mappings._reduce_scatter_along_first_dim)
    assert "torch.distributed.all_gather(output_tensor_list" in gather
    assert "torch.distributed.reduce_scatter(" in scatter


def test_patched_collectives_replace_only_the_list_forms(patched: None) -> None:
    from megatron.core.tensor_parallel import mappings

    assert mappings.torch.distributed.all_gather is not torch.distributed.all_gather
    assert mappings.torch.distributed.get_rank is torch.distributed.get_rank


def test_patched_all_reduce_skips_one_rank_only(patched: None, parallel, monkeypatch: pytest.MonkeyPatch) -> None:
    """A synchronous one-rank all-reduce in megatron's patched modules (DDP's gradient buffer) does no
    work and leaves the tensor as it was; an asynchronous one still reaches torch (its handle is waited on)."""
    from megatron.core.distributed import param_and_grad_buffer

    calls = []
    real = torch.distributed.all_reduce

    def counting(*args, **kwargs):
        calls.append(kwargs.get("async_op", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.distributed, "all_reduce", counting)
    dist = param_and_grad_buffer.torch.distributed
    assert dist.all_reduce is not counting  # the stand-in's
    buffer = torch.randn(1000)
    before = buffer.clone()
    for op in (torch.distributed.ReduceOp.SUM, torch.distributed.ReduceOp.AVG, torch.distributed.ReduceOp.MAX):
        assert dist.all_reduce(buffer, op=op) is None
    assert calls == [] and buffer.equal(before)
    dist.all_reduce(buffer, async_op=True).wait()
    assert calls == [True] and buffer.equal(before)


@pytest.mark.parametrize(
    "probe",
    [
        "cuda_current_device",
        "cuda_factory",
        "rng_tracker_add",
        "norm_sequence_parallel",
        "te_general_gemm_missing",
        "moe_split_sizes_stay_tensors",
    ],
)
def test_upstream_still_fails_on_cpu(probes: dict[str, bool], probe: str) -> None:
    if probe == "te_general_gemm_missing" and megatron_version.at_least(cpu.TE_NAMES_DEFINED_FROM):
        assert not probes[probe], "megatron-core no longer defines te_general_gemm without TE"
        return
    assert probes[probe], f"unpatched megatron-core no longer fails ({probe}): drop that patch"


def test_patched_factories_map_cuda_to_cpu(patched: None) -> None:
    from megatron.core.optimizer import clip_grads

    t = clip_grads.torch.zeros(3, device="cuda")
    assert t.device.type == "cpu" and t.shape == (3,)
    assert clip_grads.torch.cuda.current_device() == torch.device("cpu")
    assert clip_grads.torch.tensor is not torch.tensor  # still patched, real torch untouched
    assert torch.zeros(1).device.type == "cpu"


def test_patched_rng_tracker_forks_reproducibly(patched: None) -> None:
    from megatron.core.tensor_parallel import random as rnd

    tracker = rnd.CudaRNGStatesTracker()
    tracker.add("a", 123)
    torch.manual_seed(0)
    outside_before = torch.get_rng_state()
    with tracker.fork("a"):
        first = torch.rand(4)
    with tracker.fork("a"):
        second = torch.rand(4)
    assert not torch.equal(first, second)  # the forked stream advances
    assert torch.equal(torch.get_rng_state(), outside_before)  # and the default stream is untouched
    torch.manual_seed(123)
    assert torch.equal(torch.rand(4), first)  # the tracked stream is the seed's CPU stream


def test_patched_norm_marks_sequence_parallel_grads(patched: None) -> None:
    from megatron.core.transformer import TransformerConfig
    from megatron.core.transformer.torch_norm import WrappedTorchNorm

    config = TransformerConfig(
        num_layers=1, hidden_size=8, num_attention_heads=2, tensor_model_parallel_size=2,
        sequence_parallel=True, normalization="RMSNorm",
    )
    norm = WrappedTorchNorm(config, 8)
    assert isinstance(norm, torch.nn.RMSNorm)
    assert all(getattr(p, "sequence_parallel", False) for p in norm.parameters())
    assert config.sequence_parallel  # the user's config is left as it was


def test_patched_moe_split_sizes_are_numpy(patched: None) -> None:
    from megatron.core.transformer.moe import moe_utils, token_dispatcher

    out = token_dispatcher.maybe_move_tensor_to_cpu(torch.tensor([3, 4]), as_numpy=True)
    assert list(out) == [3, 4] and not torch.is_tensor(out)
    assert moe_utils.te_general_gemm is None


def test_patched_type_check_accepts_cpu_params(patched: None) -> None:
    from megatron.core.optimizer.clip_grads import clip_grad_by_total_norm_fp32

    p = torch.nn.Parameter(torch.ones(4))
    p.grad = torch.full((4,), 2.0)
    clip_grad_by_total_norm_fp32([p], max_norm=1.0, total_norm=4.0)
    assert torch.allclose(p.grad, torch.full((4,), 0.5), atol=1e-5)
    assert p.type() == "torch.FloatTensor"  # the type-name shim is scoped to the call


def test_set_cpu_threads_shares_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    before = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        assert cpu.set_cpu_threads(local_world_size=1) == cores
        assert cpu.set_cpu_threads(local_world_size=2) == max(1, cores // 2)
        assert cpu.set_cpu_threads(local_world_size=1000) == 1
        # The user's OMP_NUM_THREADS wins: nothing is changed.
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        torch.set_num_threads(3)
        assert cpu.set_cpu_threads(local_world_size=1000) == 3
    finally:
        torch.set_num_threads(before)
