"""NeMo 2.0's `qwen3_4b` recipes: `model()`, `pretrain_recipe()`, `finetune_recipe()`.

The published defaults and the hardware they target are the `qwen3_4b` row of `recipes/qwen3.py`.
"""

from nemolite.recipes import qwen3
from nemolite.recipes._family import register

NAME = "qwen3_4b"
model, pretrain_recipe, finetune_recipe = register(qwen3.SIZES[NAME])
