"""Generation with TP=2 over gloo gives one process's tokens; a PP=2 checkpoint generates the same.

One 2-process torchrun launch (`generate_harness.py`) loads a TP=1 checkpoint split over both ranks
and generates, then re-saves the weights from a pipeline-parallel (PP=2) layout; this process
generates the references and, from the PP=2 checkpoint, again with one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nemolite import llm
from tests.llm.inference.inference_ckpts import tiny_config, write_checkpoint

pytestmark = pytest.mark.multiproc

HARNESS = Path(__file__).with_name("generate_harness.py")
PROMPTS = ["The cat sat on", "Hello", "A much longer prompt than the others, here"]
GREEDY = llm.CommonInferenceParams(temperature=0.0, num_tokens_to_generate=24, return_log_probs=True)
SAMPLED = llm.CommonInferenceParams(temperature=0.8, top_p=0.9, num_tokens_to_generate=24, random_seed=3)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("generate_parallel")
    run_dir = out / "tp1_run"
    write_checkpoint(run_dir, tiny_config())
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HARNESS), str(run_dir), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
    assert proc.returncode == 0 and (out / "tp2.json").exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"out": out, "run_dir": run_dir, "tp2": json.loads((out / "tp2.json").read_text())}


def _generate(path: Path, params: llm.CommonInferenceParams) -> list[Any]:
    return llm.generate(path=str(path), prompts=PROMPTS, inference_params=params)


def test_tp2_generates_the_tokens_of_one_process(runs: dict[str, Any]) -> None:
    greedy = _generate(runs["run_dir"], GREEDY)
    assert runs["tp2"]["path"] == "lean"  # the lean decode path, all-reducing over the TP group
    assert runs["tp2"]["greedy"] == [r.generated_tokens for r in greedy]
    for got, want in zip(runs["tp2"]["log_probs"], greedy):
        # Row-parallel layers add two partial matmuls: float sums in another order.
        assert got == pytest.approx(want.generated_log_probs, abs=1e-5)
    sampled = _generate(runs["run_dir"], SAMPLED)
    assert runs["tp2"]["sampled"] == [r.generated_tokens for r in sampled]


def test_pipeline_parallel_checkpoint_generates_the_same(runs: dict[str, Any]) -> None:
    pp2_run = runs["out"] / "pp2_run"
    assert (pp2_run / "checkpoints" / "default--step=0-last" / "metadata.json").exists()
    assert [r.generated_tokens for r in _generate(pp2_run, GREEDY)] == runs["tp2"]["greedy"]


def test_pipeline_parallel_generation_is_refused_with_the_fix(runs: dict[str, Any]) -> None:
    from nemolite.errors import ConfigError
    from nemolite.lightning.strategy import MegatronStrategy
    from nemolite.lightning.trainer import Trainer

    trainer = Trainer(strategy=MegatronStrategy(pipeline_model_parallel_size=2))
    with pytest.raises(ConfigError, match="pipeline_model_parallel_size=2.*set it to 1.*resharded on load"):
        llm.generate(path=str(runs["out"] / "pp2_run"), prompts=PROMPTS, trainer=trainer)
