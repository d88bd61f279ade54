"""The library (src/nemolite) never imports the recipes or executors packages (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import nemolite
import nemolite.recipes.llama3_8b

LIBRARY = Path(nemolite.__file__).parent
FORBIDDEN = ("nemolite.recipes", "nemolite.executors")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def test_library_does_not_import_recipes_or_executors() -> None:
    files = sorted(LIBRARY.rglob("*.py"))
    assert len(files) > 20  # the walk found the library
    offenders = {
        str(f.relative_to(LIBRARY)): name
        for f in files
        for name in _imports(f)
        if name.startswith(FORBIDDEN)
    }
    assert offenders == {}


def test_recipes_and_executors_are_installed_under_nemolite() -> None:
    import nemolite.executors.local
    import nemolite.recipes.llama_tiny
    from nemolite.cli import plugins

    # The importable module is the repository's recipes/llama_tiny.py, the very module the
    # `nemolite.recipes` entry point resolves to.
    assert Path(nemolite.recipes.llama_tiny.__file__).parent.name == "recipes"
    assert plugins.recipe_module("llama_tiny") is nemolite.recipes.llama_tiny
    assert Path(nemolite.executors.local.__file__).parent.name == "executors"


def test_recipes_are_reachable_as_llm_attributes() -> None:
    from nemolite import llm

    assert llm.llama3_8b.pretrain_recipe is nemolite.recipes.llama3_8b.pretrain_recipe
    assert "llama_tiny" in dir(llm)
