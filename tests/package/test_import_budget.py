"""Import cost is a feature: recipes, dry runs and the CLI must not import the training stack.

nemo-run 0.11 itself imports torch (its Docker executor's YAML serializer does), so the budget is
what nemolite adds on top of `import nemo_run`: no lightning, megatron, transformer-engine or
tensorboard, and no torch submodules beyond those nemo-run already loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = ("lightning", "pytorch_lightning", "megatron", "transformer_engine", "tensorboard", "torch")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import nemolite
    bare = sorted(m for m in sys.modules if m.split(".")[0] in ("nemo_run", "torch", "fiddle"))
    import nemo_run
    before = set(sys.modules)
    import fiddle as fdl
    from typer.testing import CliRunner
    import typer
    from nemolite import llm
    from nemolite.cli import plugins
    for name in plugins.recipe_names():
        module = plugins.recipe_module(name)
        fdl.build(module.pretrain_recipe())
    app = typer.Typer()
    for verb in (llm.pretrain, llm.finetune):
        verb.cli_entrypoint.cli(app)
    result = CliRunner().invoke(app, ["pretrain", "--factory", "llama3_70b", "--dryrun", "-y"])
    assert result.exit_code == 0, result.output
    added = sorted(set(sys.modules) - before)
    print(json.dumps({"bare": bare, "added": added}))
    """
)


def test_recipes_and_dry_run_import_no_training_stack() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["bare"] == [], "`import nemolite` alone must not import nemo_run, torch or fiddle"
    heavy = [m for m in report["added"] if m.split(".")[0] in HEAVY]
    assert heavy == [], f"nemolite pulled in: {heavy[:20]}"
    assert any(m.startswith("nemolite.recipes.") for m in report["added"])  # the work really ran
