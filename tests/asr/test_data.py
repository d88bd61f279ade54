"""Manifests, audio reading and batching: bad input is one line naming the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nemolite.asr.data.dataset import AudioTextDataset, DurationBatchSampler, collate
from nemolite.asr.data.manifest import read_manifest
from nemolite.asr.tokenizers import CharTokenizer
from nemolite.errors import DataFileError
from tests.asr.conftest import CLIPS

LABELS = list(" abcdefghijklmnopqrstuvwxyz'")


def _manifest(tmp_path: Path, lines: list) -> Path:
    path = tmp_path / "m.json"
    path.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines))
    return path


def test_reads_relative_paths_offsets_and_filters_durations(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", np.zeros(16000, dtype=np.float32), 16000)
    path = _manifest(tmp_path, [
        {"audio_filepath": "a.wav", "duration": 1.0, "text": "one"},
        {"audio_filepath": str(tmp_path / "a.wav"), "duration": 0.05, "text": "short", "offset": 0.5},
        {"audio_filepath": "a.wav", "duration": 30.0, "text": "long"},
    ])
    entries = read_manifest(path, min_duration=0.1, max_duration=20)
    assert [e.text for e in entries] == ["one"] and entries[0].audio_filepath == tmp_path / "a.wav"
    assert [e.offset for e in read_manifest(path)] == [0.0, 0.5, 0.0]


@pytest.mark.parametrize(("line", "problem"), [
    ({"audio_filepath": "a.wav", "duration": 1.0}, "missing field 'text'"),
    ({"audio_filepath": "nope.wav", "duration": 1.0, "text": "x"}, "nope.wav does not exist"),
    ("{not json", "not valid JSON"),
    ({"audio_filepath": "a.wav", "duration": "long", "text": "x"}, "duration='long' is not a number"),
])
def test_bad_manifest_lines_name_file_and_line(tmp_path: Path, line, problem: str) -> None:
    sf.write(tmp_path / "a.wav", np.zeros(1600, dtype=np.float32), 16000)
    path = _manifest(tmp_path, [{"audio_filepath": "a.wav", "duration": 0.1, "text": "ok"}, line])
    with pytest.raises(DataFileError) as err:
        read_manifest(path)
    assert f"{path}:2" in str(err.value) and problem in str(err.value) and "\n" not in str(err.value)


def test_text_outside_the_vocabulary_and_other_rates(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", np.zeros(8000, dtype=np.float32), 8000)
    path = _manifest(tmp_path, [{"audio_filepath": "a.wav", "duration": 1.0, "text": "ok"},
                                {"audio_filepath": "a.wav", "duration": 1.0, "text": "Hello, World!"}])
    with pytest.raises(DataFileError, match=r"m\.json:2: characters '!,HW' are not in the model's vocabulary"):
        AudioTextDataset(read_manifest(path), CharTokenizer(LABELS), 16000, True, str(path))
    entries = read_manifest(path)[:1]
    strict = AudioTextDataset(entries, CharTokenizer(LABELS), 16000, False, str(path))
    with pytest.raises(DataFileError, match="sample rate 8000 Hz, the model expects 16000 Hz.*data.resample"):
        strict[0]
    wave, tokens = AudioTextDataset(entries, CharTokenizer(LABELS), 16000, True, str(path))[0]
    assert wave.shape == (16000,) and tokens.tolist() == [15, 11]


def test_unreadable_audio_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.wav").write_bytes(b"RIFF....not audio")
    path = _manifest(tmp_path, [{"audio_filepath": "bad.wav", "duration": 1.0, "text": "x"}])
    ds = AudioTextDataset(read_manifest(path), CharTokenizer(LABELS), 16000, True, str(path))
    with pytest.raises(DataFileError, match="bad.wav: unreadable audio"):
        ds[0]


def test_batches_are_bounded_sharded_and_resumable() -> None:
    rng = np.random.default_rng(0)
    durations = rng.uniform(1, 6, size=200).tolist()
    full = DurationBatchSampler(durations, 20.0, shuffle=True, seed=3)
    full.set_epoch(2)
    batches = list(full)
    assert all(sum(durations[i] for i in b) <= 20.0 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(200)) or len(batches) == len(full)
    ranks = [DurationBatchSampler(durations, 20.0, shuffle=True, seed=3, rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(2)
    shards = [list(r) for r in ranks]
    assert len(shards[0]) == len(shards[1])
    assert [b for pair in zip(*shards) for b in pair] == batches[: 2 * len(shards[0])]
    resumed = DurationBatchSampler(durations, 20.0, shuffle=True, seed=3)
    resumed.set_epoch(2)
    resumed.skip = 5
    assert list(resumed) == batches[5:]
    assert list(resumed) == batches  # only the first epoch after a resume is partial
    other = DurationBatchSampler(durations, 20.0, shuffle=True, seed=3)
    other.set_epoch(3)
    assert list(other) != batches


def test_collate_pads_audio_and_tokens() -> None:
    import torch

    signal, lengths, tokens, token_lengths = collate([(torch.ones(5), torch.tensor([1, 2])), (torch.ones(3), torch.tensor([4]))])
    assert signal.shape == (2, 5) and lengths.tolist() == [5, 3] and signal[1, 3:].abs().sum() == 0
    assert tokens.tolist() == [[1, 2], [4, 0]] and token_lengths.tolist() == [2, 1]
    assert CLIPS  # the reference clips exist (used by the other ASR tests)
