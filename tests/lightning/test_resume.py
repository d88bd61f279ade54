"""AutoResume: which checkpoint is chosen, and one-line errors naming the path when none fits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from nemolite.errors import ConfigError, DataFileError
from nemolite.lightning import exp_ckpt_dir as ckdir
from nemolite.lightning.resume import AutoResume


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, toy) -> Path:  # noqa: ANN001
    run_dir = tmp_path_factory.mktemp("finished")
    toy.train(run_dir, max_steps=4, every_n=2)
    return run_dir


def one_line(err: pytest.ExceptionInfo, *parts: str) -> str:
    text = str(err.value)
    assert "\n" not in text
    for part in parts:
        assert part in text, text
    return text


def test_required_checkpoint_missing_names_the_directory(tmp_path: Path) -> None:
    (tmp_path / "checkpoints" / "x-step=3.tmp").mkdir(parents=True)  # an unfinished one only
    with pytest.raises(ConfigError) as err:
        AutoResume(resume_if_exists=True).find_checkpoint(tmp_path)
    one_line(err, "resume.resume_if_exists", str(tmp_path / "checkpoints"), "1 unfinished ignored",
             "resume_ignore_no_checkpoint")
    assert AutoResume(resume_if_exists=True, resume_ignore_no_checkpoint=True).find_checkpoint(tmp_path) is None


def test_latest_complete_checkpoint_is_chosen(finished_run: Path) -> None:
    chosen = AutoResume(resume_if_exists=True, resume_past_end=True).find_checkpoint(finished_run)
    assert chosen is not None and ckdir.read_marker(chosen)["step"] == 4


def test_finished_run_is_not_resumed_past_its_end(finished_run: Path) -> None:
    with pytest.raises(ConfigError) as err:
        AutoResume(resume_if_exists=True).find_checkpoint(finished_run, max_steps=4)
    one_line(err, "trainer.max_steps=4", "step 4", "raise trainer.max_steps above 4")


def test_raising_max_steps_continues_a_finished_run(finished_run: Path) -> None:
    """The fix a finished run names (raise trainer.max_steps) resumes it from its end checkpoint."""
    chosen = AutoResume(resume_if_exists=True).find_checkpoint(finished_run, max_steps=10)
    assert chosen is not None and ckdir.read_marker(chosen)["step"] == 4


def test_resume_from_an_unfinished_directory_is_refused(finished_run: Path, tmp_path: Path) -> None:
    partial = tmp_path / "a-step=6.tmp"
    partial.mkdir()
    with pytest.raises(DataFileError) as err:
        AutoResume(resume_from_path=str(partial)).find_checkpoint(None)
    one_line(err, str(partial), "unfinished")


def test_corrupt_checkpoint_directory_names_the_path(finished_run: Path, tmp_path: Path) -> None:
    import shutil

    src = ckdir.latest_complete(finished_run / "checkpoints").path
    broken = tmp_path / src.name
    shutil.copytree(src, broken)
    (broken / ckdir.SINGLE_FILE).unlink()
    with pytest.raises(DataFileError) as err:
        AutoResume(resume_from_path=str(broken)).find_checkpoint(None)
    one_line(err, str(broken), "corrupt checkpoint")


def test_truncated_torch_dist_shard_names_the_file(tmp_path: Path) -> None:
    import torch
    import torch.distributed.checkpoint as dcp

    from nemolite.lightning.exp_resume import check_shards

    dcp.save({"w": torch.arange(1000, dtype=torch.float32)}, checkpoint_id=str(tmp_path), no_dist=True)
    check_shards(tmp_path)  # intact: no error
    shard = next(tmp_path.glob("*.distcp"))
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(DataFileError) as err:
        check_shards(tmp_path)
    one_line(err, str(shard), "corrupt checkpoint")


def test_checkpoint_from_a_different_model_shape_names_the_path(finished_run: Path, toy) -> None:  # noqa: ANN001
    from nemolite.lightning.exp_resume import check_model_matches

    @dataclasses.dataclass
    class Config:
        hidden_size: int
        num_layers: int = 2

    info = ckdir.latest_complete(finished_run / "checkpoints")
    info.meta["model_config"] = {"hidden_size": 16, "num_layers": 2}  # as the run saved it
    model = toy.ToyModule(32)
    model.config = Config(hidden_size=32)
    with pytest.raises(DataFileError) as err:
        check_model_matches(info, model)
    one_line(err, str(info.path), "different model shape", "hidden_size 16 vs 32")
    model.config = Config(hidden_size=16)
    check_model_matches(info, model)


def test_resume_from_directory_and_path_conflict() -> None:
    with pytest.raises(ConfigError) as err:
        AutoResume(resume_from_path="a", resume_from_directory="b").validate()
    one_line(err, "resume.resume_from_directory")
