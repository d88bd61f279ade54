"""DoRA's layers against its definition, on an untrained one-process megatron Qwen2 (QKV bias).

No training: the adapters are set by hand (B random, magnitudes moved), then the model with its
DoRA hooks is compared with the same model after `merge_adapters` wrote
`m (W + sBA) / ||W + sBA||` into the weights. The QKV bias, which megatron adds inside `linear_qkv`,
must stay out of the rescaling, as DoRA decomposes the weight only.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def test_hooked_layers_equal_the_merged_dora_weight_and_leave_the_bias_alone() -> None:
    from nemolite.llm.gpt.model import Qwen2Config
    from nemolite.llm.gpt.model.conversion.megatron_io import build_model, single_process_megatron
    from nemolite.llm.peft import DoRA
    from nemolite.llm.peft.dora_transform import DoRAAdapter
    from nemolite.llm.peft.lora_transform import apply_lora
    from nemolite.llm.peft.merge import merge_adapters

    cfg = Qwen2Config(num_layers=1, hidden_size=64, ffn_hidden_size=128, num_attention_heads=4,
                      num_query_groups=2, seq_length=16, vocab_size=256, make_vocab_size_divisible_by=128)
    tokens = torch.arange(3, 19)[None]
    positions = torch.arange(16)[None]
    with single_process_megatron(), torch.no_grad():
        model = build_model(cfg, 256, torch.float32, initialize=True).eval()
        qkv = model.decoder.layers[0].self_attention.linear_qkv
        qkv.bias.normal_(std=0.5)  # megatron initialises it to zero: make leaving it alone matter
        base = model(tokens, positions, None).clone()
        assert len(apply_lora([model], DoRA(dim=4, alpha=8))) == 4
        assert model(tokens, positions, None).equal(base)  # bit-exact at initialisation
        gen = torch.Generator().manual_seed(0)
        for module in model.modules():
            if isinstance(module, DoRAAdapter):
                b = module.linear_out.weight
                b.copy_(0.05 * torch.randn(b.shape, generator=gen))
                m = module.weight_magnitude
                m.mul_(1 + 0.2 * torch.randn(m.shape, generator=gen))
        hooked = model(tokens, positions, None).clone()
        bias = qkv.bias.clone()
        assert merge_adapters(model) == 4
        merged = model(tokens, positions, None)
    assert (hooked - base).abs().max() > 1e-2  # the adapters do something
    assert qkv.bias.equal(bias)
    torch.testing.assert_close(merged, hooked, rtol=1e-5, atol=1e-5)


def test_dropout_follows_nemos_corrected_form() -> None:
    """Training with dropout: W x + (s - 1) W d + s alpha/dim B A d, d = dropout(x) (NeMo's dora.py)."""
    from nemolite.llm.gpt.model import Qwen2Config
    from nemolite.llm.gpt.model.conversion.megatron_io import build_model, single_process_megatron
    from nemolite.llm.peft import DoRA
    from nemolite.llm.peft.lora_transform import apply_lora

    cfg = Qwen2Config(num_layers=1, hidden_size=64, ffn_hidden_size=128, num_attention_heads=4,
                      num_query_groups=2, seq_length=16, vocab_size=256, make_vocab_size_divisible_by=128)
    with single_process_megatron(), torch.no_grad():
        model = build_model(cfg, 256, torch.float32, initialize=True)
        attention = model.decoder.layers[0].self_attention
        apply_lora([model], DoRA(dim=4, alpha=8, dropout=0.5, target_modules=("linear_qkv",)))
        qkv, adapter = attention.linear_qkv, attention.linear_qkv_adapter
        qkv.bias.normal_(std=0.5)
        adapter.linear_out.weight.normal_(std=0.05)
        adapter.weight_magnitude.mul_(1.1)
        model.train()
        x = torch.randn(5, 1, 64)
        torch.manual_seed(7)
        out, _ = qkv(x)
        torch.manual_seed(7)
        d = torch.nn.functional.dropout(x, 0.5, training=True)
        w, a, b = qkv.weight, adapter.linear_in.weight, adapter.linear_out.weight
        s = adapter.weight_magnitude / (w + 2.0 * b @ a).norm(dim=1)
        expected = x @ w.T + qkv.bias + (s - 1) * (d @ w.T) + s * 2.0 * (d @ a.T @ b.T)
    assert not d.equal(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
