"""Builders every recipe shares: trainer, strategy, precision, optimizer, logger and resume.

A model's recipe module states only what differs from these defaults (NeMo keeps 51 copies of
`trainer()`; we keep one). Every builder is a cheap, pure function returning `run.Config`s: no
network, CUDA or filesystem work happens while a recipe is built.
"""


from dataclasses import fields
from typing import Literal

import nemo_run as run

from nemolite import lightning as nl
from nemolite import llm

Precision = Literal["bf16-mixed", "16-mixed", "32"]


def strategy(
    *,
    tensor_parallelism: int = 1,
    pipeline_parallelism: int = 1,
    virtual_pipeline_parallelism: int | None = None,
    context_parallelism: int = 1,
    sequence_parallelism: bool = False,
    expert_parallelism: int = 1,
    pipeline_dtype: str | None = None,
    gpu_tuned: bool = True,
) -> run.Config[nl.MegatronStrategy]:
    """The Megatron strategy with NeMo 2.0's defaults.

    `gpu_tuned` turns on the communication overlap NeMo's GPU recipes use (bucketed gradient
    reduce and parameter gather overlapped with compute, async checkpoint save); CPU recipes leave
    it off because gloo gains nothing from it.
    """
    ddp = run.Config(
        nl.DistributedDataParallelConfig,
        check_for_nan_in_grad=True,
        grad_reduce_in_fp32=True,
        overlap_grad_reduce=gpu_tuned,
        overlap_param_gather=gpu_tuned,
        average_in_collective=True,
    )
    return run.Config(
        nl.MegatronStrategy,
        tensor_model_parallel_size=tensor_parallelism,
        pipeline_model_parallel_size=pipeline_parallelism,
        virtual_pipeline_model_parallel_size=virtual_pipeline_parallelism,
        context_parallel_size=context_parallelism,
        sequence_parallel=sequence_parallelism,
        expert_model_parallel_size=expert_parallelism,
        pipeline_dtype=pipeline_dtype,
        gradient_as_bucket_view=True,
        ckpt_async_save=gpu_tuned,
        ckpt_parallel_load=gpu_tuned,
        ddp=ddp,
    )


def trainer(
    *,
    strategy: run.Config[nl.MegatronStrategy],
    num_nodes: int = 1,
    devices: int = 8,
    accelerator: Literal["gpu", "cpu", "auto"] = "gpu",
    precision: Precision = "bf16-mixed",
    max_steps: int = 1_168_251,
    val_check_interval: int = 2000,
    limit_val_batches: int = 32,
    limit_test_batches: int = 50,
    log_every_n_steps: int = 10,
) -> run.Config[nl.Trainer]:
    """A Lightning trainer over the Megatron strategy, with megatron's own mixed precision."""
    return run.Config(
        nl.Trainer,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        plugins=run.Config(nl.MegatronMixedPrecision, precision=precision),
        max_steps=max_steps,
        val_check_interval=val_check_interval,
        limit_val_batches=limit_val_batches,
        limit_test_batches=limit_test_batches,
        log_every_n_steps=log_every_n_steps,
        accumulate_grad_batches=1,
        use_distributed_sampler=False,
    )


def adam_with_cosine_annealing(
    *,
    max_lr: float = 3e-4,
    min_lr: float | None = None,
    warmup_steps: int = 2000,
    constant_steps: int = 0,
    weight_decay: float = 0.1,
    clip_grad: float = 1.0,
    distributed: bool = True,
    bf16: bool = True,
) -> run.Config[nl.MegatronOptimizerModule]:
    """AdamW (megatron's "adam" decouples weight decay) with linear warmup and cosine decay.

    Betas (0.9, 0.95) and eps 1e-5 are NeMo's and Llama 3's published pretraining values; the
    floor of the cosine defaults to a tenth of the peak, as in NeMo's recipes.
    """
    config = run.Config(
        nl.OptimizerConfig,
        optimizer="adam",
        lr=max_lr,
        weight_decay=weight_decay,
        bf16=bf16,
        fp16=False,
        adam_beta1=0.9,
        adam_beta2=0.95,
        adam_eps=1e-5,
        use_distributed_optimizer=distributed,
        clip_grad=clip_grad,
    )
    scheduler = run.Config(
        nl.CosineAnnealingScheduler,
        warmup_steps=warmup_steps,
        constant_steps=constant_steps,
        min_lr=min_lr if min_lr is not None else float(f"{max_lr / 10:.6g}"),
    )
    return run.Config(nl.MegatronOptimizerModule, config=config, lr_scheduler=scheduler)


def logger(
    *,
    dir: str | None = None,
    name: str = "default",
    every_n_train_steps: int = 200,
    save_top_k: int = 10,
    tensorboard: bool = True,
) -> run.Config[nl.NeMoLogger]:
    """One run directory under `dir` (default ./nemo_experiments) with checkpoints and TensorBoard."""
    ckpt = run.Config(
        nl.ModelCheckpoint,
        save_last=True,
        save_top_k=save_top_k,
        every_n_train_steps=every_n_train_steps,
        filename="{model_name}--{reduced_train_loss:.2f}-{step}-{consumed_samples}",
    )
    tb = run.Config(nl.TensorBoardLogger, save_dir="tb_logs", name=name) if tensorboard else None
    return run.Config(nl.NeMoLogger, name=name, log_dir=dir, ckpt=ckpt, tensorboard=tb)


def resume() -> run.Config[nl.AutoResume]:
    """Resume from the newest complete checkpoint in the run directory, if there is one."""
    return run.Config(nl.AutoResume, resume_if_exists=True, resume_ignore_no_checkpoint=True)


def pretrain(
    *,
    model: run.Config[llm.GPTModel],
    data: run.Config,
    trainer: run.Config[nl.Trainer],
    log: run.Config[nl.NeMoLogger],
    optim: run.Config[nl.MegatronOptimizerModule],
) -> run.Partial:
    """Binds the pieces to `llm.pretrain`, resuming by default."""
    return run.Partial(
        llm.pretrain, model=model, data=data, trainer=trainer, log=log, optim=optim, resume=resume()
    )


def peft_config(peft: llm.LoRA | None) -> run.Config[llm.LoRA] | None:
    """The config of a PEFT method given as a plain spec (`LoRA(dim=8)`), so it can be overridden."""
    if peft is None:
        return None
    return run.Config(type(peft), **{f.name: getattr(peft, f.name) for f in fields(peft)})


def mock_data(seq_length: int, global_batch_size: int = 512, micro_batch_size: int = 1) -> run.Config:
    """Synthetic tokens, as NeMo's GPU recipes pretrain on until real data is configured."""
    return run.Config(
        llm.MockDataModule,
        seq_length=seq_length,
        global_batch_size=global_batch_size,
        micro_batch_size=micro_batch_size,
    )


def finetune_data(
    dataset_root: str | None,
    *,
    seq_length: int = 2048,
    global_batch_size: int = 128,
    micro_batch_size: int = 1,
    tokenizer: run.Config | None = None,
) -> run.Config:
    """JSONL fine-tuning data (`training.jsonl`, `validation.jsonl` under `dataset_root`)."""
    return run.Config(
        llm.FineTuningDataModule,
        dataset_root=dataset_root,
        seq_length=seq_length,
        global_batch_size=global_batch_size,
        micro_batch_size=micro_batch_size,
        tokenizer=tokenizer,
    )


def finetune(
    *,
    model: run.Config[llm.GPTModel],
    data: run.Config,
    trainer: run.Config[nl.Trainer],
    dir: str | None,
    name: str,
    peft: llm.LoRA | None,
    restore_from: str | None,
    warmup_steps: int = 50,
    lora_lr: float = 1e-4,
    full_lr: float = 5e-6,
    cpu: bool = False,
) -> run.Partial:
    """Binds the pieces to `llm.finetune`, starting from `restore_from`'s weights when given.

    LoRA trains a few adapter weights at a high rate (`lora_lr`); full fine-tuning moves every
    weight, so its rate (`full_lr`) is far lower, as in NeMo's recipes. No weight decay, and a
    checkpoint every 100 steps keeping only the best.
    """
    auto_resume = resume()
    if restore_from is not None:
        auto_resume.restore_config = run.Config(nl.RestoreConfig, path=restore_from)
    optim = adam_with_cosine_annealing(
        max_lr=lora_lr if peft is not None else full_lr,
        warmup_steps=warmup_steps,
        min_lr=0.0,
        weight_decay=0.0,
        distributed=not cpu,
        bf16=not cpu,
    )
    return run.Partial(
        llm.finetune,
        model=model,
        data=data,
        trainer=trainer,
        log=logger(dir=dir, name=name, every_n_train_steps=100 if not cpu else 50, save_top_k=1),
        optim=optim,
        resume=auto_resume,
        peft=peft_config(peft),
    )
