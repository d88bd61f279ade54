"""Checks of an ASR task's built arguments, before anything is launched or written."""

from __future__ import annotations

from typing import Any

from nemolite.errors import ConfigError


def check_asr_task(specs: dict[str, Any], on_this_machine: bool) -> None:
    """Validates the specs of `nemo asr train/finetune` (and the paths of the other verbs)."""
    from nemolite.lightning.ddp_strategy import DDPStrategy

    for name in ("model", "data", "log"):
        spec = specs.get(name)
        if spec is not None and hasattr(spec, "validate"):
            spec.validate()
    trainer = specs.get("trainer")
    if trainer is not None:
        if not isinstance(trainer.strategy, DDPStrategy):
            raise ConfigError("trainer.strategy", type(trainer.strategy).__name__,
                              "ASR models train with plain data parallelism", "set trainer.strategy=DDPStrategy()")  # fmt: skip
        if on_this_machine:
            from nemolite.backends.device import cuda_present
            from nemolite.lightning.trainer import check_trainer

            check_trainer(trainer, model_config=None, cuda=cuda_present())
    model, data = specs.get("model"), specs.get("data")
    if model is not None and data is not None and model.vocabulary == "bpe" and model.tokenizer_dir is None \
            and model.restore_from is None and data.train_manifest is not None:  # fmt: skip
        raise ConfigError("model.tokenizer_dir", None, "a BPE model on your own manifests needs a tokenizer",
                          "train one with `nemo asr tokenizer manifest=... vocab_size=... output_dir=...` and set model.tokenizer_dir")  # fmt: skip
