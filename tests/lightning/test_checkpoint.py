"""ModelCheckpoint: atomic publication, top-k, kills at steps and inside a save (plain Lightning)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nemolite.errors import ConfigError
from nemolite.lightning import exp_ckpt_dir as ckdir
from nemolite.lightning.callbacks.metrics import read_metrics
from nemolite.lightning.checkpoint import ModelCheckpoint

TOY = Path(__file__).with_name("test_checkpoint_toy.py")


def run_toy(run_dir: Path, steps: int, every: int, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOY), str(run_dir), str(steps), str(every)],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def train_losses(run_dir: Path) -> dict[int, float]:
    return {s: r["reduced_train_loss"] for s, r in read_metrics(run_dir).items() if "reduced_train_loss" in r}


def test_killed_at_steps_and_inside_a_save_resumes_bit_exact(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    assert run_toy(ref, 12, 3).returncode == 0
    killed = tmp_path / "killed"
    codes, chosen = [], []
    for _ in range(5):
        proc = run_toy(killed, 12, 3, TOY_KILL_AT="5,10", TOY_KILL_IN_SAVE_AT="6")
        codes.append(proc.returncode)
        chosen += [line.split("resuming from ")[1] for line in proc.stderr.splitlines() if "INFO] resuming from" in line]
        if proc.returncode == 0:
            break
    assert codes == [-9, -9, -9, 0], proc.stderr[-3000:]
    # kill at 5 -> step 3; kill inside the save of 6 -> step 3 again (the half-written 6 ignored);
    # kill at 10 -> step 9.
    assert [int(c.split("step=")[1].split("-")[0]) for c in chosen] == [3, 3, 9]
    assert train_losses(killed) == train_losses(ref)
    assert len(train_losses(ref)) == 12
    assert not ckdir.list_incomplete(killed / "checkpoints")


def test_top_k_keeps_the_best_by_monitor_plus_the_last(tmp_path: Path, toy) -> None:  # noqa: ANN001
    toy.train(tmp_path, max_steps=8, every_n=2, top_k=2)
    complete = ckdir.list_complete(tmp_path / "checkpoints")
    scores = {c.step: c.meta["score"] for c in complete}
    last = [c for c in complete if c.path.name.endswith("-last")]
    assert [c.step for c in last] == [8]
    losses = train_losses(tmp_path)
    best_two = sorted((losses[s], s) for s in (2, 4, 6, 8))[:2]
    assert {s for _, s in best_two} | {8} == set(scores)
    assert all(scores[s] == pytest.approx(losses[s]) for s in scores)
    assert complete[-1].is_end


def test_train_time_interval_saves_when_the_time_has_passed(tmp_path: Path, toy) -> None:  # noqa: ANN001
    class SlowStep(toy.pl.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:  # noqa: ANN001, ANN002
            if trainer.global_step == 3:
                time.sleep(2.2)

    # Two seconds: far more than the toy's other steps take, even on a busy machine.
    spec = ModelCheckpoint(train_time_interval=2.0, save_top_k=-1, save_last=False)
    toy.train(tmp_path, max_steps=6, every_n=0, ckpt=spec, callbacks=[SlowStep()])
    # Saved after the slow step 3, and at the end of training.
    assert [c.step for c in ckdir.list_complete(tmp_path / "checkpoints")] == [3, 6]


def test_discovery_ignores_unfinished_and_markerless_directories(tmp_path: Path) -> None:
    good = tmp_path / "a-step=2"
    good.mkdir()
    (good / ckdir.SINGLE_FILE).write_bytes(b"x")
    tmp = ckdir.tmp_path(tmp_path / "b-step=4")
    tmp.mkdir()
    ckdir.publish(tmp, tmp_path / "b-step=4", {"step": 4, "format": "torch"})
    (tmp_path / "c-step=6.tmp").mkdir()  # killed mid-save
    assert [c.step for c in ckdir.list_complete(tmp_path)] == [4]
    assert ckdir.latest_complete(tmp_path).path.name == "b-step=4"
    assert sorted(p.name for p in ckdir.list_incomplete(tmp_path)) == ["a-step=2", "c-step=6.tmp"]
    assert [p.name for p in ckdir.remove_stale_tmp(tmp_path)] == ["c-step=6.tmp"]


def test_filename_template_names_metrics_like_nemo() -> None:
    spec = ModelCheckpoint()
    name = spec.format_name("llama", {"reduced_train_loss": 2.3456, "step": 12, "consumed_samples": 96})
    assert name == "llama--reduced_train_loss=2.35-step=12-consumed_samples=96"
    assert ModelCheckpoint(filename="{val_loss:.2f}-{step}").format_name("x", {"step": 3}) == "val_loss=nan-step=3"


@pytest.mark.parametrize("field, value", [("every_n_train_steps", 0), ("save_top_k", -2),
                                          ("mode", "best"), ("filename", "a/b"), ("train_time_interval", -1.0)])
def test_bad_checkpoint_settings_name_the_cli_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as err:
        ModelCheckpoint(**{field: value}).validate()
    assert str(err.value).startswith(f"log.ckpt.{field}=") and "\n" not in str(err.value)


def test_every_n_train_steps_is_a_cli_field() -> None:
    import fiddle as fdl

    from nemolite.cli.overrides import apply_override
    from nemolite.recipes import llama_tiny

    recipe = llama_tiny.pretrain_recipe()
    apply_override(recipe, "log.ckpt.every_n_train_steps=10")
    assert fdl.build(recipe).keywords["log"].ckpt.every_n_train_steps == 10
