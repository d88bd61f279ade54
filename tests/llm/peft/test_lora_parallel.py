"""LoRA under tensor (and pipeline) parallelism matches one tensor-parallel rank (torchrun, 2 gloo procs).

One 2-process launch runs every layout in turn (`lora_harness.py`): TP=1 (data-parallel 2, the
reference), TP=2, TP=2 with sequence parallelism, PP=2. Each starts from the same base weights and
adapter init and trains the adapters 5 steps on the same batches.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.multiproc

HARNESS = Path(__file__).with_name("lora_harness.py")
MODES = ["tp1", "tp2", "tp2_sp", "pp2"]
# Relative tolerance on per-step losses vs tp1. TP splits the base matmuls and the adapters' A (row)
# or B (column) and sums partial results by all-reduce / reduce-scatter: float addition in another
# order, so equal to ~1e-7; PP moves activations only, but tp1 here is DP=2 (gradients all-reduced).
LOSS_RTOL = 1e-6
# Absolute tolerance on adapter weights after 5 steps (|B| ~ 1e-2 at lr 1e-2): the same rounding,
# carried through Adam. A wrong split of B (e.g. fc1's [gate; up] rows) would differ by ~|B|.
ADAPTER_ATOL = 1e-4


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("lora_parallel")
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HARNESS), str(out), *MODES]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    for mode in MODES:
        assert "error" not in data[mode], f"{mode}: {data[mode].get('trace')}"
    return data


def test_reference_learns(results: dict[str, Any]) -> None:
    losses = results["tp1"]["losses"]
    assert len(losses) == 5
    assert losses[-1] < losses[0] - 0.2


@pytest.mark.parametrize("mode", ["tp2", "tp2_sp", "pp2"])
def test_losses_match_tp1(results: dict[str, Any], mode: str) -> None:
    ref, got = results["tp1"]["losses"], results[mode]["losses"]
    assert len(got) == len(ref)
    for step, (a, b) in enumerate(zip(ref, got, strict=True)):
        assert abs(a - b) <= LOSS_RTOL * abs(a), f"step {step}: tp1 {a} vs {mode} {b}"


@pytest.mark.parametrize("mode", ["tp2", "tp2_sp", "pp2"])
def test_trained_adapters_match_tp1_after_resharding(results: dict[str, Any], mode: str) -> None:
    # The tp1 adapters, saved with dist-checkpointing and loaded into this layout, equal this
    # layout's own trained adapters: the sharded checkpoint layout and the training both agree.
    expected_count = 16 if mode != "pp2" else 8  # 2 layers x 4 linears x (A, B); PP2: 1 layer/rank
    assert results[mode]["adapters_compared"] == expected_count
    assert results[mode]["adapter_max_abs_diff"] <= ADAPTER_ATOL
