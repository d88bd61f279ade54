"""GPT data modules as light specs; `spec.build()` returns the LightningDataModule.

CLI factories (`data=mock`, `data=bundled`) live in `nemolite.llm.gpt.data.factories` and the
`nemo llm preprocess` verb in `nemolite.llm.gpt.data.preprocess`; both import nemo_run and are
therefore not imported here.
"""

from nemolite.llm.gpt.data.base import DataModuleSpec
from nemolite.llm.gpt.data.chat import ChatDataModule
from nemolite.llm.gpt.data.corpus import BundledCorpusDataModule
from nemolite.llm.gpt.data.fine_tuning import FineTuningDataModule, PackedSequenceSpecs
from nemolite.llm.gpt.data.hf_dataset import HFDatasetDataModule
from nemolite.llm.gpt.data.mock import MockDataModule
from nemolite.llm.gpt.data.pre_training import PreTrainingDataModule
from nemolite.llm.gpt.data.squad import SquadDataModule

__all__ = [
    "BundledCorpusDataModule",
    "ChatDataModule",
    "DataModuleSpec",
    "FineTuningDataModule",
    "HFDatasetDataModule",
    "MockDataModule",
    "PackedSequenceSpecs",
    "PreTrainingDataModule",
    "SquadDataModule",
]
