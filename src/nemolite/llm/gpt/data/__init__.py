"""GPT data modules as light specs; `spec.build()` returns the LightningDataModule.

CLI factories (`data=mock`, `data=bundled`) live in `nemolite.llm.gpt.data.factories` and the
`nemo llm preprocess` verb in `nemolite.llm.gpt.data.preprocess`; both import nemo_run and are
therefore not imported here.
"""

from nemolite.llm.gpt.data.base import DataModuleSpec
from nemolite.llm.gpt.data.corpus import BundledCorpusDataModule
from nemolite.llm.gpt.data.fine_tuning import FineTuningDataModule, PackedSequenceSpecs
from nemolite.llm.gpt.data.mock import MockDataModule
from nemolite.llm.gpt.data.pre_training import PreTrainingDataModule

__all__ = [
    "BundledCorpusDataModule",
    "DataModuleSpec",
    "FineTuningDataModule",
    "MockDataModule",
    "PackedSequenceSpecs",
    "PreTrainingDataModule",
]
