"""A small instruction set shipped with nemolite, for fine-tuning out of the box (see README.md).

`DATASET_ROOT` is the directory to give `FineTuningDataModule(dataset_root=...)`: it holds
`training.jsonl`, `validation.jsonl` and `test.jsonl` of `{"input", "output"}` records.
"""

from pathlib import Path

DATASET_ROOT = str(Path(__file__).parent)
