"""Mixtral tiny: a small mixture-of-experts model for CPU runs and expert-parallel tests.

Targets one or two CPU processes. Four experts with top-2 routing keep Mixtral's routing behaviour;
EP=2 puts two experts on each of two gloo processes
(`executor=torchrun executor.ntasks_per_node=2 trainer.devices=2 trainer.strategy.expert_model_parallel_size=2`).
Everything but the model is `llama_tiny`'s recipe.
"""

from typing import Optional

import nemo_run as run

from nemolite import llm
from nemolite.recipes import llama_tiny

NAME = "mixtral_tiny"


@run.cli.factory(name=NAME)
def model() -> run.Config[llm.GPTModel]:
    """The tiny Mixtral (see `llm.MixtralTinyConfig`)."""
    return run.Config(llm.GPTModel, config=run.Config(llm.MixtralTinyConfig))


@run.cli.factory(target=llm.pretrain, name=NAME)
def pretrain_recipe(
    dir: Optional[str] = None,
    name: str = "default",
    num_nodes: int = 1,
    num_gpus_per_node: int = 1,
) -> run.Partial:
    """Pretrain the tiny Mixtral on the bundled corpus: 200 steps of 8 x 256 tokens on CPU."""
    recipe = llama_tiny.pretrain_recipe(dir, name, num_nodes, num_gpus_per_node)
    recipe.model = model()
    recipe.trainer.max_steps = 200
    return recipe


@run.cli.factory(target=llm.finetune, name=NAME)
def finetune_recipe(
    dir: Optional[str] = None,
    name: str = "default",
    num_nodes: int = 1,
    num_gpus_per_node: int = 1,
    peft: Optional[llm.LoRA] = llm.LoRA(dim=8, alpha=16),
    dataset_root: Optional[str] = None,
    restore_from: Optional[str] = None,
) -> run.Partial:
    """Fine-tune the tiny Mixtral on `dataset_root` (JSONL); LoRA adapts attention, experts stay frozen."""
    recipe = llama_tiny.finetune_recipe(
        dir, name, num_nodes, num_gpus_per_node, peft, dataset_root, restore_from
    )
    recipe.model = model()
    return recipe
