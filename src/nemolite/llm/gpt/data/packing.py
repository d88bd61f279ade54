"""Sequence packing for fine-tuning: several examples per sequence, with per-example boundaries.

Each pack concatenates examples (inputs `ids[:-1]`, targets `ids[1:]`), restarts `position_ids`
at every example and records the boundaries in `cu_seqlens` (cumulative lengths, as flash/TE
attention's THD format takes them), so attention stays within each example. The unused tail is
one more segment with no loss. Layout follows NeMo's packed-sequence batches (`cu_seqlens`,
`cu_seqlens_argmin`, `max_seqlen`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from nemolite.llm.gpt.data.fine_tuning_dataset import Example, _EpochOrder


def pack_examples(lengths: list[int], pack_size: int, seed: int) -> list[list[int]]:
    """First-fit-decreasing bins of example indices, each holding at most `pack_size` tokens.

    Ties are broken by a seeded shuffle, so packs are a pure function of the data and the seed.
    """
    shuffled = np.random.default_rng(seed).permutation(len(lengths))
    order = sorted(shuffled.tolist(), key=lambda i: -min(lengths[i], pack_size))
    packs: list[list[int]] = []
    space: list[int] = []
    for i in order:
        need = min(lengths[i], pack_size)
        slot = next((b for b, free in enumerate(space) if free >= need), None)
        if slot is None:
            packs.append([i])
            space.append(pack_size - need)
        else:
            packs[slot].append(i)
            space[slot] -= need
    return packs


class PackedExampleDataset(Dataset):
    """One pack per sample; packs are visited in a seeded order per epoch."""

    def __init__(self, examples: list[Example], pack_size: int, num_samples: int, seed: int,
                 pad_id: int) -> None:
        self.examples, self.pack_size, self.num_samples = examples, pack_size, num_samples
        self.packs = pack_examples([len(ids) - 1 for ids, _ in examples], pack_size, seed)
        self.order, self.pad_id = _EpochOrder(len(self.packs), seed), pad_id
        # cu_seqlens of every pack padded to one length, so packs stack into batches.
        self.max_segments = max(len(p) for p in self.packs) + 1

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        size = self.pack_size
        tokens = torch.full((size,), self.pad_id, dtype=torch.int64)
        labels, loss_mask = tokens.clone(), torch.zeros(size, dtype=torch.float32)
        position_ids = torch.zeros(size, dtype=torch.int64)
        bounds = [0]
        for example in self.packs[self.order(idx)]:
            ids, mask = self.examples[example]
            start, n = bounds[-1], min(len(ids) - 1, size)
            tokens[start: start + n] = torch.tensor(ids[:n])
            labels[start: start + n] = torch.tensor(ids[1: n + 1])
            loss_mask[start: start + n] = torch.tensor(mask[1: n + 1], dtype=torch.float32)
            position_ids[start: start + n] = torch.arange(n)
            bounds.append(start + n)
        if bounds[-1] < size:  # the padding tail is its own segment
            position_ids[bounds[-1]:] = torch.arange(size - bounds[-1])
            bounds.append(size)
        cu = torch.full((self.max_segments + 1,), -1, dtype=torch.int32)
        cu[: len(bounds)] = torch.tensor(bounds, dtype=torch.int32)
        lengths = torch.diff(torch.tensor(bounds))
        return {"tokens": tokens, "labels": labels, "loss_mask": loss_mask,
                "position_ids": position_ids, "cu_seqlens": cu,
                "cu_seqlens_argmin": torch.tensor(len(bounds)),
                "max_seqlen": lengths.max().to(torch.int32)}
