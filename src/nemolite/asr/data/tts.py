"""Offline English speech from eSpeak NG, through the C API of the `espeakng-loader` wheel.

eSpeak NG (GPL-3.0) is a data-making tool here, installed with the `speech-data` extra, never a
dependency of the library: this module loads the shared library with ctypes only when called.
`espeak_Synth` in synchronous mode hands 16-bit mono samples (22.05 kHz) to a callback; voices,
variants (`en-us+f3`), rate (words per minute) and pitch vary the speakers.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from nemolite.errors import ConfigError

_AUDIO_OUTPUT_SYNCHRONOUS = 0x02
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_END_PAUSE = 0x1000
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass(frozen=True)
class Voice:
    """One speaker: an eSpeak voice name with variant, speed and pitch."""

    name: str = "en-us"
    rate: int = 160  # words per minute (eSpeak's default 175)
    pitch: int = 50  # 0..99


class _Engine:
    """The process-wide eSpeak instance (its C state is global, so calls are serialised)."""

    _lock = threading.Lock()
    _instance: _Engine | None = None

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise ConfigError(
                "speech data", "espeak-ng", "the TTS engine is not installed",
                'pip install -e ".[speech-data]" (espeakng-loader, GPL-3.0, data-making only)',
            ) from None
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        data = espeakng_loader.get_data_path().encode()
        self.sample_rate = int(self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, ctypes.c_char_p(data), 0))
        if self.sample_rate <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept alive: the C side holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> _Engine:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _collect(self, samples: Any, count: int, events: Any) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0

    def speak(self, text: str, voice: Voice, seed: int) -> np.ndarray:
        with self._lock:
            if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise ConfigError("voice", voice.name, "eSpeak has no such voice", "use e.g. en-us, en-gb, en-us+f3")
            self.lib.espeak_SetParameter(_RATE, int(voice.rate), 0)
            self.lib.espeak_SetParameter(_PITCH, int(voice.pitch), 0)
            self._chunks = []
            # eSpeak draws noise (bursts, aspiration) from its own generator: seed it per
            # utterance, so the same text and voice always give the same samples.
            self.lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
            data = text.encode("utf-8") + b"\0"
            self.lib.espeak_Synth(
                ctypes.c_char_p(data), len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _END_PAUSE, None, None
            )
            self.lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        return pcm.astype(np.float32) / 32768.0


def synthesize(text: str, voice: Voice = Voice(), seed: int = 0) -> tuple[np.ndarray, int]:
    """Speaks `text` with `voice`: float32 samples in [-1, 1] and the engine's sample rate.

    eSpeak keeps state between utterances (pitch flutter, the wave generator's phase), so an
    utterance depends on the ones before it: the same sequence of calls in a fresh process gives
    the same samples, which is how the speech set is made reproducibly.
    """
    engine = _Engine.get()
    return engine.speak(text, voice, seed), engine.sample_rate
