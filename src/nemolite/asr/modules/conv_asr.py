"""NeMo's `ConvASRDecoder`: a 1x1 convolution to the vocabulary plus blank, then log-softmax."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ConvASRDecoder(nn.Module):
    """Per-frame log-probabilities over `num_classes` tokens and the CTC blank (the last index).

    Args:
        feat_in: encoder output size.
        num_classes: vocabulary size without the blank (<= 0: the length of `vocabulary`).
        init_mode: weight initialisation: "xavier_uniform" (NeMo's default) or "default".
        vocabulary: the labels (character models) or token pieces (BPE models).
        add_blank: append the CTC blank class.
    """

    def __init__(
        self,
        feat_in: int,
        num_classes: int,
        init_mode: str = "xavier_uniform",
        vocabulary: list[str] | None = None,
        add_blank: bool = True,
        **ignored: Any,
    ) -> None:
        super().__init__()
        if vocabulary is None and num_classes <= 0:
            raise ValueError("decoder: set num_classes or vocabulary")
        if num_classes <= 0:
            num_classes = len(vocabulary or [])
        if vocabulary is not None and len(vocabulary) and num_classes != len(vocabulary):
            raise ValueError(
                f"decoder.num_classes={num_classes} but the vocabulary has {len(vocabulary)} entries"
            )
        self.vocabulary = list(vocabulary) if vocabulary is not None else None
        self._feat_in = feat_in
        self._num_classes = num_classes + 1 if add_blank else num_classes
        conv = nn.Conv1d(feat_in, self._num_classes, kernel_size=1, bias=True)
        self.decoder_layers = nn.Sequential(conv)
        if init_mode == "xavier_uniform":
            nn.init.xavier_uniform_(conv.weight, gain=1.0)
            assert conv.bias is not None  # built with bias=True
            nn.init.zeros_(conv.bias)
        self.temperature = 1.0

    @property
    def num_classes_with_blank(self) -> int:
        return self._num_classes

    def forward(self, encoder_output: torch.Tensor) -> torch.Tensor:
        """(B, feat_in, T) -> (B, T, num_classes + 1) log-probabilities."""
        logits = self.decoder_layers(encoder_output).transpose(1, 2)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return torch.nn.functional.log_softmax(logits, dim=-1)
