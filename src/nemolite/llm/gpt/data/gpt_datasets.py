"""megatron-core's GPTDataset / BlendedMegatronDatasetBuilder behind `PreTrainingDataModule`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
from torch.utils.data import Dataset

from nemolite.llm.gpt.data.blend import parse_paths
from nemolite.llm.gpt.data.datamodule import GPTDataModule

if TYPE_CHECKING:
    from nemolite.llm.gpt.data.pre_training import PreTrainingDataModule
    from nemolite.llm.tokenizers.base import Tokenizer


class MegatronTokenizerView:
    """The few tokenizer attributes megatron's datasets read (`vocab_size`, `eod`, `pad`) plus
    `unique_identifiers`, which megatron hashes into its index-cache file names
    (megatron/core/datasets/megatron_dataset.py, `_key_config_attributes`)."""

    def __init__(self, tokenizer: Tokenizer, cache_key: str) -> None:
        self.vocab_size = tokenizer.vocab_size
        self.eod = tokenizer.eod
        self.eos = tokenizer.eos_id
        self._pad = tokenizer.pad_id
        self.unique_identifiers = {"class": "nemolite", "tokenizer": cache_key}

    @property
    def pad(self) -> int:
        # megatron falls back to an id no token has (-1) when reading `pad` raises.
        if self._pad is None:
            raise AttributeError("pad")
        return self._pad


class IndexedGPTDataModule(GPTDataModule):
    """The LightningDataModule of `PreTrainingDataModule` (and `BundledCorpusDataModule`)."""

    spec: PreTrainingDataModule

    def default_num_samples(self) -> tuple[int | None, int | None, int | None]:
        """The spec's explicit sample counts, used when no trainer gives max_steps."""
        return self.spec.num_train_samples, self.spec.num_val_samples, self.spec.num_test_samples

    def dataset_config(self) -> GPTDatasetConfig:
        """The megatron dataset config for this spec."""
        spec = self.spec
        blend, per_split = parse_paths(spec.paths)
        return GPTDatasetConfig(
            random_seed=spec.seed,
            sequence_length=spec.seq_length,
            blend=blend,
            blend_per_split=per_split,
            split=spec.split if blend is not None else None,
            path_to_cache=spec.index_mapping_dir,
            mmap_bin_files=spec.mmap_bin_files,
            num_dataset_builder_threads=spec.num_dataset_builder_threads,
            tokenizer=MegatronTokenizerView(self.tokenizer, spec.tokenizer_spec().cache_key()),
            reset_position_ids=spec.reset_position_ids,
            reset_attention_mask=spec.reset_attention_mask,
            eod_mask_loss=spec.eod_mask_loss,
            # The model builds causal masks itself; a [1, s, s] mask per sample wastes memory.
            create_attention_mask=False,
        )

    def build_datasets(self, num_train: int, num_val: int, num_test: int
                       ) -> tuple[Dataset | None, Dataset | None, Dataset | None]:
        """Builds the three splits with megatron's builder (rank 0 first, then the others)."""
        builder = BlendedMegatronDatasetBuilder(
            GPTDataset, [num_train, num_val, num_test], lambda: True, self.dataset_config())
        with _rank_zero_without_process_group():
            train, val, test = builder.build()
        return _or_none(train), _or_none(val), _or_none(test)


@contextmanager
def _rank_zero_without_process_group() -> Iterator[None]:
    """Lets megatron's BlendedDataset build its cached indices in a single process.

    Workaround: megatron/core/datasets/blended_dataset.py (`_build_indices`) calls
    `torch.distributed.get_rank()` without checking `is_initialized()` when a cache directory is
    set, which raises outside a process group (tests, notebooks, single-process tools). Only in
    that case, `get_rank` answers 0 while the datasets are built.
    """
    if torch.distributed.is_initialized():
        yield
        return
    original = torch.distributed.get_rank
    torch.distributed.get_rank = lambda *args, **kwargs: 0
    try:
        yield
    finally:
        torch.distributed.get_rank = original


def _or_none(dataset: Any) -> Dataset | None:
    return dataset if dataset is not None and len(dataset) > 0 else None
