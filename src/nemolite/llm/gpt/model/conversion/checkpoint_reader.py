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

import collections
import dataclasses
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
        self._records: dict[tuple[str, tuple[int, ...]], Record | None] = {}

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

    def row_pieces(self, name: str) -> tuple[torch.dtype, int, list[tuple[int, int, Path, int]]] | None:
        """The tensor `name` as runs of whole rows in the checkpoint's files, or None.

        (saved dtype, bytes per row, [(first row, end row, file, file offset of the first row)])
        when every chunk covering it is stored contiguously and splits it along its first
        dimension only (a one-process checkpoint, TP's column splits): export then copies its rows
        file to file, without mapping or converting them. None otherwise (`read` assembles it).
        """
        key, index = checkpoint_key(name)
        size, dtype, chunks = self._entry(name, key)
        lead = len(index)
        shape = tuple(size[lead:])
        if not shape:
            return None
        itemsize = torch.empty((), dtype=dtype).element_size()
        pieces = []
        for offsets, sizes in chunks:
            if any(not o <= i < o + s for i, o, s in zip(index, offsets, sizes, strict=False)):
                continue
            if tuple(offsets[lead + 1:]) != (0,) * (len(shape) - 1) or tuple(sizes[lead + 1:]) != shape[1:]:
                return None
            record = self.record(key, offsets)
            if record is None or record.dtype != dtype or record.shape != tuple(sizes) or not record.is_contiguous():
                return None
            first = record.storage_offset + sum((i - o) * st for i, o, st in zip(index, offsets, record.stride,
                                                                                   strict=False))
            pieces.append((offsets[lead], offsets[lead] + sizes[lead], self.path / record.relative,
                           record.start + first * itemsize))
        pieces.sort()
        if [p[0] for p in pieces] != [0] + [p[1] for p in pieces[:-1]] or not pieces or pieces[-1][1] != shape[0]:
            return None  # gaps or overlaps: let `read` say what is missing
        return dtype, math.prod(shape[1:]) * itemsize, pieces

    def record(self, key: str, offsets: tuple[int, ...], files: dict[str, Any] | None = None) -> Record | None:
        """Where the chunk of `key` at `offsets` lies in its file (None: read it with torch.load)."""
        if (key, offsets) in self._records:
            return self._records[(key, offsets)]
        relative, offset, length = self._storage(key, offsets)
        opened = files.get(relative) if files is not None else None
        if opened is None:
            with open(self.path / relative, "rb") as f:
                found = read_record(f, relative, offset, length)
        else:
            found = read_record(opened, relative, offset, length)
        self._records[(key, offsets)] = found
        return found

    def _storage(self, key: str, offsets: tuple[int, ...]) -> tuple[str, int, int]:
        info = self.storage.get((key, offsets))
        if info is None:
            raise DataFileError(self.path, f"chunk of {key} at {offsets} missing from the checkpoint",
                                "export a complete checkpoint")
        return info

    def _load(self, key: str, offsets: tuple[int, ...], files: dict[str, Any]) -> torch.Tensor:
        relative, offset, length = self._storage(key, offsets)
        f = files.get(relative)
        if f is None:
            f = files[relative] = open(self.path / relative, "rb")  # noqa: SIM115
        record = self.record(key, offsets, files)
        if record is not None:
            return _mapped(f, record)
        view = io.BufferedReader(_FileView(f, offset, length), buffer_size=1 << 20)
        return torch.load(view, map_location="cpu", weights_only=True)  # type: ignore[no-any-return]


@dataclasses.dataclass(frozen=True)
class Record:
    """Where one chunk's values lie in its `.distcp` file: what `torch.save` wrote there.

    `start` is the file offset of the storage's first byte; the tensor is the storage viewed with
    `dtype`, `shape`, `stride` and `storage_offset` (elements).
    """

    relative: str
    start: int
    nbytes: int
    dtype: torch.dtype
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    storage_offset: int

    def is_contiguous(self) -> bool:
        expected, step = [], 1
        for n in reversed(self.shape):
            expected.append(step)
            step *= n
        return all(n == 1 or st == e for n, st, e in zip(self.shape, self.stride, reversed(expected),
                                                          strict=True))


class _Storage(tuple):  # noqa: SLOT001 - (dtype, key, numel) of a persistent storage id
    pass


def _rebuild(storage: _Storage, storage_offset: int, size: Any, stride: Any, *_: Any) -> tuple[Any, ...]:
    return (storage, int(storage_offset), tuple(size), tuple(stride))


class _StorageType:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


#: torch.save's storage classes (torch/storage.py, `pickle_storage_type`) -> dtype; reading their
#: `.dtype` off torch's TypedStorage classes warns that they are deprecated.
STORAGE_DTYPES = {"DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
                  "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
                  "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
                  "BoolStorage": torch.bool}


class _RecordUnpickler(pickle.Unpickler):
    """A `torch.save`d tensor's `data.pkl`, read for its layout only (no data, no torch.load).

    `torch.load(map_location="meta")` reads the storage's bytes before moving it to the meta
    device; this reads the pickle alone. Anything but one plain tensor is refused (torch.load then).
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage:
        kind, storage_type, key, _, numel = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(str(kind))
        return _Storage((storage_type.dtype, str(key), int(numel)))


def read_record(f: Any, relative: str, offset: int, length: int) -> Record | None:
    """The `Record` of the tensor `torch.save` wrote at [offset, offset + length) of `f`.

    None for anything unexpected (several storages, compression, another byte order, another
    pickle): the caller reads that chunk with torch.load.
    """
    view = io.BufferedReader(_FileView(f, offset, length), buffer_size=1 << 16)
    try:
        infos = zipfile.ZipFile(view).infolist()
        records = [i for i in infos if "/data/" in i.filename and not i.filename.endswith("/")]
        pickles = [i for i in infos if i.filename.endswith("/data.pkl")]
        order = [i for i in infos if i.filename.endswith("/byteorder")]
        if (len(records) != 1 or len(pickles) != 1 or any(i.compress_type != zipfile.ZIP_STORED for i in infos)
                or any(_stored(view, i)[1] != b"little" for i in order) or sys.byteorder != "little"):
            return None
        rebuilt = _RecordUnpickler(io.BytesIO(_stored(view, pickles[0])[1])).load()
        if not (isinstance(rebuilt, tuple) and len(rebuilt) == 4 and isinstance(rebuilt[0], _Storage)):
            return None
        (dtype, key, numel), storage_offset, shape, stride = rebuilt
        record = records[0]
        if record.filename.rsplit("/", 1)[-1] != key:
            return None
        start = offset + _stored(view, record, read=False)[0]
    except (zipfile.BadZipFile, ValueError, TypeError, struct.error, pickle.UnpicklingError, EOFError):
        return None
    itemsize = torch.empty((), dtype=dtype).element_size()
    needed = (storage_offset + sum((n - 1) * st for n, st in zip(shape, stride, strict=True)) + 1) * itemsize \
        if math.prod(shape) else 0
    if needed > record.file_size or record.file_size != numel * itemsize:
        return None
    return Record(relative, start, record.file_size, dtype, shape, stride, storage_offset)


def _stored(view: Any, info: zipfile.ZipInfo, read: bool = True) -> tuple[int, bytes]:
    """(offset of the data, the data) of a stored zip entry, read past its local header.

    Not `ZipFile.read`: the in-process writer (`megatron_io`) turns torch.save's CRC32 off, so
    the archive's checksums are not the data's and zipfile would refuse every entry.
    """
    view.seek(info.header_offset)
    local = view.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(info.filename)
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    if not read:
        return start, b""
    view.seek(start)
    data = view.read(info.file_size)
    if len(data) != info.file_size:
        raise zipfile.BadZipFile(info.filename)
    return start, data


def _mapped(f: Any, record: Record) -> torch.Tensor:
    """The chunk `record` describes, memory-mapped from its file: no copy and no fresh memory.

    Pages of the page cache, unmapped when the tensor goes, viewed with the saved dtype, size,
    stride and offset.
    """
    if record.nbytes == 0:
        return torch.empty(record.shape, dtype=record.dtype)
    aligned = record.start - record.start % mmap.ALLOCATIONGRANULARITY
    mapping = mmap.mmap(f.fileno(), record.start - aligned + record.nbytes, offset=aligned,
                        access=mmap.ACCESS_COPY)
    flat = torch.frombuffer(mapping, dtype=torch.uint8, offset=record.start - aligned, count=record.nbytes)
    return flat.view(record.dtype).as_strided(record.shape, record.stride, record.storage_offset)
