"""Megatron-style samplers: micro-batches of sample indices for one data-parallel rank.

Like megatron's `MegatronPretrainingSampler` (megatron/training/datasets/data_samplers.py in
Megatron-LM): the global stream of sample indices starts at `consumed_samples`; every
`micro_batch_size x dp_size` consecutive indices form one step of all ranks, and rank r takes
the r-th slice. The stream depends only on `consumed_samples`, so a resumed run continues
exactly where the uninterrupted one would be.
"""

from __future__ import annotations

from collections.abc import Iterator


class MegatronPretrainingSampler:
    """Yields lists of `micro_batch_size` indices for `dp_rank`, from `consumed_samples` on.

    Args:
        total_samples: length of the dataset; incomplete last steps are dropped.
        consumed_samples: samples (over all ranks) already consumed before this sampler starts.
        micro_batch_size: indices per yielded list.
        dp_rank: this rank's index in the data-parallel group.
        dp_size: size of the data-parallel group.
    """

    def __init__(self, total_samples: int, consumed_samples: int, micro_batch_size: int,
                 dp_rank: int, dp_size: int) -> None:
        if not 0 <= dp_rank < dp_size:
            raise ValueError(f"dp_rank {dp_rank} outside a data-parallel group of {dp_size}")
        self.total_samples = total_samples
        self.consumed_samples = consumed_samples
        self.micro_batch_size = micro_batch_size
        self.dp_rank = dp_rank
        self.dp_size = dp_size

    @property
    def _step(self) -> int:
        return self.micro_batch_size * self.dp_size

    def __len__(self) -> int:
        # The whole epoch, consumed part included: after a resume Lightning adds the steps already
        # done to its fetched count and ends the epoch when that count reaches len(loader)
        # (lightning/pytorch/loops/training_epoch_loop.py, on_run_start). Counting only the
        # remaining micro-batches ended a resumed epoch early and replayed samples.
        return self.total_samples // self._step

    def __iter__(self) -> Iterator[list[int]]:
        start = self.consumed_samples + self.dp_rank * self.micro_batch_size
        for _ in range(max(0, self.total_samples - self.consumed_samples) // self._step):
            yield list(range(start, start + self.micro_batch_size))
            start += self._step
