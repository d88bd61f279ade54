"""The runtime: turns built specs (model, data, trainer, ...) into a training run.

Called by `llm.pretrain/finetune/train/validate` with specs (never fiddle configs). Mirrors NeMo's
`llm.api._setup`: build the trainer, data and model, let the logger and resume specs set themselves
up on the trainer, then fit (or validate).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MODES = ("fit", "validate")


def _clip_grad(optim: Any) -> float | None:
    return optim.config.clip_grad if optim is not None else None


def build_run(
    *, model: Any, data: Any, trainer: Any, optim: Any = None, tokenizer: Any = None
) -> tuple[Any, Any, Any]:
    """Builds (Lightning trainer, data module, LightningModule) from specs; CPU backend applied first."""
    import torch

    from nemolite.backends import megatron_version

    megatron_version.check()
    if not torch.cuda.is_available():
        from nemolite.backends import cpu

        cpu.apply()
    from nemolite.lightning.trainer import precision_plugin

    optim = optim or getattr(model, "optim", None)
    pl_trainer = trainer.build(clip_grad=_clip_grad(optim))
    tok_spec = tokenizer or getattr(model, "tokenizer", None)
    if tok_spec is not None:
        built_tok = tok_spec.build() if hasattr(tok_spec, "build") else tok_spec
    elif hasattr(data, "build_tokenizer"):
        built_tok = data.build_tokenizer()
    else:
        built_tok = getattr(data, "tokenizer", None)
    datamodule = data.build() if hasattr(data, "build") else data
    module = model.build(
        tokenizer=built_tok,
        optim=optim,
        precision=precision_plugin(trainer),
        global_batch_size=getattr(data, "global_batch_size", None),
        micro_batch_size=getattr(data, "micro_batch_size", None),
    )
    return pl_trainer, datamodule, module


# What Lightning's one-process launch sets in os.environ (lightning/fabric/utilities/distributed.py
# `_init_dist_connection`, the DDP launcher) and leaves there after the run.
_DIST_VARS = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK",
              "LOCAL_WORLD_SIZE", "GROUP_RANK", "PL_GLOBAL_SEED", "PL_SEED_WORKERS")


@contextlib.contextmanager
def _in_process_run() -> Iterator[None]:
    """A run in a process that lives on (a notebook's kernel, a script training twice) leaves it
    as it found it: the rendezvous variables (a job started later, e.g. by `run.Experiment`,
    would inherit them and reuse the port of this run's still-listening store), the process
    groups, and stdout/stderr (the run's console log tee). Launched ranks (torchrun, Slurm) exit
    after their run and are left alone.
    """
    import os
    import sys

    launched = any(v in os.environ for v in ("TORCHELASTIC_RUN_ID", "SLURM_PROCID")) or "LOCAL_WORLD_SIZE" in os.environ
    before = {name: os.environ.get(name) for name in _DIST_VARS}
    streams = (sys.stdout, sys.stderr)
    try:
        yield
    finally:
        if not launched:
            sys.stdout, sys.stderr = streams
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            _end_process_groups()


def _end_process_groups() -> None:
    import torch.distributed as dist

    try:
        from megatron.core import parallel_state

        parallel_state.destroy_model_parallel()
    except Exception:  # noqa: BLE001 - nothing to destroy
        pass
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def run_training(
    *,
    model: Any,
    data: Any,
    trainer: Any,
    log: Any = None,
    resume: Any = None,
    optim: Any = None,
    tokenizer: Any = None,
    peft: Any = None,
    mode: str = "fit",
    task_config: Any = None,
) -> Path | None:
    """Trains (or validates) `model` on `data` with `trainer`; returns the run directory.

    Args:
        model: a `GPTModel` spec.
        data: a data spec whose `build()` gives a LightningDataModule of micro-batches.
        trainer: a `Trainer` spec.
        log: a `NeMoLogger` spec (sets up loggers and the log dir), or None.
        resume: an `AutoResume` spec (finds the checkpoint to resume from), or None.
        optim: a `MegatronOptimizerModule` (None = `model.optim`, else megatron's Adam defaults).
        tokenizer: a tokenizer spec (None = the model's, else the data's).
        peft: a PEFT spec applied to the module (its `build()`/`__call__`), or None.
        mode: "fit" or "validate".
        task_config: the recipe, stored by the logger next to the run.
    """
    from nemolite.errors import UnknownChoiceError
    from nemolite.lightning.quiet import quiet_third_party

    quiet_third_party()
    if mode not in MODES:
        raise UnknownChoiceError("mode", mode, MODES)
    with _in_process_run():
        pl_trainer, datamodule, module = build_run(
            model=model, data=data, trainer=trainer, optim=optim, tokenizer=tokenizer
        )
        if peft is not None:
            peft_cb = peft.build() if hasattr(peft, "build") else peft
            pl_trainer.callbacks.append(peft_cb)
        log_dir = None
        if log is not None and hasattr(log, "setup"):
            log_dir = log.setup(pl_trainer, resume_if_exists=getattr(resume, "resume_if_exists", False),
                                task_config=task_config)
        if resume is not None and hasattr(resume, "setup"):
            resume.setup(pl_trainer, module)
        if mode == "fit":
            pl_trainer.fit(module, datamodule=datamodule)
        else:
            pl_trainer.validate(module, datamodule=datamodule)
    if log_dir is not None:
        return Path(log_dir)
    root = getattr(pl_trainer, "log_dir", None) or pl_trainer.default_root_dir
    return Path(root) if root else None
