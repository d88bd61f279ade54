"""The strategy's checkpoint contract: torch_dist save/load of model + optimizer + trainer state.

Save after 2 steps, resume in a fresh trainer, train to 4: steps 3-4 equal an uninterrupted run.
(AutoResume / ModelCheckpoint end-to-end resume tests belong to tests/.../test_resume_*.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nemolite.backends import megatron_version
from nemolite.lightning.optim import (
    CosineAnnealingScheduler,
    MegatronOptimizerModule,
    OptimizerConfig,
)
from nemolite.lightning.strategy import MegatronStrategy
from nemolite.lightning.trainer import Trainer
from nemolite.llm.gpt.data.mock import MockDataModule
from nemolite.llm.gpt.model import GPTModel, LlamaTinyConfig
from nemolite.llm.training import build_run

SEQ = 64


def _run(max_steps: int, ckpt_path: Path | None = None, save_to: Path | None = None,
         distributed: bool = False, async_save: bool = False) -> list[float]:
    config = LlamaTinyConfig(num_layers=2, hidden_size=64, ffn_hidden_size=176, num_attention_heads=4,
                             num_query_groups=2, seq_length=SEQ,
                             hidden_dropout=0.1, attention_dropout=0.1)  # resume must restore RNG
    optim = MegatronOptimizerModule(OptimizerConfig(lr=1e-2, use_distributed_optimizer=distributed), CosineAnnealingScheduler(warmup_steps=1, max_steps=4))
    trainer = Trainer(accelerator="cpu", devices=1, max_steps=max_steps, strategy=MegatronStrategy(ckpt_async_save=async_save),
                      enable_progress_bar=False, enable_checkpointing=False, limit_val_batches=0)
    data = MockDataModule(seq_length=SEQ, micro_batch_size=2, global_batch_size=4)
    pl_trainer, dm, module = build_run(model=GPTModel(config, optim=optim), data=data, trainer=trainer)
    pl_trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None)
    if save_to is not None:
        pl_trainer.save_checkpoint(str(save_to))
        pl_trainer.strategy.finalize_async_saves(blocking=True)
    return module.train_losses


@pytest.mark.parametrize(
    "distributed,async_save", [(False, False), (True, False), (False, True)],
    ids=["adam", "distributed_adam", "adam_async_save"],
)
def test_resume_from_torch_dist_checkpoint_continues_exactly(
    tmp_path: Path, distributed: bool, async_save: bool
) -> None:
    ckpt = tmp_path / "step2.ckpt"
    first = _run(2, save_to=ckpt, distributed=distributed, async_save=async_save)
    assert (ckpt / "metadata.json").exists()
    # megatron-core 0.16 writes the common part to common.pt; 0.19 stores it in the torch_dist shards.
    assert (ckpt / "common.pt").exists() != megatron_version.at_least((0, 19))
    assert json.loads((ckpt / "metadata.json").read_text())["sharded_backend"] == "torch_dist"
    resumed = _run(4, ckpt_path=ckpt, distributed=distributed)
    straight = _run(4, distributed=distributed)
    assert first == straight[:2]
    # Same process, same arithmetic: model, Adam moments, LR schedule and data position restored.
    assert resumed == straight[2:], (resumed, straight)
