"""The neural modules NeMo's ASR configs name: preprocessor, SpecAugment, encoder, decoder."""

from nemolite.asr.modules.audio_preprocessing import AudioToMelSpectrogramPreprocessor
from nemolite.asr.modules.conformer_encoder import ConformerEncoder
from nemolite.asr.modules.conv_asr import ConvASRDecoder
from nemolite.asr.modules.spec_augment import SpectrogramAugmentation

__all__ = [
    "AudioToMelSpectrogramPreprocessor",
    "ConformerEncoder",
    "ConvASRDecoder",
    "SpectrogramAugmentation",
]
