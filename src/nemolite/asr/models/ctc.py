"""`EncDecCTCModel`: preprocessor -> (SpecAugment) -> encoder -> ConvASRDecoder, trained with CTC.

The character-vocabulary model of NeMo (`nemo.collections.asr.models.EncDecCTCModel`), with its
config layout and state-dict keys (`preprocessor.featurizer.*`, `encoder.*`, `decoder.*`).
Training and validation steps log the CTC loss and the WER of greedy decoding (shown in the
progress bar); `transcribe` decodes files or arrays in batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from nemolite.asr.losses import CTCLoss
from nemolite.asr.metrics import ErrorCounts
from nemolite.asr.models import targets
from nemolite.asr.models.base import ASRModel
from nemolite.asr.tokenizers import CharTokenizer
from nemolite.errors import DataFileError

AudioInput = str | np.ndarray | torch.Tensor


class EncDecCTCModel(ASRModel):
    """CTC model over a character vocabulary (`cfg["labels"]` / `decoder.vocabulary`).

    Args:
        cfg: the `model:` section of a NeMo config: preprocessor, spec_augment (optional),
            encoder, decoder, plus optional optim, ctc_reduction, sample_rate.
        artifacts: files the config refers to as `nemo:<name>`.
        source: where the config came from, for error messages.
    """

    def __init__(
        self, cfg: dict[str, Any], artifacts: dict[str, bytes] | None = None, source: Any = "model config"
    ) -> None:
        super().__init__(cfg, artifacts)
        self._source = source
        self._setup_vocabulary()
        self._build_modules()

    # ------------------------------------------------------------------ construction
    def _setup_vocabulary(self) -> None:
        decoder = self._cfg.setdefault("decoder", {})
        labels = decoder.get("vocabulary") or self._cfg.get("labels")
        if not labels:
            raise DataFileError(self._source, "decoder.vocabulary is empty", "give the model's labels")
        decoder["vocabulary"] = list(labels)
        self.tokenizer: Any = CharTokenizer(labels)

    def _build_modules(self) -> None:
        cfg, src = self._cfg, self._source
        self.preprocessor = targets.build_module("preprocessor", cfg["preprocessor"], src)
        self.encoder = targets.build_module("encoder", cfg["encoder"], src)
        decoder_cfg = cfg["decoder"]
        if not decoder_cfg.get("feat_in"):
            decoder_cfg["feat_in"] = self.encoder.feat_out
        if (decoder_cfg.get("num_classes") or -1) < 1:
            decoder_cfg["num_classes"] = len(decoder_cfg["vocabulary"])
        self.decoder = targets.build_module("decoder", decoder_cfg, src)
        augment = cfg.get("spec_augment")
        self.spec_augmentation = targets.build_module("spec_augment", augment, src) if augment else None
        self.blank_id = self.decoder.num_classes_with_blank - 1
        self.loss = CTCLoss(blank=self.blank_id, reduction=cfg.get("ctc_reduction", "mean_batch"))

    @property
    def sample_rate(self) -> int:
        return int(self.preprocessor.sample_rate)

    # ------------------------------------------------------------------ inference
    def forward(
        self,
        input_signal: torch.Tensor | None = None,
        input_signal_length: torch.Tensor | None = None,
        processed_signal: torch.Tensor | None = None,
        processed_signal_length: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Waveforms (or features) -> (log_probs (B, T, V+1), encoded lengths, greedy argmax)."""
        if (input_signal is None) == (processed_signal is None):
            raise ValueError("pass either input_signal and its lengths or processed_signal and its lengths")
        if processed_signal is None:
            processed_signal, processed_signal_length = self.preprocessor(input_signal, input_signal_length)
        if self.spec_augmentation is not None and self.training:
            processed_signal = self.spec_augmentation(processed_signal, processed_signal_length)
        encoded, encoded_len = self.encoder(processed_signal, processed_signal_length)
        log_probs = self.decoder(encoded)
        return log_probs, encoded_len, log_probs.argmax(dim=-1)

    def ctc_decode(self, predictions: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """Greedy CTC: per utterance, collapse repeated frames and drop blanks."""
        out = []
        for row, n in zip(predictions.tolist(), lengths.tolist()):
            tokens, previous = [], None
            for token in row[:n]:
                if token != previous and token != self.blank_id:
                    tokens.append(token)
                previous = token
            out.append(tokens)
        return out

    def decode_texts(self, predictions: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        return [self.tokenizer.ids_to_text(ids) for ids in self.ctc_decode(predictions, lengths)]

    @torch.no_grad()
    def transcribe(
        self, audio: AudioInput | Sequence[AudioInput], batch_size: int = 4, verbose: bool = False
    ) -> list[str]:
        """Greedy transcripts of audio files (any format soundfile reads) or 1-D arrays.

        Args:
            audio: a path, a directory is not accepted here (list its files), an array at the
                model's sample rate, or a list of these.
            batch_size: utterances per forward pass.
            verbose: show a progress bar.
        """
        from nemolite.asr.data.audio import load_audio

        items = [audio] if isinstance(audio, (str, np.ndarray, torch.Tensor)) else list(audio)
        was_training = self.training
        self.eval()
        texts: list[str] = []
        device = next(self.parameters()).device
        try:
            for start in range(0, len(items), batch_size):
                waves = [load_audio(item, self.sample_rate) for item in items[start : start + batch_size]]
                signal, lengths = _pad([torch.as_tensor(w, dtype=torch.float32) for w in waves])
                _, enc_len, greedy = self(input_signal=signal.to(device), input_signal_length=lengths.to(device))
                texts.extend(self.decode_texts(greedy.cpu(), enc_len.cpu()))
        finally:
            self.train(was_training)
        return texts

    # ------------------------------------------------------------------ training
    def _step(self, batch: Any) -> tuple[torch.Tensor, ErrorCounts]:
        signal, signal_len, transcript, transcript_len = batch
        log_probs, enc_len, greedy = self(input_signal=signal, input_signal_length=signal_len)
        loss = self.loss(log_probs, transcript, enc_len, transcript_len)
        counts = ErrorCounts()
        hyps = self.decode_texts(greedy.detach().cpu(), enc_len.cpu())
        for i, hyp in enumerate(hyps):
            ref = self.tokenizer.ids_to_text(transcript[i, : transcript_len[i]].tolist())
            counts.add(ref.split(), hyp.split())
        return loss, counts

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss, counts = self._step(batch)
        # `reduced_train_loss` is the name nemolite's metrics, curve and checkpoint names read: as
        # megatron's, the mean over data-parallel ranks (each rank's batch is a part of the step's).
        self.log("reduced_train_loss", loss, prog_bar=True, batch_size=int(batch[0].shape[0]), sync_dist=True)
        self.log("train_wer", counts.rate, prog_bar=True, batch_size=max(1, counts.tokens))
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss, counts = self._step(batch)
        n = int(batch[0].shape[0])
        self.log("val_loss", loss, prog_bar=True, batch_size=n, sync_dist=True)
        # Weighted by reference words, so the epoch value is the corpus WER, not a mean of rates.
        self.log("val_wer", counts.rate, prog_bar=True, batch_size=max(1, counts.tokens), sync_dist=True)
        return loss

    def configure_optimizers(self) -> Any:
        from nemolite.asr.models.optim import optimizer_from_config

        return optimizer_from_config(self._cfg.get("optim") or {}, self.parameters(), self.trainer)


def _pad(waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([w.numel() for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : w.numel()] = w
    return batch, lengths
