"""`FineTuningDataModule`: JSONL prompt/answer or chat records, answer-only loss, packing."""

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from nemolite.errors import ConfigError, UnknownChoiceError
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


# NeMo's `dataset_kwargs` (nemo/collections/llm/gpt/data/core.py `create_sft_dataset`): the keys
# that set one of this module's fields, the keys whose NeMo meaning nemolite's loader already has
# (for the values listed; None: any value), and the keys nemolite does not implement.
KWARG_FIELDS = ("prompt_template", "label_key", "answer_only_loss", "add_bos", "add_eos", "chat")
KWARGS_MATCHED: dict[str, tuple[Any, ...] | None] = {
    "pad_to_max_length": None,  # padded to seq_length or to the batch's longest: the same loss
    "truncation_method": ("right",),
    "memmap_workers": None, "index_mapping_dir": None, "hf_dataset": None,  # how JSONL is read
    "use_hf_tokenizer_chat_template": None,  # chat records always use the tokenizer's template
    "global_sample_mapping": (False,),
}
KWARGS_UNSUPPORTED = ("add_sep", "sep_id", "truncation_field", "max_num_samples", "min_seq_length",
                      "special_tokens", "tokens_to_generate", "virtual_tokens", "output_original_text",
                      "ceil_to_power_2", "pad_seq_length_to_mult", "get_attention_mask_from_fusion")


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
        dataset_kwargs: NeMo's per-dataset options (`{"prompt_template": ..., "label_key": ...}`);
            the keys that name a field above set it (a conflicting explicit field is an error).
        chat: every record must be a chat (`messages`, or NeMo's `conversations`); set by
            `ChatDataModule` and by `dataset_kwargs={"chat": True}`.
    """

    dataset_root: str | None = None
    prompt_template: str = "{input} {output}"
    label_key: str = "output"
    answer_only_loss: bool = True
    add_bos: bool = False
    add_eos: bool = True
    packed_sequence_specs: PackedSequenceSpecs | None = None
    dataset_kwargs: dict[str, Any] | None = None
    chat: bool = False
    memmap_workers: int = 1  # NeMo's JSONL indexing workers; nemolite reads JSONL in process

    def root(self) -> str | None:
        """The directory holding the split files."""
        return self.dataset_root

    def __post_init__(self) -> None:
        self._apply_dataset_kwargs()

    def _apply_dataset_kwargs(self) -> None:
        """Sets the fields `dataset_kwargs` names; one-line errors for the keys nemolite lacks."""
        kwargs = self.dataset_kwargs or {}
        if not isinstance(kwargs, dict):
            raise ConfigError("data.dataset_kwargs", kwargs, "must be a mapping of option names",
                              'pass e.g. {"prompt_template": "{input} {output}"}')
        defaults = {f.name: f.default for f in fields(FineTuningDataModule)}
        for key, value in kwargs.items():
            field = f"data.dataset_kwargs.{key}"
            if key in KWARG_FIELDS:
                current = getattr(self, key)
                if current != defaults[key] and current != value:
                    raise ConfigError(field, value, f"conflicts with data.{key}={current!r}",
                                      f"set only one of data.{key} and data.dataset_kwargs.{key}")
                setattr(self, key, value)
            elif key in KWARGS_MATCHED:
                allowed = KWARGS_MATCHED[key]
                if allowed is not None and value not in allowed:
                    raise ConfigError(field, value, "nemolite implements only "
                                      + " or ".join(repr(a) for a in allowed),
                                      f"remove it or set {allowed[0]!r}")
            elif key in KWARGS_UNSUPPORTED:
                raise ConfigError(field, value, "is a NeMo option nemolite does not implement "
                                  "(examples are cut at the end to seq_length, with no separator)",
                                  f"remove {key} from data.dataset_kwargs")
            else:
                raise UnknownChoiceError("data.dataset_kwargs", key,
                                         [*KWARG_FIELDS, *KWARGS_MATCHED, *KWARGS_UNSUPPORTED], "key")

    def packed_size(self) -> int | None:
        """Tokens per packed sequence, or None when not packing."""
        if self.packed_sequence_specs is None:
            return None
        size = self.packed_sequence_specs.packed_sequence_size
        return self.seq_length if size == -1 else size

    def validate(self) -> None:
        """Checks fields (not files); raises ConfigError."""
        super().validate()
        if not self.root():
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
