"""`nemo llm generate` / `nemo llm evaluate` through the real `nemo` binary: streaming, --dryrun, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from inference_ckpts import tiny_config, write_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli_run")
    write_checkpoint(root, tiny_config())
    return root


def test_generate_streams_the_greedy_text(nemo, run_dir: Path) -> None:
    from nemolite import llm

    want = llm.generate(path=str(run_dir), prompts=["Hello"], text_only=True,
                        inference_params=llm.CommonInferenceParams(temperature=0, num_tokens_to_generate=12))[0]
    proc = nemo("llm", "generate", f"path={run_dir}", 'prompts=["Hello"]', "inference_params.temperature=0",
                "inference_params.num_tokens_to_generate=12", "-y")
    assert proc.returncode == 0, proc.stderr[-2000:]
    printable = "".join(c for c in want if c.isprintable() and not c.isspace())
    assert printable and printable in "".join(proc.stdout.split()).replace("│", "")


def test_dryrun_says_what_it_would_load(nemo, run_dir: Path) -> None:
    proc = nemo("llm", "generate", f"path={run_dir}", 'prompts=["Hello"]', "--dryrun")
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = " ".join(proc.stdout.split())
    assert "default--step=0-last" in text.replace(" ", "") or "default--step=0-last" in text
    assert "LlamaConfig(num_layers=2" in text and "ByteTokenizer" in text
    assert "nothing was launched" in text


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (['prompts="Hello"'], "prompts="),
        (['prompts=["Hello"]', "inference_params.top_p=1.5"], "inference_params.top_p=1.5"),
        ([f'prompts=["{"x" * 120}"]'], "prompts[0]="),
    ],
)
def test_bad_input_is_one_line_and_exit_2(nemo, run_dir: Path, args: list[str], start: str) -> None:
    proc = nemo("llm", "generate", f"path={run_dir}", *args, "-y")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {start}"), proc.stderr


def test_no_checkpoint(nemo, tmp_path: Path) -> None:
    proc = nemo("llm", "generate", f"path={tmp_path}", 'prompts=["Hello"]', "-y")
    assert proc.returncode == 2 and "holds no complete nemolite checkpoint" in proc.stderr


def test_evaluate_unknown_task_lists_close_names(nemo, run_dir: Path) -> None:
    proc = nemo("llm", "evaluate", f"path={run_dir}", 'tasks=["hellaswg"]', "-y")
    assert proc.returncode == 2 and proc.stderr.startswith("error: tasks[0]='hellaswg': unknown lm-eval task")
    assert "hellaswag" in proc.stderr and not (run_dir / "evaluations").exists()
