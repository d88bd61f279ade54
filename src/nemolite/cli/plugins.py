"""Recipes and executors found through entry points, so the library never imports them directly.

`nemolite.recipes` and `nemolite.executors` (and any third-party package) declare their modules in
the `nemolite.recipes` / `nemolite.executors` entry-point groups. Listing names reads only package
metadata; a module is imported when it is used.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib import metadata
from types import ModuleType

from nemolite.errors import UnknownChoiceError

RECIPE_GROUP = "nemolite.recipes"
# ASR recipes have their own group, so `nemo llm` lists (and the LLM recipe checks walk) only LLM
# recipes; `nemo asr` reads this one.
ASR_RECIPE_GROUP = "nemolite.asr_recipes"
EXECUTOR_GROUP = "nemolite.executors"


@cache
def _entry_points(group: str) -> dict[str, str]:
    return {ep.name: ep.value for ep in metadata.entry_points(group=group)}


def recipe_names(group: str = RECIPE_GROUP) -> list[str]:
    """Names of the installed recipes of `group` (`llama3_8b`, ...), sorted."""
    return sorted(_entry_points(group))


def executor_names() -> list[str]:
    """Names of the installed executors (`local`, `torchrun`, `slurm`, ...), sorted."""
    return sorted(_entry_points(EXECUTOR_GROUP))


def recipe_module(name: str, field: str = "--factory", group: str = RECIPE_GROUP) -> ModuleType:
    """Imports the recipe module `name`; an unknown name is a one-line error listing the recipes."""
    modules = _entry_points(group)
    if name not in modules:
        raise UnknownChoiceError(field, name, modules, what="recipe")
    return importlib.import_module(modules[name])


def executor_module(name: str) -> ModuleType:
    """Imports the executor module `name` (with `factory`, `launch_shape`, `validate`, `render`)."""
    modules = _entry_points(EXECUTOR_GROUP)
    if name not in modules:
        raise UnknownChoiceError("executor", name, modules, what="executor")
    return importlib.import_module(modules[name])


def load_all_recipes(group: str = RECIPE_GROUP) -> None:
    """Imports every recipe module so their nemo-run factories are registered (`--factory X`)."""
    for name in recipe_names(group):
        recipe_module(name, group=group)
