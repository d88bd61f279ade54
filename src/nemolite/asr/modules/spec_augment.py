"""SpecAugment (frequency and time masks) and SpecCutout: NeMo's `SpectrogramAugmentation`.

Applied by the models in training only. Masks are drawn from torch's global generator, so a
seeded run (and a resumed one, whose RNG state is restored) draws the same masks.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class SpectrogramAugmentation(nn.Module):
    """Masks random frequency bands, time spans and rectangles of (B, D, T) spectrograms.

    Args:
        freq_masks: number of frequency masks per utterance.
        time_masks: number of time masks per utterance.
        freq_width: maximum width of a frequency mask, in bands.
        time_width: maximum width of a time mask: frames (int) or a fraction of the utterance's
            length (float).
        rect_masks: number of SpecCutout rectangles.
        rect_time: maximum rectangle width in frames.
        rect_freq: maximum rectangle height in bands.
        mask_value: value written into masked cells.
    """

    def __init__(
        self,
        freq_masks: int = 0,
        time_masks: int = 0,
        freq_width: int = 10,
        time_width: float = 10,
        rect_masks: int = 0,
        rect_time: int = 5,
        rect_freq: int = 20,
        mask_value: float = 0.0,
        **ignored: Any,  # rng, use_vectorized_spec_augment, use_numba_spec_augment: NeMo-only knobs
    ) -> None:
        super().__init__()
        self.freq_masks, self.time_masks = freq_masks, time_masks
        self.freq_width, self.time_width = freq_width, time_width
        self.rect_masks, self.rect_time, self.rect_freq = rect_masks, rect_time, rect_freq
        self.mask_value = mask_value

    @torch.no_grad()
    def forward(self, input_spec: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        batch, n_freq, n_time = input_spec.shape
        keep = torch.ones_like(input_spec, dtype=torch.bool)
        freqs = torch.arange(n_freq, device=input_spec.device)
        times = torch.arange(n_time, device=input_spec.device)
        for b in range(batch):
            frames = int(length[b])
            for _ in range(self.freq_masks):
                width = int(torch.randint(0, self.freq_width + 1, ()))
                start = int(torch.randint(0, max(1, n_freq - width + 1), ()))
                keep[b, start : start + width, :] = False
            max_time = self.time_width
            if isinstance(max_time, float):
                max_time = int(max_time * frames)
            for _ in range(self.time_masks):
                width = int(torch.randint(0, max(0, int(max_time)) + 1, ()))
                start = int(torch.randint(0, max(1, frames - width + 1), ()))
                keep[b, :, start : start + width] = False
            for _ in range(self.rect_masks):
                f0 = int(torch.randint(0, max(1, n_freq - self.rect_freq + 1), ()))
                t0 = int(torch.randint(0, max(1, frames - self.rect_time + 1), ()))
                fw = int(torch.randint(0, self.rect_freq + 1, ()))
                tw = int(torch.randint(0, self.rect_time + 1, ()))
                inside = (freqs[:, None] >= f0) & (freqs[:, None] < f0 + fw)
                inside = inside & (times[None, :] >= t0) & (times[None, :] < t0 + tw)
                keep[b] &= ~inside
        return input_spec.masked_fill(~keep, self.mask_value)
