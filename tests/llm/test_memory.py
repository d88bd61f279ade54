"""The per-GPU memory estimate against published figures and megatron-core's own saved state.

Published: megatron-core's distributed-optimizer table (docs/distrib_optimizer.md: 18 bytes per
parameter without it, 6 + 12/d with it, for bf16 params and fp32 gradients), Korthikanti et al.
2022 eq. 1-2 (activations per layer: sbh(10 + 24/t + 5as/(ht)) with TP, sbh(34/t + 5as/(ht)) with
TP + SP), and the parameter counts on the models' Hugging Face cards. Measured: the parameters and
Adam state megatron-core writes to a CPU twin's checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import fiddle as fdl
import pytest

from nemolite import llm
from nemolite.cli import plugins
from nemolite.lightning.strategy import MegatronStrategy
from nemolite.llm.memory import estimate, layer_activation_bytes, task_estimate
from nemolite.llm.twin import cpu_twin


def _params(config, **layout) -> float:
    found = estimate(model_config=config, strategy=MegatronStrategy(**layout), world_size=1, seq_length=8,
                     micro_batch_size=1, global_batch_size=1, precision="32", distributed_optimizer=False)
    return found.params / 4


@pytest.mark.parametrize("config,published", [
    (llm.Llama3Config8B(), 8.03e9),  # meta-llama/Meta-Llama-3-8B
    (llm.Llama3Config70B(), 70.55e9),  # meta-llama/Meta-Llama-3-70B
    (llm.Llama31Config405B(), 405.85e9),  # meta-llama/Llama-3.1-405B
    (llm.Llama32Config1B(), 1.24e9),  # meta-llama/Llama-3.2-1B (tied embeddings)
    (llm.MixtralConfig8x7B(), 46.70e9),  # mistralai/Mixtral-8x7B-v0.1
    (llm.Qwen25Config7B(), 7.62e9),  # Qwen/Qwen2.5-7B
    (llm.Qwen3Config30B_A3B(), 30.53e9),  # Qwen/Qwen3-30B-A3B
])
def test_parameter_counts_match_the_published_ones(config, published: float) -> None:
    config = replace(config, make_vocab_size_divisible_by=1)  # the cards count the unpadded vocabulary
    assert _params(config) == pytest.approx(published, rel=5e-3)


def test_bytes_per_parameter_match_megatrons_distributed_optimizer_table() -> None:
    config = llm.Llama3Config8B()
    for dp, expected in ((1, 18.0), (8, 6 + 12 / 8), (64, 6 + 12 / 64)):
        found = estimate(model_config=config, strategy=MegatronStrategy(), world_size=dp, seq_length=8,
                         micro_batch_size=1, global_batch_size=dp, distributed_optimizer=dp > 1)
        n = found.params / 2
        assert (found.params + found.grads + found.optimizer) / n == pytest.approx(expected)


def test_activations_match_korthikanti_et_al() -> None:
    # GPT-3 175B: h=12288, a=96, s=2048, LayerNorm, GeLU MLP of 4h, dropout everywhere
    gpt3 = llm.GPTConfig(num_layers=96, hidden_size=12288, num_attention_heads=96, seq_length=2048,
                         hidden_dropout=0.1, attention_dropout=0.1)
    h, a, s, t = 12288, 96, 2048, 8
    per_token = layer_activation_bytes(gpt3, tp=1, flash=False, seq=s)
    assert per_token == pytest.approx(h * (34 + 5 * a * s / h))  # eq. 1
    assert layer_activation_bytes(gpt3, tp=t, flash=False, seq=s) == pytest.approx(h * (10 + 24 / t + 5 * a * s / (h * t)))
    assert layer_activation_bytes(gpt3, tp=t, sp=True, flash=False, seq=s) == pytest.approx(h * (34 / t + 5 * a * s / (h * t)))


def test_every_recipe_dry_run_prints_its_memory(llm_cli) -> None:
    code, out, err = llm_cli("pretrain", "--factory", "llama3_70b", "--dryrun", "-y")
    assert code == 0, err
    assert "memory: per GPU: params 8.5 + grads 16.9 + optimizer 25.4" in out
    assert "(TP4 PP4 VP5 CP2 SP DP1 distributed optimizer)" in out


def test_a_layout_that_does_not_fit_stops_before_launch(llm_cli, tmp_path: Path) -> None:
    code, out, err = llm_cli("pretrain", "--factory", "qwen3_8b", "--gpu-memory", "24",
                             "executor=slurm", "executor.account=abc", "-y")
    assert code == 2
    assert err.startswith("error: --gpu-memory=24.0: the busiest GPU needs 41.8 GiB: per GPU: params 3.8")
    assert len(err.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_estimate_matches_the_state_megatron_saves_for_a_twin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.distributed.checkpoint import FileSystemReader

    monkeypatch.chdir(tmp_path)
    recipe = plugins.recipe_module("qwen3_30b_a3b").pretrain_recipe(dir=str(tmp_path), name="m")
    twin, _ = cpu_twin(recipe, processes=1, steps=1)
    built = fdl.build(twin)
    vocab = built.keywords["data"].build_tokenizer().vocab_size
    found = task_estimate(**{k: built.keywords.get(k) for k in ("model", "data", "trainer", "optim")},
                          vocab_size=vocab)
    built()
    ckpt = next((tmp_path / "m").glob("*/checkpoints/*last"))
    meta = FileSystemReader(str(ckpt)).read_metadata().state_dict_metadata
    sizes = {k: v.size.numel() for k, v in meta.items() if hasattr(v, "size") and "_extra_state" not in k}
    model = sum(n for k, n in sizes.items() if not k.startswith("optimizer"))
    adam = sum(n for k, n in sizes.items() if k.startswith("optimizer"))  # fp32 master + 2 moments
    assert found.params / 2 == model  # bf16 parameters, counted exactly
    assert found.optimizer == pytest.approx(4 * adam, rel=0.02)  # buckets are padded a little
    assert json.loads((ckpt / "metadata.json").read_text())  # a real megatron checkpoint
