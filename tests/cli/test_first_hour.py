"""What a newcomer types in the first hour (README, docs) behaves as the text says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


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


BAD = [
    # (arguments, words the one-line error must contain); "FILE" is an existing file, "DIR" a directory
    (["trainer.max_steps=-5"], ["trainer.max_steps=-5", "N >= 1"]),
    (["trainer.max_steps=0"], ["trainer.max_steps=0"]),
    (["trainer.val_check_interval=0"], ["trainer.val_check_interval=0"]),
    (["trainer.val_check_interval=1.5"], ["trainer.val_check_interval=1.5"]),
    (["trainer.limit_val_batches=-1"], ["trainer.limit_val_batches=-1"]),
    (["trainer.log_every_n_steps=0"], ["trainer.log_every_n_steps=0"]),
    (["trainer.devices=0"], ["trainer.devices=0"]),
    (["trainer.num_nodes=0"], ["trainer.num_nodes=0"]),
    (["log.log_dir=FILE"], ["log.log_dir=", "is a file, not a directory"]),
    (["log.explicit_log_dir=FILE"], ["log.explicit_log_dir=", "is a file"]),
    (["log.ckpt.dirpath=FILE"], ["log.ckpt.dirpath=", "is a file"]),
    (["resume.resume_from_directory=FILE"], ["resume.resume_from_directory=", "is a file"]),
    (["resume.resume_from_path=FILE"], ["resume.resume_from_path=", "not a checkpoint directory"]),
    (["resume.resume_from_path=nosuch"], ["resume.resume_from_path='nosuch'", "does not exist"]),
    (["--to-yaml", "DIR"], ["--to-yaml", "is a directory"]),
]


@pytest.mark.parametrize("args,words", BAD, ids=[" ".join(c[0]) for c in BAD])
def test_impossible_values_and_wrong_path_kinds_are_the_only_output(llm_cli, tmp_path: Path, args, words) -> None:
    (tmp_path / "afile").write_text("not a directory")
    (tmp_path / "adir").mkdir()
    before = sorted(tmp_path.iterdir())
    args = [a.replace("FILE", "afile").replace("DIR", "adir") for a in args]
    code, out, err = llm_cli("pretrain", "--factory", "llama_tiny", *args, "--dryrun", "-y")
    assert code == 2, out + err
    assert out.strip() == "", out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "fix:" in lines[0], err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert sorted(tmp_path.iterdir()) == before, "nothing may be written"


def test_unreachable_ssh_tunnel_host_is_one_line(llm_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = tmp_path / "slurm.yaml"
    profile.write_text("account: abc\ntunnel: {host: nosuch.invalid, user: me, job_dir: /tmp/jobs}\n")
    monkeypatch.setenv("NEMOLITE_SLURM_PROFILE", str(profile))
    code, out, err = llm_cli("pretrain", "--factory", "llama_tiny", "executor=slurm", "-y")
    assert code == 2, out + err
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1 and "executor.tunnel.host='nosuch.invalid'" in lines[0], out + err


def test_slurm_dry_run_renders_without_a_cluster_and_says_what_it_did_not_check(llm_cli) -> None:
    code, out, err = llm_cli(
        "pretrain", "--factory", "llama3_70b", "trainer.max_steps=100", "executor=slurm",
        "executor.account=abc", "executor.nodes=4", "executor.gpus_per_node=8", "executor.ntasks_per_node=8",
        "--dryrun", "-y",
    )
    assert code == 0, out + err
    assert "#SBATCH --nodes=4" in out and "torchrun" in out, out
    assert "Not checked without contacting the cluster" in out and "sbatch --test-only" in out


def test_data_factory_takes_the_models_sequence_length(llm_cli, tmp_path: Path) -> None:
    """README: `--factory llama_tiny data=mock --to-yaml task.yaml` (model seq_length 256), then --yaml."""
    code, out, err = llm_cli("pretrain", "--factory", "llama_tiny", "data=mock", "--to-yaml", "task.yaml", "-y")
    assert code == 0, out + err
    saved = (tmp_path / "task.yaml")
    assert "seq_length: 256" in saved.read_text()
    assert saved.stat().st_mode & 0o777 == 0o666 & ~_umask(), oct(saved.stat().st_mode)
    code, out, err = llm_cli("pretrain", "--yaml", "task.yaml", "--dryrun", "-y")
    assert code == 0, out + err
    code, out, err = llm_cli("pretrain", "--factory", "llama_tiny", "data=mock(seq_length=128)", "--dryrun", "-y")
    assert code == 0 and "seq_length: 128" in out, out + err


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("verb", ["validate", "train"])
def test_every_verb_takes_the_recipes_help_lists(llm_cli, verb: str) -> None:
    code, out, err = llm_cli(verb, "--factory", "llama_tiny", "--dryrun", "-y")
    assert code == 0, out + err
    assert f"_target_: nemolite.llm.api.{verb}" in out, out


def test_a_verb_without_its_trainer_is_one_line(llm_cli) -> None:
    code, out, err = llm_cli("validate", "model=llama_tiny", "data=bundled", "--dryrun", "-y")
    assert code == 2, out + err
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: trainer") and "--factory llama_tiny" in lines[0], lines


def test_help_describes_verbs_and_lists_executors(nemo) -> None:
    listing = nemo("llm", "--help").stdout
    assert "[Entrypoint]" not in listing, listing
    for words in ("Pretrain a model from scratch", "Fine-tune a pretrained model", "Run the validation loop"):
        assert words in listing, listing
    verb = nemo("llm", "pretrain", "--help").stdout
    assert "Executors" in verb and all(name in verb for name in ("local", "torchrun", "slurm", "docker")), verb
