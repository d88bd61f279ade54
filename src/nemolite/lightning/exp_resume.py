"""`AutoResume.setup`: choose the checkpoint, check it fits the model, hand it to Lightning."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nemolite.errors import ConfigError, DataFileError
from nemolite.lightning import exp_ckpt_dir as ckdir

if TYPE_CHECKING:
    import lightning.pytorch as pl

    from nemolite.lightning.resume import AutoResume

log = logging.getLogger("nemolite.resume")

# Model config fields that change parameter shapes: a checkpoint must match them to load.
SHAPE_FIELDS = ("num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads",
                "num_query_groups", "kv_channels", "vocab_size", "padded_vocab_size",
                "num_moe_experts", "gated_linear_unit", "add_bias_linear", "untie_embeddings_and_output_weights",
                "share_embeddings_and_output_weights")


def setup_resume(spec: AutoResume, trainer: pl.Trainer, model: Any = None) -> Path | None:
    """Sets `trainer.ckpt_path` (or attaches the weight restore); returns the checkpoint directory."""
    from nemolite.lightning.callbacks._state import find_callback
    from nemolite.lightning.callbacks.checkpoint import CheckpointCallback, trainer_ckpt_path

    spec.validate()
    ckpt_cb = find_callback(trainer, CheckpointCallback)
    run_dir = getattr(trainer, "nemolite_run_dir", None)
    dirpath = str(ckpt_cb.dirpath) if ckpt_cb is not None else None
    chosen = ckdir.find_resume_checkpoint(spec, None if run_dir is None else Path(run_dir), dirpath,
                                          max_steps=trainer.max_steps)
    if chosen is None:
        if spec.restore_config is not None:
            _attach_restore(trainer, spec)
        return None
    info = ckdir.check_integrity(chosen)
    trainer.nemolite_model_context = info.meta.get("context")  # type: ignore[attr-defined]
    check_model_matches(info, model)
    check_shards(info.path)
    trainer.ckpt_path = str(trainer_ckpt_path(info.path))
    log.info("resuming from %s (step %d)", info.path, info.step)
    return info.path


#: `resume.restore_config.path="run://<log_dir>/<name>"`: the latest complete checkpoint of that run
#: (its newest version holding one), resolved when the job starts, e.g. the quick start's
#: `run://nemo_experiments/default` for the fine-tuning recipe.
RUN_SCHEME = "run://"


def resolve_restore_path(path: str, field: str = "resume.restore_config.path") -> Path:
    """The checkpoint directory `path` names: the latest checkpoint of a `run://` run, an imported
    `nemo://<repo id>` model's weights, or the directory itself."""
    from nemolite.lightning import model_store

    if not path.startswith(RUN_SCHEME):
        return model_store.resolve_checkpoint(path, field)  # nemo://<repo id>, a model dir, a checkpoint
    root = Path(path[len(RUN_SCHEME):])
    versions = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: (d.stat().st_mtime, d.name),
                      reverse=True) if root.is_dir() else []
    for run_dir in [root, *versions]:
        latest = ckdir.latest_complete(run_dir / ckdir.CKPT_SUBDIR)
        if latest is not None:
            return latest.path.absolute()
    raise ConfigError(field, path, f"no complete checkpoint of a run under {root.absolute()}",
                      "pretrain it first (e.g. `nemo llm pretrain --factory llama_tiny -y` in this "
                      f"directory), or set {field}=<a checkpoint directory>")


def finished_run(spec: AutoResume | None, log_spec: Any,
                 max_steps: int | None) -> tuple[Path, ckdir.CheckpointInfo] | None:
    """(run directory, end checkpoint) of the run this task would resume, when it reached `max_steps`.

    Light (no torch): the runtime asks before building anything, so re-running a finished run
    answers in one line instead of loading a model to train no step.
    """
    from nemolite.lightning.exp_run_dir import resolve_run_dir

    if spec is None or log_spec is None or not spec.resume_if_exists or spec.resume_past_end:
        return None
    if spec.resume_from_path is not None:
        return None
    run_dir = resolve_run_dir(log_spec, resume_if_exists=True)
    if spec.resume_from_directory is not None:
        where: Path | None = Path(spec.resume_from_directory)
    else:
        ckpt = getattr(log_spec, "ckpt", None)
        where = ckdir.checkpoint_dir(run_dir, getattr(ckpt, "dirpath", None))
    latest = ckdir.latest_complete(where) if where is not None else None
    if latest is None or not latest.is_end or ckdir.continues_past(latest, max_steps):
        return None
    return run_dir, latest


def check_model_matches(info: ckdir.CheckpointInfo, model: Any) -> None:
    """`DataFileError` naming the checkpoint when its model shape differs from `model`'s config."""
    import dataclasses

    saved = info.meta.get("model_config") or {}
    config = getattr(model, "config", None)
    if not saved or config is None or not dataclasses.is_dataclass(config):
        return
    diffs = [f"{name} {saved[name]!r} vs {getattr(config, name)!r}" for name in SHAPE_FIELDS
             if name in saved and hasattr(config, name) and saved[name] != getattr(config, name)]
    if diffs:
        raise DataFileError(info.path, f"checkpoint is from a different model shape ({'; '.join(diffs)}, "
                            "checkpoint vs this run)", "resume with the model config it was saved with, "
                            "or start a new run (log.name / log.log_dir)")


def check_shards(path: Path) -> None:
    """`DataFileError` when a `torch_dist` checkpoint lacks a shard file or a shard is cut short.

    Reads only torch DCP's `.metadata` (torch/distributed/checkpoint/filesystem.py writes it last,
    listing each tensor's file, offset and length), so a truncated copy fails here in one line
    instead of deep inside megatron's loader.
    """
    meta_file = path / ".metadata"
    if not meta_file.is_file():
        return
    from torch.distributed.checkpoint import FileSystemReader

    try:
        metadata = FileSystemReader(str(path)).read_metadata()
    except Exception as err:  # noqa: BLE001 - any unreadable metadata is the same user problem
        raise DataFileError(meta_file, f"corrupt checkpoint metadata ({type(err).__name__})",
                            "delete this checkpoint directory and resume from an earlier one") from None
    need: dict[str, int] = {}
    for info in (metadata.storage_data or {}).values():
        rel = getattr(info, "relative_path", None)
        if rel is not None:
            need[rel] = max(need.get(rel, 0), int(info.offset) + int(info.length))
    for rel, size in sorted(need.items()):
        shard = path / rel
        if not shard.is_file() or shard.stat().st_size < size:
            have = shard.stat().st_size if shard.is_file() else "missing"
            raise DataFileError(shard, f"corrupt checkpoint: shard needs {size} bytes, has {have}",
                                "delete this checkpoint directory and resume from an earlier one")


def _attach_restore(trainer: pl.Trainer, spec: AutoResume) -> None:
    from nemolite.lightning import model_store
    from nemolite.lightning.callbacks._state import connector_attrs
    from nemolite.lightning.callbacks.restore import RestoreWeights

    assert spec.restore_config is not None  # checked by the caller
    given = spec.restore_config.path
    info = ckdir.check_integrity(resolve_restore_path(given))  # run://, nemo://<repo id>, a directory
    check_shards(info.path)
    # Later checkpoints of this run name the imported model's context (HF config, tokenizer), so
    # they export to Hugging Face as the model they started from.
    context = model_store.context_of(info.path)
    trainer.nemolite_model_context = str(context) if context else None  # type: ignore[attr-defined]
    log.info("starting from the weights of %s (%s)", given, info.path)
    connector_attrs(trainer).callbacks.append(RestoreWeights(spec.restore_config, info.path))
