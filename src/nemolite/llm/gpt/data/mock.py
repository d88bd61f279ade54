"""`MockDataModule`: random tokens, for smoke tests and throughput runs (NeMo's arguments)."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nemolite.llm.gpt.data.base import DataModuleSpec

if TYPE_CHECKING:
    from nemolite.llm.gpt.data.datamodule import GPTDataModule


@dataclass(kw_only=True)
class MockDataModule(DataModuleSpec):
    """Random token sequences; each sample is a pure function of (seed, sample index).

    Args:
        num_train_samples: length of the training set.
        num_val_samples: length of the validation set.
        num_test_samples: length of the test set.
        create_attention_mask: accepted for NeMo compatibility; the model builds causal masks itself.
    """

    num_train_samples: int = 10_000_000
    num_val_samples: int = 10_000_000
    num_test_samples: int = 10_000_000
    create_attention_mask: bool = False

    def build(self) -> "GPTDataModule":
        """Returns the LightningDataModule over `MockGPTDataset`s."""
        from nemolite.llm.gpt.data.mock_dataset import MockGPTDataModule

        self.validate()
        return MockGPTDataModule(self)
