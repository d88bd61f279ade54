"""Activation recomputation: the same loss and gradients, fewer activation bytes held, one-line errors."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nemolite.errors import ConfigError
from nemolite.llm.gpt.model import LlamaConfig
from nemolite.llm.gpt.model.recompute import check_recompute

SMALL = LlamaConfig(num_layers=4, hidden_size=64, ffn_hidden_size=128, num_attention_heads=4,
                    num_query_groups=2, seq_length=64, vocab_size=128)


@pytest.mark.parametrize(("fields", "field", "problem"), [
    ({"recompute_granularity": "full"}, "recompute_method", "needs a method"),
    ({"recompute_granularity": "full", "recompute_method": "block"}, "recompute_num_layers", "between 1 and"),
    ({"recompute_granularity": "full", "recompute_method": "uniform", "recompute_num_layers": 5},
     "recompute_num_layers", "the 4 layers"),
    ({"recompute_granularity": "selective", "recompute_num_layers": 2}, "recompute_num_layers", "full only"),
    ({"recompute_granularity": "partial"}, "recompute_granularity", "partial"),
    ({"recompute_granularity": "full", "recompute_method": "blocks", "recompute_num_layers": 1},
     "recompute_method", "blocks"),
])
def test_bad_settings_are_one_line_errors(fields: dict, field: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        replace(SMALL, **fields).validate()
    message = str(err.value)
    assert f"model.config.{field}" in message and problem in message and "\n" not in message


def test_num_layers_count_per_pipeline_chunk() -> None:
    cfg = replace(SMALL, recompute_granularity="full", recompute_method="block", recompute_num_layers=3)
    cfg.validate()  # 3 of 4 layers: fine in one process
    with pytest.raises(ConfigError, match=r"the 2 layers of a pipeline chunk \(num_layers=4 / \(PP x VP = 2\)\)"):
        check_recompute(cfg, layers_per_chunk=2, where="num_layers=4 / (PP x VP = 2)")


def test_cli_rejects_recompute_that_does_not_fit_the_pipeline(llm_cli) -> None:
    code, out, err = llm_cli("pretrain", "--factory", "llama_tiny", "model.config.recompute_granularity=full",
                             "model.config.recompute_method=block", "model.config.recompute_num_layers=3",
                             "trainer.strategy.pipeline_model_parallel_size=2", "executor=torchrun",
                             "executor.ntasks_per_node=2", "trainer.devices=2", "--dryrun", "-y")
    text = out + err
    assert code != 0 and "model.config.recompute_num_layers=3" in text and "PP x VP = 2" in text, text


def _step(cfg: LlamaConfig) -> tuple[float, list, int]:
    """One forward/backward of a megatron GPTModel: (loss, grads, bytes saved for backward)."""
    import torch
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    from nemolite.lightning.strategy import MegatronStrategy
    from nemolite.llm.gpt.model import megatron_config as mc

    tf = mc.transformer_config(cfg, MegatronStrategy())
    torch.manual_seed(0)
    model_parallel_cuda_manual_seed(0)
    model = mc.build_chunks(cfg, tf, 128)[0]
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(128, (2, 65), generator=gen)
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(tokens[:, :-1], torch.arange(64).expand(2, 64), None, labels=tokens[:, 1:]).mean()
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()], saved


@pytest.mark.parametrize(("fields", "at_most"), [
    ({"recompute_granularity": "full", "recompute_method": "uniform", "recompute_num_layers": 1}, 0.5),
    ({"recompute_granularity": "full", "recompute_method": "block", "recompute_num_layers": 2}, 0.75),
    # SDPA keeps no s x s probabilities, so recomputing core attention saves little here
    ({"recompute_granularity": "selective"}, 0.99),
])
def test_recompute_same_gradients_fewer_saved_bytes(parallel, fields: dict, at_most: float) -> None:
    import torch

    loss, grads, saved = _step(SMALL)
    loss_r, grads_r, saved_r = _step(replace(SMALL, **fields))
    assert loss_r == loss
    for a, b in zip(grads_r, grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # activation bytes held from forward to backward (what recomputation trades for compute)
    assert saved_r < at_most * saved, (saved_r, saved)
