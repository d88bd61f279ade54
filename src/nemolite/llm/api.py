"""The typed targets recipes bind: `llm.pretrain`, `llm.finetune`, `llm.train`, `llm.validate`.

Each is a nemo-run CLI entrypoint in the `llm` namespace (`nemo llm pretrain ...`). They receive
built specs (plain dataclasses), check them against each other before any process group starts,
and only then import the training runtime (torch, lightning, megatron-core).

Importing this module registers every `nemo llm` verb and CLI factory with nemo-run (it is what
nemo-run's `nemo_run.cli` entry point `llm` names): these verbs, `import`/`export` (`hf_api`'s
plain functions), `generate`/`evaluate`, and the factories (`data=mock`, `tokenizer=byte`, ...).
`from nemolite import llm` imports it on first use of a verb, so the light names (model configs,
`llm.import_ckpt`, `llm.export_ckpt`) come without nemo-run.

No `from __future__ import annotations` here: nemo-run's help and parser read these signatures'
annotations as objects.
"""

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import nemo_run as run

from nemolite.cli.context import NemoliteRunContext
from nemolite.errors import ConfigError
from nemolite.lightning.logger import NeMoLogger
from nemolite.lightning.optim import MegatronOptimizerModule
from nemolite.lightning.resume import AutoResume
from nemolite.lightning.trainer import Trainer
from nemolite.llm import hf_api
from nemolite.llm.checks import check_task
from nemolite.llm.gpt.data.base import DataModuleSpec
from nemolite.llm.gpt.model.base import GPTModel
from nemolite.llm.peft.lora import LoRA

if TYPE_CHECKING:
    from nemolite.llm.tokenizers import TokenizerSpec

_ENTRYPOINT = dict(namespace="llm", run_ctx_cls=NemoliteRunContext)


@run.cli.entrypoint(**_ENTRYPOINT)
def pretrain(
    model: GPTModel,
    data: DataModuleSpec,
    trainer: Trainer,
    log: Optional[NeMoLogger] = None,
    resume: Optional[AutoResume] = None,
    optim: Optional[MegatronOptimizerModule] = None,
) -> Path | None:
    """Pretrain a model from scratch (or resume it) on `data`; the tokenizer comes from the data.

    Args:
        model: the model to train.
        data: the pretraining data module.
        trainer: the trainer, with its Megatron strategy and precision.
        log: where the run's checkpoints, logs and config go.
        resume: whether and from where to resume.
        optim: the optimizer and LR schedule; defaults to the model's own.

    Returns:
        The run directory.
    """
    return train(model, data, trainer, log=log, resume=resume, optim=optim, tokenizer="data")


@run.cli.entrypoint(**_ENTRYPOINT)
def finetune(
    model: GPTModel,
    data: DataModuleSpec,
    trainer: Trainer,
    log: Optional[NeMoLogger] = None,
    resume: Optional[AutoResume] = None,
    optim: Optional[MegatronOptimizerModule] = None,
    peft: Optional[LoRA] = None,
    tokenizer: Optional[str] = "model",
) -> Path | None:
    """Fine-tune a pretrained model on `data`, fully or with a PEFT method (`LoRA()`, `DoRA()`).

    Args:
        model: the model; its weights come from `resume.restore_config`.
        data: the fine-tuning data module.
        trainer: the trainer, with its Megatron strategy and precision.
        log: where the run's checkpoints, logs and config go.
        resume: the checkpoint to start from (`restore_config`) and whether to resume this run.
        optim: the optimizer and LR schedule.
        peft: a parameter-efficient method (`LoRA()`, `llm.peft.DoRA()`), or None to train every weight.
        tokenizer: "model" or "data": whose tokenizer to use.

    Returns:
        The run directory.
    """
    return train(
        model, data, trainer, log=log, resume=resume, optim=optim, tokenizer=tokenizer, peft=peft
    )


@run.cli.entrypoint(**_ENTRYPOINT)
def train(
    model: GPTModel,
    data: DataModuleSpec,
    trainer: Trainer,
    log: Optional[NeMoLogger] = None,
    resume: Optional[AutoResume] = None,
    optim: Optional[MegatronOptimizerModule] = None,
    tokenizer: Optional[str] = None,
    peft: Optional[LoRA] = None,
) -> Path | None:
    """Train `model` on `data` with `trainer`: the general form of pretrain and finetune.

    Args:
        model: the model to train.
        data: the data module.
        trainer: the trainer, with its Megatron strategy and precision.
        log: where the run's checkpoints, logs and config go.
        resume: whether and from where to resume.
        optim: the optimizer and LR schedule.
        tokenizer: "model" or "data": whose tokenizer to use, or None for the model's.
        peft: a parameter-efficient fine-tuning method, or None.

    Returns:
        The run directory.
    """
    return _run(model, data, trainer, log, resume, optim, tokenizer, peft, mode="fit")


@run.cli.entrypoint(**_ENTRYPOINT)
def validate(
    model: GPTModel,
    data: DataModuleSpec,
    trainer: Trainer,
    log: Optional[NeMoLogger] = None,
    resume: Optional[AutoResume] = None,
    optim: Optional[MegatronOptimizerModule] = None,
    tokenizer: Optional[str] = None,
) -> Path | None:
    """Run the validation loop of `model` (restored through `resume`) on `data`.

    Args:
        model: the model to evaluate.
        data: the data module whose validation split is used.
        trainer: the trainer, with its Megatron strategy and precision.
        log: where the run's logs go.
        resume: the checkpoint to evaluate.
        optim: unused by validation; accepted so a training recipe can be validated as is.
        tokenizer: "model" or "data": whose tokenizer to use.

    Returns:
        The run directory.
    """
    return _run(model, data, trainer, log, resume, optim, tokenizer, None, mode="validate")


def _run(
    model: GPTModel,
    data: DataModuleSpec,
    trainer: Trainer,
    log: NeMoLogger | None,
    resume: AutoResume | None,
    optim: MegatronOptimizerModule | None,
    tokenizer: "str | TokenizerSpec | None",
    peft: LoRA | None,
    mode: str,
) -> Path | None:
    check_task(model=model, data=data, trainer=trainer, log=log, resume=resume, optim=optim)
    if mode == "fit" and (done := _finished_run(log, resume, trainer)) is not None:
        return done
    if mode == "validate" and resume is not None:
        # Validating a training recipe evaluates its run's latest checkpoint, the end one included.
        resume = dataclasses.replace(resume, resume_past_end=True)
    if tokenizer in (None, "model"):
        from nemolite.llm.imported import use_imported_tokenizer

        use_imported_tokenizer(model, data, resume)  # the tokenizer saved by `nemo llm import`
    from nemolite.llm.recipe_io import task_config
    from nemolite.llm.training import run_training  # heavy: torch, lightning, megatron-core

    specs: dict[str, Any] = dict(
        model=model, data=data, trainer=trainer, log=log, resume=resume, optim=optim
    )
    verb = {"fit": finetune if peft is not None else pretrain, "validate": validate}[mode]
    return run_training(
        **specs,
        tokenizer=_tokenizer(tokenizer, model, data),
        peft=peft,
        mode=mode,
        # A validation run keeps the training run's recorded task (config.yaml) as it is.
        task_config=None if mode == "validate" else task_config(
            verb, **specs, **({"peft": peft} if peft is not None else {})),
    )


def _finished_run(log: NeMoLogger | None, resume: AutoResume | None, trainer: Trainer) -> Path | None:
    """Re-running a finished run: one line (finished, where its checkpoint is), and no training."""
    from nemolite.lightning.exp_resume import finished_run

    finished = finished_run(resume, log, trainer.max_steps)
    if finished is None:
        return None
    run_dir, end = finished
    print(f"{run_dir} already finished: step {end.step} of trainer.max_steps={trainer.max_steps}; "
          f"its checkpoint: {end.path} (raise trainer.max_steps to continue it)", flush=True)
    return run_dir


def _tokenizer(choice: "str | TokenizerSpec | None", model: GPTModel, data: DataModuleSpec) -> Any:
    """NeMo's `tokenizer="model"|"data"`: whose tokenizer spec to use (None: the model's, if any)."""
    if choice is None or choice == "model":
        return model.tokenizer if model.tokenizer is not None else _data_tokenizer(data)
    if choice == "data":
        return _data_tokenizer(data)
    if isinstance(choice, str):
        raise ConfigError("tokenizer", choice, "unknown tokenizer source", "use 'model' or 'data'")
    return choice


def _data_tokenizer(data: DataModuleSpec) -> Any:
    spec = getattr(data, "tokenizer_spec", None)
    return spec() if spec is not None else getattr(data, "tokenizer", None)


# The other verbs and the CLI factories, registered after the training verbs (the order of
# `nemo llm --help`): preprocess and data=..., import/export (the same function objects
# `llm.import_ckpt` / `llm.export_ckpt` give), generate/evaluate, tokenizer=...
from nemolite.llm.gpt.data import factories as _data_factories  # noqa: E402, F401

import_ckpt = run.cli.entrypoint(name="import", **_ENTRYPOINT)(hf_api.import_ckpt)
export_ckpt = run.cli.entrypoint(name="export", **_ENTRYPOINT)(hf_api.export_ckpt)

from nemolite.llm.inference.verbs import evaluate, generate  # noqa: E402, F401
from nemolite.llm.tokenizers import factories as _tokenizer_factories  # noqa: E402, F401
