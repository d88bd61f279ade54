"""Recipes and executors found through entry points, so the library never imports them directly.

`nemolite.recipes` and `nemolite.executors` (and any third-party package) declare their modules in
the `nemolite.recipes` / `nemolite.executors` entry-point groups. Listing names reads only package
metadata; a module is imported when it is used.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from functools import cache
from importlib import metadata
from types import ModuleType
from typing import Any

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


_RETARGETED: set[str] = set()


def load_all_executors() -> None:
    """Imports every executor module: some fix nemo-run behaviour that `nemo experiment ...`
    commands rely on (e.g. cancelling a local job from another shell, in executors/local.py)."""
    for name in executor_names():
        try:
            executor_module(name)
        except ImportError:  # an executor whose optional dependency is missing
            continue


def load_all_recipes(group: str = RECIPE_GROUP) -> None:
    """Imports every recipe module of `group` so their nemo-run factories are registered (`--factory X`).

    An LLM recipe module registers its `pretrain_recipe` for `llm.pretrain`; the same recipe also
    serves `nemo llm train` and `nemo llm validate` (NeMo's `llm.validate` on a training recipe
    evaluates its run's latest checkpoint), so it is registered for those verbs here too.
    """
    for name in recipe_names(group):
        module = recipe_module(name, group=group)
        if group == RECIPE_GROUP and name not in _RETARGETED and hasattr(module, "pretrain_recipe"):
            _RETARGETED.add(name)
            _register_for_other_verbs(name, module.pretrain_recipe)


def _register_for_other_verbs(name: str, pretrain_recipe: Callable[..., Any]) -> None:
    import nemo_run as run

    from nemolite import llm

    for verb in (llm.train, llm.validate):
        run.cli.factory(target=verb, name=name)(retargeted(pretrain_recipe, verb))


def retargeted(recipe_fn: Callable[..., Any], verb: Callable[..., Any]) -> Callable[..., Any]:
    """`recipe_fn`, with its task bound to `verb` instead (the arguments `verb` takes)."""
    import inspect

    import nemo_run as run

    accepted = set(inspect.signature(verb).parameters)

    @functools.wraps(recipe_fn)
    def factory(*args: Any, **kwargs: Any) -> Any:
        task = recipe_fn(*args, **kwargs)
        arguments = {k: v for k, v in task.__arguments__.items() if k in accepted}
        return run.Partial(verb, **arguments)  # nemo-run's class: its parser checks for it
    factory.__name__ = f"{recipe_fn.__name__}_for_{verb.__name__}"
    factory.__qualname__ = factory.__name__
    return factory
