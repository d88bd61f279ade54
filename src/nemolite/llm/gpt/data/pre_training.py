"""`PreTrainingDataModule`: megatron indexed datasets, blended and split (NeMo's arguments)."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nemolite.errors import ConfigError, DataFileError
from nemolite.llm.gpt.data.base import DataModuleSpec
from nemolite.llm.gpt.data.blend import SPLITS, parse_paths, parse_split, split_document_counts

if TYPE_CHECKING:
    from nemolite.llm.gpt.data.datamodule import GPTDataModule


@dataclass(kw_only=True)
class IndexedDataOptions(DataModuleSpec):
    """Options of data modules over megatron's GPTDataset (all but the data paths).

    Args:
        reset_position_ids: restart position ids after each end-of-document token.
        reset_attention_mask: stop attention across end-of-document tokens (needs a model that
            reads an attention mask; the default causal kernels do not).
        eod_mask_loss: no loss on end-of-document tokens.
        create_attention_mask: accepted for NeMo compatibility; masks are built by the model.
        split: train/validation/test weights over the documents of each prefix, e.g. "900,50,50";
            ignored when `paths` is a per-split dict.
        index_mapping_dir: where megatron caches its sample/shuffle indices; default: a `cache`
            directory next to the data.
        num_dataset_builder_threads: threads megatron uses to build the blended datasets.
        mmap_bin_files: memory-map the .bin files (otherwise read them with file reads).
        num_train_samples: training samples to build when no trainer gives max_steps.
        num_val_samples: validation samples to build when no trainer gives the count.
        num_test_samples: test samples to build when no trainer gives the count.
    """

    reset_position_ids: bool = False
    reset_attention_mask: bool = False
    eod_mask_loss: bool = False
    create_attention_mask: bool = False
    split: str = "900,50,50"
    index_mapping_dir: str | None = None
    num_dataset_builder_threads: int = 1
    mmap_bin_files: bool = True
    num_train_samples: int | None = None
    num_val_samples: int | None = None
    num_test_samples: int | None = None

    def validate(self) -> None:
        """Checks batch fields and the split string; raises ConfigError."""
        super().validate()
        parse_split(self.split)


# Not kw_only: NeMo takes `paths` positionally (`PreTrainingDataModule(paths, ...)`).
@dataclass
class PreTrainingDataModule(IndexedDataOptions):
    """Pretraining data from megatron indexed datasets (`.bin/.idx`, see `nemo llm preprocess`).

    Args:
        paths: one prefix, a list of prefixes, a weighted list `["30", "a", "70", "b"]`, or a dict
            `{"train": ..., "validation": ..., "test": ...}` of those.
    """

    paths: str | list[str] | dict[str, str | list[str]]

    def validate(self) -> None:
        """Checks fields and the shape of `paths` (not the files: see `check_files`)."""
        super().validate()
        parse_paths(self.paths)

    def check_files(self) -> None:
        """Checks every prefix's .bin/.idx and that no requested split is empty."""
        from nemolite.llm.gpt.data.indexed import check_indexed_dataset

        blend, per_split = parse_paths(self.paths)
        if blend is not None:
            fractions = parse_split(self.split)
            for prefix in blend[0]:
                documents = check_indexed_dataset(prefix)
                counts = split_document_counts(documents, fractions)
                for name, fraction, count in zip(SPLITS, fractions, counts):
                    if fraction > 0 and count == 0:
                        raise DataFileError(
                            f"{prefix}.idx", f"its {documents} documents leave the {name} split "
                            f"empty under data.split={self.split!r}",
                            "add documents, or give that split weight 0 (e.g. split=\"1,0,0\")")
            return
        for name, split_blend in zip(SPLITS, per_split or []):
            for prefix in split_blend[0] if split_blend else []:
                check_indexed_dataset(prefix, f"data.paths.{name}")

    def build(self) -> "GPTDataModule":
        """Checks fields and files; returns the LightningDataModule over megatron's GPTDataset."""
        from nemolite.llm.gpt.data.gpt_datasets import IndexedGPTDataModule

        self.validate()
        if self.num_dataset_builder_threads < 1:
            raise ConfigError("data.num_dataset_builder_threads", self.num_dataset_builder_threads,
                              "must be at least 1", "set it to 1")
        self.check_files()
        return IndexedGPTDataModule(self)
