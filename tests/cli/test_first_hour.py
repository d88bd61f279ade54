"""What a newcomer types in the first hour (README, docs) behaves as the text says."""

from __future__ import annotations

import json
from pathlib import Path


def _finished_run(root: Path, name: str = "default", step: int = 300) -> Path:
    """A run directory as the quick start leaves it: its last checkpoint marked as the run's end."""
    ckpt = root / "nemo_experiments" / name / "2026-01-01_00-00-00" / "checkpoints" / f"{name}--step={step}-last"
    ckpt.mkdir(parents=True)
    (ckpt / "metadata.json").write_text("{}")
    (ckpt / "nemolite_ckpt.json").write_text(json.dumps({"step": step, "end": True}))
    return ckpt


def test_rerunning_a_finished_run_says_so_in_one_line_and_exits_0(llm_cli, tmp_path: Path) -> None:
    ckpt = _finished_run(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, out, err = llm_cli("pretrain", "--factory", "llama_tiny", "-y")
    assert code == 0, out + err
    lines = [line for line in (out + err).splitlines() if line.strip() and not line.startswith("Launching")]
    assert len(lines) == 1, out + err
    assert "already finished: step 300" in lines[0] and str(ckpt) in lines[0], lines[0]
    assert "raise trainer.max_steps" in lines[0]
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if ".nemo_run" not in p.parts)
    assert after == before, "a finished run is left as it was"
