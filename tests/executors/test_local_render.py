"""`--dryrun` with executor=local / torchrun prints the command nemo-run would really start."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


def _launch_section(out: str) -> str:
    section = out.split("launch", 1)[1].split("Dry run:", 1)[0]
    text = " ".join(section.replace("─", " ").split())
    return re.sub(r"--rdzv-id \d+", "--rdzv-id <random>", text) + "\n"


@pytest.mark.parametrize(
    "name,args",
    [
        ("local", ["executor=local"]),
        ("torchrun", ["executor=torchrun", "executor.ntasks_per_node=2", "trainer.devices=2"]),
    ],
)
def test_dry_run_renders_the_launch_command(llm_cli, tmp_path: Path, name: str, args: list[str]) -> None:
    code, out, err = llm_cli("pretrain", "--factory", "llama_tiny", *args, "--dryrun", "-y")
    assert code == 0, err
    rendered = _launch_section(out)
    golden = GOLDEN / f"{name}_launch.txt"
    if os.environ.get("NEMOLITE_UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text()
    assert "nemo_run.core.runners.fdl_runner" in rendered
    assert list(tmp_path.iterdir()) == []
