"""`SquadDataModule`: SQuAD as NeMo 2.0 prepares it, from a local copy or the Hugging Face hub (cache)."""

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nemolite.llm.gpt.data.fine_tuning import FineTuningDataModule

if TYPE_CHECKING:
    from nemolite.llm.gpt.data.datamodule import GPTDataModule

HUB_ID = "rajpurkar/squad"


@dataclass
class SquadDataModule(FineTuningDataModule):
    """SQuAD v1.1 question answering as prompt/answer JSONL (NeMo's `llm.SquadDataModule`).

    On first use, the raw SQuAD splits become `training.jsonl` (95% of SQuAD's train split, seeded),
    `validation.jsonl` (the other 5%) and `test.jsonl` (SQuAD's validation split) in `dataset_root`,
    each record `{"input": "Context: ... Question: ... Answer:", "output": <first answer>}` as NeMo
    writes them; later runs read those files.

    Args:
        dataset_root: where the JSONL files go; None is NeMo's `$NEMO_HOME/datasets/squad`.
        force_redownload: prepare the JSONL files again even if they exist.
        delete_raw: delete what `datasets` downloaded into `dataset_root` once the JSONL is written.
        source: nemolite: the raw SQuAD to read instead of the hub: a directory of train/validation
            JSON/JSONL/parquet files in SQuAD's schema (`context`, `question`, `answers.text`), or a
            `datasets` save_to_disk directory. None downloads `rajpurkar/squad` with `datasets`
            (or reads its hub cache when offline).
    """

    force_redownload: bool = False
    delete_raw: bool = True
    source: str | None = None

    def root(self) -> str:
        """`dataset_root`, or NeMo's default `$NEMO_HOME/datasets/squad`."""
        from nemolite.lightning.model_store import nemo_home

        return self.dataset_root or os.path.join(str(nemo_home()), "datasets", "squad")

    def build(self) -> "GPTDataModule":
        """Validates and returns the LightningDataModule (preparing the JSONL files on first use)."""
        from nemolite.llm.gpt.data.fine_tuning_sources import SquadGPTDataModule

        self.validate()
        return SquadGPTDataModule(self)
