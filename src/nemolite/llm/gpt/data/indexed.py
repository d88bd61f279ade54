"""Megatron's indexed-dataset format (`.bin` + `.idx`): a streaming writer and a checker.

Writes exactly what megatron-core's `IndexedDataset` (megatron/core/datasets/indexed_dataset.py)
reads: `.bin` holds the token ids of all documents back to back; `.idx` holds a header
(`MMIDIDX\\x00\\x00`, version 1, dtype code), the sequence and document counts, then the int32
sequence lengths, int64 byte pointers and int64 document indices. One sequence per document.
Both files are written under temporary names and renamed only when complete.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from nemolite.errors import DataFileError

INDEX_HEADER = b"MMIDIDX\x00\x00"
# megatron-core's DType codes (indexed_dataset.DType): uint16 = 8, int32 = 4.
_DTYPE_CODES = {"uint16": 8, "int32": 4}
_ITEMSIZE = {8: 2, 4: 4, 1: 1, 2: 1, 3: 2, 5: 8, 6: 8, 7: 4}
_FIXED = len(INDEX_HEADER) + 8 + 1 + 8 + 8  # header, version, dtype code, two counts


def token_dtype(vocab_size: int) -> str:
    """The dtype megatron picks for a vocabulary (`DType.optimal_dtype`): uint16 below 65500."""
    return "uint16" if vocab_size < 65500 else "int32"


class IndexedDatasetWriter:
    """Appends documents to `prefix.bin` and writes `prefix.idx` on `finish()`.

    Writes to `prefix.bin.tmp-<pid>` / `prefix.idx.tmp-<pid>`; `finish()` renames both, `abort()`
    (or leaving a `with` block by an exception) deletes them, so a reader never sees half a file.
    """

    def __init__(self, prefix: str, dtype: str) -> None:
        import numpy as np

        self.prefix, self.dtype = prefix, np.dtype(dtype)
        self._code = _DTYPE_CODES[dtype]
        suffix = f".tmp-{os.getpid()}"
        self._bin_tmp = f"{prefix}.bin{suffix}"
        self._idx_tmp = f"{prefix}.idx{suffix}"
        self._bin = open(self._bin_tmp, "wb")
        self._lengths: list[Any] = []

    def __enter__(self) -> IndexedDatasetWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()

    def add_documents(self, tokens: Any, lengths: Any) -> None:
        """Appends documents given as one flat token array and the length of each document."""
        import numpy as np

        self._bin.write(np.asarray(tokens, dtype=self.dtype).tobytes())
        self._lengths.append(np.asarray(lengths, dtype=np.int32))

    def finish(self) -> None:
        """Writes the index and renames both files into place."""
        import numpy as np

        self._bin.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int32)
        pointers = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1].astype(np.int64) * self.dtype.itemsize, out=pointers[1:])
        documents = np.arange(len(lengths) + 1, dtype=np.int64)
        with open(self._idx_tmp, "wb") as idx:
            idx.write(INDEX_HEADER + struct.pack("<Q", 1) + struct.pack("<B", self._code))
            idx.write(struct.pack("<Q", len(lengths)) + struct.pack("<Q", len(documents)))
            idx.write(lengths.tobytes() + pointers.tobytes() + documents.tobytes())
        # .bin first: a reader keys on .idx, which then always describes a complete .bin.
        os.replace(self._bin_tmp, f"{self.prefix}.bin")
        os.replace(self._idx_tmp, f"{self.prefix}.idx")

    def abort(self) -> None:
        """Closes and deletes the temporary files."""
        self._bin.close()
        for path in (self._bin_tmp, self._idx_tmp):
            if os.path.exists(path):
                os.remove(path)


def check_indexed_dataset(prefix: str, field: str = "data.paths") -> int:
    """Checks that `prefix.idx` / `prefix.bin` exist and agree; returns the number of documents.

    megatron-core asserts on a bad header and reads garbage from a truncated `.bin`, so every
    prefix is checked here first, with one-line errors that name the file and the fix.
    """
    idx_path, bin_path = f"{prefix}.idx", f"{prefix}.bin"
    for path in (idx_path, bin_path):
        if not os.path.isfile(path):
            raise DataFileError(path, f"not found (from {field}={prefix!r})",
                                f"give the prefix of an existing .bin/.idx pair in {field}, or "
                                "create it with `nemo llm preprocess`")
    idx_size = os.path.getsize(idx_path)
    with open(idx_path, "rb") as f:
        head = f.read(_FIXED)
        if len(head) < _FIXED or not head.startswith(INDEX_HEADER):
            raise DataFileError(idx_path, "is not a megatron indexed-dataset index (bad header)",
                                "re-create it with `nemo llm preprocess`")
        code = head[len(INDEX_HEADER) + 8]
        count, doc_count = struct.unpack("<QQ", head[-16:])
        expected_idx = _FIXED + count * 4 + count * 8 + doc_count * 8
        if code not in _ITEMSIZE or idx_size < expected_idx:
            raise DataFileError(idx_path, f"is truncated ({idx_size} bytes, expected at least "
                                f"{expected_idx})", "re-create it with `nemo llm preprocess`")
        if count == 0:
            raise DataFileError(idx_path, "holds no documents",
                                "preprocess a non-empty input or drop this prefix")
        f.seek(_FIXED + (count - 1) * 4)
        (last_length,) = struct.unpack("<i", f.read(4))
        f.seek(_FIXED + count * 4 + (count - 1) * 8)
        (last_pointer,) = struct.unpack("<q", f.read(8))
    expected_bin = last_pointer + last_length * _ITEMSIZE[code]
    bin_size = os.path.getsize(bin_path)
    if bin_size != expected_bin:
        raise DataFileError(bin_path, f"has {bin_size} bytes but {idx_path} describes "
                            f"{expected_bin} (truncated, or .bin and .idx do not belong together)",
                            "re-create both with `nemo llm preprocess`")
    return count
