"""Every registered recipe's CPU twin keeps its architecture features and trains for 2 steps.

The feature checks run for every recipe in milliseconds. Training runs in this process (megatron
over gloo): a representative subset in the default run (dense with tied embeddings and QKV bias,
Llama 3.1 RoPE scaling, MoE with qk-norm and top-8 routing), every recipe under `-m nightly`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import fiddle as fdl
import pytest

from nemolite.cli import plugins
from nemolite.errors import ConfigError
from nemolite.llm.checks import check_task
from nemolite.llm.twin import cpu_twin

RECIPES = plugins.recipe_names()
DEFAULT_RUN = {"qwen25_500m", "llama31_8b", "qwen3_30b_a3b"}
FEATURES = ("normalization", "activation", "position_embedding_type", "add_bias_linear", "add_qkv_bias",
            "qk_layernorm", "share_embeddings_and_output_weights", "rope_scaling", "scale_factor",
            "low_freq_factor", "high_freq_factor", "rotary_base", "moe_router_topk",
            "moe_router_pre_softmax", "moe_router_load_balancing_type", "layernorm_epsilon")


def _specs(task) -> dict:
    return {k: task.keywords[k] for k in ("model", "data", "trainer", "log", "resume", "optim")}


@pytest.mark.parametrize("name", RECIPES)
def test_twin_keeps_the_architecture_and_fits_a_cpu(name: str, tmp_path: Path) -> None:
    recipe = plugins.recipe_module(name).pretrain_recipe(dir=str(tmp_path))
    twin, plan = cpu_twin(recipe, processes=1, steps=2)
    real, small = fdl.build(recipe), fdl.build(twin)
    a, b = real.keywords["model"].config, small.keywords["model"].config
    assert type(a) is type(b) and type(real.keywords["model"]) is type(small.keywords["model"])
    for feature in FEATURES:
        assert getattr(a, feature) == getattr(b, feature), feature
    assert a.num_attention_heads // a.query_groups == b.num_attention_heads // b.query_groups  # GQA ratio
    assert (a.num_moe_experts is None) == (b.num_moe_experts is None)
    if a.num_moe_experts:
        assert b.moe_router_topk < b.num_moe_experts <= a.num_moe_experts
    assert b.num_layers <= 4 and b.hidden_size <= 512 and b.seq_length == 64
    assert type(real.keywords["data"]) is type(small.keywords["data"])
    assert small.keywords["trainer"].plugins == real.keywords["trainer"].plugins  # same precision
    check_task(**_specs(small), on_this_machine=True)  # runs here: CPU, one process
    strategy = real.keywords["trainer"].strategy
    if strategy.model_parallel_size > 1 or strategy.expert_model_parallel_size > 1:
        assert plan.dropped, "a parallel layout shrunk to one process must say what it dropped"


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=() if name in DEFAULT_RUN else pytest.mark.nightly) for name in RECIPES
])
def test_twin_trains_two_steps(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = plugins.recipe_module(name).pretrain_recipe(dir=str(tmp_path / "runs"), name="twin")
    twin, _ = cpu_twin(recipe, processes=1, steps=2)
    fdl.build(twin)()
    run_dir = next((tmp_path / "runs" / "twin").iterdir())
    rows = [json.loads(line) for line in (run_dir / "train_metrics.jsonl").read_text().splitlines()]
    losses = [row["reduced_train_loss"] for row in rows if "reduced_train_loss" in row]
    assert len(losses) == 2 and all(math.isfinite(x) and 3.0 < x < 8.0 for x in losses)  # ~ln(256)
    checkpoints = [p.name for p in (run_dir / "checkpoints").iterdir()]
    assert any("step=2" in c for c in checkpoints), checkpoints


def _qa_dataset(tmp_path: Path) -> Path:
    """32 question/answer pairs as a fine-tuning dataset_root (training and validation)."""
    data = tmp_path / "data"
    data.mkdir()
    rows = "".join(json.dumps({"input": f"question {i}?", "output": f"answer {i}."}) + "\n" for i in range(32))
    (data / "training.jsonl").write_text(rows)
    (data / "validation.jsonl").write_text(rows)
    return data


def test_twin_of_a_finetune_recipe_trains_lora(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = _qa_dataset(tmp_path)
    recipe = plugins.recipe_module("llama32_1b").finetune_recipe(
        dir=str(tmp_path / "runs"), name="ft", dataset_root=str(data), peft_scheme="lora")
    twin, plan = cpu_twin(recipe, processes=1, steps=2)
    assert any("nemo://meta-llama/Llama-3.2-1B" in line for line in plan.dropped)
    fdl.build(twin)()
    run_dir = next((tmp_path / "runs" / "ft").iterdir())
    rows = [json.loads(line) for line in (run_dir / "train_metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "reduced_train_loss" in r] == [1, 2]


def test_two_process_twin_keeps_tensor_and_sequence_parallelism() -> None:
    recipe = plugins.recipe_module("llama3_70b").pretrain_recipe()
    twin, plan = cpu_twin(recipe, processes=2)
    strategy = fdl.build(twin).keywords["trainer"].strategy
    assert (strategy.tensor_model_parallel_size, strategy.sequence_parallel) == (2, True)
    assert strategy.pipeline_model_parallel_size == 1 and strategy.context_parallel_size == 1
    assert "TP2 SP" in plan.kept and any(line.startswith("PP4") for line in plan.dropped)
    mixtral = fdl.build(cpu_twin(plugins.recipe_module("mixtral_8x7b").pretrain_recipe(), processes=2)[0])
    s = mixtral.keywords["trainer"].strategy
    assert (s.pipeline_model_parallel_size, s.virtual_pipeline_model_parallel_size) == (2, 2)
    qwen = fdl.build(cpu_twin(plugins.recipe_module("qwen3_30b_a3b").pretrain_recipe(), processes=2)[0])
    s = qwen.keywords["trainer"].strategy
    assert (s.tensor_model_parallel_size, s.expert_model_parallel_size, s.expert_tensor_parallel_size) == (2, 2, 1)
    check_task(**_specs(qwen), on_this_machine=False)


def test_a_feature_without_a_cpu_form_is_one_line() -> None:
    recipe = plugins.recipe_module("llama3_8b").pretrain_recipe()
    recipe.trainer.plugins.fp8 = "hybrid"
    with pytest.raises(ConfigError, match=r"trainer.plugins.fp8='hybrid': fp8 needs TransformerEngine"):
        cpu_twin(recipe)
    recipe = plugins.recipe_module("mixtral_8x7b").pretrain_recipe()
    recipe.model.config.moe_grouped_gemm = True
    with pytest.raises(ConfigError, match="moe_grouped_gemm"):
        cpu_twin(recipe)
    with pytest.raises(ConfigError, match="1 or 2 processes"):
        cpu_twin(plugins.recipe_module("llama3_8b").pretrain_recipe(), processes=4)


def test_cli_cpu_twin_dry_run(llm_cli, tmp_path: Path) -> None:
    code, out, err = llm_cli("pretrain", "--factory", "qwen3_235b_a22b", "--cpu-twin", "trainer.max_steps=3",
                             "--dryrun", "-y")
    assert code == 0, err
    assert "cpu twin keeps: GQA 64:4 -> 32:2, MoE 128 experts top-8 -> 16 top-8, qk-norm" in out
    assert "cpu twin drops: PP16 (one process)" in out
    assert "max_steps: 3" in out and "val_check_interval: 3" in out and "accelerator: cpu" in out
    assert list(tmp_path.iterdir()) == []


def test_unknown_peft_scheme_lists_the_valid_ones(llm_cli) -> None:
    code, out, err = llm_cli("finetune", "--factory", "llama3_8b(peft_scheme='qlora')", "--dryrun", "-y")
    assert code == 2
    assert "peft_scheme" in err and "qlora" in err and "lora" in err and "none" in err
    assert len(err.strip().splitlines()) == 1


def test_nemo_keyword_arguments_change_the_recipe() -> None:
    module = plugins.recipe_module("llama3_8b")
    full = fdl.build(module.finetune_recipe(peft_scheme="none"))
    assert full.keywords["peft"] is None and full.keywords["trainer"].strategy.tensor_model_parallel_size == 2
    lora = fdl.build(module.finetune_recipe())
    assert (lora.keywords["peft"].dim, lora.keywords["peft"].alpha) == (8, 16)
    assert lora.keywords["optim"].config.use_distributed_optimizer is False
    packed = fdl.build(module.finetune_recipe(packed_sequence=True))
    assert packed.keywords["data"].packed_sequence_specs.packed_sequence_size == 4096
    assert packed.keywords["data"].seq_length == 4096 == packed.keywords["model"].config.seq_length
    fast = fdl.build(module.pretrain_recipe(performance_mode=True))
    assert fast.keywords["trainer"].plugins.grad_reduce_in_fp32 is False
    qwen = fdl.build(plugins.recipe_module("qwen3_8b").pretrain_recipe(seq_length=2048, tensor_parallelism=2))
    assert qwen.keywords["data"].seq_length == 2048 and qwen.keywords["trainer"].strategy.tensor_model_parallel_size == 2


def test_environment_switch_makes_every_catalogue_recipe_its_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    module = plugins.recipe_module("llama3_70b")
    monkeypatch.setenv("NEMOLITE_CPU_TWIN", "2")
    pre = fdl.build(module.pretrain_recipe(max_steps=3))
    strategy = pre.keywords["trainer"].strategy
    assert (pre.keywords["trainer"].accelerator, pre.keywords["trainer"].devices) == ("cpu", 2)
    assert (strategy.tensor_model_parallel_size, strategy.sequence_parallel) == (2, True)
    assert pre.keywords["trainer"].max_steps == 3 and pre.keywords["model"].config.num_layers <= 4
    ft = fdl.build(module.finetune_recipe(num_gpus_per_node=1))
    assert ft.keywords["trainer"].devices == 1 and ft.keywords["resume"].restore_config is None
    monkeypatch.setenv("NEMOLITE_CPU_TWIN", "yes")
    with pytest.raises(ConfigError, match=r"NEMOLITE_CPU_TWIN='yes': is the CPU twin's process count"):
        module.pretrain_recipe()
    monkeypatch.setenv("NEMOLITE_CPU_TWIN", "0")
    assert fdl.build(module.pretrain_recipe()).keywords["model"].config.num_layers == 80


def test_peft_scheme_dora_is_dora_with_the_sizes_adapter_settings() -> None:
    from nemolite.llm.peft import DoRA

    lora = fdl.build(plugins.recipe_module("llama3_8b").finetune_recipe()).keywords["peft"]
    dora = fdl.build(plugins.recipe_module("llama3_8b").finetune_recipe(peft_scheme="dora")).keywords["peft"]
    assert type(dora) is DoRA and dora.method == "dora"
    assert (dora.target_modules, dora.dim, dora.alpha) == (lora.target_modules, lora.dim, lora.alpha)
    moe = fdl.build(plugins.recipe_module("mixtral_8x7b").finetune_recipe(peft_scheme="DoRA"))
    assert type(moe.keywords["peft"]) is DoRA
    assert set(moe.keywords["peft"].target_modules) == {"linear_qkv", "linear_proj"}  # experts frozen


@pytest.mark.nightly
def test_twin_of_a_dora_finetune_recipe_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = _qa_dataset(tmp_path)
    recipe = plugins.recipe_module("qwen25_500m").finetune_recipe(
        dir=str(tmp_path / "runs"), name="ft", dataset_root=str(data), peft_scheme="dora")
    twin, _ = cpu_twin(recipe, processes=1, steps=2)
    fdl.build(twin)()
    run_dir = next((tmp_path / "runs" / "ft").iterdir())
    rows = [json.loads(line) for line in (run_dir / "train_metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "reduced_train_loss" in r] == [1, 2]
    marker = json.loads(next(run_dir.glob("checkpoints/*last/nemolite_ckpt.json")).read_text())
    assert marker["peft"]["method"] == "dora"


@pytest.mark.nightly
@pytest.mark.multiproc
def test_two_process_twin_trains_tensor_sequence_and_expert_parallel(nemo, tmp_path: Path) -> None:
    result = nemo("llm", "pretrain", "--factory", "qwen3_30b_a3b", "--cpu-twin", "trainer.max_steps=2",
                  "executor=torchrun", "executor.ntasks_per_node=2", "-y", timeout=600,
                  env={"NEMORUN_HOME": str(tmp_path / "nemo_run"), "NEMO_HOME": str(tmp_path / "nemo")})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "TP2 SP, EP2 ETP1" in result.stdout
    checkpoint = next((tmp_path / "nemo_experiments" / "default").glob("*/checkpoints/*step=2*last"))
    assert {p.name for p in checkpoint.glob("__*_*.distcp")} >= {"__0_0.distcp", "__1_0.distcp"}
