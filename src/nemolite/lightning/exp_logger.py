"""`NeMoLogger.setup`: the run directory, its records, the loggers and the default callbacks."""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nemolite.lightning.exp_records import write_records
from nemolite.lightning.exp_run_dir import (
    agree_on_run_dir,
    global_rank,
    local_rank,
    resolve_run_dir,
)

if TYPE_CHECKING:
    import lightning.pytorch as pl

    from nemolite.lightning.logger import NeMoLogger

log = logging.getLogger("nemolite")


def setup_logger(spec: NeMoLogger, trainer: pl.Trainer, resume_if_exists: bool = False,
                 task_config: Any | None = None) -> Path:
    """Creates and fills the run directory and wires the trainer to it; returns the directory."""
    spec.validate()
    run_dir = agree_on_run_dir(resolve_run_dir(spec, resume_if_exists=resume_if_exists))
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer.nemolite_run_dir = run_dir  # type: ignore[attr-defined] # read by AutoResume.setup
    _ensure_console_handler()
    if _writes_console_log(spec):
        tee_console(run_dir / f"nemo_log_globalrank-{global_rank()}_localrank-{local_rank()}.txt")
    if global_rank() == 0:
        write_records(run_dir, task_config)
        for path in spec.files_to_copy or []:
            shutil.copy(path, run_dir / Path(path).name)
    _attach_loggers(spec, trainer, run_dir)
    _log_hyperparameters(trainer, task_config)
    _attach_callbacks(spec, trainer, run_dir)
    if global_rank() == 0:
        log.info("run directory: %s", run_dir)
    return run_dir


def _writes_console_log(spec: NeMoLogger) -> bool:
    if spec.log_global_rank_0_only and global_rank() != 0:
        return False
    return not (spec.log_local_rank_0_only and local_rank() != 0)


def _attach_loggers(spec: NeMoLogger, trainer: pl.Trainer, run_dir: Path) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger

    # Lightning's default logger writes ./lightning_logs; a run's files belong in its run directory.
    kept = [lg for lg in trainer.loggers
            if not (isinstance(lg, TensorBoardLogger) and lg.name == "lightning_logs")]
    if spec.tensorboard is not None:
        kept.append(spec.tensorboard.build(run_dir if spec.update_logger_directory else None))
    if spec.wandb is not None:
        kept.append(spec.wandb.build(run_dir if spec.update_logger_directory else None, spec.name))
    kept.extend(extra.build(run_dir) for extra in spec.extra_loggers)
    trainer.loggers = kept


def _log_hyperparameters(trainer: pl.Trainer, task_config: Any | None) -> None:
    """The resolved task as the loggers' hyperparameters (TensorBoard's `hparams.yaml`, its HPARAMS
    tab), as NeMo logs its model config; without this Lightning leaves `hparams.yaml` empty."""
    if task_config is None or global_rank() != 0 or not trainer.loggers:
        return
    import yaml

    from nemolite.lightning.exp_records import config_yaml

    try:
        params = yaml.safe_load(config_yaml(task_config))
    except yaml.YAMLError:
        return
    if isinstance(params, dict):
        for logger in trainer.loggers:
            logger.log_hyperparams(params)


def _attach_callbacks(spec: NeMoLogger, trainer: pl.Trainer, run_dir: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    from nemolite.lightning.callbacks import PreemptionCallback, ProgressBar
    from nemolite.lightning.callbacks._state import connector_attrs
    from nemolite.lightning.callbacks.checkpoint import CheckpointCallback
    from nemolite.lightning.callbacks.loss_curve import LossCurveWriter
    from nemolite.lightning.callbacks.metrics import NeMoMetrics
    from nemolite.lightning.callbacks.preemption import PreemptionHandler
    from nemolite.lightning.callbacks.progress import RichStepProgress

    attrs = connector_attrs(trainer)
    callbacks = list(attrs.callbacks)
    # Lightning's defaults (a progress bar counting batches, a checkpoint into ./lightning_logs)
    # are replaced by ours; callbacks the user configured stay.
    had_bar = any(type(cb) in (RichProgressBar, TQDMProgressBar, RichStepProgress) for cb in callbacks)
    callbacks = [cb for cb in callbacks if type(cb) not in (RichProgressBar, TQDMProgressBar)]
    if spec.ckpt is not None:
        callbacks = [cb for cb in callbacks if type(cb) is not LightningModelCheckpoint
                     and not isinstance(cb, CheckpointCallback)]
        callbacks.append(spec.ckpt.build(run_dir, spec.name))
        if not any(isinstance(cb, PreemptionHandler) for cb in callbacks):
            callbacks.append(PreemptionCallback().build())
    if had_bar and not any(isinstance(cb, RichStepProgress) for cb in callbacks):
        callbacks.append(ProgressBar(log_every_n_steps=attrs.log_every_n_steps).build())
    callbacks = [cb for cb in callbacks if not isinstance(cb, (NeMoMetrics, LossCurveWriter))]
    callbacks += [NeMoMetrics(run_dir), LossCurveWriter(run_dir)]
    # Lightning runs Checkpoint callbacks last (callback_connector._reorder_callbacks), as we need:
    # the metrics of the step are logged before a checkpoint is named after them.
    attrs.callbacks = callbacks
    attrs._default_root_dir = str(run_dir)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time, so the console tee sees our log lines."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _ensure_console_handler() -> None:
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("[nemolite %(asctime)s %(levelname)s] %(message)s",
                                               "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


class _Tee:
    """A text stream that writes to the console stream and to the run's console log file."""

    def __init__(self, stream: Any, file: Any) -> None:
        self.stream, self.file = stream, file

    def write(self, text: str) -> int:
        self.file.write(text)
        self.file.flush()  # a killed run keeps its log up to the kill
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()
        self.file.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def tee_console(path: Path) -> None:
    """Copies this process's stdout and stderr into `path` (appending: resumes keep history)."""
    file = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    previous = None
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, _Tee):  # set up again in the same process: switch files
            previous, stream = stream.file, stream.stream
        setattr(sys, name, _Tee(stream, file))
    if previous is not None and previous is not file:
        previous.close()
