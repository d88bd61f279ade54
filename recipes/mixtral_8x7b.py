"""Mixtral 8x7B (mixture of experts): pretraining and fine-tuning recipes, NeMo 2.0 defaults.

Targets 8 nodes of 8 80-GB GPUs. Expert parallelism 8 puts one expert per GPU of each
expert-parallel group, so expert weights are not replicated; PP=4 with 8 virtual stages (32 layers
= 4 x 8 x 1) fits the dense parts without tensor parallelism; data parallelism is 64 / 4 = 16.
"""



from typing import Optional

import nemo_run as run

from nemolite import llm
from nemolite.recipes import _common

NAME = "mixtral_8x7b"


@run.cli.factory(name=NAME)
def model() -> run.Config[llm.GPTModel]:
    """Mixtral 8x7B: 32 layers, 8 experts with top-2 routing."""
    return run.Config(llm.MixtralModel, config=run.Config(llm.MixtralConfig8x7B))


def trainer(
    *,
    tensor_parallelism: int = 1,
    pipeline_parallelism: int = 4,
    virtual_pipeline_parallelism: int | None = 8,
    context_parallelism: int = 1,
    sequence_parallelism: bool = False,
    expert_parallelism: int = 8,
    num_nodes: int = 8,
    num_gpus_per_node: int = 8,
    max_steps: int = 1_168_251,
) -> run.Config:
    """Trainer for Mixtral 8x7B: PP4(VP8), EP8 over 64 GPUs, bf16."""
    return _common.trainer(
        strategy=_common.strategy(
            tensor_parallelism=tensor_parallelism,
            pipeline_parallelism=pipeline_parallelism,
            virtual_pipeline_parallelism=virtual_pipeline_parallelism,
            context_parallelism=context_parallelism,
            sequence_parallelism=sequence_parallelism,
            expert_parallelism=expert_parallelism,
            pipeline_dtype="bfloat16",
        ),
        num_nodes=num_nodes,
        devices=num_gpus_per_node,
        max_steps=max_steps,
    )


@run.cli.factory(target=llm.pretrain, name=NAME)
def pretrain_recipe(
    dir: Optional[str] = None,
    name: str = "default",
    num_nodes: int = 8,
    num_gpus_per_node: int = 8,
) -> run.Partial:
    """Pretrain Mixtral 8x7B on mock data (seq 4096, global batch 512, micro batch 1), lr 3e-4 cosine."""
    return _common.pretrain(
        model=model(),
        trainer=trainer(num_nodes=num_nodes, num_gpus_per_node=num_gpus_per_node),
        data=_common.mock_data(seq_length=4096),
        log=_common.logger(dir=dir, name=name),
        optim=_common.adam_with_cosine_annealing(max_lr=3e-4),
    )


@run.cli.factory(target=llm.finetune, name=NAME)
def finetune_recipe(
    dir: Optional[str] = None,
    name: str = "default",
    num_nodes: int = 1,
    num_gpus_per_node: int = 8,
    peft: Optional[llm.LoRA] = llm.LoRA(),
    dataset_root: Optional[str] = None,
    restore_from: Optional[str] = "nemo://mistralai/Mixtral-8x7B-v0.1",
) -> run.Partial:
    """Fine-tune Mixtral 8x7B on `dataset_root` (JSONL), LoRA by default.

    Starts from `nemo://mistralai/Mixtral-8x7B-v0.1` (NeMo's default): import it first with
    `nemo llm import source=hf://mistralai/Mixtral-8x7B-v0.1 -y`.

    LoRA on one node: EP=8 spreads the frozen experts, PP=1. Full fine-tuning (`peft=None`) uses
    PP=4 over 4 nodes: pass `num_nodes=4`.
    """
    full = peft is None
    return _common.finetune(
        model=model(),
        trainer=trainer(
            pipeline_parallelism=4 if full else 1,
            virtual_pipeline_parallelism=None,
            expert_parallelism=8,
            num_nodes=num_nodes,
            num_gpus_per_node=num_gpus_per_node,
            max_steps=1000,
        ),
        data=_common.finetune_data(dataset_root),
        dir=dir,
        name=name,
        peft=peft,
        restore_from=restore_from,
    )
