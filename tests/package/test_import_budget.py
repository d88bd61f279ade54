"""Import cost is a feature: recipes, dry runs and the CLI must not import the training stack.

nemo-run 0.11 itself imports torch (its Docker executor's YAML serializer does), so the budget is
what nemolite adds on top of `import nemo_run`: no lightning, megatron, transformer-engine or
tensorboard, and no torch submodules beyond those nemo-run already loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

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


CONVERT = textwrap.dedent(
    """
    import json, sys
    from nemolite import llm
    light = sorted(m for m in sys.modules if m.split(".")[0] in ("nemo_run", "torch", "fiddle"))
    if sys.argv[1] == "import":
        llm.import_ckpt(source=sys.argv[2], output_path=sys.argv[3])
    else:
        llm.export_ckpt(path=sys.argv[2], output_path=sys.argv[3])
    print(json.dumps({"light": light, "loaded": sorted({m.split(".")[0] for m in sys.modules})}))
    """
)


def test_hf_conversion_imports_no_nemo_run(tmp_path: Path) -> None:
    """`llm.import_ckpt` / `llm.export_ckpt` reach the converter without nemo-run, lightning (or
    fiddle); the export without megatron either: each was ~1-1.5 s of CPU per conversion."""
    pytest.importorskip("transformers")
    from tests.llm.gpt.model import hf_models

    hf_models.make_hf_model("llama32", tmp_path / "hf")
    env = os.environ | {"NEMO_HOME": str(tmp_path / "nemo_home"), "HF_HUB_OFFLINE": "1"}
    loaded = {}
    for verb, source, out in (("import", tmp_path / "hf", tmp_path / "imported"),
                              ("export", tmp_path / "imported", tmp_path / "exported")):
        run = subprocess.run([sys.executable, "-c", CONVERT, verb, str(source), str(out)], capture_output=True,
                             text=True, env=env)
        assert run.returncode == 0, run.stderr[-3000:]
        report = json.loads(run.stdout.strip().splitlines()[-1])
        assert report["light"] == [], f"`from nemolite import llm` imported {report['light'][:10]}"
        loaded[verb] = set(report["loaded"])
    assert (tmp_path / "exported" / "config.json").is_file()  # the work really ran
    assert "torch" in loaded["import"] & loaded["export"]
    assert loaded["import"] & {"nemo_run", "lightning", "pytorch_lightning", "fiddle"} == set()
    assert loaded["export"] & {"nemo_run", "lightning", "pytorch_lightning", "fiddle", "megatron"} == set()
