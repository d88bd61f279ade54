"""`HFDatasetDataModule`: fine-tuning records from a Hugging Face dataset or local files."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nemolite.errors import ConfigError
from nemolite.llm.gpt.data.base import DataModuleSpec

if TYPE_CHECKING:
    from nemolite.llm.gpt.data.datamodule import GPTDataModule


@dataclass(kw_only=True)
class HFDatasetDataModule(DataModuleSpec):
    """A dataset's train/validation/test splits, rendered and tokenized as `FineTuningDataModule` does.

    NeMo's `llm.HFDatasetDataModule` arguments and defaults (its `**kwargs` for
    `datasets.load_dataset` are `load_kwargs` here). Unlike NeMo's, which serves its Hugging Face
    AutoModel path and leaves tokenization to a `.map()` you write, records are rendered here by
    `prompt_template` (or as chats when they hold `messages`) with the loss on the answer.

    Args:
        path_or_dataset: a local JSON/JSONL/parquet file, a directory of split files
            (`train.jsonl`, `validation.parquet`, `data/train-00000-of-00001.parquet`, ...), a
            `datasets` save_to_disk directory, or a hub dataset id (read with `datasets`, from the
            hub cache when offline).
        split: the one split to load (None: all of them).
        pad_token_id: NeMo's padding id; nemolite pads with the tokenizer's pad (or eos) token,
            and padding carries no loss.
        train_aliases: split names that mean training.
        test_aliases: split names that mean test.
        val_aliases: split names that mean validation.
        load_kwargs: keyword arguments for `datasets.load_dataset` (`name`, `data_files`, ...).
        prompt_template: a Python format string over each record's fields.
        label_key: the field holding the answer.
        answer_only_loss: compute the loss on answer tokens only.
        add_bos: start each example with the tokenizer's bos token.
        add_eos: end each example with the tokenizer's eos token.
        chat: every record must be a chat (`messages` or `conversations`).
    """

    path_or_dataset: str | None = field(default=None, kw_only=False)  # positional, as NeMo's
    split: str | None = None
    seq_length: int = 1024
    micro_batch_size: int = 2
    global_batch_size: int = 2
    num_workers: int = 2
    pin_memory: bool = True
    persistent_workers: bool = True
    pad_token_id: int = 0
    train_aliases: list[str] = field(default_factory=lambda: ["train", "training"])
    test_aliases: list[str] = field(default_factory=lambda: ["test", "testing"])
    val_aliases: list[str] = field(default_factory=lambda: ["val", "validation", "valid", "eval"])
    load_kwargs: dict[str, Any] | None = None
    prompt_template: str = "{input} {output}"
    label_key: str = "output"
    answer_only_loss: bool = True
    add_bos: bool = False
    add_eos: bool = True
    chat: bool = False

    def packed_size(self) -> None:
        """Packing is not offered here (NeMo's HFDatasetDataModule packs through another class)."""
        return None

    def validate(self) -> None:
        """Checks fields (not files); raises ConfigError."""
        super().validate()
        if not self.path_or_dataset or not isinstance(self.path_or_dataset, str):
            raise ConfigError("data.path_or_dataset", self.path_or_dataset,
                              "must name a dataset", "give a hub id (e.g. rajpurkar/squad), a "
                              "directory of JSON/JSONL/parquet split files, or one such file")
        if not self.chat and "{" + self.label_key + "}" not in self.prompt_template:
            raise ConfigError("data.prompt_template", self.prompt_template,
                              f"has no {{{self.label_key}}} placeholder (data.label_key)",
                              f"end the template with {{{self.label_key}}}, or change label_key")
        aliases = [*self.train_aliases, *self.val_aliases, *self.test_aliases]
        if len(set(aliases)) != len(aliases):
            raise ConfigError("data.train_aliases", aliases, "a split name is in two alias lists",
                              "give each split name to one of train/val/test_aliases")

    def build(self) -> "GPTDataModule":
        """Validates and returns the LightningDataModule over the dataset's splits."""
        from nemolite.llm.gpt.data.fine_tuning_sources import HFDatasetGPTDataModule

        self.validate()
        return HFDatasetGPTDataModule(self)
