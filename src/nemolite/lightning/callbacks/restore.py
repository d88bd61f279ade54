"""Loads a checkpoint's weights (and optionally optimizer state) into a fresh run (`RestoreConfig`)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl

from nemolite.lightning.callbacks.checkpoint import trainer_ckpt_path
from nemolite.lightning.resume import RestoreConfig

log = logging.getLogger("nemolite.resume")


class RestoreWeights(pl.Callback):
    """At fit start (model built, optimizer created), loads the state `RestoreConfig` asks for."""

    def __init__(self, config: RestoreConfig, path: Path) -> None:
        self.config = config
        self.path = path

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not (self.config.load_model_state or self.config.load_optim_state):
            return
        checkpoint = trainer.strategy.load_checkpoint(trainer_ckpt_path(self.path))
        if self.config.load_model_state:
            trainer.strategy.load_model_state_dict(checkpoint, strict=True)
        if self.config.load_optim_state:
            trainer.strategy.load_optimizer_state_dict(checkpoint)
        log.info("restored %s from %s", "weights and optimizer" if self.config.load_optim_state
                 else "weights", self.path)
