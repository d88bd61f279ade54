"""Loads a checkpoint's weights (and optionally optimizer state) into a fresh run (`RestoreConfig`)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl

from nemolite.lightning.callbacks.checkpoint import trainer_ckpt_path, writes_directory
from nemolite.lightning.resume import RestoreConfig

log = logging.getLogger("nemolite.resume")


class RestoreWeights(pl.Callback):
    """At fit start (model built, optimizer created), loads the state `RestoreConfig` asks for."""

    def __init__(self, config: RestoreConfig, path: Path) -> None:
        self.config = config
        self.path = path

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.config.load_optim_state:
            checkpoint = trainer.strategy.load_checkpoint(trainer_ckpt_path(self.path))
            trainer.strategy.load_model_state_dict(checkpoint, strict=True)
            trainer.strategy.load_optimizer_state_dict(checkpoint)
        elif self.config.load_model_state:
            self._load_weights_only(trainer, pl_module)
        else:
            return
        log.info("restored %s from %s", "weights and optimizer" if self.config.load_optim_state
                 else "weights", self.path)

    def _load_weights_only(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if writes_directory(trainer.strategy):
            # The megatron strategy's load_checkpoint also asks for optimizer shards, and megatron
            # builds that template by resetting the optimizer's state in place
            # (megatron/core/optimizer/optimizer.py sharded_state_dict(is_loading=True)): the next
            # step then fails. Weights alone go through megatron's model-only loader instead.
            from nemolite.lightning.megatron_checkpoint import load_model_weights

            load_model_weights(list(pl_module.chunks), self.path)  # type: ignore[arg-type]
            return
        checkpoint = trainer.strategy.load_checkpoint(trainer_ckpt_path(self.path))
        trainer.strategy.load_model_state_dict(checkpoint, strict=True)
