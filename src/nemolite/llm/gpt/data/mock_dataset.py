"""Random-token datasets behind `MockDataModule` (heavy: numpy, torch)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from nemolite.llm.gpt.data.datamodule import GPTDataModule
from nemolite.llm.gpt.data.mock import MockDataModule

_SPLIT_SALT = {"train": 0, "validation": 1, "test": 2}


class MockGPTDataset(Dataset):
    """`length` samples of uniform random tokens; sample i depends only on (seed, split, i)."""

    def __init__(self, vocab_size: int, seq_length: int, length: int, seed: int, split: str
                 ) -> None:
        self.vocab_size, self.seq_length, self.length = vocab_size, seq_length, length
        self.seed, self.salt = seed, _SPLIT_SALT[split]
        self.position_ids = torch.arange(seq_length, dtype=torch.int64)
        self.loss_mask = torch.ones(seq_length, dtype=torch.float32)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.salt, idx])
        text = torch.from_numpy(rng.integers(self.vocab_size, size=self.seq_length + 1))
        return {"tokens": text[:-1], "labels": text[1:], "loss_mask": self.loss_mask,
                "position_ids": self.position_ids}


class MockGPTDataModule(GPTDataModule):
    """The LightningDataModule of `MockDataModule`."""

    spec: MockDataModule

    def default_num_samples(self) -> tuple[int, int, int]:
        """NeMo's sample-count arguments, used when no trainer is attached."""
        return self.spec.num_train_samples, self.spec.num_val_samples, self.spec.num_test_samples

    def build_datasets(self, num_train: int, num_val: int, num_test: int
                       ) -> tuple[MockGPTDataset, MockGPTDataset, MockGPTDataset]:
        """Three independent random streams of the requested lengths."""
        def make(n: int, split: str) -> MockGPTDataset:
            return MockGPTDataset(self.tokenizer.vocab_size, self.spec.seq_length, n,
                                  self.spec.seed, split)

        return make(num_train, "train"), make(num_val, "validation"), make(num_test, "test")
