"""NeMoLogger: one run directory with its records, TensorBoard scalars under NeMo's names."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from nemolite.errors import ConfigError
from nemolite.lightning.logger import NeMoLogger, WandbLogger

TOY = Path(__file__).with_name("test_checkpoint_toy.py")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, toy) -> Path:  # noqa: ANN001
    path = tmp_path_factory.mktemp("run")
    toy.train(path, max_steps=6, every_n=3)
    return path


def test_run_directory_holds_every_record(run_dir: Path) -> None:
    names = {p.name for p in run_dir.iterdir()}
    assert {"checkpoints", "tb_logs", "git-info.txt", "versions.txt", "cmd-args.log",
            "nemo_log_globalrank-0_localrank-0.txt", "train_metrics.jsonl", "loss_curve.png"} <= names
    assert re.search(r"^torch: \d", (run_dir / "versions.txt").read_text(), re.M)
    assert (run_dir / "git-info.txt").read_text().startswith("commit: ")
    console = (run_dir / "nemo_log_globalrank-0_localrank-0.txt").read_text()
    assert f"run directory: {run_dir}" in console and "step 6/6" in console


def test_validation_losses_are_recorded_at_their_steps_only(tmp_path: Path, toy) -> None:  # noqa: ANN001
    from nemolite.lightning.callbacks.metrics import read_metrics

    toy.train(tmp_path, max_steps=6, every_n=100, val_every=2)
    steps = read_metrics(tmp_path)
    assert sorted(s for s, r in steps.items() if "val_loss" in r) == [2, 4, 6]
    assert all("reduced_train_loss" in steps[s] for s in range(1, 7))
    assert len({steps[s]["val_loss"] for s in (2, 4, 6)}) == 3  # the model changes in between
    assert (tmp_path / "loss_curve.png").stat().st_size > 10_000


def test_loss_curve_is_a_png_picture(run_dir: Path) -> None:
    import matplotlib.image

    image = matplotlib.image.imread(run_dir / "loss_curve.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0.01  # not a blank canvas


def test_tensorboard_scalars_use_nemo_names(run_dir: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb_logs"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"reduced_train_loss", "lr", "consumed_samples", "global_step", "train_step_timing in s"} <= tags
    consumed = [e.value for e in events.Scalars("consumed_samples")]
    assert consumed == [4.0 * s for s in range(1, 7)]  # global batch 4, one value per step
    losses = {e.step: e.value for e in events.Scalars("reduced_train_loss")}
    jsonl = (run_dir / "train_metrics.jsonl").read_text()
    assert len(losses) == 6 and all(f"{v:.6f}"[:6] in jsonl for v in losses.values())


def test_versioned_directory_is_reused_when_resuming(tmp_path: Path, toy) -> None:  # noqa: ANN001
    from nemolite.lightning.exp_run_dir import resolve_run_dir

    log = NeMoLogger(name="exp", log_dir=str(tmp_path))
    first = resolve_run_dir(log)
    assert first.parent == tmp_path / "exp" and re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", first.name)
    toy.train(first, max_steps=2, every_n=2)
    (tmp_path / "exp" / "zz-newer-but-empty").mkdir()
    assert resolve_run_dir(log, resume_if_exists=True) == first  # the version with a checkpoint
    assert resolve_run_dir(NeMoLogger(explicit_log_dir=str(tmp_path / "x"))) == tmp_path / "x"
    assert resolve_run_dir(NeMoLogger(log_dir=str(tmp_path), version="v1")) == tmp_path / "default" / "v1"


def test_wandb_asked_for_but_missing_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # Runs whether or not wandb is installed: find_spec sees None in sys.modules as "not installed".
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ConfigError) as err:
        WandbLogger(project="p").build(None)
    assert str(err.value).startswith("log.wandb=") and "pip install wandb" in str(err.value)


def test_bad_names_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^log.name="):
        NeMoLogger(name="a/b").validate()
    with pytest.raises(ConfigError, match=r"^log.files_to_copy="):
        NeMoLogger(files_to_copy=[str(tmp_path / "missing.yaml")]).validate()


def test_resolved_recipe_is_written_as_yaml(tmp_path: Path) -> None:
    import yaml

    from nemolite.lightning.exp_records import config_yaml
    from nemolite.llm.recipe_io import from_yaml
    from nemolite.recipes import llama_tiny

    recipe = llama_tiny.pretrain_recipe()
    # Values no recipe default holds, so only a faithful record can give them back.
    recipe.log.ckpt.every_n_train_steps, recipe.trainer.max_steps = 37, 123
    recipe.model.config.num_layers = 3
    text = config_yaml(recipe)
    parsed = yaml.safe_load(text)
    assert parsed["_target_"].endswith("pretrain")
    assert parsed["log"]["ckpt"]["every_n_train_steps"] == 37
    # The whole record reads back (as `--yaml` does) into the very config that was written.
    assert from_yaml(text) == recipe


@pytest.mark.multiproc
def test_ranks_agree_on_a_new_datetime_version(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           str(TOY), str(tmp_path), "2", "100"], env={**os.environ, "TOY_VERSIONED": "1"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs = {(tmp_path / f"run_dir_rank{r}.txt").read_text() for r in (0, 1)}
    assert len(dirs) == 1
    (only,) = dirs
    assert Path(only).parent == tmp_path / "toy" and [p.name for p in (tmp_path / "toy").iterdir()] == [Path(only).name]
    assert {p.name for p in Path(only).glob("nemo_log_*")} == {
        "nemo_log_globalrank-0_localrank-0.txt", "nemo_log_globalrank-1_localrank-1.txt"}
