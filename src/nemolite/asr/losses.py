"""CTC loss with NeMo's reductions over (B, T, V) log-probabilities."""

from __future__ import annotations

import torch
from torch import nn

REDUCTIONS = ("mean_batch", "mean_volume", "mean", "sum", "none")


class CTCLoss(nn.Module):
    """`torch.nn.CTCLoss` (infinite losses zeroed) with NeMo's `ctc_reduction`.

    Args:
        blank: index of the blank class (the last one in NeMo's models).
        reduction: "mean_batch" (mean of per-utterance sums), "mean_volume" (sum over all
            utterances divided by the total target length; FastConformer's choice), "mean"
            (torch's: per-utterance loss over its target length, then the mean), "sum" or "none".
    """

    def __init__(self, blank: int, reduction: str = "mean_batch") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"ctc_reduction={reduction!r}: use one of {', '.join(REDUCTIONS)}")
        self.blank, self.reduction = blank, reduction
        self._ctc = nn.CTCLoss(blank=blank, reduction="none", zero_infinity=True)

    def forward(
        self,
        log_probs: torch.Tensor,
        targets: torch.Tensor,
        input_lengths: torch.Tensor,
        target_lengths: torch.Tensor,
    ) -> torch.Tensor:
        # The CTC recursion runs in float32 (and wants (T, B, V)) whatever the model's precision.
        losses = self._ctc(
            log_probs.float().transpose(0, 1), targets.long(), input_lengths.long(), target_lengths.long()
        )
        if self.reduction == "mean_batch":
            return losses.mean()
        if self.reduction == "mean_volume":
            return losses.sum() / target_lengths.sum().clamp(min=1)
        if self.reduction == "mean":
            return (losses / target_lengths.clamp(min=1)).mean()
        if self.reduction == "sum":
            return losses.sum()
        return losses
