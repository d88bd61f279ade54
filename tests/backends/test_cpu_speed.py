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


def _ddp_param(shape: tuple[int, ...], gen: torch.Generator) -> torch.nn.Parameter:
    """A weight as megatron's DDP leaves it: a `main_grad` buffer and the grad-added flag."""
    w = torch.nn.Parameter(torch.randn(*shape, generator=gen))
    w.main_grad = torch.zeros(shape)
    w.grad_added_to_main_grad = False
    return w


def _ddp_hook(param: torch.nn.Parameter) -> None:
    """What megatron DDP's backward post-hook does with a parameter after each micro-batch."""
    if param.grad is not None and (not param.grad_added_to_main_grad or getattr(param, "zero_out_wgrad", False)):
        param.main_grad.add_(param.grad)
    param.grad = None


@pytest.mark.parametrize("tied", [False, True])
def test_fast_linear_accumulates_weight_grads_into_main_grad(tied: bool) -> None:
    """Two micro-batches through the fast path leave in `main_grad` what upstream's path + DDP's hook leave."""
    original = _upstream("tensor_parallel.layers", "linear_with_grad_accumulation_and_async_allreduce")
    fast = cpu_speed.fast_linear(original)
    gen = torch.Generator().manual_seed(3)
    xs = [torch.randn(5, 2, 16, generator=gen, requires_grad=True) for _ in range(2)]
    w_fast = _ddp_param((24, 16), gen)
    w_ref = torch.nn.Parameter(w_fast.detach().clone())
    w_ref.main_grad, w_ref.grad_added_to_main_grad = torch.zeros(24, 16), False
    if tied:  # a weight shared with the embedding: its gradient must keep going through param.grad
        w_fast.zero_out_wgrad = True
    for x in xs:
        seed = torch.linspace(-1, 2, 5 * 2 * 24).view(5, 2, 24)
        out = fast(x, w_fast, None, False, False, False)
        out.backward(seed)
        assert w_fast.grad_added_to_main_grad is (not tied)
        _ddp_hook(w_fast)
        x_ref = x.detach().clone().requires_grad_()
        original(x_ref, w_ref, None, False, False, False).backward(seed)
        _ddp_hook(w_ref)
        torch.testing.assert_close(x.grad, x_ref.grad, rtol=0, atol=0)  # the input gradient: the same matmul
        w_fast.grad_added_to_main_grad = w_ref.grad_added_to_main_grad = False
    assert w_fast.grad is None
    torch.testing.assert_close(w_fast.main_grad, w_ref.main_grad, rtol=1e-6, atol=1e-6)
    assert w_fast.main_grad.abs().sum() > 0


def test_fast_linear_outside_training_leaves_main_grad_alone() -> None:
    """Without grad mode (validation, generation) the fast path neither reads nor writes `main_grad`."""
    original = _upstream("tensor_parallel.layers", "linear_with_grad_accumulation_and_async_allreduce")
    gen = torch.Generator().manual_seed(4)
    w = _ddp_param((8, 4), gen)
    x = torch.randn(3, 4, generator=gen)
    with torch.no_grad():
        out = cpu_speed.fast_linear(original)(x, w, None, False, False, False)
    torch.testing.assert_close(out, x @ w.detach().t(), rtol=0, atol=0)
    assert not w.main_grad.any()


def test_fast_multi_tensor_scale_is_installed_and_scales_in_place_like_upstream(parallel) -> None:
    """Gradient clipping's scale: the same numbers as megatron's fallback, written into the gradients."""
    from megatron.core import utils
    from megatron.core.optimizer import clip_grads

    if clip_grads.multi_tensor_scale_impl is utils.local_multi_tensor_scale:
        pytest.fail("cpu.apply() left megatron's copying fallback in clip_grads")
    fast = clip_grads.multi_tensor_scale_impl
    if not getattr(fast, cpu_speed._PATCHED, False):
        pytest.skip("a fused multi_tensor_scale (apex/TE) is installed")
    gen = torch.Generator().manual_seed(5)
    grads = [torch.randn(7, 5, generator=gen), torch.randn(11, generator=gen)]
    want = [g.clone() for g in grads]
    utils.local_multi_tensor_scale(2048, None, [want, want], 0.37)
    ids = [id(g) for g in grads]
    fast(2048, None, [grads, grads], 0.37)
    assert [id(g) for g in grads] == ids
    for got, ref in zip(grads, want, strict=True):
        torch.testing.assert_close(got, ref, rtol=0, atol=0)
    out = [torch.empty(7, 5), torch.empty(11)]
    fast(2048, None, [want, out], 2.0)  # src -> dst, as the optimizer's copies use it
    for got, ref in zip(out, want, strict=True):
        torch.testing.assert_close(got, ref * 2.0, rtol=0, atol=0)


@pytest.mark.parametrize("bias", [False, True])
def test_fast_mlp_swiglu_equals_upstream_bit_for_bit(parallel, bias: bool) -> None:
    """A real megatron MLP (SwiGLU): output and every gradient equal the unfused upstream forward's."""
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer.mlp import MLP
    from megatron.core.transformer.transformer_config import TransformerConfig

    assert getattr(MLP.forward, cpu_speed._PATCHED, False), "cpu.apply() left megatron's MLP.forward"
    original = MLP.forward.__wrapped__
    config = TransformerConfig(num_layers=1, hidden_size=16, ffn_hidden_size=24, num_attention_heads=2,
                               gated_linear_unit=True, activation_func=torch.nn.functional.silu,
                               add_bias_linear=bias, bias_activation_fusion=False)
    torch.manual_seed(0)
    mlp = MLP(config, get_gpt_layer_local_spec().submodules.mlp.submodules, ffn_hidden_size=24)
    x = torch.randn(7, 3, 16)

    def run(forward):
        mlp.zero_grad(set_to_none=True)
        leaf = x.clone().requires_grad_(True)
        out, out_bias = forward(mlp, leaf)
        (out + out_bias if out_bias is not None else out).backward(torch.linspace(-2, 3, out.numel()).view_as(out))
        return [out, leaf.grad] + [p.grad for p in mlp.parameters()]

    got, want = run(MLP.forward), run(original)
    assert len(got) == len(want) == (6 if bias else 4)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_fast_rope_tables_follow_the_freqs_tensor() -> None:
    """cos/sin are computed once per `freqs` tensor, and again when it changes in place or is new."""
    original = _upstream("models.common.embeddings.rope_utils", "_apply_rotary_pos_emb_bshd")
    fast = cpu_speed.fast_rope(original)
    gen = torch.Generator().manual_seed(5)
    t = torch.randn(6, 2, 4, 8, generator=gen)
    freqs = torch.randn(6, 1, 1, 8, generator=gen)
    first = fast(t, freqs)
    torch.testing.assert_close(first, original(t, freqs), rtol=0, atol=0)
    freqs.mul_(3.0)  # same tensor, new values: the cached tables must not be reused
    torch.testing.assert_close(fast(t, freqs), original(t, freqs), rtol=0, atol=0)
    torch.testing.assert_close(fast(t, freqs * 0.5), original(t, freqs * 0.5), rtol=0, atol=0)
    with torch.inference_mode():  # inference tensors carry no version counter: computed each time
        frozen = freqs.clone()
        torch.testing.assert_close(fast(t, frozen), original(t, frozen), rtol=0, atol=0)
        frozen.mul_(2.0)
        torch.testing.assert_close(fast(t, frozen), original(t, frozen), rtol=0, atol=0)


def test_fast_rope_lays_heads_out_for_the_attention_kernel() -> None:
    """The rotated [s, b, heads, d] tensor is [b, heads, s, d] in memory: the permute the attention takes is free."""
    original = _upstream("models.common.embeddings.rope_utils", "_apply_rotary_pos_emb_bshd")
    t, freqs = torch.randn(5, 3, 4, 8), torch.randn(5, 1, 1, 8)
    out = cpu_speed.fast_rope(original)(t, freqs)
    assert out.shape == t.shape and out.permute(1, 2, 0, 3).is_contiguous()


def _attention(overrides: dict, seed: int = 0, rotary_percent: float = 1.0):
    """A real megatron SelfAttention of nemolite's layer spec (SDPA core attention) and its RoPE freqs."""
    from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer.attention import SelfAttention
    from megatron.core.transformer.transformer_config import TransformerConfig

    from nemolite.backends.sdpa_attention import with_sdpa_attention

    config = TransformerConfig(**{"num_layers": 1, "hidden_size": 32, "num_attention_heads": 4,
                                  "num_query_groups": 2, "add_bias_linear": False, "attention_dropout": 0.0,
                                  **overrides})
    spec = with_sdpa_attention(get_gpt_layer_local_spec()).submodules.self_attention
    torch.manual_seed(seed)
    attention = SelfAttention(config, spec.submodules, layer_number=1, attn_mask_type=spec.params["attn_mask_type"])
    freqs = RotaryEmbedding(config.kv_channels, rotary_percent, rotary_interleaved=config.rotary_interleaved)(9)
    return attention, freqs


def _fused(out: torch.Tensor) -> bool:
    """Whether `_QKVRope` is in the autograd graph behind `out`."""
    seen, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__ == "_QKVRopeBackward":
            return True
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return False


def _attention_run(attention, forward, freqs: torch.Tensor, x: torch.Tensor, **kwargs):
    attention.zero_grad(set_to_none=True)
    leaf = x.clone().requires_grad_(True)
    out, bias = forward(attention, leaf, attention_mask=None, rotary_pos_emb=freqs, **kwargs)
    assert bias is None
    out.backward(torch.linspace(-2, 3, out.numel()).view_as(out))
    return out, [out, leaf.grad] + [p.grad for p in attention.parameters()]


@pytest.mark.parametrize("shape", [{"num_query_groups": 2}, {"num_query_groups": 4}, {"num_query_groups": 1},
                                   {"add_qkv_bias": True}])
def test_fast_attention_equals_upstream_bit_for_bit(parallel, shape: dict) -> None:
    """Real megatron self-attention (GQA, MHA, MQA, QKV bias): the fused QKV split + RoPE path is taken,
    and its output and every gradient equal upstream's forward's bit for bit."""
    from megatron.core.transformer.attention import Attention

    assert getattr(Attention.forward, cpu_speed._PATCHED, False), "cpu.apply() left megatron's Attention.forward"
    attention, freqs = _attention(shape)
    x = torch.randn(9, 3, 32, generator=torch.Generator().manual_seed(2))
    out, got = _attention_run(attention, Attention.forward, freqs, x)
    assert _fused(out)
    _, want = _attention_run(attention, Attention.forward.__wrapped__, freqs, x)
    assert len(got) == len(want) == 2 + len(list(attention.parameters()))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("case", ["interleaved", "partial", "bias"])
def test_fast_attention_leaves_other_cases_to_upstream(parallel, case: str) -> None:
    """Interleaved or partial RoPE, or an attention bias: upstream's forward runs (and gives its answer)."""
    from megatron.core.transformer.attention import Attention

    config = {"interleaved": {"rotary_interleaved": True}, "partial": {}, "bias": {}}[case]
    attention, freqs = _attention(config, rotary_percent=0.5 if case == "partial" else 1.0)
    x = torch.randn(9, 3, 32, generator=torch.Generator().manual_seed(3))
    kwargs = {"attention_bias": torch.zeros(1, 1, 9, 9)} if case == "bias" else {}
    if case == "bias":  # SDPAttention takes no bias: upstream's forward reaches it and it says so
        with pytest.raises(Exception, match="bias"):
            _attention_run(attention, Attention.forward, freqs, x, **kwargs)
        return
    out, got = _attention_run(attention, Attention.forward, freqs, x)
    assert not _fused(out)
    _, want = _attention_run(attention, Attention.forward.__wrapped__, freqs, x)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["copy_to_tensor_model_parallel_region", "reduce_from_tensor_model_parallel_region"])
def test_fast_region_is_a_view_with_one_rank(parallel, name: str) -> None:
    """With one TP rank the region functions give what upstream's autograd function gives: a new view
    of the input (not the input itself), the gradient passed through unchanged; without a group, upstream's."""
    from megatron.core import parallel_state

    layers = cpu_speed._module("tensor_parallel.layers")
    fast = getattr(layers, name)
    assert getattr(fast, cpu_speed._PATCHED, False), f"cpu.apply() left layers.{name}"
    group = parallel_state.get_tensor_model_parallel_group()
    x = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(4), requires_grad=True)
    for f in (fast, fast.__wrapped__):
        out = f(x, group=group)
        assert out is not x and out._base is x and out.equal(x) and out.stride() == x.stride()
        grad = torch.linspace(-1, 1, out.numel()).view_as(out)
        (got,) = torch.autograd.grad(out, x, grad)
        torch.testing.assert_close(got, grad, rtol=0, atol=0)
    assert type(fast(x, group=None).grad_fn).__name__ != "ViewBackward0"  # upstream's function without a group
