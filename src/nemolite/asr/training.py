"""The ASR runtime: specs -> Lightning trainer (plain DDP), data module and model -> fit.

The same `nl.Trainer`, `NeMoLogger` and `AutoResume` as LLM training; the strategy is Lightning's
DDP (`nl.DDPStrategy`) instead of megatron's. The finished model is also written as
`<run dir>/<name>.nemo`, the file `nemo asr transcribe/evaluate` and NeMo read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_asr_training(*, model: Any, data: Any, trainer: Any, log: Any = None, resume: Any = None, task_config: Any = None) -> Path | None:
    """Trains `model` (a `FastConformerCTC` spec) on `data`; returns the run directory."""
    import warnings

    import lightning.pytorch as pl

    # Lightning warns that a mid-epoch checkpoint cannot resume a data loader without state_dict
    # (lightning/pytorch/loops/training_epoch_loop.py, reset()); ours skips the batches the
    # checkpoint trained on itself (nemolite.asr.data.dataset, DurationBatchSampler.skip).
    warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")
    pl.seed_everything(getattr(data, "seed", 1234), workers=True, verbose=False)
    pl_trainer = trainer.build()
    tokenizer_dir = None
    if model.vocabulary == "bpe" and model.tokenizer_dir is None and model.restore_from is None:
        if data.train_manifest is not None:
            from nemolite.errors import ConfigError

            raise ConfigError("model.tokenizer_dir", None, "a BPE model on your own manifests needs a tokenizer",
                              "train one with `nemo asr tokenizer manifest=... vocab_size=...` and set model.tokenizer_dir")  # fmt: skip
        from nemolite.asr.data.speech_set import ensure_speech_set

        tokenizer_dir = str(ensure_speech_set(data.speech_set_dir) / "tokenizer")
    module = model.build(max_steps=trainer.max_steps if trainer.max_steps > 0 else None, tokenizer_dir=tokenizer_dir)
    datamodule = data.build(tokenizer=module.tokenizer, sample_rate=module.sample_rate)
    log_dir = None
    if log is not None:
        log_dir = log.setup(pl_trainer, resume_if_exists=getattr(resume, "resume_if_exists", False), task_config=task_config)
    if resume is not None:
        resume.setup(pl_trainer, module)
    pl_trainer.fit(module, datamodule=datamodule)
    run_dir = Path(log_dir) if log_dir is not None else Path(pl_trainer.default_root_dir)
    if pl_trainer.is_global_zero:
        name = getattr(log, "name", None) or "model"
        module.save_to(run_dir / f"{name}.nemo")
    return run_dir
