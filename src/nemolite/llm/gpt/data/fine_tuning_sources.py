"""Heavy: the fine-tuning LightningDataModules whose splits are not `dataset_root`'s JSONL as given.

`SquadGPTDataModule` writes SQuAD's JSONL files (NeMo's preparation) before reading them;
`HFDatasetGPTDataModule` reads a dataset's splits through `local_records`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nemolite.errors import ConfigError, DataFileError
from nemolite.llm.gpt.data import local_records
from nemolite.llm.gpt.data.fine_tuning import SPLIT_FILES
from nemolite.llm.gpt.data.fine_tuning_dataset import FineTuningGPTDataModule
from nemolite.llm.gpt.data.squad import HUB_ID, SquadDataModule

VAL_PROPORTION = 0.05  # NeMo's SquadDataModule: validation is 5% of SQuAD's train split


def _squad_record(row: Any, where: str, test: bool) -> dict[str, Any]:
    try:
        answers = row["answers"]["text"]
        record = {"input": f"Context: {row['context']} Question: {row['question']} Answer:",
                  "output": answers[0]}
    except (KeyError, IndexError, TypeError):
        have = sorted(row) if isinstance(row, dict) else type(row).__name__
        raise DataFileError(where, f"is not a SQuAD record (has {have})", "give records with "
                            "context, question and answers.text (SQuAD's schema)") from None
    if test:
        record["original_answers"] = list(answers)
    return record


def _split_train(train: Any, seed: int) -> tuple[Any, Any]:
    """(training, validation): `datasets`' own seeded split when it is a Dataset, as NeMo does it."""
    if hasattr(train, "train_test_split"):
        parts = train.train_test_split(test_size=VAL_PROPORTION, seed=seed)
        return parts["train"], parts["test"]
    n_val = math.ceil(VAL_PROPORTION * len(train))
    order = np.random.default_rng(seed).permutation(len(train))
    return [train[i] for i in order[n_val:]], [train[i] for i in order[:n_val]]


def prepare_squad(spec: SquadDataModule) -> None:
    """Writes training/validation/test.jsonl into `spec.root()` unless they exist."""
    root = Path(spec.root())
    if (root / SPLIT_FILES[0]).is_file() and not spec.force_redownload:
        return
    root.mkdir(parents=True, exist_ok=True)
    field = "data.source" if spec.source else "data.dataset_root"
    kwargs = {"cache_dir": str(root)} if spec.source is None else None
    if kwargs is not None and spec.force_redownload:
        kwargs["download_mode"] = "force_redownload"
    splits = local_records.load_splits(spec.source or HUB_ID, field, load_kwargs=kwargs)
    if "train" not in splits or "validation" not in splits:
        raise DataFileError(spec.source or HUB_ID, f"has splits {sorted(splits)}, not SQuAD's train "
                            "and validation", "give SQuAD's train and validation splits")
    training, validation = _split_train(splits["train"], spec.seed)
    for name, rows, test in ((SPLIT_FILES[0], training, False), (SPLIT_FILES[1], validation, False),
                             (SPLIT_FILES[2], splits["validation"], True)):
        tmp = root / f".{name}.{os.getpid()}.tmp"  # whole files only, even with several ranks
        with tmp.open("w", encoding="utf-8") as f:
            for i, row in enumerate(rows):
                f.write(json.dumps(_squad_record(row, f"{spec.source or HUB_ID}[{i}]", test)) + "\n")
        os.replace(tmp, root / name)
    if spec.source is None and spec.delete_raw:  # what datasets downloaded into dataset_root
        for path in root.iterdir():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.suffix != ".jsonl":
                path.unlink(missing_ok=True)


class SquadGPTDataModule(FineTuningGPTDataModule):
    """The LightningDataModule of `SquadDataModule`: prepares the JSONL files, then reads them."""

    def split_sources(self) -> list[tuple[str, Iterable[tuple[str, Any]] | None]]:
        prepare_squad(self.spec)  # type: ignore[arg-type]
        return super().split_sources()


def _numbered(name: str, rows: Any) -> Iterator[tuple[str, Any]]:
    for i, row in enumerate(rows):
        yield f"{name}[{i}]", row


class HFDatasetGPTDataModule(FineTuningGPTDataModule):
    """The LightningDataModule of `HFDatasetDataModule` (a spec with FineTuningDataModule's fields)."""

    spec: Any

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)

    def split_sources(self) -> list[tuple[str, Iterable[tuple[str, Any]] | None]]:
        spec = self.spec
        source = str(spec.path_or_dataset)
        splits = local_records.load_splits(source, "data.path_or_dataset", spec.split,
                                           spec.load_kwargs)
        aliases = {"train": spec.train_aliases, "val": spec.val_aliases, "test": spec.test_aliases}
        found: dict[str, tuple[str, Any]] = {}
        for name, rows in splits.items():
            kind = next((k for k, names in aliases.items() if name in names), None)
            if kind is None:
                raise ConfigError("data.train_aliases", spec.train_aliases,
                                  f"{source} has a split {name!r} that no alias list names",
                                  f"add {name!r} to data.train_aliases, val_aliases or test_aliases")
            found[kind] = (f"{source}:{name}", rows)
        if "train" not in found:
            raise ConfigError("data.path_or_dataset", source, f"has no training split (has "
                              f"{sorted(splits)})", "name it train/training, or add its name to "
                              "data.train_aliases")
        return [(found[k][0], _numbered(*found[k])) if k in found else (k, None)
                for k in ("train", "val", "test")]
