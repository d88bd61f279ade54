"""Convolutional subsampling in front of the Conformer: FastConformer's depthwise striding.

`dw_striding` with factor 8 is three stride-2 3x3 convolutions over (time, frequency): one full
convolution, then two (depthwise, pointwise) pairs, each followed by ReLU, and a linear layer from
channels x remaining frequencies to d_model. `striding` uses full convolutions throughout. As in
NeMo 2.x (`MaskedConvSequential`), frames beyond each utterance's length are zeroed before every
layer, so a padded batch gives the same outputs as its utterances one by one. Module indices in
`conv` (0, 2, 3, 5, 6: ReLUs at 1, 4, 7) are NeMo's state-dict keys.
"""

from __future__ import annotations

import math

import torch
from torch import nn

SUPPORTED = ("dw_striding", "striding")


def calc_length(lengths: torch.Tensor, padding: int, kernel_size: int, stride: int, repeat: int) -> torch.Tensor:
    """Output lengths after `repeat` convolutions with total padding `padding` (floor mode)."""
    out = lengths.to(torch.float)
    for _ in range(repeat):
        out = torch.floor((out + padding - kernel_size) / stride + 1.0)
    return out.to(torch.int)


class ConvSubsampling(nn.Module):
    """Subsamples (B, T, feat_in) features by `subsampling_factor` to (B, T', feat_out).

    Args:
        subsampling: "dw_striding" (FastConformer) or "striding".
        subsampling_factor: a power of two.
        feat_in: input features (mel bands).
        feat_out: output size (d_model).
        conv_channels: channels of the convolutions.
    """

    def __init__(
        self,
        subsampling: str,
        subsampling_factor: int,
        feat_in: int,
        feat_out: int,
        conv_channels: int,
    ) -> None:
        super().__init__()
        if subsampling not in SUPPORTED:
            raise ValueError(f"subsampling={subsampling!r}: supported are {', '.join(SUPPORTED)}")
        if subsampling_factor < 2 or subsampling_factor & (subsampling_factor - 1):
            raise ValueError(f"subsampling_factor={subsampling_factor}: must be a power of 2")
        self._subsampling = subsampling
        self._sampling_num = int(math.log2(subsampling_factor))
        self.subsampling_factor = subsampling_factor
        self._kernel_size, self._stride, self._padding = 3, 2, 1
        layers: list[nn.Module] = [
            nn.Conv2d(1, conv_channels, kernel_size=3, stride=2, padding=1),
            nn.ReLU(True),
        ]
        for _ in range(self._sampling_num - 1):
            if subsampling == "dw_striding":
                layers += [
                    nn.Conv2d(conv_channels, conv_channels, 3, stride=2, padding=1, groups=conv_channels),
                    nn.Conv2d(conv_channels, conv_channels, kernel_size=1),
                ]
            else:
                layers.append(nn.Conv2d(conv_channels, conv_channels, 3, stride=2, padding=1))
            layers.append(nn.ReLU(True))
        self.conv = nn.Sequential(*layers)
        freq_out = int(calc_length(torch.tensor(feat_in), 2, 3, 2, self._sampling_num))
        self.out = nn.Linear(conv_channels * freq_out, feat_out)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.unsqueeze(1)  # (B, 1, T, F)
        current = lengths.to(torch.long)
        for layer in self.conv:
            # NeMo masks before every layer; before a ReLU that is a no-op (relu(x*m) = relu(x)*m
            # for a 0/1 mask, and the next convolution masks again), so only convolutions mask.
            if isinstance(layer, nn.Conv2d):
                x = x * _time_mask(x, current)
            x = layer(x)
            if isinstance(layer, nn.Conv2d) and layer.stride != (1, 1):
                current = torch.div(current + 2 * self._padding - 3, 2, rounding_mode="floor") + 1
        x = x * _time_mask(x, current)
        b, c, t, f = x.shape
        return self.out(x.transpose(1, 2).reshape(b, t, c * f)), current


def _time_mask(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, 1) mask of the valid frames of (B, C, T, F) activations, in x's dtype."""
    valid = torch.arange(x.shape[2], device=x.device)[None, :] < lengths[:, None]
    return valid[:, None, :, None].to(x.dtype)
