"""Waveform -> log-mel features: NeMo's `AudioToMelSpectrogramPreprocessor`.

The arithmetic follows NeMo's `FilterbankFeatures` (nemo/collections/asr/parts/preprocessing/
features.py) step for step, because checkpoints were trained on exactly these features: dither
(training only), pre-emphasis masked to each signal's length, a centred zero-padded `torch.stft`
with a symmetric window, power spectrum, Slaney mel filterbank, log with an additive (or clamping)
guard, per-feature normalisation over the valid frames, zeroed padding and optional padding of the
time axis to a multiple of `pad_to`. The state-dict keys (`featurizer.window`, `featurizer.fb`)
are NeMo's, so the filterbank stored in a `.nemo` file is the one used.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from nemolite.asr.modules.mel import mel_filterbank

_STD_GUARD = 1e-5  # NeMo's CONSTANT: added to the per-feature std, and the training dither
_WINDOWS = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
    "bartlett": torch.bartlett_window,
}


def normalize_batch(x: torch.Tensor, seq_len: torch.Tensor, normalize_type: Any) -> torch.Tensor:
    """Normalises (B, D, T) features over each utterance's valid frames."""
    if normalize_type == "per_feature":
        valid = torch.arange(x.shape[2], device=x.device)[None, :] < seq_len[:, None]
        count = valid.sum(dim=1)[:, None]
        mean = torch.where(valid[:, None, :], x, 0.0).sum(dim=2) / count
        centred = torch.where(valid[:, None, :], x - mean[:, :, None], 0.0)
        # Unbiased estimator, as NeMo; a one-frame utterance gets std 0 instead of NaN.
        std = torch.sqrt(centred.pow(2).sum(dim=2) / (count - 1.0))
        std = std.masked_fill(std.isnan(), 0.0) + _STD_GUARD
        return (x - mean[:, :, None]) / std[:, :, None]
    if normalize_type == "all_features":
        means = torch.stack([x[i, :, : int(n)].mean() for i, n in enumerate(seq_len)])
        stds = torch.stack([x[i, :, : int(n)].std() for i, n in enumerate(seq_len)]) + _STD_GUARD
        return (x - means.view(-1, 1, 1)) / stds.view(-1, 1, 1)
    return x


class FilterbankFeatures(nn.Module):
    """Log-mel filterbank features; see `AudioToMelSpectrogramPreprocessor` for the arguments."""

    # Registered buffers (typed here: nn.Module.__getattr__ would give `Tensor | Module`).
    window: torch.Tensor | None
    fb: torch.Tensor

    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        n_window_size: int = 320,
        n_window_stride: int = 160,
        window: str = "hann",
        normalize: Any = "per_feature",
        n_fft: int | None = None,
        preemph: float | None = 0.97,
        nfilt: int = 64,
        lowfreq: float = 0,
        highfreq: float | None = None,
        log: bool = True,
        log_zero_guard_type: str = "add",
        log_zero_guard_value: float | str = 2**-24,
        dither: float = _STD_GUARD,
        pad_to: int = 16,
        exact_pad: bool = False,
        pad_value: float = 0.0,
        mag_power: float = 2.0,
        mel_norm: str | None = "slaney",
    ) -> None:
        super().__init__()
        if log_zero_guard_type not in ("add", "clamp"):
            raise ValueError(f"log_zero_guard_type={log_zero_guard_type!r}: use 'add' or 'clamp'")
        if exact_pad and n_window_stride % 2:
            raise ValueError(f"exact_pad=True needs an even n_window_stride, got {n_window_stride}")
        if window not in _WINDOWS and window not in ("none", None):
            raise ValueError(f"window={window!r}: use one of {sorted(_WINDOWS)}")
        self.sample_rate = sample_rate
        self.win_length = n_window_size
        self.hop_length = n_window_stride
        self.n_fft = n_fft or 2 ** math.ceil(math.log2(n_window_size))
        self.exact_pad = exact_pad
        self.stft_pad_amount = (self.n_fft - self.hop_length) // 2 if exact_pad else None
        self.normalize, self.log, self.dither = normalize, log, dither
        self.preemph, self.nfilt, self.pad_to, self.pad_value = preemph, nfilt, pad_to, pad_value
        self.mag_power = mag_power
        self.log_zero_guard_type, self.log_zero_guard_value = log_zero_guard_type, log_zero_guard_value
        window_fn = _WINDOWS.get(window) if isinstance(window, str) else None
        # Symmetric window (periodic=False), as NeMo; stored in the state dict under this name.
        self.register_buffer("window", window_fn(n_window_size, periodic=False) if window_fn else None)
        fb = mel_filterbank(sample_rate, self.n_fft, nfilt, lowfreq, highfreq, norm=mel_norm)
        self.register_buffer("fb", torch.tensor(fb, dtype=torch.float32).unsqueeze(0))

    def get_seq_len(self, seq_len: torch.Tensor) -> torch.Tensor:
        """Number of frames for signals of `seq_len` samples."""
        pad = 2 * self.stft_pad_amount if self.stft_pad_amount is not None else self.n_fft // 2 * 2
        return torch.floor_divide(seq_len + pad - self.n_fft, self.hop_length).to(torch.long)

    def _guard(self, x: torch.Tensor) -> float:
        value = self.log_zero_guard_value
        if isinstance(value, str):
            if value not in ("tiny", "eps"):
                raise ValueError(f"log_zero_guard_value={value!r}: use a number, 'tiny' or 'eps'")
            return float(getattr(torch.finfo(x.dtype), value))
        return float(value)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, seq_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n_samples = seq_len
        frames = self.get_seq_len(seq_len)
        frames = torch.where(seq_len == 0, torch.zeros_like(frames), frames)
        if self.stft_pad_amount is not None:
            x = nn.functional.pad(x, (self.stft_pad_amount, self.stft_pad_amount))
        if self.training and self.dither > 0:
            x = x + self.dither * torch.randn_like(x)
        if self.preemph is not None:
            inside = torch.arange(x.shape[1], device=x.device)[None, :] < n_samples[:, None]
            x = torch.cat((x[:, :1], x[:, 1:] - self.preemph * x[:, :-1]), dim=1)
            x = x.masked_fill(~inside, 0.0)
        with torch.autocast(x.device.type, enabled=False):
            spec = torch.stft(
                x,
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                center=not self.exact_pad,
                window=None if self.window is None else self.window.to(device=x.device, dtype=torch.float),
                return_complex=True,
                pad_mode="constant",
            )
        spec = torch.sqrt(torch.view_as_real(spec).pow(2).sum(-1))
        if self.mag_power != 1.0:
            spec = spec.pow(self.mag_power)
        with torch.autocast(spec.device.type, enabled=False):
            feats = torch.matmul(self.fb.to(spec.dtype), spec)
        if self.log:
            guard = self._guard(feats)
            if self.log_zero_guard_type == "add":
                feats = torch.log(feats + guard)
            else:
                feats = torch.log(torch.clamp(feats, min=guard))
        if self.normalize:
            feats = normalize_batch(feats, frames, self.normalize)
        beyond = torch.arange(feats.size(-1), device=feats.device)[None, :] >= frames[:, None]
        feats = feats.masked_fill(beyond[:, None, :], self.pad_value)
        if self.pad_to > 0 and feats.size(-1) % self.pad_to:
            extra = self.pad_to - feats.size(-1) % self.pad_to
            feats = nn.functional.pad(feats, (0, extra), value=self.pad_value)
        return feats, frames


class AudioToMelSpectrogramPreprocessor(nn.Module):
    """Converts batches of waveforms to log-mel spectrograms, as NeMo's module of the same name.

    Args:
        sample_rate: sample rate of the input audio.
        window_size: STFT window in seconds (or `n_window_size` in samples).
        window_stride: STFT hop in seconds (or `n_window_stride` in samples).
        window: window function: hann, hamming, blackman or bartlett.
        normalize: "per_feature", "all_features", or anything else for none.
        n_fft: FFT size (default: the next power of two above the window).
        preemph: pre-emphasis coefficient, or None.
        features: number of mel bands.
        lowfreq: lowest mel band edge in Hz.
        highfreq: highest mel band edge in Hz (default: Nyquist).
        log: take the log of the mel energies.
        log_zero_guard_type: "add" or "clamp" the guard before the log.
        log_zero_guard_value: the guard: a number, "tiny" or "eps".
        dither: white-noise amplitude added in training.
        pad_to: pad the time axis to a multiple of this (0: no padding).
        frame_splicing: must be 1 (frame stacking is not supported).
        exact_pad: pad so that frames = samples // hop (no centring).
        pad_value: value of padded frames.
        mag_power: exponent of the magnitude spectrum (2: power).
        mel_norm: "slaney" area normalisation of the filters, or None.
        use_torchaudio: accepted for config compatibility; the torch implementation is used.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        window_size: float | None = 0.02,
        window_stride: float | None = 0.01,
        n_window_size: int | None = None,
        n_window_stride: int | None = None,
        window: str = "hann",
        normalize: Any = "per_feature",
        n_fft: int | None = None,
        preemph: float | None = 0.97,
        features: int = 64,
        lowfreq: float = 0,
        highfreq: float | None = None,
        log: bool = True,
        log_zero_guard_type: str = "add",
        log_zero_guard_value: float | str = 2**-24,
        dither: float = 1e-5,
        pad_to: int = 16,
        frame_splicing: int = 1,
        exact_pad: bool = False,
        pad_value: float = 0.0,
        mag_power: float = 2.0,
        mel_norm: str | None = "slaney",
        **deprecated: Any,
    ) -> None:
        super().__init__()
        unknown = set(deprecated) - {
            "use_torchaudio", "rng", "nb_augmentation_prob", "nb_max_freq", "stft_exact_pad",
            "stft_conv", "max_duration", "use_grads",
        }  # fmt: skip
        if unknown:
            raise TypeError(f"AudioToMelSpectrogramPreprocessor: unknown arguments {sorted(unknown)}")
        if frame_splicing != 1:
            raise ValueError(f"frame_splicing={frame_splicing}: only 1 is supported")
        if window_size and n_window_size:
            raise ValueError("give window_size (seconds) or n_window_size (samples), not both")
        if window_stride and n_window_stride:
            raise ValueError("give window_stride (seconds) or n_window_stride (samples), not both")
        if window_size:
            n_window_size = int(window_size * sample_rate)
        if window_stride:
            n_window_stride = int(window_stride * sample_rate)
        if not n_window_size or not n_window_stride or n_window_size <= 0 or n_window_stride <= 0:
            raise ValueError("the STFT window and stride must be positive")
        self._sample_rate = sample_rate
        self.win_length, self.hop_length = n_window_size, n_window_stride
        self.featurizer = FilterbankFeatures(
            sample_rate=sample_rate,
            n_window_size=n_window_size,
            n_window_stride=n_window_stride,
            window=window,
            normalize=normalize,
            n_fft=n_fft,
            preemph=preemph,
            nfilt=features,
            lowfreq=lowfreq,
            highfreq=highfreq,
            log=log,
            log_zero_guard_type=log_zero_guard_type,
            log_zero_guard_value=log_zero_guard_value,
            dither=dither,
            pad_to=pad_to,
            exact_pad=exact_pad,
            pad_value=pad_value,
            mag_power=mag_power,
            mel_norm=mel_norm,
        )

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def filter_banks(self) -> torch.Tensor:
        return self.featurizer.fb

    @torch.no_grad()
    def forward(
        self, input_signal: torch.Tensor, length: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, samples) float waveforms and lengths in samples -> (B, features, frames), frames."""
        # NeMo runs the featurizer in float32 whatever the model's dtype (low precision hurts WER).
        feats, frames = self.featurizer(input_signal.to(torch.float32), length)
        return feats, frames
