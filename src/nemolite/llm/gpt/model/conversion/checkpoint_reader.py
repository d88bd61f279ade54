"""Heavy: a `torch_dist` checkpoint's model tensors read straight from its files, without megatron.

The checkpoint's `.metadata` (torch.distributed.checkpoint's) names every tensor by its global key,
with its global shape and the chunks each rank wrote, wherever they are in the `.distcp` files. A
checkpoint saved under any TP/PP/EP layout holds the same global tensors, so export reads what it
needs by key, one layer (and expert) at a time, from whichever chunks cover it: no model is built,
megatron is not imported, and only the tensor being exported is in memory.

Keys: megatron's sharded state dict names a layer's tensor `decoder.layers.<i>. ...` and stores it
under the key without the index, the index becoming a leading axis (experts likewise); the local
layer spec stores its norms under the fused layers' names (`checkpoint_key`; checked against
megatron's own layout by tests/llm/gpt/model/test_hf_convert_io.py).
"""

from __future__ import annotations

import io
import math
import mmap
import pickle
import struct
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch

from nemolite.errors import DataFileError

#: megatron's local layer spec's `sharded_state_dict_keys_map` (gpt_layer_specs.py), applied to a
#: layer's name once its indices are taken out; and SequentialMLP's experts key.
RENAMES = (("input_layernorm.", "self_attention.linear_qkv.layer_norm_"),
           ("pre_mlp_layernorm.", "mlp.linear_fc1.layer_norm_"),
           ("experts.local_experts.", "experts.experts."))


def checkpoint_key(name: str) -> tuple[str, tuple[int, ...]]:
    """(checkpoint key, leading indices) of a one-process model's state dict name.

    `decoder.layers.3.mlp.experts.local_experts.5.linear_fc1.weight` ->
    (`decoder.layers.mlp.experts.experts.linear_fc1.weight`, (3, 5)).
    """
    parts = name.split(".")
    index = tuple(int(p) for p in parts if p.isdigit())
    key = ".".join(p for p in parts if not p.isdigit())
    for old, new in RENAMES:
        key = key.replace(old, new)
    return key, index


class _FileView(io.RawIOBase):
    """Bytes [offset, offset + length) of an open file, as a seekable file for torch.load."""

    def __init__(self, f: Any, offset: int, length: int) -> None:
        self.f, self.offset, self.length, self.pos = f, offset, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.length}[whence]
        self.pos = max(0, min(self.length, base + pos))
        return self.pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self.length - self.pos)
        if n <= 0:
            return 0
        self.f.seek(self.offset + self.pos)
        got = self.f.readinto(view[:n])
        self.pos += got
        return int(got)


Tensors = dict[str, tuple[tuple[int, ...], torch.dtype, list[tuple[tuple[int, ...], tuple[int, ...]]]]]
Storage = dict[tuple[str, tuple[int, ...]], tuple[str, int, int]]


class _Loose:
    """Stands in for a torch.distributed.checkpoint class while `.metadata` is unpickled."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict) and (
                state[0] is None or isinstance(state[0], dict)):  # (dict, slots)
            self.__dict__.update(state[0] or {})
            self.__dict__.update(state[1])
        elif isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.state = state


class _MetadataUnpickler(pickle.Unpickler):
    """`.metadata` with torch.distributed.checkpoint's classes replaced by `_Loose` ones.

    Reading them takes no import of torch.distributed.checkpoint (~1 s of CPU, more than the
    metadata of a small model takes to read); every other global is the real one.
    """

    classes: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("torch.distributed.checkpoint"):
            key = (module, name)
            if key not in self.classes:
                self.classes[key] = type(name, (_Loose,), {})
            return self.classes[key]
        return super().find_class(module, name)


def read_metadata(path: Path) -> tuple[Tensors, Storage]:
    """A DCP `.metadata` file's tensors (size, dtype, chunks) and where each chunk is stored."""
    with open(path, "rb") as f:
        metadata = _MetadataUnpickler(f).load()
    tensors: Tensors = {}
    for key, entry in metadata.state_dict_metadata.items():
        if type(entry).__name__ != "TensorStorageMetadata":
            continue  # bytes (megatron's sharded objects)
        properties = entry.properties
        dtype = properties.dtype if hasattr(properties, "dtype") else properties.state[0]
        chunks = [(tuple(c.offsets), tuple(c.sizes)) for c in entry.chunks]
        tensors[key] = (tuple(entry.size), dtype, chunks)
    storage: Storage = {}
    for index, info in metadata.storage_data.items():
        offset = getattr(index, "offset", None)  # left out of the pickle when None
        if offset is not None:
            storage[(index.fqn, tuple(offset))] = (info.relative_path, int(info.offset), int(info.length))
    return tensors, storage


class CheckpointReader:
    """Global tensors of a `torch_dist` checkpoint directory, read by key and leading indices."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            tensors, storage = read_metadata(self.path / ".metadata")
        except Exception as err:  # a missing or truncated .metadata: one line, not a traceback
            raise DataFileError(self.path / ".metadata", f"unreadable checkpoint metadata ({type(err).__name__})",
                                "export a complete checkpoint") from None
        #: key -> (global size, dtype, [(chunk offsets, chunk sizes)])
        self.tensors = tensors
        #: (key, chunk offsets) -> (file name, offset, length)
        self.storage = storage

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of the tensor `name` (a state dict name, as `checkpoint_key` reads it)."""
        key, index = checkpoint_key(name)
        return tuple(self._entry(name, key)[0])[len(index):]

    def meta(self, name: str) -> torch.Tensor:
        """The tensor `name` on the meta device (its shape and saved dtype; nothing read)."""
        key, _ = checkpoint_key(name)
        return torch.empty(self.shape(name), dtype=self._entry(name, key)[1], device="meta")

    def _entry(self, name: str, key: str) -> Any:
        entry = self.tensors.get(key)
        if entry is None:
            raise DataFileError(self.path, f"no tensor {key} (for {name}) in the checkpoint",
                                "export a checkpoint of this model (its config and weights disagree)")
        return entry

    def read(self, name: str) -> torch.Tensor:
        """The tensor `name` (one layer's, one expert's), assembled from the chunks that cover it."""
        key, index = checkpoint_key(name)
        size, dtype, chunks = self._entry(name, key)
        lead = len(index)
        out: torch.Tensor | None = None
        filled = 0
        files: dict[str, Any] = {}
        try:
            for offsets, sizes in chunks:
                if any(not o <= i < o + s for i, o, s in zip(index, offsets, sizes, strict=False)):
                    continue
                data = self._load(key, offsets, files)
                if tuple(data.shape) != sizes:
                    raise DataFileError(self.path, f"chunk of {key} at {offsets}: {tuple(data.shape)}, "
                                        f"the metadata says {sizes}", "export a complete checkpoint")
                part = data[tuple(i - o for i, o in zip(index, offsets, strict=False))]
                rest = tuple(slice(o, o + s) for o, s in zip(offsets[lead:], sizes[lead:], strict=True))
                if out is None and part.shape == size[lead:]:
                    out = part  # the chunk is the whole tensor: no copy
                else:
                    if out is None:
                        out = torch.empty(size[lead:], dtype=dtype)
                    out[rest].copy_(part)
                filled += part.numel()
        finally:
            for f in files.values():
                f.close()
        expected = math.prod(size[lead:])
        if out is None or filled != expected:
            raise DataFileError(self.path, f"{key} at {index}: the checkpoint holds {filled} of its {expected} "
                                "values", "export a complete checkpoint")
        return out

    def _load(self, key: str, offsets: tuple[int, ...], files: dict[str, Any]) -> torch.Tensor:
        info = self.storage.get((key, offsets))
        if info is None:
            raise DataFileError(self.path, f"chunk of {key} at {offsets} missing from the checkpoint",
                                "export a complete checkpoint")
        relative, offset, length = info
        f = files.get(relative)
        if f is None:
            f = files[relative] = open(self.path / relative, "rb")  # noqa: SIM115
        mapped = _mapped(f, offset, length)
        if mapped is not None:
            return mapped
        view = io.BufferedReader(_FileView(f, offset, length), buffer_size=1 << 20)
        return torch.load(view, map_location="cpu", weights_only=True)  # type: ignore[no-any-return]


def _mapped(f: Any, offset: int, length: int) -> torch.Tensor | None:
    """The tensor `torch.save` wrote at [offset, offset + length) of `f`, mapped from the file.

    No copy and no fresh memory: the storage record of the zip archive is memory-mapped (pages
    of the page cache, unmapped when the tensor goes) and viewed with the saved dtype, size,
    stride and offset, which `torch.load` reads from the archive's pickle onto the meta device.
    None (read it with torch.load) for anything unexpected: several storages, compression, another
    byte order.
    """
    view = io.BufferedReader(_FileView(f, offset, length), buffer_size=1 << 16)
    try:
        archive = zipfile.ZipFile(view)
        records = [i for i in archive.infolist() if "/data/" in i.filename and not i.filename.endswith("/")]
        order = [i for i in archive.infolist() if i.filename.endswith("/byteorder")]
        if (len(records) != 1 or records[0].compress_type != zipfile.ZIP_STORED
                or any(archive.read(i) != b"little" for i in order) or sys.byteorder != "little"):
            return None
        record = records[0]
        view.seek(0)
        meta = torch.load(view, map_location="meta", weights_only=True)
        if not isinstance(meta, torch.Tensor):
            return None
        view.seek(record.header_offset)
        local = view.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            return None
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        start = offset + record.header_offset + 30 + name_len + extra_len
    except (zipfile.BadZipFile, RuntimeError, ValueError, struct.error, pickle.UnpicklingError):
        return None
    size = record.file_size
    itemsize = meta.element_size()
    needed = (meta.storage_offset() + sum((n - 1) * st for n, st in zip(meta.shape, meta.stride(), strict=True))
              + 1) * itemsize if meta.numel() else 0
    if needed > size or size % itemsize:
        return None
    if size == 0:
        return torch.empty(meta.shape, dtype=meta.dtype)
    aligned = start - start % mmap.ALLOCATIONGRANULARITY
    mapping = mmap.mmap(f.fileno(), start - aligned + size, offset=aligned, access=mmap.ACCESS_COPY)
    flat = torch.frombuffer(mapping, dtype=torch.uint8, offset=start - aligned, count=size).view(meta.dtype)
    return flat.as_strided(meta.shape, meta.stride(), meta.storage_offset())
