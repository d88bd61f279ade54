"""A dataset's splits as records: local JSON/JSONL/parquet files, or, with `datasets` installed,
a `save_to_disk` directory or a Hugging Face hub dataset (from the hub cache when offline).

Heavy only on demand: pyarrow for parquet files and `datasets` for saved or hub datasets are
imported when such a source is read, with a one-line error naming the package when absent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nemolite.errors import ConfigError, DataFileError

SUFFIXES = (".jsonl", ".json", ".parquet")
Records = Sequence[Any]  # a list of dicts, or a datasets.Dataset (which iterates as dicts)


def read_file(path: Path) -> list[Any]:
    """The records of one JSONL, JSON (a list, or NeMo/SQuAD's `{"data": [...]}`) or parquet file."""
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise DataFileError(f"{path}:{number}", f"line is not JSON ({err.msg})",
                                        "fix or remove this line") from None
        return rows
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataFileError(path, f"is not JSON ({err.msg} at line {err.lineno})",
                                "fix the file, or write it as JSONL (one object a line)") from None
        data = data.get("data") if isinstance(data, dict) else data
        if not isinstance(data, list):
            raise DataFileError(path, "holds neither a list of records nor {\"data\": [...]}",
                                "write a JSON list of objects, or JSONL")
        return data
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataFileError(path, "reading parquet needs pyarrow, which is not installed",
                                "pip install pyarrow, or convert the file to JSONL") from None
        return pq.read_table(path).to_pylist()
    raise DataFileError(path, f"has an unknown suffix {path.suffix!r}",
                        f"use one of {', '.join(SUFFIXES)}")


def split_files(directory: Path) -> dict[str, list[Path]]:
    """Data files by split name: `train.jsonl`, `validation.parquet`, `data/train-00000-of-00001.parquet`."""
    found: dict[str, list[Path]] = {}
    for folder in (directory, directory / "data"):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix in SUFFIXES:
                found.setdefault(path.stem.split("-")[0], []).append(path)
    return found


def _datasets(field: str, source: str, why: str) -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError(field, source, f"{why} needs the `datasets` package, which is not installed",
                          "pip install datasets, or point it at local JSON/JSONL/parquet files") from None
    return datasets


def load_splits(source: str, field: str, split: str | None = None,
                load_kwargs: dict[str, Any] | None = None) -> dict[str, Records]:
    """The splits of `source` by name (a single file is the `train` split)."""
    path = Path(source).expanduser()
    if path.is_file():
        return {split or "train": read_file(path)}
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file():
            loaded = _datasets(field, source, "a `save_to_disk` directory").load_from_disk(str(path))
            splits = dict(loaded) if hasattr(loaded, "keys") else {split or "train": loaded}
        else:
            splits = {name: [r for p in paths for r in read_file(p)]
                      for name, paths in split_files(path).items()}
        if not splits:
            raise DataFileError(path, "holds no train/validation/test data files and no saved dataset",
                                f"put e.g. train.jsonl there ({', '.join(SUFFIXES)}), or a "
                                "datasets save_to_disk directory")
        return {split: splits[split]} if split and split in splits else splits
    if source.startswith((".", "/", "~")):
        raise DataFileError(path, "no such file or directory", f"fix {field}")
    datasets = _datasets(field, source, "a Hugging Face hub dataset")
    try:
        loaded = datasets.load_dataset(source, split=split, **(load_kwargs or {}))
    except Exception as err:  # offline with no cached copy, unknown id, ...: one line, not a traceback
        raise ConfigError(field, source, f"could not be loaded by datasets.load_dataset "
                          f"({type(err).__name__}: {' '.join(str(err).split())[:200]})",
                          "check the dataset id and the network or HF cache, or give a local "
                          "directory of JSON/JSONL/parquet files") from None
    return dict(loaded) if hasattr(loaded, "keys") else {split or "train": loaded}
