"""`nemo llm pretrain --factory llama_tiny` gives one process's per-step losses at TP=2, PP=2 and DP=2.

The real CLI, the real recipe (its vocabulary pads to 384 rows at TP=1 and 512 at TP=2), global batch
unchanged; 3 steps each. Initial weights are drawn from (seed, global parameter name) and padded
vocabulary rows are masked, so the layouts start from the same model (relative 1e-5 asked; TP=2 is
bit-exact here). With `model.config.layout_independent_init=false` TP=2 starts elsewhere (checked).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.multiproc, pytest.mark.slow]

NEMO = shutil.which("nemo") or str(Path(sys.executable).with_name("nemo"))
STEPS = 3
LAYOUTS = {
    "tp2": ["trainer.strategy.tensor_model_parallel_size=2"],
    "pp2": ["trainer.strategy.pipeline_model_parallel_size=2"],
    "dp2": [],
}


def pretrain(home: Path, *overrides: str, nproc: int = 1) -> list[float]:
    """Runs the recipe for STEPS steps in its own HOME; returns its per-step `reduced_train_loss`."""
    home.mkdir(parents=True)
    env = os.environ | {"HOME": str(home), "NEMO_HOME": str(home / "nemo"), "NEMORUN_HOME": str(home / "nemorun"),
                        "HF_HOME": str(home / "hf"), "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    launch = [] if nproc == 1 else ["executor=torchrun", f"executor.ntasks_per_node={nproc}", f"trainer.devices={nproc}"]
    cmd = [NEMO, "llm", "pretrain", "--factory", "llama_tiny", f"trainer.max_steps={STEPS}",
           "trainer.log_every_n_steps=1", *launch, *overrides, "-y"]
    proc = subprocess.run(cmd, cwd=home, env=env, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (metrics,) = home.glob("nemo_experiments/*/*/train_metrics.jsonl")
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    return [r["reduced_train_loss"] for r in records if "reduced_train_loss" in r]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[float]:
    losses = pretrain(tmp_path_factory.mktemp("ref") / "home")
    assert len(losses) == STEPS
    return losses


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_layout_gives_one_process_losses(reference: list[float], layout: str, tmp_path: Path) -> None:
    losses = pretrain(tmp_path / "home", *LAYOUTS[layout], nproc=2)
    assert losses == pytest.approx(reference, rel=1e-5, abs=0.0), layout


def test_megatron_init_depends_on_layout(reference: list[float], tmp_path: Path) -> None:
    """The control: megatron's own initialisation at TP=2 starts from other weights."""
    losses = pretrain(tmp_path / "home", *LAYOUTS["tp2"], "model.config.layout_independent_init=false", nproc=2)
    assert losses != pytest.approx(reference, rel=1e-5, abs=0.0)
