"""Reading audio (soundfile) and band-limited resampling in plain torch (no torchaudio, no librosa).

The resampler is a polyphase windowed-sinc filter: rates are reduced by their gcd to `up/down`,
each of the `up` output phases gets its own Hann-windowed sinc kernel, cut off just below the
lower Nyquist frequency, and one strided convolution applies them all.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nemolite.errors import DataFileError


def read_audio(path: str | Path, offset: float = 0.0, duration: float | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the sample rate of (a segment of) an audio file."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as handle:
            rate = handle.samplerate
            if offset:
                handle.seek(int(offset * rate))
            frames = -1 if duration is None else int(duration * rate)
            samples = handle.read(frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        problem = "no such file" if not Path(path).exists() else f"unreadable audio ({exc})"
        raise DataFileError(path, problem, "give a WAV/FLAC/OGG file soundfile can read") from None
    return samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0], rate


def resample(wave: np.ndarray | torch.Tensor, orig_sr: int, new_sr: int, zero_crossings: int = 6, rolloff: float = 0.99) -> np.ndarray:
    """Resamples a 1-D signal from `orig_sr` to `new_sr` Hz; returns float32 numpy."""
    signal = torch.as_tensor(np.asarray(wave), dtype=torch.float64)
    if orig_sr == new_sr:
        return signal.float().numpy()
    g = math.gcd(int(orig_sr), int(new_sr))
    down, up = int(orig_sr) // g, int(new_sr) // g
    cutoff = min(down, up) * rolloff  # in units of the reduced input rate
    width = math.ceil(zero_crossings * down / cutoff)
    taps = torch.arange(-width, width + down, dtype=torch.float64) / down
    t = (taps[None, :] - torch.arange(up, dtype=torch.float64)[:, None] / up) * cutoff
    t = t.clamp(-zero_crossings, zero_crossings)
    window = torch.cos(t * math.pi / zero_crossings / 2) ** 2
    x = t * math.pi
    sinc = torch.where(x == 0, torch.ones_like(x), torch.sin(x) / torch.where(x == 0, torch.ones_like(x), x))
    kernels = (sinc * window * (cutoff / down)).unsqueeze(1)  # (up, 1, taps)
    padded = torch.nn.functional.pad(signal[None, None, :], (width, width + down))
    phases = torch.nn.functional.conv1d(padded, kernels, stride=down)  # (1, up, frames)
    out = phases[0].transpose(0, 1).reshape(-1)
    n_out = math.ceil(up * signal.numel() / down)
    return out[:n_out].float().numpy()


def load_audio(item: Any, sample_rate: int, resample_audio: bool = True) -> np.ndarray:
    """A path or a 1-D array as float32 samples at `sample_rate` (arrays are taken as already there)."""
    if isinstance(item, (np.ndarray, torch.Tensor)):
        wave = np.asarray(item, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(f"audio arrays must be 1-D (samples), got shape {wave.shape}")
        return wave
    wave, rate = read_audio(item)
    if rate != sample_rate:
        if not resample_audio:
            raise DataFileError(item, f"sample rate {rate} Hz, the model expects {sample_rate} Hz", "resample the file or allow resampling")
        wave = resample(wave, rate, sample_rate)
    return wave
