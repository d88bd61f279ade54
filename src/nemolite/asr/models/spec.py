"""`FastConformerCTC`: the light model spec ASR recipes bind; `build()` makes the real model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nemolite.errors import ConfigError, UnknownChoiceError

VOCABULARIES = ("bpe", "char")


@dataclass(kw_only=True)
class FastConformerCTC:
    """A FastConformer-CTC model: a published size, a vocabulary and NeMo's optimizer section.

    Attributes:
        size: "tiny" (CPU), or the published "small", "medium", "large".
        vocabulary: "bpe" (SentencePiece, as the published models) or "char".
        tokenizer_dir: SentencePiece directory (tokenizer.model, vocab.txt) for bpe; None: the
            generated speech set's tokenizer.
        restore_from: start from this `.nemo` file's weights and config (fine-tuning); the size,
            vocabulary and tokenizer fields are then ignored.
        lr: peak learning rate (AdamW, betas 0.9/0.98).
        warmup_steps: linear warmup steps of the cosine schedule.
        min_lr: final learning rate.
        freq_masks: SpecAugment frequency masks (0: none).
        time_masks: SpecAugment time masks (0: none).
        dropout: dropout in the encoder.
        dither: training dither of the featurizer.
        subsampling_factor: the encoder's time subsampling (None: the size's, 8 for the
            published sizes); 4 doubles the output frames per second.
    """

    size: str = "tiny"
    vocabulary: str = "bpe"
    tokenizer_dir: str | None = None
    restore_from: str | None = None
    lr: float = 1e-3
    warmup_steps: int = 15000
    min_lr: float = 1e-4
    freq_masks: int = 2
    time_masks: int = 10
    dropout: float = 0.1
    dither: float = 1e-5
    subsampling_factor: int | None = None

    def validate(self, prefix: str = "model") -> None:
        from nemolite.asr.models.fastconformer import SIZES

        if self.size not in SIZES:
            raise UnknownChoiceError(f"{prefix}.size", self.size, SIZES)
        if self.vocabulary not in VOCABULARIES:
            raise UnknownChoiceError(f"{prefix}.vocabulary", self.vocabulary, VOCABULARIES)
        if not self.lr > 0:
            raise ConfigError(f"{prefix}.lr", self.lr, "must be positive", f"set {prefix}.lr=1e-3")
        factor = self.subsampling_factor
        if factor is not None and (factor < 2 or factor & (factor - 1)):
            raise ConfigError(f"{prefix}.subsampling_factor", factor, "must be a power of 2", f"set {prefix}.subsampling_factor=8")

    def config(self, max_steps: int | None, tokenizer_dir: str | None) -> dict[str, Any]:
        """The NeMo `model:` config this spec describes."""
        from nemolite.asr.models.fastconformer import CHAR_LABELS, SIZES, fastconformer_ctc_config

        cfg = fastconformer_ctc_config(
            SIZES[self.size],
            labels=CHAR_LABELS if self.vocabulary == "char" else None,
            tokenizer_dir=tokenizer_dir if self.vocabulary == "bpe" else None,
            lr=self.lr, warmup_steps=self.warmup_steps, min_lr=self.min_lr, max_steps=max_steps,
            freq_masks=self.freq_masks, time_masks=self.time_masks, dropout=self.dropout,
        )  # fmt: skip
        cfg["preprocessor"]["dither"] = self.dither
        if self.subsampling_factor is not None:
            cfg["encoder"]["subsampling_factor"] = int(self.subsampling_factor)
        if not (self.freq_masks or self.time_masks):
            cfg["spec_augment"] = None
        return cfg

    def build(self, max_steps: int | None = None, tokenizer_dir: str | None = None) -> Any:
        """The `EncDecCTCModel(BPE)` (heavy), restored from `restore_from` when set."""
        from nemolite.asr.models.base import ASRModel

        self.validate()
        if self.restore_from:
            model = ASRModel.restore_from(self.restore_from)
            optim = dict(model.cfg.get("optim") or {})
            optim.update(lr=self.lr, sched={"name": "CosineAnnealing", "warmup_steps": self.warmup_steps,
                                            "min_lr": self.min_lr, "max_steps": max_steps})  # fmt: skip
            model.cfg["optim"] = optim
            return model
        from nemolite.asr.models.ctc import EncDecCTCModel
        from nemolite.asr.models.ctc_bpe import EncDecCTCModelBPE

        cls = EncDecCTCModelBPE if self.vocabulary == "bpe" else EncDecCTCModel
        return cls(self.config(max_steps, self.tokenizer_dir or tokenizer_dir))
