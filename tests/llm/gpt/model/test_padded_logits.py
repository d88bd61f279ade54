"""The output layer's padded vocabulary rows: -inf logits, no gradient, and never multiplied with one TP rank."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from nemolite.llm.gpt.model import megatron_config as mc

REAL, PADDED, HIDDEN = 21, 32, 16


@pytest.fixture
def megatron() -> Iterator[None]:
    """One-process megatron state (kept if an earlier test left it initialised)."""
    from nemolite.llm.gpt.model.conversion.megatron_io import single_process_megatron

    with single_process_megatron():
        yield


def _output_layer(bias: bool = False) -> torch.nn.Module:
    from megatron.core.tensor_parallel import ColumnParallelLinear
    from megatron.core.transformer import TransformerConfig

    config = TransformerConfig(num_layers=1, hidden_size=HIDDEN, num_attention_heads=2, use_cpu_initialization=True)
    layer = ColumnParallelLinear(HIDDEN, PADDED, config=config, init_method=torch.nn.init.normal_, bias=bias,
                                 gather_output=False)

    class Chunk(torch.nn.Module):
        post_process = True

        def __init__(self) -> None:
            super().__init__()
            self.output_layer = layer

    return Chunk()


def _reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Upstream's logits with the padded columns set to -inf on a copy (what the mask did before)."""
    logits = torch.nn.functional.linear(x, weight).clone()
    logits[..., REAL:] = float("-inf")
    return logits


def test_padded_logits_equal_the_masked_full_matmul(megatron) -> None:
    chunk = _output_layer()
    mc.mask_padded_vocab([chunk], REAL)
    layer = chunk.output_layer
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, HIDDEN, generator=gen, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    w_ref = layer.weight.detach().clone().requires_grad_()
    logits, _ = layer(x)
    want = _reference(x_ref, w_ref)
    assert logits.shape == (5, 3, PADDED)
    assert torch.isinf(logits[..., REAL:]).all() and (logits[..., REAL:] < 0).all()
    torch.testing.assert_close(logits[..., :REAL], want[..., :REAL], rtol=1e-6, atol=1e-6)
    seed = torch.randn(5, 3, PADDED, generator=gen)  # the padded columns' gradient must be dropped
    logits.backward(seed)
    want.backward(seed)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.weight.grad, w_ref.grad, rtol=1e-5, atol=1e-6)
    assert not layer.weight.grad[REAL:].any()
    with torch.no_grad():  # validation / generation: the same values, no graph
        again, _ = layer(x)
    assert again.grad_fn is None
    torch.testing.assert_close(again, logits.detach(), rtol=0, atol=0)


def test_padded_logits_accumulate_into_main_grad(megatron) -> None:
    """Under megatron DDP (main_grad buffer) the real rows' gradient is added there, the padded rows' stays 0."""
    chunk = _output_layer()
    mc.mask_padded_vocab([chunk], REAL)
    layer = chunk.output_layer
    w = layer.weight
    w.main_grad = torch.full_like(w, 0.5)
    w.grad_added_to_main_grad = False
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 2, HIDDEN, generator=gen)
    seed = torch.randn(4, 2, PADDED, generator=gen)
    layer(x)[0].backward(seed)
    assert w.grad_added_to_main_grad
    w_ref = w.detach().clone().requires_grad_()
    _reference(x, w_ref).backward(seed)
    torch.testing.assert_close(w.main_grad[:REAL], 0.5 + w_ref.grad[:REAL], rtol=1e-5, atol=1e-6)
    assert (w.main_grad[REAL:] == 0.5).all()


def test_layers_the_fast_path_does_not_take_are_still_masked(megatron) -> None:
    """A biased output layer (or TP > 1, sequence parallelism) runs upstream's linear, then the mask."""
    chunk = _output_layer(bias=True)
    mc.mask_padded_vocab([chunk], REAL)
    x = torch.randn(2, 2, HIDDEN)
    logits, _ = chunk.output_layer(x)
    assert torch.isinf(logits[..., REAL:]).all()
    want = torch.nn.functional.linear(x, chunk.output_layer.weight, chunk.output_layer.bias)
    torch.testing.assert_close(logits[..., :REAL], want[..., :REAL], rtol=0, atol=0)


def test_unpadded_output_layer_is_left_alone(megatron) -> None:
    chunk = _output_layer()
    mc.mask_padded_vocab([chunk], PADDED)
    assert "_forward_impl" not in vars(chunk.output_layer)
