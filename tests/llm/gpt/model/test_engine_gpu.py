"""GPU path: TransformerEngine layers and bf16 train (skipped without CUDA; marked `gpu`)."""

from __future__ import annotations

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_transformer_engine_bf16_trains() -> None:
    pytest.importorskip("transformer_engine")
    from nemolite.lightning.optim import MegatronOptimizerModule, OptimizerConfig
    from nemolite.lightning.precision import MegatronMixedPrecision
    from nemolite.lightning.strategy import MegatronStrategy
    from nemolite.lightning.trainer import Trainer
    from nemolite.llm.gpt.data.mock import MockDataModule
    from nemolite.llm.gpt.model import GPTModel, LlamaTinyConfig
    from nemolite.llm.gpt.model.megatron_config import uses_transformer_engine
    from nemolite.llm.training import build_run

    config = LlamaTinyConfig(transformer_layer_spec="transformer_engine")
    assert uses_transformer_engine(config)
    trainer = Trainer(accelerator="gpu", devices=1, max_steps=20, strategy=MegatronStrategy(),
                      plugins=MegatronMixedPrecision("bf16-mixed"), enable_progress_bar=False,
                      enable_checkpointing=False, limit_val_batches=0)
    model = GPTModel(config, optim=MegatronOptimizerModule(OptimizerConfig(lr=1e-2)))
    data = MockDataModule(seq_length=256, micro_batch_size=4, global_batch_size=8)
    pl_trainer, dm, module = build_run(model=model, data=data, trainer=trainer)
    pl_trainer.fit(module, datamodule=dm)
    losses = module.train_losses
    assert len(losses) == 20 and sum(losses[-3:]) / 3 < losses[0] - 0.1, losses
