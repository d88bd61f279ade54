"""The light base of every GPT data module spec (what `llm.pretrain(data=...)` is annotated with)."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nemolite.errors import ConfigError
from nemolite.llm.tokenizers.base import TokenizerSpec

if TYPE_CHECKING:
    from nemolite.llm.gpt.data.datamodule import GPTDataModule
    from nemolite.llm.gpt.data.rampup import BatchRamp
    from nemolite.llm.tokenizers.base import Tokenizer


@dataclass(kw_only=True)
class DataModuleSpec:
    """Batch shape, tokenizer and loader settings shared by all GPT data modules.

    Args:
        seq_length: tokens per sample.
        tokenizer: the tokenizer spec; None means `ByteTokenizer()` (needs no files).
        micro_batch_size: samples per forward pass on one data-parallel rank.
        global_batch_size: samples per optimizer step, over all data-parallel ranks and
            gradient-accumulation steps.
        rampup_batch_size: NeMo's batch-size ramp-up `[start_global_batch, increment, ramp_samples]`:
            steps start with `start_global_batch` samples, which grows by `increment` every
            `ramp_samples / ((global_batch_size - start) / increment)` consumed samples until it
            reaches `global_batch_size` (megatron-core's semantics). None: constant batches.
        num_workers: DataLoader worker processes per rank (0 loads in the training process).
        pin_memory: pin host memory of batches (useful on GPU only).
        persistent_workers: keep DataLoader workers alive between epochs.
        seed: seed of every shuffle and random draw; the sample stream is a pure function of it.
    """

    seq_length: int = 2048
    tokenizer: TokenizerSpec | None = None
    micro_batch_size: int = 4
    global_batch_size: int = 8
    rampup_batch_size: list[int] | None = None
    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    seed: int = 1234

    def tokenizer_spec(self) -> TokenizerSpec:
        """The tokenizer spec in use (ByteTokenizer when none is set)."""
        from nemolite.llm.tokenizers.byte import ByteTokenizer

        return self.tokenizer if self.tokenizer is not None else ByteTokenizer()

    def build_tokenizer(self) -> "Tokenizer":
        """Builds the tokenizer in use."""
        return self.tokenizer_spec().build()

    def validate(self) -> None:
        """Checks the fields that need no files or parallel layout; raises ConfigError."""
        for name in ("seq_length", "micro_batch_size", "global_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"data.{name}", value, "must be a positive integer",
                                  f"set data.{name} to 1 or more")
        if self.global_batch_size % self.micro_batch_size:
            raise ConfigError(
                "data.global_batch_size", self.global_batch_size,
                f"is not a multiple of data.micro_batch_size={self.micro_batch_size}",
                "make global_batch_size = micro_batch_size x data-parallel size x accumulation steps",
            )
        self.batch_ramp()
        if self.num_workers < 0:
            raise ConfigError("data.num_workers", self.num_workers, "must be 0 or more",
                              "set data.num_workers=0 to load in the training process")

    def batch_ramp(self) -> "BatchRamp | None":
        """The validated batch-size ramp (None without `rampup_batch_size`); raises ConfigError."""
        from nemolite.llm.gpt.data.rampup import parse_ramp

        return parse_ramp(self.rampup_batch_size, self.global_batch_size, self.micro_batch_size)

    def build(self) -> "GPTDataModule":
        """Validates and returns the LightningDataModule (imports torch and lightning)."""
        raise NotImplementedError(f"{type(self).__name__}.build")
