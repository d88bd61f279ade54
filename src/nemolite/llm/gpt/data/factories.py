"""CLI factories for the `data` argument: `data=mock`, `data=bundled`, `data=pretraining`.

Registered with nemo-run for `DataModuleSpec`, the type `llm.pretrain(data=...)` is annotated
with. Imports nemo_run, so the lead imports it from `nemolite.llm`; it also imports the tokenizer
factories so that `data.tokenizer=byte` resolves.
"""

# No `from __future__ import annotations`: nemo-run reads the return annotations at runtime.
from typing import Optional

import nemo_run as run

import nemolite.llm.gpt.data.preprocess  # noqa: F401  (registers `nemo llm preprocess`)
import nemolite.llm.tokenizers.factories  # noqa: F401  (registers tokenizer=byte, hf, ...)
from nemolite.llm.gpt.data.base import DataModuleSpec
from nemolite.llm.gpt.data.mock import MockDataModule


@run.cli.factory
def mock(seq_length: int = 2048, micro_batch_size: int = 4, global_batch_size: int = 8
         ) -> run.Config[DataModuleSpec]:
    """Random tokens (no files), sized by the trainer's max_steps."""
    return run.Config(MockDataModule, seq_length=seq_length, micro_batch_size=micro_batch_size,
                      global_batch_size=global_batch_size)


@run.cli.factory
def bundled(seq_length: int = 256, micro_batch_size: int = 4, global_batch_size: int = 8
            ) -> run.Config[DataModuleSpec]:
    """The public-domain English corpus shipped with nemolite (tokenized and cached on first use)."""
    from nemolite.llm.gpt.data.corpus import BundledCorpusDataModule

    return run.Config(BundledCorpusDataModule, seq_length=seq_length,
                      micro_batch_size=micro_batch_size, global_batch_size=global_batch_size)


@run.cli.factory
def pretraining(paths: Optional[str] = None, seq_length: int = 2048, micro_batch_size: int = 4,  # noqa: UP045 - nemo-run cannot parse X | None
                global_batch_size: int = 8) -> run.Config[DataModuleSpec]:
    """Your own `.bin/.idx` data (`nemo llm preprocess` output): `data=pretraining data.paths=PREFIX`."""
    from nemolite.llm.gpt.data.pre_training import PreTrainingDataModule

    return run.Config(PreTrainingDataModule, paths=paths, seq_length=seq_length,
                      micro_batch_size=micro_batch_size, global_batch_size=global_batch_size)
