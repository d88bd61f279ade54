"""`nl.AutoResume` and `nl.RestoreConfig`: which checkpoint a run starts from (light specs).

`AutoResume.setup` runs inside the job after `NeMoLogger.setup`: it finds the latest *complete*
checkpoint (see `nemolite.lightning.exp_ckpt_dir`) and sets `trainer.ckpt_path`, so Lightning
restores model, optimizer, LR schedule, RNG states, step and consumed-sample counters and the
datamodule's position. `RestoreConfig` instead loads weights (and optionally optimizer state) into a
fresh run, for fine-tuning from a pretrained checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nemolite.errors import ConfigError

if TYPE_CHECKING:
    import lightning.pytorch as pl


@dataclass(kw_only=True)
class RestoreConfig:
    """Weights to load into a new run (not a resume: step counters start at zero).

    Args:
        path: a nemolite checkpoint directory (one `torch_dist` checkpoint, e.g.
            `.../checkpoints/default--step=100-last`).
        adapter_path: PEFT adapter checkpoint to load on top of `path`.
        load_model_state: load the model weights.
        load_optim_state: also load the optimizer state (same optimizer and parallel layout).
        load_artifacts: kept for NeMo compatibility (tokenizer files are read from the data config).
    """

    path: str
    adapter_path: str | None = None
    load_model_state: bool = True
    load_optim_state: bool = False
    load_artifacts: bool = True


@dataclass(kw_only=True)
class AutoResume:
    """Resumes a run from its latest complete checkpoint.

    Args:
        resume_if_exists: look for checkpoints in the run directory (or `resume_from_directory`)
            and resume from the latest complete one.
        resume_past_end: allow resuming from the checkpoint a finished run wrote at its end.
        resume_ignore_no_checkpoint: with `resume_if_exists`, start from scratch when there is no
            checkpoint instead of failing.
        resume_from_directory: directory to search for checkpoints instead of `<run dir>/checkpoints`.
        resume_from_path: exactly this checkpoint directory (overrides the search).
        restore_config: weights to load into a fresh run when nothing is resumed.
    """

    resume_if_exists: bool = False
    resume_past_end: bool = False
    resume_ignore_no_checkpoint: bool = False
    resume_from_directory: str | None = None
    resume_from_path: str | None = None
    restore_config: RestoreConfig | None = None

    def setup(self, trainer: pl.Trainer, model: Any = None) -> Path | None:
        """Sets `trainer.ckpt_path` to the checkpoint to resume from; returns it (None: fresh start).

        Raises:
            ConfigError: a checkpoint is required but none is complete, or the run already finished.
            DataFileError: the chosen checkpoint directory is corrupt.
        """
        from nemolite.lightning.exp_resume import setup_resume

        return setup_resume(self, trainer, model)

    def find_checkpoint(self, run_dir: str | Path | None, max_steps: int | None = None) -> Path | None:
        """The checkpoint this spec would resume from (None: start fresh), without a trainer.

        `max_steps` is the trainer's: a finished run is continued when it lies beyond the run's end.
        """
        from nemolite.lightning.exp_ckpt_dir import find_resume_checkpoint

        return find_resume_checkpoint(self, None if run_dir is None else Path(run_dir), max_steps=max_steps)

    def validate(self, prefix: str = "resume") -> None:
        """Raises `ConfigError` for contradictory settings."""
        if self.resume_from_path is not None and self.resume_from_directory is not None:
            raise ConfigError(f"{prefix}.resume_from_directory", self.resume_from_directory,
                              f"conflicts with {prefix}.resume_from_path={self.resume_from_path!r}",
                              "set only one of the two")
