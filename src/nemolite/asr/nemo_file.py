"""NeMo's `.nemo` checkpoint format: a tar of `model_config.yaml`, `model_weights.ckpt` and artifacts.

`model_config.yaml` is the model's config section (its `target` names the model class, each
module's `_target_` its class), `model_weights.ckpt` is `torch.save(model.state_dict())`, and
artifacts such as the SentencePiece model are stored next to them as `<hash>_<name>` and referred
to from the config as `nemo:<hash>_<name>`. NeMo writes an uncompressed tar; older releases wrote
tar.gz, which is read as well. Files are written to a temporary name and renamed, so a crash never
leaves a half-written `.nemo`.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemolite.errors import DataFileError

CONFIG_NAME = "model_config.yaml"
WEIGHTS_NAME = "model_weights.ckpt"
_FIX = "pass a .nemo file written by NeMo's save_to or nemolite's"


@dataclass
class NemoArchive:
    """The contents of a `.nemo` file: config (a dict), state dict and artifacts (name -> bytes)."""

    config: dict[str, Any]
    state_dict: dict[str, Any]
    artifacts: dict[str, bytes] = field(default_factory=dict)

    def artifact(self, ref: str | None) -> bytes | None:
        """The bytes a config value `nemo:<name>` (or a bare member name) refers to."""
        if not ref:
            return None
        name = ref[len("nemo:") :] if ref.startswith("nemo:") else Path(ref).name
        return self.artifacts.get(name)


def _member_name(member: tarfile.TarInfo) -> str:
    return member.name[2:] if member.name.startswith("./") else member.name


def read_nemo(path: str | Path, load_weights: bool = True) -> NemoArchive:
    """Reads a `.nemo` file; a missing, corrupt or incomplete file is a one-line `DataFileError`."""
    import torch
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DataFileError(path, "no such file", "check the path of the .nemo file")
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {_member_name(m): m for m in tar.getmembers() if m.isfile()}
            for needed in (CONFIG_NAME, WEIGHTS_NAME):
                if needed not in members:
                    raise DataFileError(path, f"not a .nemo archive: it has no {needed}", _FIX)
            files = {
                name: tar.extractfile(m).read()  # type: ignore[union-attr]
                for name, m in members.items()
                if load_weights or name != WEIGHTS_NAME
            }
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataFileError(path, f"unreadable or truncated .nemo archive ({exc})", _FIX) from None
    try:
        config = yaml.safe_load(files.pop(CONFIG_NAME).decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataFileError(path, f"{CONFIG_NAME} is not valid YAML ({exc})", _FIX) from None
    if not isinstance(config, dict):
        raise DataFileError(path, f"{CONFIG_NAME} is not a mapping", _FIX)
    config = config.get("model", config) if "model" in config and "encoder" not in config else config
    state_dict: dict[str, Any] = {}
    if load_weights:
        try:
            state_dict = torch.load(
                io.BytesIO(files.pop(WEIGHTS_NAME)), map_location="cpu", weights_only=True
            )
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
            raise DataFileError(path, f"{WEIGHTS_NAME} is not a readable state dict ({type(exc).__name__})", _FIX) from None
        if not isinstance(state_dict, dict):
            raise DataFileError(path, f"{WEIGHTS_NAME} holds no state dict", _FIX)
        state_dict = state_dict.get("state_dict", state_dict)
    return NemoArchive(config=config, state_dict=state_dict, artifacts=files)


def artifact_name(name: str) -> str:
    """A member name in NeMo's style for an artifact: `<32 hex>_<name>`."""
    return f"{uuid.uuid4().hex}_{name}"


def write_nemo(path: str | Path, archive: NemoArchive) -> Path:
    """Writes `archive` as an uncompressed tar, as NeMo does, atomically."""
    import torch
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = io.BytesIO()
    torch.save(archive.state_dict, weights)
    entries = {
        CONFIG_NAME: yaml.safe_dump(archive.config, sort_keys=False).encode("utf-8"),
        WEIGHTS_NAME: weights.getvalue(),
        **archive.artifacts,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle, tarfile.open(fileobj=handle, mode="w:") as tar:
            for name, data in entries.items():
                info = tarfile.TarInfo(f"./{name}")
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
