"""Slaney-style mel filterbank, numerically the same as `librosa.filters.mel(norm="slaney")`.

NeMo builds its filterbank with librosa; librosa is a heavy dependency (numba, scipy) that we do
not need for one matrix. The arithmetic below follows librosa's order of operations (float64
frequencies, a float32 weight matrix, the Slaney area normalisation applied in place on the
float32 matrix), so the result is bit-identical to librosa's, which tests/asr checks against the
filterbank stored in a NeMo-written checkpoint.
"""

from __future__ import annotations

import numpy as np

# Slaney's Auditory Toolbox mel scale: linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(freq: float) -> float:
    """Slaney mel value of one frequency in Hz."""
    mel = freq / _F_SP
    if freq >= _MIN_LOG_HZ:
        mel = _MIN_LOG_MEL + np.log(freq / _MIN_LOG_HZ) / _LOGSTEP
    return float(mel)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Frequencies in Hz of an array of Slaney mel values."""
    freqs = _F_SP * mels
    log_t = mels >= _MIN_LOG_MEL
    freqs[log_t] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels[log_t] - _MIN_LOG_MEL))
    return freqs


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular mel filters, shape (n_mels, n_fft // 2 + 1), float32.

    Args:
        sample_rate: audio sample rate in Hz.
        n_fft: FFT size.
        n_mels: number of mel bands.
        fmin: lowest band edge in Hz.
        fmax: highest band edge in Hz (default: Nyquist).
        norm: "slaney" divides each triangle by its width in Hz (constant energy per band);
            None keeps peak-1 triangles.
    """
    if norm not in ("slaney", None):
        raise ValueError(f"mel_norm={norm!r}: unsupported; use 'slaney' or None")
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    # np.fft.rfftfreq's own arithmetic: integer bins times 1 / (n * d).
    fft_freqs = np.arange(n_fft // 2 + 1) * (1.0 / (n_fft * (1.0 / sample_rate)))
    mel_points = np.linspace(hz_to_mel(float(fmin)), hz_to_mel(fmax), n_mels + 2)
    mel_freqs = mel_to_hz(mel_points)
    widths = np.diff(mel_freqs)
    ramps = np.subtract.outer(mel_freqs, fft_freqs)
    weights = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for i in range(n_mels):
        rising = -ramps[i] / widths[i]
        falling = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0, np.minimum(rising, falling))
    if norm == "slaney":
        weights *= (2.0 / (mel_freqs[2 : n_mels + 2] - mel_freqs[:n_mels]))[:, np.newaxis]
    return weights
