"""Mixtral tiny: a small mixture-of-experts model for CPU runs and expert-parallel tests.

Targets one or two CPU processes. Four experts with top-2 routing keep Mixtral's routing behaviour;
EP=2 puts two experts on each of two gloo processes
(`executor=torchrun executor.ntasks_per_node=2 trainer.devices=2 trainer.strategy.expert_model_parallel_size=2`).
"""



from typing import Optional

import nemo_run as run

from nemolite import llm
from nemolite.recipes import _common
from nemolite.recipes.llama_tiny import _data, trainer

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
    return _common.pretrain(
        model=model(),
        trainer=trainer(num_nodes=num_nodes, devices=num_gpus_per_node, max_steps=200),
        data=_data(seq_length=256, global_batch_size=8),
        log=_common.logger(dir=dir, name=name, every_n_train_steps=100, save_top_k=1),
        optim=_common.adam_with_cosine_annealing(
            max_lr=1e-3, warmup_steps=20, weight_decay=0.01, distributed=False, bf16=False
        ),
    )
