"""Heavy: the Lightning callback that turns a LoRA spec into adapters on the engine's megatron model.

Timing. Lightning (trainer.py `_run`) calls callbacks' `setup`, then the module's `configure_model`
(which builds the megatron chunks), then the strategy's `setup` (megatron DDP + optimizer), then
`on_fit_start`. Adapters must exist, and the base must be frozen, before DDP and the optimizer
are built, so `setup` builds the model itself (`configure_model` is idempotent, as Lightning asks
of it; the engine's returns at once when the chunks exist) and transforms it there.

Weights. A LoRA run starts from `resume.restore_config.path`. `RestoreWeights`
(lightning/callbacks/restore.py) would load it at `on_fit_start` through the strategy, whose template
is the finished model (adapters included) plus the optimizer (adapters only), neither of which a
pretraining checkpoint holds. So, as NeMo's PEFT does, the base weights are loaded here into the
model *before* adapters are added, and RestoreWeights is told the model state is taken care of.
Resuming an interrupted LoRA run goes through Lightning's `ckpt_path` as any run does: its
checkpoints hold the full model (base and adapters) and the adapters' optimizer state.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl

from nemolite.errors import ConfigError

if TYPE_CHECKING:
    from nemolite.llm.peft.lora import LoRA

log = logging.getLogger("nemolite.peft")


class LoRACallback(pl.Callback):
    """Adds LoRA adapters to the LightningModule's megatron chunks before DDP and the optimizer."""

    def __init__(self, spec: LoRA) -> None:
        self.spec = spec
        self.adapted: list[str] = []

    def setup(self, trainer: pl.Trainer, pl_module: Any, stage: str) -> None:
        """Builds the model, restores the base weights if asked, then freezes it and adds adapters."""
        if self.adapted:
            return
        # Recorded in every checkpoint's marker, so export and merge_lora rebuild the adapters.
        seed = int(getattr(getattr(pl_module, "config", None), "seed", 0) or 0)
        trainer.nemolite_peft = {"method": self.spec.method, **dataclasses.asdict(self.spec), "seed": seed}  # type: ignore[attr-defined]
        strategy = trainer.strategy
        with (
            strategy.tensor_init_context(),
            strategy.model_sharded_context(),
            trainer.precision_plugin.module_init_context(),
        ):
            pl_module.configure_model()
        chunks = list(pl_module.chunks)
        restore = _take_over_restore(trainer)
        if restore is not None and restore[0].load_model_state:
            from nemolite.lightning import megatron_checkpoint as ckpt

            ckpt.load_model_weights(chunks, restore[1])
            log.info("%s: base weights from %s", type(self.spec).__name__, restore[1])
        from nemolite.llm.peft.lora_transform import apply_lora

        seed = int(getattr(getattr(pl_module, "config", None), "seed", 0) or 0)
        self.adapted = apply_lora(chunks, self.spec, seed=seed)
        if not self.adapted:
            raise ConfigError("peft.target_modules", list(self.spec.target_modules),
                              "no layer of this model has these names", "use linear_qkv, linear_proj, "
                              "linear_fc1 and/or linear_fc2")
        if restore is not None and restore[0].adapter_path:
            load_adapters(chunks, Path(restore[0].adapter_path))
        _log_trainable(chunks, len(self.adapted), type(self.spec).__name__)


def _take_over_restore(trainer: pl.Trainer) -> tuple[Any, Path] | None:
    """The (RestoreConfig, checkpoint dir) a RestoreWeights callback holds; it keeps nothing to load."""
    from nemolite.lightning.callbacks.restore import RestoreWeights

    for cb in getattr(trainer, "callbacks", []):
        if isinstance(cb, RestoreWeights):
            config = cb.config
            if config.load_optim_state:
                raise ConfigError("resume.restore_config.load_optim_state", True,
                                  "LoRA trains new adapter weights: the checkpoint's optimizer state "
                                  "is for other parameters", "set it to false for a LoRA fine-tune")
            cb.config = dataclasses.replace(config, load_model_state=False)
            return config, cb.path
    return None


def load_adapters(chunks: list[Any], path: Path) -> None:
    """Loads only the adapter weights of a LoRA checkpoint (`RestoreConfig.adapter_path`)."""
    from nemolite.errors import DataFileError
    from nemolite.lightning import megatron_checkpoint as ckpt

    if not path.is_dir():
        raise DataFileError(path, "no such checkpoint directory",
                            "point resume.restore_config.adapter_path at a LoRA run's checkpoint")
    full = ckpt.model_sharded_state_dict(chunks)
    template = {
        name: {k: v for k, v in sub.items() if "_adapter." in k} for name, sub in full.items()
    }
    loaded = ckpt.load({"state_dict": template}, path)["state_dict"]
    for i, chunk in enumerate(chunks):
        missing = ckpt.unwrap(chunk).load_state_dict(loaded[f"model{i}"], strict=False)
        if missing.unexpected_keys:
            raise RuntimeError(f"adapter keys not in the model: {missing.unexpected_keys[:3]}")
    log.info("LoRA: adapter weights from %s", path)


def _log_trainable(chunks: list[Any], layers: int, method: str = "LoRA") -> None:
    total = sum(p.numel() for c in chunks for p in c.parameters())
    trainable = sum(p.numel() for c in chunks for p in c.parameters() if p.requires_grad)
    log.info("%s: %d adapters, %s trainable of %s parameters (%.3f%%) on this rank",
             method, layers, f"{trainable:,}", f"{total:,}", 100.0 * trainable / max(total, 1))
