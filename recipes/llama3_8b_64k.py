"""NeMo 2.0's `llama3_8b_64k` recipes: `model()`, `pretrain_recipe()`, `finetune_recipe()`.

The published defaults and the hardware they target are the `llama3_8b_64k` row of `recipes/llama3.py`.
"""

from nemolite.recipes import llama3
from nemolite.recipes._family import register

NAME = "llama3_8b_64k"
model, pretrain_recipe, finetune_recipe = register(llama3.SIZES[NAME])
