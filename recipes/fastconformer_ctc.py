"""Shared builders of the FastConformer-CTC recipes (`fastconformer_ctc_{tiny,small,medium,large}`).

A size's module states its hardware, trainer shape and schedule; everything else (the NeMo
`model:` layout, AdamW with betas 0.9/0.98 and cosine annealing, plain DDP, the logger with
WER-ranked checkpoints) is built here once. Recipes are pure: no file, network or CUDA work.
"""


from typing import Optional

import nemo_run as run

from nemolite import asr
from nemolite import lightning as nl
from nemolite.recipes import _common


def model(size: str, *, lr: float, warmup_steps: int, min_lr: float = 1e-4, **kwargs) -> run.Config:
    """A FastConformer-CTC of a published size (or tiny), BPE vocabulary."""
    return run.Config(asr.FastConformerCTC, size=size, lr=lr, warmup_steps=warmup_steps, min_lr=min_lr, **kwargs)


def trainer(
    *,
    accelerator: str,
    devices: int,
    num_nodes: int,
    max_steps: int,
    val_check_interval: int,
    precision: str = "32-true",
    log_every_n_steps: int = 10,
    gradient_clip_val: Optional[float] = None,
) -> run.Config:
    """`nl.Trainer` over plain DDP (`nl.DDPStrategy`), with the ASR progress bar (loss, WER)."""
    return run.Config(
        nl.Trainer,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=run.Config(nl.DDPStrategy),
        precision=precision,
        max_steps=max_steps,
        val_check_interval=val_check_interval,
        check_val_every_n_epoch=None,
        log_every_n_steps=log_every_n_steps,
        num_sanity_val_steps=0,
        gradient_clip_val=gradient_clip_val,
        callbacks=[run.Config(asr.WERProgressBar, log_every_n_steps=log_every_n_steps)],
    )


def logger(dir: Optional[str], name: str, every_n_train_steps: int, save_top_k: int = 2) -> run.Config:
    """A run directory with checkpoints every n steps (the best by validation WER kept) and TensorBoard."""
    ckpt = run.Config(
        nl.ModelCheckpoint,
        save_last=True,
        save_top_k=save_top_k,
        every_n_train_steps=every_n_train_steps,
        monitor="val_wer",
        mode="min",
        filename="{model_name}--{val_wer:.3f}-{step}",
    )
    tb = run.Config(nl.TensorBoardLogger, save_dir="tb_logs", name=name)
    return run.Config(nl.NeMoLogger, name=name, log_dir=dir, ckpt=ckpt, tensorboard=tb)


def train_recipe(*, model: run.Config, data: run.Config, trainer: run.Config, log: run.Config) -> run.Partial:
    return run.Partial(asr.train, model=model, data=data, trainer=trainer, log=log, resume=_common.resume())


def finetune_recipe(
    *, model: run.Config, data: run.Config, trainer: run.Config, log: run.Config, restore_from: Optional[str]
) -> run.Partial:
    return run.Partial(
        asr.finetune, model=model, data=data, trainer=trainer, log=log, resume=_common.resume(), restore_from=restore_from
    )
