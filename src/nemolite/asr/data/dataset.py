"""Heavy half of the ASR data: the utterance dataset, duration-bounded batches and the data module.

Batches hold at most `max_batch_seconds` of audio. Each epoch's batches are made from a seeded
shuffle, sorted by length within windows (less padding), then the batch order is shuffled; rank r
of a world of W takes batches r, r + W, ... (the list is cut to a multiple of W), so every rank
runs the same number of steps. A resumed run skips the batches its checkpoint already consumed,
so it sees exactly the data the uninterrupted run would have.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from nemolite.asr.data.audio import read_audio, resample
from nemolite.asr.data.manifest import ManifestEntry, read_manifest
from nemolite.errors import DataFileError


class AudioTextDataset(Dataset):
    """(waveform, length, token ids, token count) for each manifest entry."""

    def __init__(self, entries: Sequence[ManifestEntry], tokenizer: Any, sample_rate: int, resample_audio: bool, source: str) -> None:
        self.entries, self.sample_rate, self.resample_audio = list(entries), sample_rate, resample_audio
        self.tokens = []
        for entry in self.entries:  # tokenize up front: bad text fails before training starts
            try:
                self.tokens.append(tokenizer.text_to_ids(entry.text))
            except ValueError as exc:
                raise DataFileError(f"{source}:{entry.line}", str(exc), "normalise the text to the vocabulary") from None

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        entry = self.entries[index]
        wave, rate = read_audio(entry.audio_filepath, entry.offset, entry.duration if entry.offset else None)
        if rate != self.sample_rate:
            if not self.resample_audio:
                raise DataFileError(
                    f"{entry.audio_filepath} (manifest line {entry.line})",
                    f"sample rate {rate} Hz, the model expects {self.sample_rate} Hz",
                    "resample the audio or set data.resample=True",
                )
            wave = resample(wave, rate, self.sample_rate)
        return torch.from_numpy(wave), torch.tensor(self.tokens[index], dtype=torch.long)


def collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    """Zero-pads waveforms and token ids into (signal, signal_len, tokens, tokens_len)."""
    waves, tokens = zip(*items)
    wave_len = torch.tensor([w.numel() for w in waves])
    tok_len = torch.tensor([t.numel() for t in tokens])
    signal = torch.zeros(len(waves), int(wave_len.max()))
    text = torch.zeros(len(tokens), max(1, int(tok_len.max())), dtype=torch.long)
    for i, (w, t) in enumerate(items):
        signal[i, : w.numel()] = w
        text[i, : t.numel()] = t
    return signal, wave_len, text, tok_len


class DurationBatchSampler:
    """Batches of at most `max_seconds` of audio, sharded over ranks, resumable mid-epoch."""

    def __init__(self, durations: Sequence[float], max_seconds: float, *, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if max(durations, default=0.0) > max_seconds:
            raise ValueError(f"an utterance of {max(durations):.1f}s exceeds max_batch_seconds={max_seconds}")
        self.durations, self.max_seconds = list(durations), max_seconds
        self.shuffle, self.seed, self.rank, self.world_size = shuffle, seed, rank, world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _global_batches(self) -> list[list[int]]:
        order = list(range(len(self.durations)))
        rng = random.Random(self.seed + self.epoch)
        if self.shuffle:
            rng.shuffle(order)
        window = 64  # sort within windows: similar lengths together, still random overall
        order = [i for s in range(0, len(order), window) for i in sorted(order[s : s + window], key=self.durations.__getitem__)]
        batches: list[list[int]] = []
        current: list[int] = []
        total = 0.0
        for i in order:
            if current and total + self.durations[i] > self.max_seconds:
                batches.append(current)
                current, total = [], 0.0
            current.append(i)
            total += self.durations[i]
        if current:
            batches.append(current)
        if self.shuffle:
            rng.shuffle(batches)
        return batches[: len(batches) - len(batches) % self.world_size]

    def __len__(self) -> int:
        return len(self._global_batches()) // self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        mine = self._global_batches()[self.rank :: self.world_size]
        skip, self.skip = self.skip, 0  # only the first epoch after a resume is partial
        yield from mine[skip:]


class AudioToTextDataModuleImpl(pl.LightningDataModule):
    """The Lightning data module `AudioToTextDataModule.build()` returns."""

    def __init__(self, spec: Any, tokenizer: Any, sample_rate: int, train_manifest: str, validation_manifest: str | None) -> None:
        super().__init__()
        self.spec, self.tokenizer, self.sample_rate = spec, tokenizer, sample_rate
        self.manifests = {"train": train_manifest, "validation": validation_manifest}

    def _dataset(self, split: str) -> AudioTextDataset:
        path = self.manifests[split]
        limits = (self.spec.min_duration, self.spec.max_duration) if split == "train" else (None, None)
        entries = read_manifest(path, *limits)  # type: ignore[arg-type]
        if not entries:
            raise DataFileError(path, "no utterances left after the duration filters", "check data.min_duration/max_duration")
        return AudioTextDataset(entries, self.tokenizer, self.sample_rate, self.spec.resample, str(path))

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self._dataset(split)
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = DurationBatchSampler(
            [e.duration for e in dataset.entries], self.spec.max_batch_seconds,
            shuffle=shuffle, seed=self.spec.seed, rank=rank, world_size=world,
        )
        if shuffle and trainer is not None:
            # Resuming mid-epoch: skip what the checkpoint's run already trained on this epoch.
            # `processed`, not `completed`: a checkpoint saved in on_train_batch_end (ModelCheckpoint's
            # every_n_train_steps) precedes that batch's increment_completed; Lightning fixes its own
            # count in the epoch loop's reset(), after this loader is built
            # (lightning/pytorch/loops/training_epoch_loop.py, restarted_on_train_batch_end).
            sampler.skip = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)  # type: ignore[attr-defined]
        # A generator of its own: each new iterator draws a base seed from it, which would otherwise
        # come from the global generator that dropout and SpecAugment draw from (torch.utils.data's
        # _BaseDataLoaderIter), so an epoch boundary or a validation would shift their draws.
        generator = torch.Generator().manual_seed(self.spec.seed)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=self.spec.num_workers,
                          generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("validation", shuffle=False) if self.manifests["validation"] else []
