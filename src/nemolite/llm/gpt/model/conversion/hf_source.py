"""Where a Hugging Face model comes from (`hf://<repo id>`, `hf:///abs/dir`, a local directory),
and its safetensors shards read one tensor at a time.

Hub downloads go through huggingface-hub (its cache, `HF_TOKEN` for gated repos, and
`HF_HUB_OFFLINE=1` honoured); every failure is one line naming the source and the fix.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemolite.errors import ConfigError, DataFileError

#: Files an import needs from a hub repo (weights, config, tokenizer), nothing else.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.json", "merges.txt", "vocab.txt", "added_tokens.json", "chat_template.jinja",
                   "chat_template.json", "tokenizer.tiktoken")


@dataclass(frozen=True)
class Source:
    """A resolved source: the local directory and the name the import is stored under."""

    text: str
    directory: Path
    repo_id: str


def parse(source: str) -> tuple[str | None, Path | None]:
    """(hub repo id, None) or (None, local directory) for a source string."""
    text = str(source)
    if text.startswith("hf://"):
        rest = text[len("hf://"):]
        if rest.startswith("/"):
            return None, Path(rest)
        return rest.strip("/"), None
    return None, Path(text).expanduser()


def default_name(source: str) -> str:
    """The `<repo id>` an import is stored under: the hub id, or a local directory's name."""
    repo_id, local = parse(source)
    return repo_id if repo_id is not None else Path(local or ".").resolve().name


def resolve(source: str) -> Source:
    """Downloads a hub repo (or checks a local directory) and returns where its files are."""
    repo_id, local = parse(source)
    if repo_id is not None:
        directory = _download(source, repo_id)
    else:
        assert local is not None
        directory = local
        if not directory.is_dir():
            raise ConfigError("source", source, "no such directory",
                              "give hf://<org>/<name>, hf:///abs/dir or an existing local directory")
    if not (directory / "config.json").is_file():
        raise DataFileError(directory, "no config.json: not a Hugging Face model directory",
                            "point source at the directory save_pretrained wrote")
    return Source(str(source), directory, repo_id or directory.resolve().name)


def _download(source: str, repo_id: str) -> Path:
    try:
        from huggingface_hub import errors as hub_errors
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - huggingface-hub is a core dependency
        raise ConfigError("source", source, "huggingface-hub is not installed",
                          "pip install huggingface-hub") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS))
    except hub_errors.GatedRepoError:
        raise ConfigError("source", source, "a gated repository: access needs a token",
                          "accept the license on huggingface.co and set HF_TOKEN") from None
    except hub_errors.RepositoryNotFoundError:
        raise ConfigError("source", source, "no such repository on the Hugging Face hub (or it is "
                          "private)", "check the repo id, or set HF_TOKEN for a private repo") from None
    except hub_errors.LocalEntryNotFoundError:
        raise ConfigError("source", source, "not in the local Hugging Face cache and the hub cannot "
                          "be reached (offline or HF_HUB_OFFLINE=1)",
                          "connect to the network, or import from a local directory") from None
    except (hub_errors.HfHubHTTPError, OSError, ValueError) as err:
        raise ConfigError("source", source, f"download failed ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''})",
                          "check the repo id and the network, or import from a local directory") from None


def read_config(directory: Path) -> dict[str, Any]:
    """The model's config.json."""
    path = directory / "config.json"
    try:
        config = json.loads(path.read_text())
    except ValueError as err:
        raise DataFileError(path, f"not valid JSON ({err})", "re-download the model") from None
    if not isinstance(config, dict):
        raise DataFileError(path, "not a JSON object", "re-download the model")
    return config


#: safetensors dtype names -> torch dtype names.
SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                      "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def _check_shard(path: Path) -> dict[str, dict[str, Any]]:
    """The tensors (name -> header entry) of one safetensors file, after checking its header and size."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise DataFileError(path, "truncated safetensors file (no header)", "re-download the model")
        (n,) = struct.unpack("<Q", raw)
        if n > size - 8:
            raise DataFileError(path, "corrupt safetensors header", "re-download the model")
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise DataFileError(path, "corrupt safetensors header", "re-download the model") from None
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise DataFileError(path, f"truncated safetensors file ({size} bytes, needs {8 + n + end})",
                            "re-download the model")
    return {k: v for k, v in header.items() if k != "__metadata__"}


class ShardReader:
    """Reads tensors by name from a directory's safetensors shards, one at a time."""

    def __init__(self, directory: Path) -> None:
        files = sorted(directory.glob("*.safetensors"))
        if not files:
            raise DataFileError(directory, "no *.safetensors weights (only safetensors is read)",
                                "save the model with save_pretrained(safe_serialization=True)")
        self.where: dict[str, Path] = {}
        self.header: dict[str, dict[str, Any]] = {}
        for path in files:
            for name, entry in _check_shard(path).items():
                self.where[name] = path
                self.header[name] = entry

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def get(self, name: str) -> Any:
        """The tensor `name` (a torch.Tensor)."""
        from safetensors import safe_open

        path = self.where.get(name)
        if path is None:
            raise DataFileError(name, "tensor missing from the safetensors files",
                                "the weights do not match config.json; re-download the model")
        # Opened per tensor: closing unmaps the file, so the shards' pages do not pile up in RSS
        # while the model fills (the header parse this repeats is tiny next to the tensor).
        with safe_open(str(path), framework="pt") as f:
            return f.get_tensor(name)

    def meta(self, name: str) -> Any:
        """The tensor `name` on the meta device (shape and dtype from the header, no data read)."""
        import torch

        entry = self.header.get(name)
        if entry is None:
            raise DataFileError(name, "tensor missing from the safetensors files",
                                "the weights do not match config.json; re-download the model")
        dtype = SAFETENSORS_DTYPES.get(str(entry.get("dtype")))
        if dtype is None:
            raise DataFileError(self.where[name], f"tensor {name}: unsupported dtype {entry.get('dtype')!r}",
                                f"convert the weights to one of {', '.join(SAFETENSORS_DTYPES)}")
        return torch.empty(tuple(entry["shape"]), dtype=getattr(torch, dtype), device="meta")

    def names(self) -> Iterator[str]:
        """Every tensor name in the shards."""
        return iter(self.where)
