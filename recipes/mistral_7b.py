"""NeMo 2.0's `mistral_7b` recipes: `model()`, `pretrain_recipe()`, `finetune_recipe()`.

The published defaults and the hardware they target are the `mistral_7b` row of `recipes/mistral.py`.
"""

from nemolite.recipes import mistral
from nemolite.recipes._family import register

NAME = "mistral_7b"
model, pretrain_recipe, finetune_recipe = register(mistral.SIZES[NAME])
