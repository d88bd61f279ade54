"""NeMo 2.0's `llama32_1b` recipes: `model()`, `pretrain_recipe()`, `finetune_recipe()`.

The published defaults and the hardware they target are the `llama32_1b` row of `recipes/llama3.py`.
"""

from nemolite.recipes import llama3
from nemolite.recipes._family import register

NAME = "llama32_1b"
model, pretrain_recipe, finetune_recipe = register(llama3.SIZES[NAME])
