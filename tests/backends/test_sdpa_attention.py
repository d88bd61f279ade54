"""SDPAttention equals megatron-core's DotProductAttention (outputs and gradients, 1e-5 in fp32).

Also: packed (THD) attention equals each example attended alone, and the local spec uses it.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="CPU reference run")

TOL = dict(rtol=1e-5, atol=1e-5)


def _config(heads: int = 4, groups: int = 2, head_dim: int = 8, scaling: bool = False):
    from megatron.core.transformer import TransformerConfig

    return TransformerConfig(num_layers=2, hidden_size=heads * head_dim, num_attention_heads=heads,
                             num_query_groups=groups, attention_dropout=0.0, hidden_dropout=0.0,
                             apply_query_key_layer_scaling=scaling, use_cpu_initialization=True)


def _modules(mask_type, **kw):
    from megatron.core.transformer.dot_product_attention import DotProductAttention

    from nemolite.backends.sdpa_attention import SDPAttention

    config = _config(**kw)
    args = dict(config=config, layer_number=2, attn_mask_type=mask_type, attention_type="self")
    return DotProductAttention(**args), SDPAttention(**args)


def _qkv(s: int, b: int, heads: int, groups: int, d: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    shapes = ((s, b, heads, d), (s, b, groups, d), (s, b, groups, d))
    return [torch.randn(*shape, generator=gen, requires_grad=True) for shape in shapes]


def _run(module, q, k, v, mask, **kw):
    qs, ks, vs = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out = module(qs, ks, vs, mask, **kw)
    out.backward(torch.linspace(-1, 1, out.numel()).view_as(out))
    return out, qs.grad, ks.grad, vs.grad


@pytest.mark.parametrize("groups", [4, 2, 1])
@pytest.mark.parametrize("scaling", [False, True])
def test_causal_matches_dot_product_attention(parallel, groups: int, scaling: bool) -> None:
    from megatron.core.transformer.enums import AttnMaskType

    ref, ours = _modules(AttnMaskType.causal, groups=groups, scaling=scaling)
    q, k, v = _qkv(16, 3, 4, groups, 8)
    for a, b in zip(_run(ref, q, k, v, None), _run(ours, q, k, v, None), strict=True):
        torch.testing.assert_close(b, a, **TOL)


def test_padding_mask_matches_dot_product_attention(parallel) -> None:
    """A given mask (True = masked) replaces the causal one in both; no row is fully masked."""
    from megatron.core.transformer.enums import AttnMaskType

    ref, ours = _modules(AttnMaskType.padding)
    s, b = 12, 2
    q, k, v = _qkv(s, b, 4, 2, 8, seed=1)
    causal = torch.triu(torch.ones(s, s, dtype=torch.bool), diagonal=1)
    pad = torch.zeros(b, 1, 1, s, dtype=torch.bool)
    pad[0, ..., 9:] = True  # example 0 ends at 9: its keys past that are padding
    mask = causal | pad
    for a, c in zip(_run(ref, q, k, v, mask), _run(ours, q, k, v, mask), strict=True):
        torch.testing.assert_close(c, a, **TOL)


def test_packed_thd_equals_each_example_alone(parallel) -> None:
    """Block-diagonal causal attention: each example's outputs/grads are those of the example alone."""
    from megatron.core.packed_seq_params import PackedSeqParams
    from megatron.core.transformer.enums import AttnMaskType

    ref, ours = _modules(AttnMaskType.causal)
    lengths = [5, 1, 7, 3]
    q, k, v = (t[:, 0] for t in _qkv(sum(lengths), 1, 4, 2, 8, seed=2))  # THD: [t, n, d]
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    packed = PackedSeqParams(qkv_format="thd", cu_seqlens_q=cu, cu_seqlens_kv=cu,
                             max_seqlen_q=max(lengths), max_seqlen_kv=max(lengths))
    out, *grads = _run(ours, q.detach(), k.detach(), v.detach(), None, packed_seq_params=packed)
    assert out.shape == (sum(lengths), 4 * 8)
    for i, (a, b) in enumerate(zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True)):
        alone = [t[a:b].unsqueeze(1) for t in (q, k, v)]  # [s, b=1, n, d], unpacked, megatron's reference
        qs, ks, vs = (t.detach().clone().requires_grad_() for t in alone)
        expect = ref(qs, ks, vs, None)
        expect.backward(torch.linspace(-1, 1, out.numel()).view_as(out)[a:b].unsqueeze(1))
        torch.testing.assert_close(out[a:b], expect[:, 0], **TOL, msg=f"example {i}")
        for got, want in zip(grads, (qs.grad, ks.grad, vs.grad), strict=True):
            torch.testing.assert_close(got[a:b], want[:, 0], **TOL, msg=f"example {i} grads")


def test_local_spec_uses_sdpa_attention() -> None:
    from nemolite.backends.sdpa_attention import SDPAttention
    from nemolite.llm.gpt.model import LlamaTinyConfig
    from nemolite.llm.gpt.model.megatron_config import layer_spec

    spec = layer_spec(LlamaTinyConfig(transformer_layer_spec="local"))
    assert spec.submodules.self_attention.submodules.core_attention is SDPAttention
