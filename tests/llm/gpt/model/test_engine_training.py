"""Single-process CPU training through the whole engine: specs -> Lightning -> megatron-core."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from nemolite.lightning.optim import (
    CosineAnnealingScheduler,
    MegatronOptimizerModule,
    OptimizerConfig,
)
from nemolite.lightning.precision import MegatronMixedPrecision
from nemolite.lightning.strategy import MegatronStrategy
from nemolite.lightning.trainer import Trainer
from nemolite.llm.gpt.data.mock import MockDataModule
from nemolite.llm.gpt.model import GPTModel, LlamaTinyConfig
from nemolite.llm.training import build_run

SEQ = 64


def small_llama(**optim_fields: Any) -> GPTModel:
    """LlamaTinyConfig's architecture at a quarter of its width, so a test step takes milliseconds."""
    config = LlamaTinyConfig(num_layers=2, hidden_size=64, ffn_hidden_size=176, num_attention_heads=4,
                             num_query_groups=2, seq_length=SEQ)
    optim = MegatronOptimizerModule(
        OptimizerConfig(**({"lr": 1e-2} | optim_fields)),
        CosineAnnealingScheduler(warmup_steps=2, min_lr=1e-3),
    )
    return GPTModel(config, optim=optim)


def mock_data(global_batch_size: int = 4) -> MockDataModule:
    return MockDataModule(seq_length=SEQ, micro_batch_size=2, global_batch_size=global_batch_size)


def cpu_trainer(max_steps: int, **fields: Any) -> Trainer:
    defaults: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_steps": max_steps,
        "strategy": MegatronStrategy(),
        "enable_progress_bar": False,
        "enable_checkpointing": False,
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
    }
    return Trainer(**(defaults | fields))


def _fit(model, data, trainer):
    pl_trainer, dm, module = build_run(model=model, data=data, trainer=trainer)
    pl_trainer.fit(module, datamodule=dm)
    return pl_trainer, module


def test_llama_trains_and_loss_decreases() -> None:
    pl_trainer, module = _fit(small_llama(), mock_data(), cpu_trainer(12))
    losses = module.train_losses
    assert pl_trainer.global_step == 12 and len(losses) == 12
    # Uniform random byte tokens: nothing to learn, and the padded vocabulary rows (264 -> 384)
    # take no probability (megatron_config.mask_padded_vocab), so the loss starts at log(264).
    assert abs(losses[0] - math.log(264)) < 0.05, losses
    assert len(set(losses)) > 1, losses  # the steps changed the weights
    assert all(torch.isfinite(torch.tensor(losses)))


def test_micro_batches_accumulate_into_one_step() -> None:
    """global 4 / micro 2 = 2 micro-batches per step: the same samples as one micro-batch of 4."""
    _, accumulated = _fit(small_llama(), mock_data(global_batch_size=4), cpu_trainer(3))
    data = mock_data(global_batch_size=4)
    data.micro_batch_size = 4
    _, single = _fit(small_llama(), data, cpu_trainer(3))
    assert accumulated.train_losses == pytest.approx(single.train_losses, rel=1e-5)


def test_bf16_mixed_trains_close_to_fp32() -> None:
    _, fp32 = _fit(small_llama(), mock_data(), cpu_trainer(3))
    _, bf16 = _fit(small_llama(), mock_data(), cpu_trainer(3, plugins=MegatronMixedPrecision("bf16-mixed")))
    chunk = bf16.chunks[0]
    assert any(p.dtype == torch.bfloat16 for p in chunk.parameters())
    # bf16 keeps ~3 significant digits; fp32 main params keep the updates themselves exact.
    assert bf16.train_losses == pytest.approx(fp32.train_losses, rel=2e-2)


def test_run_training_fits_and_validates(tmp_path: Path) -> None:
    trainer = cpu_trainer(2, default_root_dir=str(tmp_path), limit_val_batches=1, val_check_interval=2)
    run_dir = trainer.fit(small_llama(), mock_data())  # the notebook helper, over run_training
    assert run_dir is not None and Path(run_dir).is_relative_to(tmp_path)
    # limit_val_batches counts global batches (2 micro-batches each here), as in NeMo.
    pl_trainer, dm, module = build_run(model=small_llama(), data=mock_data(), trainer=cpu_trainer(
        2, default_root_dir=str(tmp_path), limit_val_batches=2, limit_test_batches=1))
    metrics = pl_trainer.validate(module, datamodule=dm)
    assert pl_trainer.limit_val_batches == 4 and 5.0 < metrics[0]["val_loss"] < 7.0
    tested = pl_trainer.test(module, datamodule=dm)
    assert 5.0 < tested[0]["test_loss"] < 7.0
