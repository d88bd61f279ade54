"""tokens/s in the progress line counts training time only, not the validation run in between."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from nemolite.lightning.callbacks import progress
from nemolite.lightning.callbacks.progress import RichStepProgress


def test_validation_time_is_not_counted_as_training(monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    trainer = SimpleNamespace(
        global_step=0, max_steps=20, is_global_zero=False, sanity_checking=False, callback_metrics={},
        datamodule=SimpleNamespace(global_batch_size=8, seq_length=256),
    )
    bar = RichStepProgress(log_every_n_steps=10)
    bar.on_train_start(trainer, None)
    trainer.is_global_zero = True  # log lines, but no live bar in the test
    # 10 steps of 1 s each (2,048 tokens per step), then a 30 s validation, then 10 more steps.
    clock[0], trainer.global_step = 10.0, 10
    with caplog.at_level(logging.INFO, logger="nemolite.train"):
        bar.on_train_batch_end(trainer, None, None, None, 0)
        bar.on_validation_start(trainer, None)
        clock[0] = 40.0
        bar.on_validation_end(trainer, None)
        clock[0], trainer.global_step = 50.0, 20
        bar.on_train_batch_end(trainer, None, None, None, 0)
    rates = [r.getMessage().split("tokens/s ")[1] for r in caplog.records]
    assert rates == ["2,048", "2,048"], rates
