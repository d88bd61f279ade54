"""Every registered recipe builds, validates, round-trips through YAML and dry-runs.

The recipe list comes from the `nemolite.recipes` entry points, so a new recipe is covered the
moment it is registered (litgpt checks every shipped config the same way).
"""

from __future__ import annotations

from pathlib import Path

import fiddle as fdl
import pytest

from nemolite.cli import plugins
from nemolite.errors import ConfigError
from nemolite.llm.checks import check_task
from nemolite.llm.recipe_io import from_yaml, to_config, to_yaml

RECIPES = plugins.recipe_names()
BUILDERS = [(name, kind) for name in RECIPES for kind in ("pretrain_recipe", "finetune_recipe")
            if hasattr(plugins.recipe_module(name), kind)]


def _recipe(name: str, kind: str, tmp_path: Path):
    builder = getattr(plugins.recipe_module(name), kind)
    if kind == "finetune_recipe":
        (tmp_path / "training.jsonl").write_text('{"input": "q", "output": "a"}\n')
        return builder(dir=str(tmp_path), dataset_root=str(tmp_path))
    return builder(dir=str(tmp_path))


def test_the_shipped_recipes_are_registered() -> None:
    assert {"llama_tiny", "llama3_8b", "llama3_70b", "mixtral_8x7b"} <= set(RECIPES)
    for name in RECIPES:
        assert hasattr(plugins.recipe_module(name), "pretrain_recipe")
        assert hasattr(plugins.recipe_module(name), "model")


@pytest.mark.parametrize("name,kind", BUILDERS)
def test_recipe_builds_and_validates(name: str, kind: str, tmp_path: Path) -> None:
    task = fdl.build(_recipe(name, kind, tmp_path))
    specs = {k: task.keywords[k] for k in ("model", "data", "trainer", "log", "resume", "optim")}
    check_task(**specs, on_this_machine=False)
    # The check looks at this recipe: the same recipe with an impossible layout is refused, by name
    # (7 divides no recipe's heads, nor its GPUs).
    specs["trainer"].strategy.tensor_model_parallel_size = 7
    with pytest.raises(ConfigError, match="tensor_model_parallel_size=7"):
        check_task(**specs, on_this_machine=False)


@pytest.mark.parametrize("name,kind", BUILDERS)
def test_recipe_round_trips_through_yaml(name: str, kind: str, tmp_path: Path) -> None:
    recipe = _recipe(name, kind, tmp_path)
    text = to_yaml(recipe)
    again = from_yaml(text)
    assert to_yaml(again) == text
    # and the built specs, turned back into configs, give the same YAML (what a run directory records)
    built = fdl.build(recipe)
    rebuilt = fdl.build(again)
    assert built.keywords.keys() == rebuilt.keywords.keys()
    for key in built.keywords:  # YAML has no tuples, so compare what would be written back
        assert to_yaml(to_config(built.keywords[key])) == to_yaml(to_config(rebuilt.keywords[key])), key


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_dry_runs(llm_cli, name: str, tmp_path: Path) -> None:
    code, out, err = llm_cli("pretrain", "--factory", name, "--dryrun", "-y")
    assert code == 0, err
    assert "resolved task" in out and "Dry run: nothing was launched or written." in out
    assert f"_target_: {plugins.recipe_module(name).model().config.__fn_or_cls__.__module__}" in out
    assert list(tmp_path.iterdir()) == []


def test_to_yaml_writes_a_loadable_task(llm_cli, tmp_path: Path) -> None:
    code, out, err = llm_cli("pretrain", "--factory", "llama_tiny", "trainer.max_steps=7",
                             "--to-yaml", "task.yaml", "-y")
    assert code == 0, err
    text = (tmp_path / "task.yaml").read_text()
    task = fdl.build(from_yaml(text))
    assert task.keywords["trainer"].max_steps == 7
    code, out, err = llm_cli("pretrain", "--yaml", "task.yaml", "trainer.max_steps=9", "--dryrun", "-y")
    assert code == 0, err
    assert "max_steps: 9" in out
