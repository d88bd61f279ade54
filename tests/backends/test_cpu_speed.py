"""The CPU fast paths compute what the megatron-core functions they replace compute (bit for bit where stated)."""

from __future__ import annotations

import pytest
import torch

from nemolite.backends import cpu_speed

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU fast paths apply without CUDA only")


def _grads(fn, *inputs: torch.Tensor):
    leaves = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
    out = fn(*leaves)
    out.backward(torch.linspace(-2, 3, out.numel()).view_as(out))
    return [out] + [t.grad for t in leaves if t.requires_grad]


def _upstream(module: str, name: str):
    """The unpatched upstream function (the patch keeps it as __wrapped__)."""
    fn = getattr(cpu_speed._module(module), name)
    return getattr(fn, "__wrapped__", fn)


@pytest.mark.parametrize("bias", [False, True])
def test_fast_linear_equals_upstream_bit_for_bit(bias: bool) -> None:
    original = _upstream("tensor_parallel.layers", "linear_with_grad_accumulation_and_async_allreduce")
    fast = cpu_speed.fast_linear(original)
    gen = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(7, 3, 16, generator=gen), torch.randn(24, 16, generator=gen), torch.randn(24, generator=gen)

    def call(f):
        return lambda x, w, b: f(x, w, b if bias else None, False, False, False)

    for got, want in zip(_grads(call(fast), x, w, b), _grads(call(original), x, w, b), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("mscale", [1.0, 0.7])
def test_fast_rope_equals_upstream_bit_for_bit(mscale: float) -> None:
    original = _upstream("models.common.embeddings.rope_utils", "_apply_rotary_pos_emb_bshd")
    fast = cpu_speed.fast_rope(original)
    gen = torch.Generator().manual_seed(1)
    t = torch.randn(11, 2, 4, 8, generator=gen)[:, :, 1:]  # a strided view, as queries are
    freqs = torch.randn(11, 1, 1, 8, generator=gen)
    got = _grads(lambda t: fast(t, freqs, mscale=mscale), t)
    want = _grads(lambda t: original(t, freqs, mscale=mscale), t)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_fast_rope_leaves_partial_rotation_to_upstream() -> None:
    original = _upstream("models.common.embeddings.rope_utils", "_apply_rotary_pos_emb_bshd")
    t, freqs = torch.randn(5, 1, 2, 8), torch.randn(5, 1, 1, 4)
    torch.testing.assert_close(cpu_speed.fast_rope(original)(t, freqs), original(t, freqs), rtol=0, atol=0)


def test_fast_cross_entropy_equals_upstream(parallel) -> None:
    original = _upstream("tensor_parallel", "vocab_parallel_cross_entropy")
    fast = cpu_speed.fast_cross_entropy(original)
    gen = torch.Generator().manual_seed(2)
    logits, target = torch.randn(6, 3, 40, generator=gen), torch.randint(33, (6, 3), generator=gen)
    logits[..., 33:] = float("-inf")  # padded vocabulary rows, masked
    got = _grads(lambda x: fast(x, target), logits)
    want = _grads(lambda x: original(x, target), logits)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert torch.isfinite(got[1]).all()
