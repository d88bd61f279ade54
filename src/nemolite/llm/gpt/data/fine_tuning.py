"""`FineTuningDataModule`: JSONL prompt/answer or chat records, answer-only loss, packing."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nemolite.errors import ConfigError
from nemolite.llm.gpt.data.base import DataModuleSpec

if TYPE_CHECKING:
    from nemolite.llm.gpt.data.datamodule import GPTDataModule

SPLIT_FILES = ("training.jsonl", "validation.jsonl", "test.jsonl")


@dataclass(kw_only=True)
class PackedSequenceSpecs:
    """Packs several fine-tuning examples into each sequence (NeMo's name and field).

    Args:
        packed_sequence_size: tokens per packed sequence; -1 means the data's seq_length.
    """

    packed_sequence_size: int = -1


# Not kw_only: NeMo takes `dataset_root` positionally.
@dataclass
class FineTuningDataModule(DataModuleSpec):
    """Fine-tuning data from `training.jsonl`, `validation.jsonl`, `test.jsonl` in `dataset_root`.

    A record is either named fields rendered by `prompt_template` (the text from the
    `{<label_key>}` placeholder on is the answer), or a chat `{"messages": [{"role", "content"}]}`
    rendered by the tokenizer's chat template (assistant turns are the answer).

    Args:
        dataset_root: the directory holding the JSONL files (validation/test are optional).
        prompt_template: a Python format string over each record's fields.
        label_key: the field holding the answer.
        answer_only_loss: compute the loss on answer tokens only.
        add_bos: start each example with the tokenizer's bos token.
        add_eos: end each example with the tokenizer's eos token.
        packed_sequence_specs: pack examples into sequences (needs micro_batch_size=1, as NeMo).
    """

    dataset_root: str | None = None
    prompt_template: str = "{input} {output}"
    label_key: str = "output"
    answer_only_loss: bool = True
    add_bos: bool = False
    add_eos: bool = True
    packed_sequence_specs: PackedSequenceSpecs | None = None

    def packed_size(self) -> int | None:
        """Tokens per packed sequence, or None when not packing."""
        if self.packed_sequence_specs is None:
            return None
        size = self.packed_sequence_specs.packed_sequence_size
        return self.seq_length if size == -1 else size

    def validate(self) -> None:
        """Checks fields (not files); raises ConfigError."""
        super().validate()
        if not self.dataset_root:
            raise ConfigError("data.dataset_root", self.dataset_root, "is not set",
                              "set data.dataset_root=<directory with training.jsonl>")
        if "{" + self.label_key + "}" not in self.prompt_template:
            raise ConfigError("data.prompt_template", self.prompt_template,
                              f"has no {{{self.label_key}}} placeholder (data.label_key)",
                              f"end the template with {{{self.label_key}}}, or change label_key")
        packed = self.packed_size()
        if packed is not None:
            if packed < 2:
                raise ConfigError("data.packed_sequence_specs.packed_sequence_size", packed,
                                  "is too small", "use -1 (the seq_length) or a larger size")
            if self.micro_batch_size != 1:
                raise ConfigError("data.micro_batch_size", self.micro_batch_size,
                                  "packed sequences need micro_batch_size=1 (each pack already "
                                  "holds several examples)", "set data.micro_batch_size=1")

    def build(self) -> "GPTDataModule":
        """Validates and returns the LightningDataModule over the JSONL files."""
        from nemolite.llm.gpt.data.fine_tuning_dataset import FineTuningGPTDataModule

        self.validate()
        return FineTuningGPTDataModule(self)
