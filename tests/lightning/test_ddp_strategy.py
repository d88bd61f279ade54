"""`nl.DDPStrategy` trainers (ASR): gradient accumulation is Lightning's there, refused with megatron."""

from __future__ import annotations

import pytest

from nemolite.errors import ConfigError
from nemolite.lightning.ddp_strategy import DDPStrategy
from nemolite.lightning.trainer import Trainer, check_trainer


def test_accumulation_reaches_lightning_under_ddp_only() -> None:
    from nemolite.lightning.megatron_trainer import build_trainer

    spec = Trainer(accelerator="cpu", devices=1, strategy=DDPStrategy(), max_steps=2, accumulate_grad_batches=2)
    assert build_trainer(spec).accumulate_grad_batches == 2
    with pytest.raises(ConfigError) as bad:
        check_trainer(Trainer(strategy=DDPStrategy(), accumulate_grad_batches=0), model_config=None, cuda=False)
    assert bad.value.field == "trainer.accumulate_grad_batches"
    with pytest.raises(ConfigError) as megatron:
        check_trainer(Trainer(accumulate_grad_batches=2), model_config=None, cuda=False)
    assert "megatron accumulates" in megatron.value.problem
