"""Preprocessing output megatron reads, and one-line errors with nothing half-written on disk."""

import os
import shutil
import subprocess
import sys

import pytest

from nemolite.errors import ConfigError, DataFileError
from nemolite.llm.gpt.data import PreTrainingDataModule
from nemolite.llm.gpt.data.preprocess import preprocess
from nemolite.llm.tokenizers import ByteTokenizer

TEXTS = ["first document", "", "second, naïve", "third\nwith a newline"]


def test_preprocess_writes_what_megatron_reads(tmp_path, helpers):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    prefix = helpers.make_prefix(tmp_path, "one", TEXTS, workers=1)
    tok = ByteTokenizer().build()
    dataset = IndexedDataset(prefix)
    expected = [tok.text_to_ids(t) + [tok.eod] for t in TEXTS if t]
    assert [dataset[i].tolist() for i in range(len(dataset))] == expected
    assert str(dataset[0].dtype) == "uint16"
    two = helpers.make_prefix(tmp_path, "two", TEXTS * 300, workers=2)  # several batches, two processes
    assert len(IndexedDataset(two)) == 900
    assert sorted(os.listdir(tmp_path)) == ["one.bin", "one.idx", "one.jsonl",
                                            "two.bin", "two.idx", "two.jsonl"]


def test_plain_text_files_split_into_documents(tmp_path, helpers):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    (tmp_path / "book.txt").write_text("para one\nstill one\n\npara two\n")
    for split, count in (("file", 1), ("paragraph", 2), ("line", 3)):
        prefix = preprocess(input=str(tmp_path / "book.txt"), output_prefix=str(tmp_path / split),
                            workers=1, text_split=split, show_progress=False)
        assert len(IndexedDataset(prefix)) == count


def _assert_nothing_written(directory, keep):
    assert sorted(os.listdir(directory)) == sorted(keep)


def test_jsonl_line_that_is_not_json_names_file_and_line(tmp_path, helpers):
    source = helpers.write_jsonl(tmp_path / "in.jsonl", ["ok"] * 5)
    with open(source, "a") as f:
        f.write("{broken\n")
    with pytest.raises(DataFileError) as err:
        preprocess(input=str(source), output_prefix=str(tmp_path / "out"), workers=2,
                   show_progress=False)
    assert str(err.value).startswith(f"{source}:6: line is not JSON")
    _assert_nothing_written(tmp_path, ["in.jsonl"])


def test_jsonl_line_without_the_field_names_file_and_line(tmp_path, helpers):
    source = helpers.write_jsonl(tmp_path / "in.jsonl", ["a", "b", "c"], field="content")
    with pytest.raises(DataFileError, match=r"in.jsonl:1: has no string field 'text'"):
        preprocess(input=str(source), output_prefix=str(tmp_path / "out"), workers=1,
                   show_progress=False)
    _assert_nothing_written(tmp_path, ["in.jsonl"])


def test_missing_input_and_missing_prefix(tmp_path, helpers):
    with pytest.raises(DataFileError, match="nope.jsonl: input not found"):
        preprocess(input=str(tmp_path / "nope.jsonl"), output_prefix=str(tmp_path / "o"))
    with pytest.raises(DataFileError) as err:
        PreTrainingDataModule(str(tmp_path / "absent")).build()
    assert str(err.value).startswith(f"{tmp_path / 'absent'}.idx: not found")


def test_truncated_and_mismatched_bin_idx(tmp_path, helpers):
    prefix = helpers.make_prefix(tmp_path, "d", ["x" * 100] * 50)
    other = helpers.make_prefix(tmp_path, "e", ["y" * 10] * 50)
    with open(f"{prefix}.bin", "r+b") as f:
        f.truncate(os.path.getsize(f"{prefix}.bin") - 10)
    with pytest.raises(DataFileError, match=r"d\.bin: has 10090 bytes but .*d\.idx describes 10100"):
        PreTrainingDataModule(prefix).build()
    shutil.copy(f"{other}.bin", f"{prefix}.bin")
    with pytest.raises(DataFileError, match="do not belong together"):
        PreTrainingDataModule(prefix).build()
    with open(f"{other}.idx", "r+b") as f:
        f.truncate(40)
    with pytest.raises(DataFileError, match=r"e\.idx: is truncated"):
        PreTrainingDataModule(other).build()


def test_empty_split_is_reported_before_megatron_builds(tmp_path, helpers):
    prefix = helpers.make_prefix(tmp_path, "small", ["tiny doc"] * 10)
    with pytest.raises(DataFileError) as err:
        PreTrainingDataModule(prefix, split="900,50,50").build()
    assert "test split empty" in str(err.value) and "small.idx" in str(err.value)


def test_bad_split_string():
    with pytest.raises(ConfigError, match="data.split"):
        PreTrainingDataModule("x", split="a,b").validate()


@pytest.mark.slow  # starts the `nemo` CLI, which imports nemolite.llm: ~13 s on 2 cores
def test_cli_error_is_one_line_and_nonzero(tmp_path, helpers):
    source = helpers.write_jsonl(tmp_path / "in.jsonl", ["a"])
    with open(source, "a") as f:
        f.write("not json\n")
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "nemo"), "llm", "preprocess", f"input={source}",
         f"output_prefix={tmp_path / 'o'}", "workers=1"],
        capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert f"{source}:2: line is not JSON" in " ".join(out.stdout.split() + out.stderr.split())
    _assert_nothing_written(tmp_path, ["in.jsonl"])
