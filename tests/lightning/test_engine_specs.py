"""Engine specs: light imports, layout/hardware checks with one-line errors, megatron config mapping."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nemolite.errors import ConfigError
from nemolite.lightning.optim import (
    CosineAnnealingScheduler,
    MegatronOptimizerModule,
    OptimizerConfig,
    WarmupStableDecayScheduler,
)
from nemolite.lightning.precision import MegatronMixedPrecision
from nemolite.lightning.strategy import MegatronStrategy, check_layout
from nemolite.lightning.trainer import Trainer, check_clip, check_trainer
from nemolite.llm.gpt.model import GPTModel, Llama3Config8B, LlamaTinyConfig, MixtralTinyConfig

TINY = LlamaTinyConfig()


def test_specs_import_nothing_heavy() -> None:
    # torch itself is not checked: `import nemolite.llm` imports nemo_run, which imports torch.
    code = (
        "import sys\n"
        "import nemolite.lightning.trainer, nemolite.lightning.strategy, nemolite.lightning.optim\n"
        "import nemolite.lightning.precision, nemolite.llm.gpt.model, nemolite.backends.device\n"
        "from nemolite.llm.gpt.model import GPTModel, Llama3Config70B, MixtralConfig8x7B\n"
        "GPTModel(Llama3Config70B()); MixtralConfig8x7B().validate()\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'megatron'})\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _error(fn, *args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "fix:" in message
    return info.value


@pytest.mark.parametrize(
    "fields,world,field",
    [
        ({"tensor_model_parallel_size": 3}, 3, "trainer.strategy.tensor_model_parallel_size"),
        ({"tensor_model_parallel_size": 8}, 8, "trainer.strategy.tensor_model_parallel_size"),  # 4 groups
        ({"pipeline_model_parallel_size": 3}, 3, "trainer.strategy.pipeline_model_parallel_size"),
        ({"pipeline_model_parallel_size": 2, "virtual_pipeline_model_parallel_size": 4}, 2,
         "trainer.strategy.pipeline_model_parallel_size"),
        ({"virtual_pipeline_model_parallel_size": 2}, 1, "trainer.strategy.virtual_pipeline_model_parallel_size"),
        ({"sequence_parallel": True}, 1, "trainer.strategy.sequence_parallel"),
        ({"expert_model_parallel_size": 2}, 2, "trainer.strategy.expert_model_parallel_size"),
        ({"tensor_model_parallel_size": 2}, 3, "trainer.strategy.tensor_model_parallel_size"),
        ({"tensor_model_parallel_size": 0}, 1, "trainer.strategy.tensor_model_parallel_size"),
    ],
)
def test_impossible_layouts_name_the_field(fields: dict, world: int, field: str) -> None:
    err = _error(check_layout, MegatronStrategy(**fields), model_config=TINY, world_size=world)
    assert err.field == field


def test_layout_checks_experts_and_batches() -> None:
    moe = MixtralTinyConfig()
    check_layout(MegatronStrategy(expert_model_parallel_size=2), model_config=moe, world_size=2)
    err = _error(check_layout, MegatronStrategy(tensor_model_parallel_size=2), model_config=moe, world_size=2)
    assert err.field == "trainer.strategy.sequence_parallel"
    err = _error(check_layout, MegatronStrategy(expert_model_parallel_size=8), model_config=moe, world_size=8)
    assert "num_moe_experts=4" in err.problem
    err = _error(
        check_layout, MegatronStrategy(), model_config=TINY, world_size=2, global_batch_size=6, micro_batch_size=2
    )
    assert err.field == "data.global_batch_size" and "multiple of 4" in err.fix
    vp = MegatronStrategy(pipeline_model_parallel_size=2, virtual_pipeline_model_parallel_size=2)
    err = _error(check_layout, vp, model_config=TINY, world_size=2, global_batch_size=6, micro_batch_size=2)
    assert err.field == "data.global_batch_size" and "interleaved" in err.problem
    check_layout(
        MegatronStrategy(tensor_model_parallel_size=2, pipeline_model_parallel_size=2,
                         virtual_pipeline_model_parallel_size=2, sequence_parallel=True),
        model_config=TINY, world_size=8, global_batch_size=8, micro_batch_size=2,
    )


def test_gpu_recipe_on_cpu_machine_fails_before_launch() -> None:
    err = _error(check_trainer, Trainer(accelerator="gpu", devices=8), model_config=TINY, cuda=False)
    assert err.field == "trainer.accelerator" and "no CUDA GPU" in err.problem
    check_trainer(Trainer(accelerator="gpu", devices=8), model_config=TINY, cuda=True)


@pytest.mark.parametrize(
    "trainer,config,field",
    [
        (Trainer(plugins=MegatronMixedPrecision("bf16-mixed", fp8="hybrid")), TINY, "trainer.plugins.fp8"),
        (Trainer(), LlamaTinyConfig(transformer_layer_spec="transformer_engine"),
         "model.config.transformer_layer_spec"),
        (Trainer(), MixtralTinyConfig(moe_grouped_gemm=True), "model.config.moe_grouped_gemm"),
        (Trainer(strategy=MegatronStrategy(context_parallel_size=2)), TINY,
         "trainer.strategy.context_parallel_size"),
        (Trainer(accumulate_grad_batches=4), TINY, "trainer.accumulate_grad_batches"),
        (Trainer(accelerator="tpu"), TINY, "trainer.accelerator"),
    ],
)
def test_gpu_only_features_rejected_on_cpu(trainer: Trainer, config, field: str) -> None:
    assert _error(check_trainer, trainer, model_config=config, cuda=False).field == field


def test_fp8_accepted_with_cuda() -> None:
    check_trainer(Trainer(plugins=MegatronMixedPrecision("bf16-mixed", fp8="hybrid")), model_config=TINY, cuda=True)


def test_bad_model_and_optimizer_values() -> None:
    assert _error(LlamaTinyConfig(activation="swishglu").validate).field == "model.config.activation"
    assert "did you mean 'swiglu'" in str(_error(LlamaTinyConfig(activation="swishglu").validate))
    bad = MegatronOptimizerModule(OptimizerConfig(optimizer="adamw"))
    assert _error(bad.validate).field == "optim.config.optimizer"
    sched = MegatronOptimizerModule(OptimizerConfig(), CosineAnnealingScheduler(warmup_steps=10, max_steps=5))
    assert _error(sched.validate).field == "optim.lr_scheduler.max_steps"


def test_schedulers_map_to_megatron_arguments() -> None:
    cos = CosineAnnealingScheduler(warmup_steps=10, constant_steps=20, min_lr=1e-5).megatron_args(100)
    assert cos == {"lr_warmup_steps": 10, "lr_decay_steps": 80, "lr_decay_style": "cosine", "min_lr": 1e-5}
    wsd = WarmupStableDecayScheduler(warmup_steps=10, decay_fraction=0.2).megatron_args(100)
    assert wsd["lr_decay_style"] == "WSD" and wsd["wsd_decay_steps"] == 20


def test_llama3_8b_maps_to_megatron_transformer_config() -> None:
    from nemolite.llm.gpt.model import megatron_config as mc

    tf = mc.transformer_config(Llama3Config8B(), MegatronStrategy(tensor_model_parallel_size=1))
    assert (tf.num_layers, tf.hidden_size, tf.ffn_hidden_size) == (32, 4096, 14336)
    assert (tf.num_attention_heads, tf.num_query_groups, tf.kv_channels) == (32, 8, 128)
    assert tf.gated_linear_unit and tf.activation_func.__name__ == "silu"
    assert tf.normalization == "RMSNorm" and not tf.add_bias_linear
    assert mc.padded_vocab_size(128256, 128, 8) == 129024


def test_gpt_model_spec_is_positional_like_nemo() -> None:
    # NeMo 2.0: GPTModel(config, optim=None, tokenizer=None, ...); the built module keeps both.
    config, optim = LlamaTinyConfig(num_layers=3), MegatronOptimizerModule(OptimizerConfig(lr=1e-4))
    model = GPTModel(config, optim)
    assert model.config is config and model.optim is optim and model.tokenizer is None
    module = model.build()
    assert module.config is config and module.optim is optim


def test_devices_reconciled_with_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    from nemolite.lightning.megatron_trainer import launched_devices

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert launched_devices(Trainer(devices=1), 1) == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert launched_devices(Trainer(devices="auto"), 1) == 2
    assert launched_devices(Trainer(devices=2), 2) == 2
    err = _error(launched_devices, Trainer(devices=1), 1)
    assert err.field == "trainer.devices" and "trainer.devices=2" in err.fix


def test_gradient_clip_val_must_match_megatron_clip_grad() -> None:
    check_clip(Trainer(gradient_clip_val=1.0), 1.0)
    check_clip(Trainer(), 0.5)
    assert _error(check_clip, Trainer(gradient_clip_val=1.0), 0.5).field == "trainer.gradient_clip_val"
