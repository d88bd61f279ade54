"""Every parallel mode trains 5 steps with the same per-step losses as one process (torchrun, gloo).

Two launches keep this under a minute or so on 2 cores: one 1-process launch runs the references
(and saves their initial weights), one 2-process launch runs every mode in turn. Each mode loads the
reference's initial weights through dist-checkpointing into its own layout, so this also checks
resharding of the model state (TP1 -> TP2, PP, VP, EP).
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

HARNESS = Path(__file__).with_name("engine_harness.py")

# mode -> (reference, relative tolerance, why). 0.0 would mean bit-exact; no mode here does the
# same float arithmetic as one process, so each states why it differs in the last bits.
EXPECTED: dict[str, tuple[str, float, str]] = {
    # Forward and backward are the same ops as one process (only activations move), but the global
    # gradient norm used for clipping sums the stages' squared norms by all-reduce: last-bit changes.
    "pp2": ("ref_dense", 1e-6, "the clipping norm sums per-stage squared norms in another order"),
    "pp2_vp2": ("ref_dense", 1e-6, "the clipping norm sums per-chunk squared norms in another order"),
    "dp2_distopt": (
        "ref_dense",
        1e-6,
        "gradients of the two halves of the batch are reduce-scattered instead of accumulated "
        "in one buffer: float addition in another order",
    ),
    "dp2": (
        "ref_dense",
        1e-6,
        "gradients of the two halves of the batch are summed by all-reduce instead of accumulated "
        "in one buffer: float addition in another order",
    ),
    "tp2": (
        "ref_dense",
        1e-6,
        "row-parallel layers all-reduce two partial matmuls: float addition in another order",
    ),
    "tp2_sp": ("ref_dense", 1e-6, "as tp2, with reduce-scatter/all-gather instead of all-reduce"),
    "ep2": (
        "ref_moe",
        1e-6,
        "experts' outputs and gradients cross ranks by all-to-all and DP all-reduce: another "
        "float summation order",
    ),
}
# 4 processes (combined layouts; 2 cores oversubscribed, 1 thread each).
EXPECTED_4: dict[str, tuple[str, float, str]] = {
    "tp2_pp2": ("ref_dense", 1e-6, "tp2's and pp2's reasons together"),
    "tp2_sp_dp2_distopt": ("ref_dense", 1e-6, "tp2_sp's and dp2_distopt's reasons together"),
    "pp2_vp2_dp2": ("ref_dense", 1e-6, "pp2_vp2's and dp2's reasons together"),
    "ep2_tp2_sp": (
        "ref_moe",
        1e-6,
        "ep2's reasons, plus uneven token all-gathers over the TP ranks (padded on gloo)",
    ),
}
# Resumed modes: steps 6-7 after loading another layout's step-5 checkpoint (model, optimizer,
# trainer and data state), against the reference's steps 6-7.
RESUMED: dict[str, tuple[str, float, str]] = {
    "tp2_ckpt_to_dp2": (
        "ref_dense",
        1e-5,
        "a TP=2 checkpoint (itself within 1e-6 of the reference) resharded to TP=1 x DP=2",
    ),
    "dp2_distopt_ckpt_to_dp2_distopt": (
        "ref_dense",
        1e-5,
        "the distributed optimizer's dp_reshardable state, saved and loaded with DP=2",
    ),
}
ALL = EXPECTED | EXPECTED_4 | RESUMED
# Resumed mode -> the mode whose checkpoint it loads (run in the same launch, before it).
RESUMES_FROM = {"tp2_ckpt_to_dp2": "tp2", "dp2_distopt_ckpt_to_dp2_distopt": "dp2_distopt"}

# What each mode must have run, as megatron's parallel_state and the local shards report it:
# (tp, pp, vp, cp, ep, dp, sequence_parallel, distributed optimizer). Equal losses alone cannot
# tell a parallel layout from data parallelism (TP=2 silently run as DP=2 matches one process too).
LAYOUTS: dict[str, tuple[int, int, int | None, int, int, int, bool, bool]] = {
    "ref_dense": (1, 1, None, 1, 1, 1, False, False),
    "ref_moe": (1, 1, None, 1, 1, 1, False, False),
    "tp2": (2, 1, None, 1, 1, 1, False, False),
    "tp2_sp": (2, 1, None, 1, 1, 1, True, False),
    "pp2": (1, 2, None, 1, 1, 1, False, False),
    "pp2_vp2": (1, 2, 2, 1, 1, 1, False, False),
    "dp2": (1, 1, None, 1, 1, 2, False, False),
    "dp2_distopt": (1, 1, None, 1, 1, 2, False, True),
    "ep2": (1, 1, None, 1, 2, 2, False, False),
    "tp2_pp2": (2, 2, None, 1, 1, 1, False, False),
    "tp2_sp_dp2_distopt": (2, 1, None, 1, 1, 2, True, True),
    "pp2_vp2_dp2": (1, 2, 2, 1, 1, 2, False, False),
    "ep2_tp2_sp": (2, 1, None, 1, 2, 2, True, False),
    "tp2_ckpt_to_dp2": (1, 1, None, 1, 1, 2, False, False),
    "dp2_distopt_ckpt_to_dp2_distopt": (1, 1, None, 1, 1, 2, False, True),
}
MOE_MODES = {"ref_moe", "ep2", "ep2_tp2_sp"}

# Modes that must be refused on CPU, with a one-line error naming the field (mode -> its words).
REFUSED_ON_CPU = {
    # megatron-core's local DotProductAttention asserts context_parallel_size == 1; CP needs TE's
    # attention, which has no CPU build. The CP data path is checked against megatron's own
    # slicing in tests/llm/gpt/model/test_context_parallel.py.
    "cp2": ["trainer.strategy.context_parallel_size=2", "TransformerEngine"],
}


def _launch(out: Path, nproc: int, modes: list[str]) -> dict[str, Any]:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        str(HARNESS), str(out), *modes,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
    result = out / {1: "reference.json", 2: "parallel.json"}.get(nproc, "parallel4.json")
    assert proc.returncode == 0 and result.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(result.read_text())


def _selected_modes(request: pytest.FixtureRequest) -> set[str]:
    """The modes (references included) that the selected tests of this module look at."""
    modes: set[str] = set()
    for item in request.session.items:
        if Path(str(item.path)) != Path(__file__):
            continue
        mode = getattr(getattr(item, "callspec", None), "params", {}).get("mode")
        if mode is None:
            modes |= {"ref_dense", "ref_moe"}
        elif mode in ALL:
            modes |= {mode, RESUMES_FROM.get(mode, mode), ALL[mode][0]}
        elif mode in REFUSED_ON_CPU:
            modes.add(mode)
    return modes


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Runs the selected modes only (`-k tp2` launches the references and tp2, not every layout)."""
    out = tmp_path_factory.mktemp("engine_parallel")
    wanted = _selected_modes(request)
    refs = [m for m in ("ref_dense", "ref_moe") if m in wanted]
    results = _launch(out, 1, refs) if refs else {}
    two = [m for m in list(EXPECTED) + list(RESUMED) + list(REFUSED_ON_CPU) if m in wanted]
    four = [m for m in EXPECTED_4 if m in wanted]
    if two:
        results |= _launch(out, 2, two)
    if four:
        results |= _launch(out, 4, four)
    return results


def _losses(runs: dict[str, Any], mode: str) -> list[float]:
    result = runs[mode]
    assert "error" not in result, result.get("trace", result.get("error"))
    assert_layout(mode, result["ranks"])
    return result["losses"]


def assert_layout(mode: str, ranks: list[dict[str, Any]]) -> None:
    """Every rank ran `mode`'s layout: group sizes, pipeline stages, layer split and local shards."""
    tp, pp, vp, cp, ep, dp, sp, distopt = LAYOUTS[mode]
    assert len(ranks) == tp * pp * cp * dp, (mode, len(ranks))
    moe = mode in MOE_MODES
    layers = 2 if moe else 4  # engine_harness.MOE / DENSE
    for rank, got in enumerate(ranks):
        where = f"{mode} rank {rank}"
        sizes = {k: got[k] for k in ("tp", "pp", "vp", "cp", "ep", "dp")}
        assert sizes == {"tp": tp, "pp": pp, "vp": vp, "cp": cp, "ep": ep, "dp": dp}, where
        assert got["sequence_parallel"] is sp, where
        assert ("DistributedOptimizer" in got["optimizers"]) is distopt, (where, got["optimizers"])
        assert got["layers_per_chunk"] == [layers // (pp * (vp or 1))] * (vp or 1), where
        shapes = got["shapes"]
        # hidden 64, 4 heads + 2 x 2 query groups of 16 channels: qkv 128 rows, split over TP.
        assert shapes["decoder.layers.0.self_attention.linear_qkv.weight"] == [128 // tp, 64], where
        assert shapes["decoder.layers.0.self_attention.linear_proj.weight"] == [64, 64 // tp], where
        if got["pp_rank"] == 0:  # the vocabulary (512) is split over TP on the first stage
            assert shapes["embedding.word_embeddings.weight"] == [512 // tp, 64], where
        else:
            assert "embedding.word_embeddings.weight" not in shapes, where
        experts = {k.split("local_experts.")[1].split(".")[0] for k in shapes if "local_experts." in k}
        assert len(experts) == (4 // ep if moe else 0), (where, sorted(experts))
    assert sorted({r["pp_rank"] for r in ranks}) == list(range(pp)), mode


def test_reference_trains(runs: dict[str, Any]) -> None:
    for ref in ("ref_dense", "ref_moe"):
        losses = _losses(runs, ref)
        assert len(losses) == 7
        # lr 3e-3 on random tokens: the model learns their unigram distribution within 5 steps.
        assert losses[-1] < losses[0], (ref, losses)


@pytest.mark.parametrize("mode", list(EXPECTED) + list(EXPECTED_4))
def test_parallel_mode_matches_one_process(runs: dict[str, Any], mode: str) -> None:
    reference, rtol, why = (EXPECTED | EXPECTED_4)[mode]
    got, want = _losses(runs, mode), _losses(runs, reference)[:5]
    assert len(got) == len(want) == 5
    if rtol == 0.0:
        assert got == want, f"{mode} should be bit-exact ({why})"
    else:
        assert got == pytest.approx(want, rel=rtol, abs=0.0), f"{mode} beyond tolerance ({why})"


@pytest.mark.parametrize("mode", list(RESUMED))
def test_checkpoint_reshards_and_resumes(runs: dict[str, Any], mode: str) -> None:
    reference, rtol, why = RESUMED[mode]
    got, want = _losses(runs, mode), _losses(runs, reference)[5:]
    assert len(got) == len(want) == 2
    assert got == pytest.approx(want, rel=rtol, abs=0.0), f"{mode} beyond tolerance ({why})"


@pytest.mark.parametrize("mode", list(REFUSED_ON_CPU))
def test_refused_on_cpu_with_a_one_line_error(runs: dict[str, Any], mode: str) -> None:
    error = runs[mode].get("error", "")
    assert error.startswith("ConfigError: "), runs[mode].get("trace", runs[mode])
    assert all(words in error for words in REFUSED_ON_CPU[mode]) and "\n" not in error, error
