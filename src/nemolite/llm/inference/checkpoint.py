"""Which checkpoint a path names, and the model, tokenizer and adapters it was trained with (light).

A nemolite checkpoint is a `torch_dist` directory under `<run dir>/checkpoints/`; the run directory's
`config.yaml` (written by `NeMoLogger`) holds the task that produced it, so the architecture, the
tokenizer and any LoRA adapters come from there. Accepted paths: one checkpoint directory, a
`checkpoints/` directory, a run directory or a `<log_dir>/<name>` directory (the newest complete
checkpoint), and imported models (`nemo://<id>` or their directory: config in the checkpoint's
marker, Hugging Face tokenizer in `context/`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemolite.errors import ConfigError, DataFileError
from nemolite.lightning.exp_ckpt_dir import (
    CKPT_SUBDIR,
    check_integrity,
    latest_complete,
    read_marker,
)

CONFIG_NAME = "config.yaml"
_NEEDED = ("model", "data", "peft", "tokenizer")  # the parts of the task inference rebuilds


@dataclass
class CheckpointSpec:
    """What a checkpoint needs to be rebuilt for inference."""

    path: Path
    model: Any  # llm.GPTModel
    tokenizer: Any  # a tokenizer spec (has build())
    peft: Any = None  # llm.LoRA when the checkpoint holds unmerged adapters
    step: int | None = None


def resolve_path(path: str | Path, field: str = "path") -> Path:
    """The checkpoint directory `path` names (itself, or the newest complete one under it)."""
    from nemolite.lightning import model_store

    text = str(path)
    where = model_store.resolve_checkpoint(text, field=field)  # nemo://<id> and imported model dirs
    if not where.exists():
        raise ConfigError(field, text, "no such checkpoint or run directory",
                          "give a run directory or one of its checkpoints/<name> directories")
    if read_marker(where) is not None:
        return check_integrity(where).path
    for candidate in (where, where / CKPT_SUBDIR):
        latest = latest_complete(candidate)
        if latest is not None:
            return check_integrity(latest.path).path
    # `<log_dir>/<name>`: the newest run (version directory) that has a complete checkpoint.
    runs = [d for d in where.iterdir() if d.is_dir() and latest_complete(d / CKPT_SUBDIR) is not None]
    if runs:
        newest = max(runs, key=lambda d: (d.stat().st_mtime, d.name))
        return check_integrity(latest_complete(newest / CKPT_SUBDIR).path).path  # type: ignore[union-attr]
    raise ConfigError(field, text, "holds no complete nemolite checkpoint",
                      "give a run directory that has checkpoints/ (train one with `nemo llm pretrain`)")


def load_spec(path: str | Path, field: str = "path") -> CheckpointSpec:
    """The checkpoint at `path` and the model/tokenizer/adapter specs of the run that wrote it."""
    ckpt = resolve_path(path, field)
    config_file = _config_file(ckpt)
    if config_file is None and "model_config" in (read_marker(ckpt) or {}):
        return _imported_spec(ckpt)
    if config_file is None:
        raise DataFileError(ckpt, f"no {CONFIG_NAME} next to this checkpoint (nor in its run directory)",
                            "generate from a checkpoint written by `nemo llm pretrain/finetune` or `llm.import_ckpt`")
    task = _read_task(config_file)
    model = task.get("model")
    if model is None or not hasattr(model, "config"):
        raise DataFileError(config_file, "holds no model", "point path at a training run's checkpoint")
    tokenizer = _tokenizer_spec(task)
    meta = read_marker(ckpt) or {}
    return CheckpointSpec(ckpt, model, tokenizer, task.get("peft"), meta.get("step"))


def _imported_spec(ckpt: Path) -> CheckpointSpec:
    """An `llm.import_ckpt` model: the config in its marker, the HF tokenizer in its context/."""
    from nemolite.lightning import model_store
    from nemolite.llm.gpt.model.base import GPTModel
    from nemolite.llm.gpt.model.conversion.exporter import read_saved
    from nemolite.llm.tokenizers import AutoTokenizer

    saved = read_saved(ckpt)
    tok_dir = model_store.tokenizer_dir(ckpt)
    if tok_dir is None:
        raise DataFileError(ckpt, "this imported model has no tokenizer in its context/ directory",
                            "re-import it from a source that has tokenizer files")
    return CheckpointSpec(ckpt, GPTModel(saved.config), AutoTokenizer(pretrained_model_name=str(tok_dir)), None, 0)


def _config_file(ckpt: Path) -> Path | None:
    for candidate in (ckpt / CONFIG_NAME, ckpt / "context" / CONFIG_NAME, ckpt.parent.parent / CONFIG_NAME):
        if candidate.is_file():
            return candidate
    return None


def _read_task(config_file: Path) -> dict[str, Any]:
    """The task's arguments as built specs (model, data, peft, tokenizer, ...)."""
    import fiddle as fdl

    from nemolite.llm.recipe_io import from_yaml

    try:
        task = from_yaml(config_file.read_text())
        args = dict(task.__arguments__) if isinstance(task, fdl.Buildable) else dict(task)
        return {k: fdl.build(v) if isinstance(v, fdl.Buildable) else v
                for k, v in args.items() if k in _NEEDED}
    except Exception as error:  # a hand-edited or foreign file: say which and why
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise DataFileError(config_file, f"cannot be read as a nemolite task ({first})",
                            "restore it from the run, or re-run the training") from None


def _tokenizer_spec(task: dict[str, Any]) -> Any:
    """The tokenizer the run trained with: `tokenizer=` as llm.finetune resolves it."""
    model, data, choice = task.get("model"), task.get("data"), task.get("tokenizer")
    if choice not in (None, "model", "data"):
        return choice
    model_tok = getattr(model, "tokenizer", None)
    data_spec = getattr(data, "tokenizer_spec", None)
    data_tok = data_spec() if callable(data_spec) else getattr(data, "tokenizer", None)
    if choice == "data":
        return data_tok or model_tok
    return model_tok or data_tok
