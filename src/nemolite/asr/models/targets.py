"""NeMo's class paths (`target`, `_target_` in a `.nemo` config) and the nemolite classes they mean.

This table is the one place where NeMo's names are mapped: reading a `.nemo` file looks a path up
here, and writing one takes the first NeMo path listed for a nemolite class, so a file written by
nemolite loads into NeMo.
"""

from __future__ import annotations

import importlib
from typing import Any

from nemolite.errors import DataFileError

# NeMo model class path -> nemolite model class path.
MODELS: dict[str, str] = {
    "nemo.collections.asr.models.ctc_models.EncDecCTCModel": "nemolite.asr.models.ctc.EncDecCTCModel",
    "nemo.collections.asr.models.EncDecCTCModel": "nemolite.asr.models.ctc.EncDecCTCModel",
    "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE": "nemolite.asr.models.ctc_bpe.EncDecCTCModelBPE",
    "nemo.collections.asr.models.EncDecCTCModelBPE": "nemolite.asr.models.ctc_bpe.EncDecCTCModelBPE",
}

# NeMo module class path -> nemolite module class path.
MODULES: dict[str, str] = {
    "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor": "nemolite.asr.modules.audio_preprocessing.AudioToMelSpectrogramPreprocessor",
    "nemo.collections.asr.modules.audio_preprocessing.AudioToMelSpectrogramPreprocessor": "nemolite.asr.modules.audio_preprocessing.AudioToMelSpectrogramPreprocessor",
    "nemo.collections.asr.modules.SpectrogramAugmentation": "nemolite.asr.modules.spec_augment.SpectrogramAugmentation",
    "nemo.collections.asr.modules.audio_preprocessing.SpectrogramAugmentation": "nemolite.asr.modules.spec_augment.SpectrogramAugmentation",
    "nemo.collections.asr.modules.ConformerEncoder": "nemolite.asr.modules.conformer_encoder.ConformerEncoder",
    "nemo.collections.asr.modules.conformer_encoder.ConformerEncoder": "nemolite.asr.modules.conformer_encoder.ConformerEncoder",
    "nemo.collections.asr.modules.ConvASRDecoder": "nemolite.asr.modules.conv_asr.ConvASRDecoder",
    "nemo.collections.asr.modules.conv_asr.ConvASRDecoder": "nemolite.asr.modules.conv_asr.ConvASRDecoder",
}


def nemo_name(ours: str, table: dict[str, str]) -> str:
    """The NeMo class path written for the nemolite class path `ours` (the first listed)."""
    return next(theirs for theirs, mine in table.items() if mine == ours)


def supported_models() -> list[str]:
    """Short names of the model classes nemolite reads."""
    return sorted({path.rsplit(".", 1)[1] for path in MODELS})


def _load(path: str) -> Any:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def model_class(target: str | None, source: Any) -> Any:
    """The nemolite model class for NeMo's `target`; unknown types name what is supported."""
    if target is None:
        raise DataFileError(source, "the config has no `target` (model class)", "re-save the model with NeMo >= 1.0")
    if target not in MODELS:
        raise DataFileError(
            source,
            f"model type {target.rsplit('.', 1)[-1]} ({target}) is not supported by nemolite",
            f"supported model types: {', '.join(supported_models())}",
        )
    return _load(MODELS[target])


def build_module(section: str, cfg: dict[str, Any], source: Any, **extra: Any) -> Any:
    """Instantiates the module a config section's `_target_` names, with its other keys."""
    target = cfg.get("_target_")
    if target not in MODULES:
        known = sorted({p.rsplit(".", 1)[1] for p in MODULES})
        raise DataFileError(
            source,
            f"{section}._target_={target!r} is not supported by nemolite",
            f"supported modules: {', '.join(known)}",
        )
    kwargs = {k: v for k, v in cfg.items() if k != "_target_"}
    kwargs.update(extra)
    try:
        return _load(MODULES[target])(**kwargs)
    except (TypeError, ValueError) as exc:
        raise DataFileError(source, f"model.{section}: {exc}", "use a FastConformer/Conformer CTC config") from None
