"""Llama 3 8B: pretraining and fine-tuning recipes with NeMo 2.0's published defaults.

Targets one node of 8 80-GB GPUs (H100/A100). The model fits with the distributed optimizer
without tensor parallelism, so TP=1 keeps matmuls large; context parallelism 2 splits the 8192-token
sequence so activations fit, leaving data parallelism 4 over the node.
"""



from typing import Optional

import nemo_run as run

from nemolite import llm
from nemolite.recipes import _common

NAME = "llama3_8b"


@run.cli.factory(name=NAME)
def model() -> run.Config[llm.GPTModel]:
    """Llama 3 8B (32 layers, hidden 4096, GQA with 8 query groups, 128K vocabulary)."""
    return run.Config(llm.LlamaModel, config=run.Config(llm.Llama3Config8B))


def trainer(
    *,
    tensor_parallelism: int = 1,
    pipeline_parallelism: int = 1,
    virtual_pipeline_parallelism: int | None = None,
    context_parallelism: int = 2,
    sequence_parallelism: bool = False,
    num_nodes: int = 1,
    num_gpus_per_node: int = 8,
    max_steps: int = 1_168_251,
) -> run.Config:
    """Trainer for 8B: TP1/PP1/CP2 over 8 GPUs, bf16, validation every 2000 steps."""
    return _common.trainer(
        strategy=_common.strategy(
            tensor_parallelism=tensor_parallelism,
            pipeline_parallelism=pipeline_parallelism,
            virtual_pipeline_parallelism=virtual_pipeline_parallelism,
            context_parallelism=context_parallelism,
            sequence_parallelism=sequence_parallelism,
            pipeline_dtype="bfloat16" if pipeline_parallelism > 1 else None,
        ),
        num_nodes=num_nodes,
        devices=num_gpus_per_node,
        max_steps=max_steps,
    )


@run.cli.factory(target=llm.pretrain, name=NAME)
def pretrain_recipe(
    dir: Optional[str] = None,
    name: str = "default",
    num_nodes: int = 1,
    num_gpus_per_node: int = 8,
) -> run.Partial:
    """Pretrain Llama 3 8B on mock data (seq 8192, global batch 512, micro batch 1), lr 3e-4 cosine."""
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
    restore_from: Optional[str] = "nemo://meta-llama/Meta-Llama-3-8B",
) -> run.Partial:
    """Fine-tune Llama 3 8B on `dataset_root` (JSONL), LoRA by default, from `restore_from`'s weights.

    Starts from `nemo://meta-llama/Meta-Llama-3-8B` (NeMo's default): import it first with
    `nemo llm import source=hf://meta-llama/Meta-Llama-3-8B -y`.

    With LoRA one GPU holds the frozen model; full fine-tuning (`peft=None`) needs TP=2 over the node,
    as in NeMo's recipe. Sequence 2048, global batch 128 (LoRA) / 128 (full), lr 1e-4 (LoRA) / 5e-6.
    """
    tp = 1 if peft is not None else 2
    return _common.finetune(
        model=model(),
        trainer=trainer(
            tensor_parallelism=tp,
            context_parallelism=1,
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
