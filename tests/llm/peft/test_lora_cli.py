"""End to end: `nemo llm finetune --factory llama_tiny` with LoRA, from scratch and from a pretraining
checkpoint (`resume.restore_config`), through the real CLI in subprocesses.

Marked nightly: three CLI runs of llama_tiny (~30-60 s each on 2 busy cores).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.nightly  # three CLI runs; the docs runner fine-tunes through the CLI in CI

PAIRS = [("Capital of France?", "Paris."), ("Two plus two?", "Four."),
         ("Colour of the sky?", "Blue."), ("Opposite of hot?", "Cold.")]
SHORT = ("trainer.max_steps=2", "trainer.limit_val_batches=0")


def _dataset(root: Path) -> Path:
    root.mkdir()
    lines = "".join(json.dumps({"input": q, "output": a}) + "\n" for q, a in PAIRS)
    (root / "training.jsonl").write_text(lines * 8)
    (root / "validation.jsonl").write_text(lines)
    return root


def _checkpoint(log_dir: Path) -> Path:
    found = sorted(log_dir.glob("*/*/checkpoints/*-last"))
    assert len(found) == 1, found
    return found[0]


def _tensors(ckpt_dir: Path, tmp: Path) -> dict[str, Any]:
    """A torch_dist checkpoint's tensors, read without a process group."""
    import torch
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    out = tmp / f"{ckpt_dir.parent.parent.name}.pt"
    dcp_to_torch_save(str(ckpt_dir), str(out))
    state = torch.load(out, weights_only=False)
    return {k: v for k, v in state.items() if torch.is_tensor(v) and not k.startswith("optimizer")}


def test_lora_finetune_from_scratch_and_from_pretraining_checkpoint(nemo, tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    # The recipe starts from the quick start's run (run://nemo_experiments/default) unless told not to.
    scratch = nemo("llm", "finetune", "--factory", "llama_tiny", f"data.dataset_root={data}", *SHORT,
                   "resume.restore_config=None", f"log.log_dir={tmp_path / 'ft_scratch'}", "-y",
                   timeout=300)
    assert scratch.returncode == 0, scratch.stderr[-3000:]
    assert "LoRA: 16 adapters" in scratch.stderr + scratch.stdout

    pre = nemo("llm", "pretrain", "--factory", "llama_tiny", *SHORT, f"log.log_dir={tmp_path / 'pt'}",
               "-y", timeout=300)
    assert pre.returncode == 0, pre.stderr[-3000:]
    base_ckpt = _checkpoint(tmp_path / "pt")

    # resume.restore_config.path (what the recipe's restore_from= sets), through the YAML form.
    yaml_file = tmp_path / "ft.yaml"
    dumped = nemo("llm", "finetune", "--factory", "llama_tiny", f"data.dataset_root={data}",
                  f"resume.restore_config.path={base_ckpt}", "--to-yaml", str(yaml_file))
    assert dumped.returncode == 0, dumped.stderr[-3000:]
    assert f"path: {base_ckpt}" in yaml_file.read_text()
    tuned = nemo("llm", "finetune", "--yaml", str(yaml_file), *SHORT, f"log.log_dir={tmp_path / 'ft'}",
                 "-y", timeout=300)
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    assert f"LoRA: base weights from {base_ckpt}" in tuned.stderr + tuned.stdout

    base = _tensors(base_ckpt, tmp_path)
    lora = _tensors(_checkpoint(tmp_path / "ft"), tmp_path)
    adapters = {k for k in lora if "_adapter." in k}
    assert len(adapters) == 8  # 4 linears x (A, B), stacked over layers
    assert set(lora) - adapters == set(base)
    for key, value in base.items():  # restored and frozen: bit-identical after fine-tuning
        assert lora[key].equal(value), key
    for key in adapters:
        if key.endswith("linear_out.weight"):
            assert lora[key].abs().max() > 0, key  # B left zero: it trained
