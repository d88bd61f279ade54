"""Speech recognition: `from nemolite import asr`.

NeMo's names: `asr.EncDecCTCModel`, `asr.EncDecCTCModelBPE`, `asr.ASRModel.restore_from(path)`,
the modules NeMo's configs name (`asr.AudioToMelSpectrogramPreprocessor`, `asr.ConformerEncoder`,
...), `asr.CTCLoss` and `asr.word_error_rate`. Everything here loads on first use, so importing
the namespace does not import torch or lightning; the verbs (`asr.train`, `asr.transcribe`, ...)
and building an ASR recipe import nemo-run (which imports torch) but not Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "train": "nemolite.asr.api",
    "finetune": "nemolite.asr.api",
    "transcribe": "nemolite.asr.api",
    "evaluate": "nemolite.asr.api",
    "tokenizer": "nemolite.asr.api",
    "FastConformerCTC": "nemolite.asr.models.spec",
    "AudioToTextDataModule": "nemolite.asr.data.module",
    "WERProgressBar": "nemolite.asr.progress",
    "ASRModel": "nemolite.asr.models.base",
    "EncDecCTCModel": "nemolite.asr.models.ctc",
    "EncDecCTCModelBPE": "nemolite.asr.models.ctc_bpe",
    "AudioToMelSpectrogramPreprocessor": "nemolite.asr.modules.audio_preprocessing",
    "SpectrogramAugmentation": "nemolite.asr.modules.spec_augment",
    "ConformerEncoder": "nemolite.asr.modules.conformer_encoder",
    "ConvASRDecoder": "nemolite.asr.modules.conv_asr",
    "CTCLoss": "nemolite.asr.losses",
    "word_error_rate": "nemolite.asr.metrics",
    "edit_distance": "nemolite.asr.metrics",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nemolite.asr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(_LAZY)
