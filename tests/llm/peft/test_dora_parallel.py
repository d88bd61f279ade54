"""DoRA under tensor parallelism (with and without sequence parallelism) matches TP=1 (torchrun, 2 gloo procs).

`lora_harness.py` with `peft=dora`: TP=1 (data-parallel 2, the reference), TP=2, TP=2 with
sequence parallelism and PP=2 start from the same base weights and adapter init and train 5 steps on the same
batches. DoRA adds to LoRA's TP layout a magnitude per output row: split like B for a
column-parallel layer, replicated (norms summed over TP) for a row-parallel one.

Marked slow: one 2-process launch of four layouts (~60-120 s on 2 busy cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.multiproc, pytest.mark.slow]

HARNESS = Path(__file__).with_name("lora_harness.py")
MODES = ["tp1", "tp2", "tp2_sp", "pp2"]
LOSS_RTOL = 1e-6  # as for LoRA: TP only reorders float sums (row norms summed over TP included)
ADAPTER_ATOL = 1e-4
L0 = "decoder.layers.0."


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("dora_parallel")
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HARNESS), str(out), "peft=dora", *MODES]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads((out / "results.json").read_text())
    for mode in MODES:
        assert "error" not in found[mode], f"{mode}: {found[mode].get('trace')}"
    return found


@pytest.mark.parametrize("mode", ["tp2", "tp2_sp"])
def test_magnitudes_are_sharded_like_the_output_rows(results: dict[str, Any], mode: str) -> None:
    for rank, got in enumerate(results[mode]["ranks"]):
        assert got["tp"] == 2 and got["dp"] == 1 and got["sequence_parallel"] == (mode == "tp2_sp")
        shapes = {k.removeprefix(L0): v for k, v in got["shapes"].items()}
        where = f"{mode} rank {rank}"
        assert shapes["self_attention.linear_qkv_adapter.weight_magnitude"] == [64], where
        assert shapes["mlp.linear_fc1_adapter.weight_magnitude"] == [128], where
        assert shapes["self_attention.linear_proj_adapter.weight_magnitude"] == [64], where
        assert shapes["mlp.linear_fc2_adapter.weight_magnitude"] == [64], where
        assert len(got["trainable"]) == 12 and all("_adapter." in n for n in got["trainable"]), where


def test_reference_learns(results: dict[str, Any]) -> None:
    losses = results["tp1"]["losses"]
    assert len(losses) == 5 and losses[-1] < losses[0] - 0.2, losses


@pytest.mark.parametrize("mode", ["tp2", "tp2_sp", "pp2"])
def test_losses_match_tp1(results: dict[str, Any], mode: str) -> None:
    ref, got = results["tp1"]["losses"], results[mode]["losses"]
    assert len(got) == len(ref) == 5
    for step, (a, b) in enumerate(zip(ref, got, strict=True)):
        assert abs(a - b) <= LOSS_RTOL * abs(a), f"step {step}: tp1 {a} vs {mode} {b}"


@pytest.mark.parametrize("mode", ["tp2", "tp2_sp", "pp2"])
def test_trained_adapters_match_tp1_after_resharding(results: dict[str, Any], mode: str) -> None:
    # tp1's adapters and magnitudes, saved with dist-checkpointing and loaded into this layout.
    layers = 1 if mode == "pp2" else 2  # PP2: one layer per rank
    assert results[mode]["adapters_compared"] == layers * 4 * 3
    assert results[mode]["adapter_max_abs_diff"] <= ADAPTER_ATOL
