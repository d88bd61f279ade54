"""NeMo 2.0's `qwen3_30b_a3b` recipes: `model()`, `pretrain_recipe()`, `finetune_recipe()`.

The published defaults and the hardware they target are the `qwen3_30b_a3b` row of `recipes/qwen3.py`.
"""

from nemolite.recipes import qwen3
from nemolite.recipes._family import register

NAME = "qwen3_30b_a3b"
model, pretrain_recipe, finetune_recipe = register(qwen3.SIZES[NAME])
