"""Runs that start from an imported model (`resume.restore_config.path=nemo://<repo id>`).

Light. `check_restore` fails before launch, with the import command to run, when the model has
not been imported; `use_imported_tokenizer` makes the tokenizer saved with the import the one the
model and the data use, unless the recipe names another.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("nemolite.restore")


def restore_path(resume: Any) -> str | None:
    """The restore_config.path of a resume spec, if any."""
    restore = getattr(resume, "restore_config", None)
    return getattr(restore, "path", None) if restore is not None else None


def check_restore(resume: Any) -> None:
    """`ConfigError` (with the `nemo llm import` command) when a `nemo://` model is missing."""
    from nemolite.lightning.model_store import SCHEME, resolve_checkpoint

    path = restore_path(resume)
    if path is not None and str(path).startswith(SCHEME):
        resolve_checkpoint(path)


def imported_tokenizer_spec(resume: Any) -> Any:
    """A tokenizer spec for the tokenizer saved with the restored model (None when it has none)."""
    from pathlib import Path

    from nemolite.lightning import model_store

    path = restore_path(resume)
    if path is None:
        return None
    checkpoint = model_store.resolve_checkpoint(path)
    directory = model_store.tokenizer_dir(checkpoint) if Path(checkpoint).is_dir() else None
    if directory is None or not any(directory.iterdir()):
        return None
    if (directory / "tokenizer.json").is_file():
        from nemolite.llm.tokenizers import HFTokenizer

        return HFTokenizer(path=str(directory))
    from nemolite.llm.tokenizers import AutoTokenizer

    return AutoTokenizer(pretrained_model_name=str(directory))


def use_imported_tokenizer(model: Any, data: Any, resume: Any) -> None:
    """Gives the model and the data the imported model's tokenizer where they name none."""
    if getattr(model, "tokenizer", None) is not None and getattr(data, "tokenizer", "unset") is not None:
        return
    spec = imported_tokenizer_spec(resume)
    if spec is None:
        return
    if getattr(model, "tokenizer", None) is None:
        model.tokenizer = spec
    if hasattr(data, "tokenizer") and data.tokenizer is None:
        data.tokenizer = spec
    log.info("tokenizer: the one imported with %s", restore_path(resume))
