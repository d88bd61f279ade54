"""`nl.NeMoLogger`: one run directory per run, and the loggers that write into it (light specs).

A run directory (`<log_dir>/<name>/<version>/`, or exactly `explicit_log_dir`) holds the checkpoints,
TensorBoard events, the resolved recipe (`config.yaml`), `git-info.txt`, `versions.txt`, the console
log of each rank and, when training ends, `loss_curve.png`. `setup` (heavy, in
`nemolite.lightning.exp_logger`) is called by the runtime with the Lightning trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nemolite.errors import ConfigError
from nemolite.lightning.checkpoint import ModelCheckpoint

if TYPE_CHECKING:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import Logger

# Shared by every rank of a launch so that they agree on a datetime version (see exp_logger).
VERSION_ENV = "NEMOLITE_RUN_VERSION"


@dataclass(kw_only=True)
class TensorBoardLogger:
    """TensorBoard event files (Lightning's `TensorBoardLogger`).

    Args:
        save_dir: where events go; with `NeMoLogger.update_logger_directory` it is the run directory.
        name: sub-directory of `save_dir` for the events.
        version: sub-directory of `name` (None: none, the run directory is versioned already).
        log_graph: also write the model graph.
        default_hp_metric: write Lightning's placeholder `hp_metric`.
        prefix: prefix for every scalar name.
    """

    save_dir: str = "tb_logs"
    name: str = "tb_logs"
    version: str | None = None
    log_graph: bool = False
    default_hp_metric: bool = False
    prefix: str = ""

    def build(self, run_dir: Path | None) -> Logger:
        """Lightning's TensorBoardLogger: events in `<run_dir>/<save_dir>/` (no name or version
        level: the run directory is versioned already), or Lightning's `save_dir/name/version`."""
        from lightning.pytorch.loggers import TensorBoardLogger as _TensorBoardLogger

        common: dict[str, Any] = {"log_graph": self.log_graph, "default_hp_metric": self.default_hp_metric,
                  "prefix": self.prefix}
        if run_dir is not None and not Path(self.save_dir).is_absolute():
            return _TensorBoardLogger(save_dir=str(run_dir / self.save_dir), name="",
                                      version=self.version or "", **common)
        return _TensorBoardLogger(save_dir=self.save_dir, name=self.name, version=self.version, **common)


@dataclass(kw_only=True)
class WandbLogger:
    """Weights & Biases (Lightning's `WandbLogger`); needs `pip install wandb`.

    Args:
        project: W&B project.
        name: W&B run name (default: the NeMoLogger name).
        entity: W&B team or user.
        save_dir: local W&B files (default: the run directory).
        offline: log locally only, sync later with `wandb sync`.
        log_model: upload checkpoints as artifacts.
        tags: run tags.
        group: run group.
        job_type: run job type.
    """

    project: str | None = None
    name: str | None = None
    entity: str | None = None
    save_dir: str | None = None
    offline: bool = False
    log_model: bool = False
    tags: list[str] | None = None
    group: str | None = None
    job_type: str | None = None

    def build(self, run_dir: Path | None, default_name: str = "default") -> Logger:
        """Lightning's WandbLogger; `ConfigError` when wandb is not installed."""
        import importlib.util

        if importlib.util.find_spec("wandb") is None:
            raise ConfigError("log.wandb", "WandbLogger(...)", "wandb is not installed",
                              "pip install wandb, or set log.wandb=None")
        from lightning.pytorch.loggers import WandbLogger as _WandbLogger

        save_dir = self.save_dir or (str(run_dir) if run_dir is not None else ".")
        return _WandbLogger(
            project=self.project, name=self.name or default_name, entity=self.entity,
            save_dir=save_dir, offline=self.offline, log_model=self.log_model,
            tags=self.tags, group=self.group, job_type=self.job_type,
        )


@dataclass(kw_only=True)
class NeMoLogger:
    """Creates the run directory and attaches loggers and the checkpoint callback to the trainer.

    Args:
        name: experiment name: `<log_dir>/<name>/<version>/`.
        log_dir: root of all runs (default: `./nemo_experiments`).
        explicit_log_dir: use exactly this run directory (ignores log_dir, name and version).
        version: run version sub-directory (default: a datetime, or the latest when resuming).
        use_datetime_version: name new versions `YYYY-MM-DD_HH-MM-SS` (else no version level).
        log_local_rank_0_only: only local rank 0 writes a console log file.
        log_global_rank_0_only: only global rank 0 writes a console log file.
        files_to_copy: files copied into the run directory (e.g. a data config).
        update_logger_directory: point the loggers' directories into the run directory.
        ckpt: checkpoint schedule (None: no checkpoints, hence nothing to resume from).
        tensorboard: TensorBoard events under the run directory (None: off).
        wandb: Weights & Biases logging (None: off).
        extra_loggers: further logger specs with a `build(run_dir)` method.
    """

    name: str = "default"
    log_dir: str | None = None
    explicit_log_dir: str | None = None
    version: str | None = None
    use_datetime_version: bool = True
    log_local_rank_0_only: bool = False
    log_global_rank_0_only: bool = False
    files_to_copy: list[str] | None = None
    update_logger_directory: bool = True
    ckpt: ModelCheckpoint | None = None
    tensorboard: TensorBoardLogger | None = None
    wandb: WandbLogger | None = None
    extra_loggers: list[Any] = field(default_factory=list)

    def setup(self, trainer: pl.Trainer, resume_if_exists: bool = False,
              task_config: Any | None = None) -> Path:
        """Creates the run directory, attaches loggers and callbacks, writes the run's records.

        Args:
            trainer: the (heavy) Lightning trainer, not yet fitted.
            resume_if_exists: reuse the latest existing version directory instead of a new one.
            task_config: the fiddle config of the task, written as `config.yaml` (may be None).

        Returns:
            The run directory (the same on every rank).
        """
        from nemolite.lightning.exp_logger import setup_logger

        return setup_logger(self, trainer, resume_if_exists=resume_if_exists, task_config=task_config)

    def validate(self, prefix: str = "log") -> None:
        """Raises `ConfigError` naming `<prefix>.<field>` for a value that cannot work."""
        if not self.name or "/" in self.name:
            raise ConfigError(f"{prefix}.name", self.name, "must be a non-empty name without '/'",
                              f"set {prefix}.name=my_run")
        if self.version is not None and (not self.version or "/" in self.version):
            raise ConfigError(f"{prefix}.version", self.version, "must be a non-empty name without '/'",
                              f"set {prefix}.version=v1 or leave it None")
        for path in self.files_to_copy or []:
            if not Path(path).is_file():
                raise ConfigError(f"{prefix}.files_to_copy", path, "no such file",
                                  "list existing files only")
        if self.ckpt is not None:
            self.ckpt.validate(f"{prefix}.ckpt")

    def run_dir(self, resume_if_exists: bool = False) -> Path:
        """The run directory this spec resolves to now (without creating it)."""
        from nemolite.lightning.exp_run_dir import resolve_run_dir

        return resolve_run_dir(self, resume_if_exists=resume_if_exists)
