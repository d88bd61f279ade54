"""Llama 3 70B: pretraining and fine-tuning recipes with NeMo 2.0's published defaults.

Targets 4 nodes of 8 80-GB GPUs. TP=4 keeps tensor-parallel traffic inside NVLink, PP=4 with 5
virtual stages per rank (80 layers = 4 x 5 x 4) shrinks the pipeline bubble, sequence parallelism
shards the activations TP leaves replicated, and CP=2 splits the 8192-token sequence:
4 x 4 x 2 = 32 GPUs, so data parallelism is 1.
"""



from typing import Optional

import nemo_run as run

from nemolite import llm
from nemolite.recipes import _common

NAME = "llama3_70b"


@run.cli.factory(name=NAME)
def model() -> run.Config[llm.GPTModel]:
    """Llama 3 70B (80 layers, hidden 8192, 64 heads, 8 query groups)."""
    return run.Config(llm.LlamaModel, config=run.Config(llm.Llama3Config70B))


def trainer(
    *,
    tensor_parallelism: int = 4,
    pipeline_parallelism: int = 4,
    virtual_pipeline_parallelism: int | None = 5,
    context_parallelism: int = 2,
    sequence_parallelism: bool = True,
    num_nodes: int = 4,
    num_gpus_per_node: int = 8,
    max_steps: int = 1_168_251,
) -> run.Config:
    """Trainer for 70B: TP4/PP4(VP5)/CP2 with sequence parallelism over 32 GPUs, bf16."""
    return _common.trainer(
        strategy=_common.strategy(
            tensor_parallelism=tensor_parallelism,
            pipeline_parallelism=pipeline_parallelism,
            virtual_pipeline_parallelism=virtual_pipeline_parallelism,
            context_parallelism=context_parallelism,
            sequence_parallelism=sequence_parallelism,
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
    num_nodes: int = 4,
    num_gpus_per_node: int = 8,
) -> run.Partial:
    """Pretrain Llama 3 70B on mock data (seq 8192, global batch 512, micro batch 1), lr 3e-4 cosine."""
    return _common.pretrain(
        model=model(),
        trainer=trainer(num_nodes=num_nodes, num_gpus_per_node=num_gpus_per_node),
        data=_common.mock_data(seq_length=8192),
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
    restore_from: Optional[str] = "nemo://meta-llama/Meta-Llama-3-70B",
) -> run.Partial:
    """Fine-tune Llama 3 70B on `dataset_root` (JSONL), LoRA by default.

    Starts from `nemo://meta-llama/Meta-Llama-3-70B` (NeMo's default): import it first with
    `nemo llm import source=hf://meta-llama/Meta-Llama-3-70B -y`.

    LoRA fits one node with TP=8; full fine-tuning (`peft=None`) runs at TP=8, PP=4 over 4 nodes, as in
    NeMo's recipe: pass `num_nodes=4`.
    """
    full = peft is None
    return _common.finetune(
        model=model(),
        trainer=trainer(
            tensor_parallelism=8,
            pipeline_parallelism=4 if full else 1,
            virtual_pipeline_parallelism=None,
            context_parallelism=1,
            sequence_parallelism=True,
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
