"""`WERProgressBar`: the light spec of the ASR training progress bar (loss, WER, validation WER)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(kw_only=True)
class WERProgressBar:
    """Rich progress of optimizer steps with the CTC loss and WER (global rank 0 only).

    Attributes:
        refresh_rate: redraw every n steps.
        log_every_n_steps: also log a plain line every n steps (0: never).
    """

    refresh_rate: int = 1
    log_every_n_steps: int = 10

    def build(self) -> Any:
        from nemolite.asr.callbacks import RichWERProgress

        return RichWERProgress(refresh_rate=self.refresh_rate, log_every_n_steps=self.log_every_n_steps)
