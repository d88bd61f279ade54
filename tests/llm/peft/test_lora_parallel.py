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


def _selected_modes(request: pytest.FixtureRequest) -> list[str]:
    """tp1 (the reference, which saves the base weights) and the modes the selected tests look at."""
    wanted = {"tp1"}
    for item in request.session.items:
        if Path(str(item.path)) == Path(__file__):
            wanted.add(getattr(getattr(item, "callspec", None), "params", {}).get("mode", "tp1"))
    return [m for m in MODES if m in wanted]


@pytest.fixture(scope="module")
def results(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("lora_parallel")
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HARNESS), str(out), *_selected_modes(request)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def _result(results: dict[str, Any], mode: str) -> dict[str, Any]:
    assert "error" not in results[mode], f"{mode}: {results[mode].get('trace')}"
    return results[mode]


# mode -> (tp, pp, dp, sequence_parallel) that megatron's parallel_state must report on every rank.
LAYOUTS = {"tp1": (1, 1, 2, False), "tp2": (2, 1, 1, False), "tp2_sp": (2, 1, 1, True),
           "pp2": (1, 2, 1, False)}
L0 = "decoder.layers.0."


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_ran_its_layout(results: dict[str, Any], mode: str) -> None:
    """Equal losses cannot tell TP=2 from DP=2 (tp1 is DP=2): the recorded shards can."""
    tp, pp, dp, sp = LAYOUTS[mode]
    ranks = _result(results, mode)["ranks"]
    assert len(ranks) == 2
    for rank, got in enumerate(ranks):
        where = f"{mode} rank {rank}"
        assert (got["tp"], got["pp"], got["dp"], got["sequence_parallel"]) == (tp, pp, dp, sp), where
        assert got["layers_per_chunk"] == [2 // pp], where
        shapes = {k.removeprefix(L0): v for k, v in got["shapes"].items()}
        # Base weights split as megatron's column (qkv, fc1) and row (proj, fc2) parallel linears...
        assert shapes["self_attention.linear_qkv.weight"] == [128 // tp, 64], where
        assert shapes["mlp.linear_fc2.weight"] == [64, 128 // tp], where
        # ...and the adapters with them: B (linear_out) of a column-parallel linear is split by
        # rows, A (linear_in) of a row-parallel linear by columns; the others are whole.
        assert shapes["self_attention.linear_qkv_adapter.linear_out.weight"] == [128 // tp, 4], where
        assert shapes["self_attention.linear_qkv_adapter.linear_in.weight"] == [4, 64], where
        assert shapes["mlp.linear_fc1_adapter.linear_out.weight"] == [256 // tp, 4], where
        assert shapes["mlp.linear_fc2_adapter.linear_in.weight"] == [4, 128 // tp], where
        assert shapes["self_attention.linear_proj_adapter.linear_in.weight"] == [4, 64 // tp], where
        # Only the adapters train: 4 linears x (A, B).
        assert len(got["trainable"]) == 8 and all("_adapter." in n for n in got["trainable"]), where


def test_reference_learns(results: dict[str, Any]) -> None:
    losses = _result(results, "tp1")["losses"]
    assert len(losses) == 5
    assert losses[-1] < losses[0] - 0.2


@pytest.mark.parametrize("mode", ["tp2", "tp2_sp", "pp2"])
def test_losses_match_tp1(results: dict[str, Any], mode: str) -> None:
    ref, got = _result(results, "tp1")["losses"], _result(results, mode)["losses"]
    assert len(got) == len(ref)
    for step, (a, b) in enumerate(zip(ref, got, strict=True)):
        assert abs(a - b) <= LOSS_RTOL * abs(a), f"step {step}: tp1 {a} vs {mode} {b}"


@pytest.mark.parametrize("mode", ["tp2", "tp2_sp", "pp2"])
def test_trained_adapters_match_tp1_after_resharding(results: dict[str, Any], mode: str) -> None:
    # The tp1 adapters, saved with dist-checkpointing and loaded into this layout, equal this
    # layout's own trained adapters: the sharded checkpoint layout and the training both agree.
    expected_count = 16 if mode != "pp2" else 8  # 2 layers x 4 linears x (A, B); PP2: 1 layer/rank
    result = _result(results, mode)
    assert result["adapters_compared"] == expected_count
    assert result["adapter_max_abs_diff"] <= ADAPTER_ATOL
