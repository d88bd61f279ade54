"""Bad input on the CLI: one line naming the field, value and fix; exit 2; nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

CASES = [
    # (arguments, words the one-line error must contain)
    (["--factory", "llama3_8b", "trainer.strategy.tensor_model_parallel_size=3"],
     ["trainer.strategy.tensor_model_parallel_size=3", "num_attention_heads=32"]),
    (["--factory", "llama3_8b", "trainer.max_stepz=100"], ["trainer.max_stepz", "did you mean 'max_steps'"]),
    (["--factory", "llama3_8c"], ["--factory", "llama3_8c", "did you mean 'llama3_8b'"]),
    (["--factory", "llama3_8b", "trainer.max_steps=many"], ["trainer.max_steps", "expected int"]),
    (["--factory", "llama3_8b", "trainer.strategy.sequence_parallel=true"],
     ["sequence_parallel", "tensor_model_parallel_size"]),
    (["--factory", "llama3_70b", "trainer.strategy.virtual_pipeline_model_parallel_size=3"],
     ["virtual_pipeline_model_parallel_size", "num_layers=80"]),
    (["--factory", "llama3_8b", "data.global_batch_size=510"], ["data.global_batch_size=510"]),
    (["--factory", "mixtral_8x7b", "trainer.strategy.expert_model_parallel_size=3"],
     ["expert_model_parallel_size=3"]),
    (["--factory", "llama_tiny", "executor=torchrun", "executor.ntasks_per_node=2"],
     ["trainer.devices=1", "executor=torchrun", "trainer.devices=2"]),
    (["--factory", "llama_tiny", "executor=ssh"], ["executor", "'ssh'", "torchrun"]),
    (["--factory", "llama_tiny", "executor.ntasks_per_node=2"], ["executor", "executor=torchrun"]),
    (["--factory", "llama3_8b", "data=nosuch"], ["data=", "nosuch", "mock"]),
    (["--factory", "llama_tiny", "data.rampup_batch_size=[4,8,100]"],
     ["data.rampup_batch_size=[4, 8, 100]", "does not reach data.global_batch_size=8", "increment"]),
    (["--factory", "llama_tiny", "data.rampup_batch_size=[4,4,100]", "executor=torchrun", "trainer.devices=2",
      "executor.ntasks_per_node=2"],
     ["data.rampup_batch_size=[4, 4, 100]", "micro_batch_size x data-parallel size (4 x 2) = 8"]),
]


@pytest.mark.parametrize("args,words", CASES, ids=[" ".join(c[0][1:]) for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_written(llm_cli, tmp_path: Path, args, words) -> None:
    code, out, err = llm_cli("pretrain", *args, "--dryrun", "-y")
    assert code == 2, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "fix:" in lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "Traceback" not in out + err
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing may be written"


def test_real_nemo_binary_reports_the_tp3_error(nemo, tmp_path: Path) -> None:
    """The issue's example, through the installed `nemo` command and the entry point."""
    result = nemo("llm", "pretrain", "--factory", "llama3_8b",
                  "trainer.strategy.tensor_model_parallel_size=3", "--dryrun", "-y")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "tensor_model_parallel_size=3" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_launch_without_terminal_needs_yes(nemo, tmp_path: Path) -> None:
    result = nemo("llm", "pretrain", "--factory", "llama_tiny", "trainer.max_steps=1")
    assert result.returncode == 2
    assert "add -y (--yes)" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_gpu_recipe_without_gpu_fails_before_launch(nemo, tmp_path: Path) -> None:
    result = nemo("llm", "pretrain", "--factory", "llama3_8b", "-y")
    assert result.returncode == 2
    assert "trainer.accelerator='gpu'" in result.stderr and "no CUDA GPU" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_error_raised_while_building_a_spec_is_one_line(llm_cli, tmp_path: Path) -> None:
    """fiddle wraps constructor errors with a 'Fiddle context' paragraph; users see one line."""
    code, out, err = llm_cli("finetune", "--factory", "llama_tiny", "peft.dim=0", "--dryrun", "-y")
    assert code == 2
    assert err.strip().splitlines() == [err.strip()] and err.startswith("error: peft.dim=0:")
    assert "Fiddle context" not in err


def test_missing_pretraining_data_fails_the_checks(tmp_path: Path) -> None:
    import fiddle as fdl

    from nemolite import llm
    from nemolite.errors import NemoliteError
    from nemolite.llm.checks import check_task

    task = fdl.build(llm.llama_tiny.pretrain_recipe(dir=str(tmp_path)))
    specs = {k: task.keywords[k] for k in ("model", "trainer", "log", "resume", "optim")}
    data = llm.PreTrainingDataModule(paths=str(tmp_path / "missing" / "corpus"), seq_length=256,
                                     micro_batch_size=4, global_batch_size=8)
    check_task(**specs, data=data, on_this_machine=False)  # the cluster may have the files
    try:
        check_task(**specs, data=data, on_this_machine=True)
    except NemoliteError as error:
        assert "missing/corpus" in str(error) and "fix:" in str(error)
    else:
        raise AssertionError("a missing data prefix must fail the checks")


def test_missing_yaml_file_is_one_line(llm_cli, tmp_path: Path) -> None:
    code, out, err = llm_cli("pretrain", "--yaml", "nope.yaml", "-y")
    assert code == 2 and "--yaml='nope.yaml': no such file" in err


def test_help_lists_the_recipes(llm_cli) -> None:
    code, out, err = llm_cli("pretrain", "--help")
    assert code == 0
    for name in ("llama_tiny", "llama3_8b", "llama3_70b", "mixtral_8x7b"):
        assert name in out
