"""NeMo 2.0's `qwen25_32b` recipes: `model()`, `pretrain_recipe()`, `finetune_recipe()`.

The published defaults and the hardware they target are the `qwen25_32b` row of `recipes/qwen25.py`.
"""

from nemolite.recipes import qwen25
from nemolite.recipes._family import register

NAME = "qwen25_32b"
model, pretrain_recipe, finetune_recipe = register(qwen25.SIZES[NAME])
