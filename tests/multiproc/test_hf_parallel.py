"""Imported Hugging Face weights under TP=2, PP=2 and EP=2 (torchrun, gloo): transformers' loss.

A Llama 3.1-style dense model (RoPE scaling, GQA) and a Mixtral-style MoE, both over the byte
tokenizer's 264 ids (padded to 384 at TP=1, 512 at TP=2: the padded rows must take no
probability), are imported; every layout's first-step loss equals the one transformers computes
on the same micro-batches, and the TP=2 run's checkpoint exports back to the original tensors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.llm.gpt.model import hf_models

pytestmark = [pytest.mark.multiproc, pytest.mark.slow]  # ~1.5 min on 2 shared cores
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

HARNESS = Path(__file__).with_name("hf_harness.py")
BYTE_VOCAB = 264


def _launch(out: Path, nproc: int, modes: list[str], env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(HARNESS), str(out), *modes]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
    result = out / f"results_{nproc}.json"
    assert proc.returncode == 0 and result.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(result.read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    from nemolite import llm

    out = tmp_path_factory.mktemp("hf_parallel")
    home = out / "nemo_home"
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "NEMO_HOME": str(home),
                        "HF_HUB_OFFLINE": "1", "HOME": str(out)}
    references = {}
    old = os.environ.get("NEMO_HOME")
    os.environ["NEMO_HOME"] = str(home)
    try:
        for name, family in (("dense", "llama31"), ("moe", "mixtral")):
            references[name] = hf_models.make_hf_model(family, out / name, vocab_size=BYTE_VOCAB, num_hidden_layers=2)
            llm.import_ckpt(source=str(out / name))
    finally:
        os.environ.pop("NEMO_HOME") if old is None else os.environ.__setitem__("NEMO_HOME", old)
    results = _launch(out, 1, ["ref_dense", "ref_moe"], env) | _launch(out, 2, ["tp2", "pp2", "ep2"], env)
    return out, results, references


def _hf_loss(model: Any, batches: list[dict[str, Any]]) -> float:
    total, count = 0.0, 0.0
    with torch.no_grad():
        for b in batches:
            logits = model(b["tokens"]).logits.float()
            losses = torch.nn.functional.cross_entropy(logits.flatten(0, 1), b["labels"].flatten(), reduction="none")
            mask = b["loss_mask"].flatten().float()
            total += float((losses * mask).sum())
            count += float(mask.sum())
    return total / count


@pytest.mark.parametrize("mode,name", [("ref_dense", "dense"), ("tp2", "dense"), ("pp2", "dense"),
                                       ("ref_moe", "moe"), ("ep2", "moe")])
def test_layout_loss_equals_transformers(runs: Any, mode: str, name: str) -> None:
    out, results, references = runs
    result = results[mode]
    assert "error" not in result, result.get("trace")
    batches = torch.load(out / f"batches_{name}.pt")
    assert len(batches) == 2  # the global batch, as micro-batches of 1
    assert result["loss"] == pytest.approx(_hf_loss(references[name], batches), abs=1e-5)


def test_tp2_checkpoint_exports_the_original_tensors(runs: Any) -> None:
    from nemolite import llm

    out, results, references = runs
    (checkpoint,) = list((out / "run_tp2").rglob("*-last"))
    exported = llm.export_ckpt(path=str(checkpoint), output_path=str(out / "exported_tp2"))
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(exported)
    before, after = references["dense"].state_dict(), reloaded.state_dict()
    assert before.keys() == after.keys()
    assert [k for k in before if not torch.equal(before[k], after[k])] == []
