"""Checkpoint directories on disk: atomic publication, discovery of complete ones, integrity checks.

Protocol (the heart of "a half-written checkpoint is never resumed from"):

1. every rank writes into `<dirpath>/<name>.tmp/` (the strategy's `torch_dist` save);
2. after all ranks finished (a barrier, or megatron's async finalize), global rank 0 writes
   `<name>.tmp/nemolite_ckpt.json` (step, counters, metrics), fsyncs it, and renames
   `<name>.tmp` to `<name>` - a single atomic `rename(2)` on a POSIX filesystem;
3. discovery only considers directories without the `.tmp` suffix that hold the marker file.

A kill at any point leaves either the previous set of complete checkpoints, or that set plus the new
one; stale `.tmp` directories are ignored and removed by the next save. No torch imports here.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nemolite.errors import ConfigError, DataFileError

if TYPE_CHECKING:
    from nemolite.lightning.resume import AutoResume

MARKER = "nemolite_ckpt.json"
TMP_SUFFIX = ".tmp"
LAST_SUFFIX = "-last"
CKPT_SUBDIR = "checkpoints"
# Files megatron-core's torch_dist format writes at the top of a checkpoint directory
# (megatron/core/dist_checkpointing/serialization.py: metadata.json; torch DCP: .metadata).
TORCH_DIST_FILES = ("metadata.json", ".metadata")
SINGLE_FILE = "checkpoint.ckpt"  # what strategies that save one file write inside the directory


@dataclass(frozen=True)
class CheckpointInfo:
    """A complete checkpoint: its directory and what its marker says."""

    path: Path
    step: int
    meta: dict[str, Any]

    @property
    def is_end(self) -> bool:
        """Written when training reached its end (`max_steps`)."""
        return bool(self.meta.get("end", False))


def tmp_path(final: Path) -> Path:
    """Where a checkpoint is written before it is published."""
    return final.with_name(final.name + TMP_SUFFIX)


def publish(tmp: Path, final: Path, meta: dict[str, Any]) -> Path:
    """Marks `tmp` complete and renames it to `final` (global rank 0 only, after all ranks wrote).

    An existing `final` (same name saved again, e.g. after a resume) is moved aside first and
    deleted after the new one is in place, so a complete checkpoint exists at every instant.
    """
    marker = tmp / MARKER
    with open(marker, "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    old = None
    if final.exists():
        old = final.with_name(final.name + ".old" + TMP_SUFFIX)
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is flushed (matters on power loss, not kill).
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_marker(path: Path) -> dict[str, Any] | None:
    """The marker of a checkpoint directory, or None when it is not a complete checkpoint."""
    if path.name.endswith(TMP_SUFFIX):
        return None
    try:
        with open(path / MARKER) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and isinstance(meta.get("step"), int) else None


def list_complete(dirpath: Path) -> list[CheckpointInfo]:
    """Complete checkpoints under `dirpath`, oldest step first (a `-last` copy after its twin)."""
    if not dirpath.is_dir():
        return []
    found = []
    for child in dirpath.iterdir():
        if child.is_dir() and (meta := read_marker(child)) is not None:
            found.append(CheckpointInfo(child, meta["step"], meta))
    return sorted(found, key=lambda c: (c.step, c.path.name.endswith(LAST_SUFFIX), c.path.name))


def list_incomplete(dirpath: Path) -> list[Path]:
    """Directories under `dirpath` that are not complete checkpoints (being written, or killed)."""
    if not dirpath.is_dir():
        return []
    return sorted(c for c in dirpath.iterdir() if c.is_dir() and read_marker(c) is None)


def latest_complete(dirpath: Path) -> CheckpointInfo | None:
    """The complete checkpoint with the highest step under `dirpath`."""
    complete = list_complete(dirpath)
    return complete[-1] if complete else None


def check_integrity(path: Path) -> CheckpointInfo:
    """Verifies that `path` is a complete, readable checkpoint; one-line `DataFileError` otherwise."""
    if not path.is_dir():
        raise DataFileError(path, "no such checkpoint directory",
                            "point resume.resume_from_path at an existing checkpoint directory")
    meta = read_marker(path)
    if meta is None:
        problem = ("an unfinished checkpoint (the save was interrupted)" if path.name.endswith(TMP_SUFFIX)
                   else f"not a complete nemolite checkpoint ({MARKER} missing or unreadable)")
        raise DataFileError(path, problem, "resume from a complete checkpoint directory next to it")
    if meta.get("format") == "torch":  # one-file strategies (plain Lightning), see callbacks/checkpoint
        expected: tuple[str, ...] = (SINGLE_FILE,)
    else:
        expected = TORCH_DIST_FILES
    if not any((path / name).is_file() for name in expected):
        raise DataFileError(path, f"corrupt checkpoint: {' / '.join(expected)} missing",
                            "delete this directory and resume from an earlier checkpoint")
    return CheckpointInfo(path, meta["step"], meta)


def checkpoint_dir(run_dir: Path | None, dirpath: str | None = None) -> Path | None:
    """Where a run's checkpoints live: `dirpath` when set, else `<run_dir>/checkpoints`."""
    if dirpath is not None:
        return Path(dirpath)
    return None if run_dir is None else run_dir / CKPT_SUBDIR


def find_resume_checkpoint(resume: AutoResume, run_dir: Path | None,
                           ckpt_dirpath: str | None = None) -> Path | None:
    """The checkpoint `resume` selects for a run in `run_dir` (None: start fresh).

    Raises:
        ConfigError: a checkpoint is required and none is complete, or the run already finished.
        DataFileError: `resume_from_path` is not a complete checkpoint.
    """
    if resume.resume_from_path is not None:
        from nemolite.lightning.model_store import resolve_checkpoint

        return check_integrity(resolve_checkpoint(resume.resume_from_path, "resume.resume_from_path")).path
    if not resume.resume_if_exists:
        return None
    where: Path | None
    if resume.resume_from_directory is not None:
        where, field = Path(resume.resume_from_directory), "resume.resume_from_directory"
    else:
        where, field = checkpoint_dir(run_dir, ckpt_dirpath), "resume.resume_if_exists"
    latest = latest_complete(where) if where is not None else None
    if latest is None:
        if resume.resume_ignore_no_checkpoint:
            return None
        partial = list_incomplete(where) if where is not None else []
        detail = f" ({len(partial)} unfinished ignored)" if partial else ""
        raise ConfigError(field, getattr(resume, field.split(".")[1]),
                          f"no complete checkpoint in {where}{detail}",
                          "set resume.resume_ignore_no_checkpoint=True to start from scratch, "
                          "or point resume.resume_from_path at a checkpoint")
    if latest.is_end and not resume.resume_past_end:
        raise ConfigError("resume.resume_past_end", False,
                          f"{latest.path} is the end of a finished run (step {latest.step})",
                          "set resume.resume_past_end=True to continue it, or use a new log.name/log_dir")
    return check_integrity(latest.path).path


def remove_stale_tmp(dirpath: Path, keep: Path | None = None) -> list[Path]:
    """Deletes leftover `.tmp` directories of killed saves (global rank 0, before a new save)."""
    removed = []
    for child in list_incomplete(dirpath):
        if child.name.endswith(TMP_SUFFIX) and child != keep:
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def update_marker(path: Path, **changes: Any) -> None:
    """Rewrites fields of a published checkpoint's marker atomically (write aside, then replace)."""
    meta = read_marker(path)
    if meta is None:
        return
    meta.update(changes)
    aside = path / (MARKER + TMP_SUFFIX)
    with open(aside, "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(aside, path / MARKER)
