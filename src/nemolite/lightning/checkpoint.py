"""`nl.ModelCheckpoint`: when and where distributed checkpoints are written (light spec).

The heavy Lightning callback lives in `nemolite.lightning.callbacks.checkpoint`; `build()` imports it.
Checkpoints are megatron-core distributed checkpoints (`torch_dist`) written by the strategy; this
spec only decides the schedule, the names and how many to keep. Every checkpoint is published
atomically: it is written to `<name>.tmp/` and renamed to `<name>/` only after every rank finished,
so a run killed mid-save never resumes from a half-written checkpoint.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nemolite.errors import ConfigError, UnknownChoiceError

if TYPE_CHECKING:
    from pathlib import Path

    from lightning.pytorch.callbacks import Callback

# Names a `filename` template may use; other logged metrics are allowed too, but these always exist.
FILENAME_KEYS = ("model_name", "step", "epoch", "consumed_samples")


@dataclass(kw_only=True)
class ModelCheckpoint:
    """Saves megatron distributed checkpoints on a schedule and publishes each one atomically.

    Args:
        every_n_train_steps: save every N optimizer steps (None: only at the end of training).
        train_time_interval: also save when this many seconds passed since the last save.
        every_n_epochs: save at the end of every N epochs (None: not on epoch boundaries).
        save_top_k: how many checkpoints to keep, ranked by `monitor` (-1 keeps all, 0 keeps none
            but the last).
        save_last: also keep the most recent checkpoint as `<filename>-last`, whatever its rank.
        monitor: logged metric that ranks checkpoints for `save_top_k`.
        mode: "min" or "max": which `monitor` values are better.
        filename: name template; `{step}` becomes `step=12`, `{reduced_train_loss:.2f}` becomes
            `reduced_train_loss=2.31`; `{model_name}` is the logger's name.
        save_on_train_epoch_end: save at the end of each training epoch.
        save_weights_only: leave optimizer state out of the checkpoint (cannot resume exactly).
        save_optim_on_train_end: keep the optimizer state in the checkpoint written when training ends.
        async_save: write the checkpoint in the background; the step loop only waits for the copy
            of the tensors, and the checkpoint is published when the write finished on every rank.
        dirpath: checkpoint directory (default: `<run dir>/checkpoints`).
        verbose: log a line for every saved and removed checkpoint.
    """

    every_n_train_steps: int | None = None
    train_time_interval: float | None = None
    every_n_epochs: int | None = None
    save_top_k: int = 1
    save_last: bool = True
    monitor: str = "reduced_train_loss"
    mode: str = "min"
    filename: str = "{model_name}--{reduced_train_loss:.2f}-{step}-{consumed_samples}"
    save_on_train_epoch_end: bool = False
    save_weights_only: bool = False
    save_optim_on_train_end: bool = True
    async_save: bool = False
    dirpath: str | None = None
    verbose: bool = True

    def validate(self, prefix: str = "log.ckpt") -> None:
        """Raises `ConfigError` naming `<prefix>.<field>` for a value that cannot work."""
        for name in ("every_n_train_steps", "every_n_epochs"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{prefix}.{name}", value, "must be a positive integer",
                                  f"set {prefix}.{name}=10 (or None to not save on this schedule)")
        if self.train_time_interval is not None and not self.train_time_interval > 0:
            raise ConfigError(f"{prefix}.train_time_interval", self.train_time_interval,
                              "must be a positive number of seconds", f"set {prefix}.train_time_interval=3600")
        if not isinstance(self.save_top_k, int) or self.save_top_k < -1:
            raise ConfigError(f"{prefix}.save_top_k", self.save_top_k, "must be -1 (keep all), 0 or more",
                              f"set {prefix}.save_top_k=1")
        if self.mode not in ("min", "max"):
            raise UnknownChoiceError(f"{prefix}.mode", self.mode, ("min", "max"))
        self._validate_filename(prefix)

    def _validate_filename(self, prefix: str) -> None:
        if not self.filename or "/" in self.filename or self.filename.endswith((".tmp", "-last")):
            raise ConfigError(f"{prefix}.filename", self.filename,
                              "must be a plain name without '/' and not end in '.tmp' or '-last'",
                              f"set {prefix}.filename='{{step}}'")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.filename) if f]
        except ValueError as err:
            raise ConfigError(f"{prefix}.filename", self.filename, f"not a format template ({err})",
                              "use names in braces, e.g. '{step}-{consumed_samples}'") from None
        for name in fields:
            if not re.fullmatch(r"[A-Za-z_][\w ]*", name):
                raise ConfigError(f"{prefix}.filename", self.filename, f"bad field {{{name}}}",
                                  "use plain metric names such as {step} or {reduced_train_loss:.2f}")

    def build(self, run_dir: Path, model_name: str) -> Callback:
        """The Lightning callback that saves into `dirpath` or `<run_dir>/checkpoints`."""
        from nemolite.lightning.callbacks.checkpoint import CheckpointCallback

        self.validate()
        return CheckpointCallback(self, run_dir=run_dir, model_name=model_name)

    def format_name(self, model_name: str, metrics: dict[str, Any]) -> str:
        """The checkpoint directory name for these metrics, NeMo/Lightning style (`step=12`)."""
        values = {"model_name": model_name, **metrics}
        template = re.sub(r"\{(?!model_name)([A-Za-z_][\w ]*)(:[^}]*)?\}", r"\1={\1\2}", self.filename)
        missing = {f for _, f, _, _ in string.Formatter().parse(template) if f and f not in values}
        values.update({name: float("nan") for name in missing})
        return template.format(**values)
