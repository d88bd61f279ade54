"""The `nemo asr` verbs: train, finetune, transcribe, evaluate, tokenizer.

nemo-run entrypoints in the `asr` namespace, run through the same context as `nemo llm` (one-line
errors, `-y`, executors). They take light specs; torch and Lightning load only when a verb runs.

No `from __future__ import annotations` here: nemo-run reads these signatures' annotations.
"""

from pathlib import Path
from typing import Optional

import nemo_run as run

from nemolite.asr.cli import AsrRunContext
from nemolite.asr.data.module import AudioToTextDataModule
from nemolite.asr.models.spec import FastConformerCTC
from nemolite.lightning.logger import NeMoLogger
from nemolite.lightning.resume import AutoResume
from nemolite.lightning.trainer import Trainer

_ENTRYPOINT = dict(namespace="asr", run_ctx_cls=AsrRunContext)


@run.cli.entrypoint(**_ENTRYPOINT)
def train(
    model: FastConformerCTC,
    data: AudioToTextDataModule,
    trainer: Trainer,
    log: Optional[NeMoLogger] = None,
    resume: Optional[AutoResume] = None,
) -> Optional[Path]:
    """Train an ASR model with CTC; writes checkpoints and `<run dir>/<name>.nemo`.

    Args:
        model: the model (size, vocabulary, optimizer).
        data: the training and validation manifests.
        trainer: the trainer, with `DDPStrategy`.
        log: where the run's checkpoints, logs and config go.
        resume: whether and from where to resume.

    Returns:
        The run directory.
    """
    from nemolite.asr.checks import check_asr_task
    from nemolite.asr.training import run_asr_training
    from nemolite.llm.recipe_io import task_config

    specs = dict(model=model, data=data, trainer=trainer, log=log, resume=resume)
    check_asr_task(specs, on_this_machine=True)
    return run_asr_training(**specs, task_config=task_config(train, **specs))


@run.cli.entrypoint(**_ENTRYPOINT)
def finetune(
    model: FastConformerCTC,
    data: AudioToTextDataModule,
    trainer: Trainer,
    log: Optional[NeMoLogger] = None,
    resume: Optional[AutoResume] = None,
    restore_from: Optional[str] = None,
) -> Optional[Path]:
    """Fine-tune a `.nemo` model (NeMo's or nemolite's) on `data`.

    Args:
        model: optimizer settings; its weights and config come from `restore_from`.
        data: the fine-tuning manifests.
        trainer: the trainer, with `DDPStrategy`.
        log: where the run's checkpoints, logs and config go.
        resume: whether and from where to resume this run.
        restore_from: the `.nemo` file to start from (overrides model.restore_from).

    Returns:
        The run directory.
    """
    from nemolite.errors import ConfigError

    source = restore_from or model.restore_from
    if not source or not Path(source).expanduser().is_file():
        raise ConfigError("restore_from", source, "no such .nemo file", "pass restore_from=path/to/model.nemo")
    model.restore_from = str(Path(source).expanduser())
    return train(model=model, data=data, trainer=trainer, log=log, resume=resume)


@run.cli.entrypoint(**_ENTRYPOINT)
def transcribe(
    model: str,
    audio: str,
    batch_size: int = 8,
    output: Optional[str] = None,
) -> list:
    """Transcribe audio files with a `.nemo` model (or a Hugging Face name such as nvidia/...).

    Args:
        model: a `.nemo` file, or a Hugging Face repository holding one.
        audio: an audio file, a directory (its .wav/.flac files), or comma-separated files.
        batch_size: utterances per forward pass.
        output: also write `{"audio_filepath", "pred_text"}` lines to this manifest.

    Returns:
        The transcripts, in the order of the files.
    """
    from nemolite.asr.evaluation import run_transcribe

    return run_transcribe(model, audio, batch_size=batch_size, output=output)


@run.cli.entrypoint(**_ENTRYPOINT)
def evaluate(
    model: str,
    manifest: str,
    batch_size: int = 8,
    output: Optional[str] = None,
) -> dict:
    """WER and CER of a model on a manifest, with a per-utterance table.

    Args:
        model: a `.nemo` file, or a Hugging Face repository holding one.
        manifest: a NeMo manifest with reference `text`.
        batch_size: utterances per forward pass.
        output: also write the manifest with `pred_text`, `wer` and `cer` per line here.

    Returns:
        {"wer": ..., "cer": ..., "utterances": ...}
    """
    from nemolite.asr.evaluation import run_evaluate

    return run_evaluate(model, manifest, batch_size=batch_size, output=output)


@run.cli.entrypoint(**_ENTRYPOINT)
def tokenizer(
    manifest: str,
    vocab_size: int = 128,
    output_dir: str = "tokenizer",
) -> str:
    """Train a SentencePiece (BPE) tokenizer on a manifest's texts, in NeMo's layout.

    Args:
        manifest: a NeMo manifest (its `text` fields are the training text).
        vocab_size: number of pieces.
        output_dir: where tokenizer.model, tokenizer.vocab and vocab.txt go.

    Returns:
        The tokenizer directory (set it as model.tokenizer_dir).
    """
    from nemolite.asr.evaluation import run_tokenizer

    return run_tokenizer(manifest, vocab_size=vocab_size, output_dir=output_dir)
