"""Imported models on disk: `$NEMO_HOME/models/<repo id>` and `nemo://<repo id>` paths (light).

An imported model directory (what `llm.import_ckpt` writes, NeMo 2.0's layout):

    <model dir>/weights/   a nemolite `torch_dist` checkpoint (loads into any TP/PP/EP layout)
    <model dir>/context/   model.json (config class and fields), hf_config.json,
                           generation_config.json, tokenizer/ (the HF tokenizer files)

`resolve_checkpoint` turns `nemo://<repo id>`, a model directory or a checkpoint directory into
the checkpoint directory to load; every place that accepts a checkpoint path goes through it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from nemolite.errors import ConfigError

SCHEME = "nemo://"
WEIGHTS = "weights"
CONTEXT = "context"
TOKENIZER = "tokenizer"
MODEL_JSON = "model.json"
HF_CONFIG = "hf_config.json"


def nemo_home() -> Path:
    """`$NEMO_HOME`, else NeMo's default `~/.cache/nemo`."""
    return Path(os.environ.get("NEMO_HOME") or Path.home() / ".cache" / "nemo")


def model_dir(repo_id: str) -> Path:
    """Where the import of `repo_id` lives."""
    return nemo_home() / "models" / repo_id


def import_command(repo_id: str) -> str:
    """The command that imports `repo_id` from the Hugging Face hub."""
    return f"nemo llm import source=hf://{repo_id} -y"


def resolve_checkpoint(path: str | Path, field: str = "resume.restore_config.path") -> Path:
    """The checkpoint directory `path` names (`nemo://<repo id>`, a model dir, or a checkpoint dir).

    Raises:
        ConfigError: a `nemo://` model that has not been imported (the message gives the command).
    """
    text = str(path)
    if text.startswith(SCHEME):
        repo_id = text[len(SCHEME):].strip("/")
        where = model_dir(repo_id)
        if not (where / WEIGHTS).is_dir():
            raise ConfigError(field, text, f"no imported model at {where}",
                              f"import it first: {import_command(repo_id)}")
        return where / WEIGHTS
    p = Path(text).expanduser()
    return p / WEIGHTS if (p / WEIGHTS).is_dir() else p


def context_of(checkpoint: Path) -> Path | None:
    """The context directory that belongs to a checkpoint: its own, or the one its marker names."""
    sibling = checkpoint.parent / CONTEXT
    if checkpoint.name == WEIGHTS and sibling.is_dir():
        return sibling
    try:
        meta = json.loads((checkpoint / "nemolite_ckpt.json").read_text())
    except (OSError, ValueError):
        return None
    context = meta.get("context") if isinstance(meta, dict) else None
    return Path(context) if context and Path(context).is_dir() else None


def tokenizer_dir(checkpoint: Path) -> Path | None:
    """The HF tokenizer saved with an imported model (or with the model a run started from)."""
    context = context_of(checkpoint)
    if context is None or not (context / TOKENIZER).is_dir():
        return None
    return context / TOKENIZER


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path` ({} when absent)."""
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


def publish_dir(tmp: Path, final: Path, *, overwrite: bool) -> Path:
    """Renames the finished `tmp` to `final` atomically; an old `final` is replaced only with overwrite."""
    old = None
    if final.exists():
        if not overwrite:
            raise FileExistsError(final)
        old = final.with_name(final.name + ".old.tmp")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final
