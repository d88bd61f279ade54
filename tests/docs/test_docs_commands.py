"""Every command and snippet in README.md and docs/*.md works as written (docs/check_commands.py).

The slow test runs them all, in order, on a fresh temporary HOME and working directory, and checks
that what the text promises comes out; the fast ones check that the runner finds and rewrites the
blocks as its docstring says.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("nemolite_check_commands", REPO / "docs" / "check_commands.py")
assert _spec is not None and _spec.loader is not None
runner = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = runner  # dataclasses look their module up there
_spec.loader.exec_module(runner)

# (a piece of a block's text, what its output must contain): the text's promises, checked.
PROMISES = [
    ("pretrain --factory llama_tiny trainer.max_steps=310", "already finished: step 300"),
    ("nemo llm validate --factory llama_tiny", "val_ppl"),
    ("nemo llm finetune --factory llama_tiny trainer.max_steps=30", "starting from the weights of"),
    ("executor=slurm", "Not checked without contacting the cluster"),
    ("--dryrun", "Dry run: nothing was launched or written."),
]

# Third-party lines that must not reach a newcomer's console (issue 14's ~30 lines before step 1).
NOISE = ("Transformer Engine and Apex are not installed", "Apex is not installed", "💡 Tip",
         "The `srun` command is available", "dataloader_iter", "not resumable", "Traceback")


def test_the_runner_finds_the_readme_blocks_and_rewrites_only_environment_setup() -> None:
    found = runner.blocks()
    readme = [b for b in found if b.doc == "README.md"]
    assert readme[0].lang == "bash" and readme[0].text.strip() == "nemo llm pretrain --factory llama_tiny -y"
    assert "pytest --collect-only" in readme[1].text and "pip install" not in readme[1].text
    assert any(b.lang == "python" and "run.run(recipe, direct=True)" in b.text for b in readme)
    assert not any("error: trainer.strategy" in b.text for b in found), "console output is not run"


def test_every_block_parses() -> None:
    for block in runner.blocks():
        if block.lang == "bash":
            done = subprocess.run(["bash", "-n", "-c", block.text], capture_output=True, text=True)
            assert done.returncode == 0, (block.where(), done.stderr)
        else:
            compile(block.text, block.where(), "exec")


@pytest.mark.nightly  # 20-25 min on 2 cores (the quick start alone ~11): more than CI's budget leaves
def test_every_documented_command_and_snippet_runs_in_order() -> None:
    with tempfile.TemporaryDirectory(prefix="nemolite-docs-") as scratch:
        home, cwd = Path(scratch) / "home", Path(scratch) / "work"
        home.mkdir()
        cwd.mkdir()
        env = runner.environment(home)
        for block in runner.blocks():
            done = runner.run_block(block, cwd, env)
            output = done.stdout + done.stderr
            assert done.returncode == 0, f"{block.where()} failed:\n{block.text}\n{output[-4000:]}"
            noise = [n for n in NOISE if n in output]
            assert not noise, f"{block.where()}: third-party noise {noise}\n{output[-4000:]}"
            for piece, promise in PROMISES:
                if piece in block.text:
                    assert promise in output, f"{block.where()}: expected {promise!r}\n{output[-4000:]}"
        runs = cwd / "nemo_experiments"
        ends = sorted(p.name for p in runs.glob("default/*/checkpoints/*-last"))
        assert any("step=310" in name for name in ends), ends
        for name in ("finetune", "tp2", "from_yaml", "own_data"):
            assert list(runs.glob(f"{name}/*/checkpoints/*-last")), f"no checkpoint of the {name} run"
