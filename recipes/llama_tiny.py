"""Llama tiny: a small Llama-architecture model that pretrains on a laptop CPU in a few minutes.

Targets one CPU process (gloo), fp32: megatron's bf16 path is correct on CPU but slower than fp32
there. The model keeps Llama 3's shape (RMSNorm, SwiGLU, RoPE, grouped-query attention) at a size
where one optimizer step takes well under a second on two cores, and its data is the English corpus
shipped with nemolite, byte-tokenized, so the run needs no downloads. Heads, query groups and
layers are chosen so TP=2, PP=2 and PP=2 x VP=2 all divide them: the multi-process recipes and tests
reuse this model (`executor=torchrun executor.ntasks_per_node=2 trainer.devices=2 ...`).
"""



from typing import Optional

import nemo_run as run

from nemolite import llm
from nemolite.recipes import _common

NAME = "llama_tiny"


@run.cli.factory(name=NAME)
def model() -> run.Config[llm.GPTModel]:
    """The tiny Llama (see `llm.LlamaTinyConfig`)."""
    return run.Config(llm.GPTModel, config=run.Config(llm.LlamaTinyConfig))


def trainer(
    *,
    tensor_parallelism: int = 1,
    pipeline_parallelism: int = 1,
    num_nodes: int = 1,
    devices: int = 1,
    max_steps: int = 300,
) -> run.Config:
    """CPU trainer: fp32, a short validation every 100 steps, logging every 10."""
    return _common.trainer(
        strategy=_common.strategy(
            tensor_parallelism=tensor_parallelism,
            pipeline_parallelism=pipeline_parallelism,
            gpu_tuned=False,
        ),
        accelerator="cpu",
        precision="32",
        num_nodes=num_nodes,
        devices=devices,
        max_steps=max_steps,
        val_check_interval=100,
        limit_val_batches=4,
        limit_test_batches=4,
        log_every_n_steps=10,
    )


def _data(seq_length: int, global_batch_size: int) -> run.Config:
    return run.Config(
        llm.BundledCorpusDataModule,
        seq_length=seq_length,
        micro_batch_size=4,
        global_batch_size=global_batch_size,
        tokenizer=run.Config(llm.ByteTokenizer),
    )


@run.cli.factory(target=llm.pretrain, name=NAME)
def pretrain_recipe(
    dir: Optional[str] = None,
    name: str = "default",
    num_nodes: int = 1,
    num_gpus_per_node: int = 1,
) -> run.Partial:
    """Pretrain the tiny Llama on the bundled corpus: 300 steps of 8 x 256 tokens, lr 1e-3 cosine.

    `num_gpus_per_node` is the number of processes per node (on CPU, gloo processes).
    """
    return _common.pretrain(
        model=model(),
        trainer=trainer(num_nodes=num_nodes, devices=num_gpus_per_node),
        data=_data(seq_length=256, global_batch_size=8),
        log=_common.logger(dir=dir, name=name, every_n_train_steps=100, save_top_k=2),
        optim=_common.adam_with_cosine_annealing(
            max_lr=1e-3, warmup_steps=30, weight_decay=0.01, distributed=False, bf16=False
        ),
    )


@run.cli.factory(target=llm.finetune, name=NAME)
def finetune_recipe(
    dir: Optional[str] = None,
    name: str = "finetune",
    num_nodes: int = 1,
    num_gpus_per_node: int = 1,
    peft: Optional[llm.LoRA] = llm.LoRA(dim=8, alpha=16),
    dataset_root: Optional[str] = None,
    restore_from: Optional[str] = "run://nemo_experiments/default",
) -> run.Partial:
    """Fine-tune the tiny Llama, LoRA by default, on CPU: 100 steps of 8 examples.

    Out of the box it trains on the instruction set shipped with nemolite (`dataset_root=None`;
    see `nemolite/llm/gpt/data/instructions/README.md`) and starts from the latest checkpoint of
    the quick start's pretraining run (`run://nemo_experiments/default`, resolved when the job
    starts; a one-line error says what to do when there is none). Its run is named `finetune`, so
    it never resumes into the pretraining run's directory.
    """
    from nemolite.llm.gpt.data.instructions import DATASET_ROOT

    return _common.finetune(
        model=model(),
        trainer=trainer(num_nodes=num_nodes, devices=num_gpus_per_node, max_steps=100),
        data=_common.finetune_data(
            dataset_root or DATASET_ROOT,
            seq_length=256,
            micro_batch_size=4,
            global_batch_size=8,
            tokenizer=run.Config(llm.ByteTokenizer),
        ),
        dir=dir,
        name=name,
        peft=peft,
        restore_from=restore_from,
        warmup_steps=10,
        full_lr=3e-5,
        cpu=True,
    )
