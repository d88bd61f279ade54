"""`nemo llm generate` / `nemo llm evaluate`: streaming through the real `nemo` binary; --dryrun and
one-line errors through the same typer commands in this process (no interpreter start-up each)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`cli(*args)` -> (exit code, stdout, stderr) of `nemo llm <args>`, run in this process."""
    import typer
    from typer.testing import CliRunner

    from nemolite import llm

    app = typer.Typer()
    for verb in (llm.generate, llm.evaluate):
        verb.cli_entrypoint.cli(app)
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200"})
        return result.exit_code, result.stdout, result.stderr

    return invoke


def test_generate_streams_the_greedy_text(nemo, run_dir: Path) -> None:
    from nemolite import llm

    want = llm.generate(path=str(run_dir), prompts=["Hello"], text_only=True,
                        inference_params=llm.CommonInferenceParams(temperature=0, num_tokens_to_generate=12))[0]
    proc = nemo("llm", "generate", f"path={run_dir}", 'prompts=["Hello"]', "inference_params.temperature=0",
                "inference_params.num_tokens_to_generate=12", "-y")
    assert proc.returncode == 0, proc.stderr[-2000:]
    printable = "".join(c for c in want if c.isprintable() and not c.isspace())
    assert printable and printable in "".join(proc.stdout.split()).replace("│", "")


def test_dryrun_says_what_it_would_load(cli, run_dir: Path) -> None:
    code, out, err = cli("generate", f"path={run_dir}", 'prompts=["Hello"]', "--dryrun")
    assert code == 0, err[-2000:]
    text = " ".join(out.split())
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
def test_bad_input_is_one_line_and_exit_2(cli, run_dir: Path, args: list[str], start: str) -> None:
    code, _, err = cli("generate", f"path={run_dir}", *args, "-y")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {start}"), err


def test_no_checkpoint(cli, tmp_path: Path) -> None:
    code, _, err = cli("generate", f"path={tmp_path}", 'prompts=["Hello"]', "-y")
    assert code == 2 and "holds no complete nemolite checkpoint" in err


def test_evaluate_unknown_task_lists_close_names(cli, run_dir: Path) -> None:
    code, _, err = cli("evaluate", f"path={run_dir}", 'tasks=["hellaswg"]', "-y")
    assert code == 2 and err.startswith("error: tasks[0]='hellaswg': unknown lm-eval task"), err
    assert "hellaswag" in err and not (run_dir / "evaluations").exists()
