"""The generated eSpeak speech set: disjoint splits, varied voices, manifests that match the audio."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import soundfile as sf

from nemolite.asr.data import speech_set
from nemolite.asr.data.manifest import read_manifest

pytest.importorskip("espeakng_loader")


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_full_split_is_large_and_held_out_documents_are_unseen() -> None:
    splits = speech_set.split_sentences(speech_set.TRAIN_SENTENCES, speech_set.TEST_SENTENCES)
    train, test = splits["train"], splits["test"]
    assert len(set(train)) == len(train) == speech_set.TRAIN_SENTENCES >= 5000
    assert len(set(test)) == len(test) == speech_set.TEST_SENTENCES
    assert not set(train) & set(test)
    # No held-out phrase shares a corpus document (hence a sentence) with a training phrase.
    doc_of = {p: i for i, doc in enumerate(speech_set.corpus_documents()) for p in doc}
    assert not {doc_of[p] for p in train} & {doc_of[p] for p in test}
    # Every phrase is words of the corpus text, in its order.
    with gzip.open(speech_set._CORPUS, "rt", encoding="utf-8") as handle:
        corpus = " ".join(" ".join(speech_set._words(json.loads(line)["text"])) for line in handle)
    for phrase in train[:50] + test[:50]:
        assert speech_set.MIN_WORDS <= len(phrase.split()) <= speech_set.MAX_WORDS
        assert phrase in corpus, phrase


def test_small_set_manifests_match_their_audio(tmp_path: Path) -> None:
    root = speech_set.make_speech_set(tmp_path / "set", train=24, test=8)
    assert not (tmp_path / "set.tmp").exists()
    assert [e.text for e in read_manifest(root / "test.json")] == speech_set.split_sentences(24, 8)["test"]
    train, test = _lines(root / "train.json"), _lines(root / "test.json")
    assert (len(train), len(test)) == (24, 8)
    assert not {e["text"] for e in train} & {e["text"] for e in test}
    for entry in train + test:
        info = sf.info(root / entry["audio_filepath"])
        assert info.samplerate == 16000 and info.channels == 1
        assert entry["duration"] == pytest.approx(info.frames / 16000, abs=1e-4)
        assert 0.5 < entry["duration"] < 10
        assert entry["voice"] in speech_set.VOICES
        assert speech_set.RATES[0] <= entry["rate"] <= speech_set.RATES[1]
    # Voices are drawn from 120, so 32 utterances have many distinct ones, accents and variants alike.
    voices = {e["voice"] for e in train + test}
    assert len(voices) >= 20
    assert len({v.split("+")[0] for v in voices}) >= 6
    assert (root / "tokenizer").is_dir() and "eSpeak NG" in (root / "README.md").read_text()


def test_a_failed_make_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nemolite.asr.data import tts

    calls = []

    def failing(text: str, voice: tts.Voice, seed: int = 0):
        calls.append(text)
        if len(calls) > 3:
            raise RuntimeError("synthesis failed")
        return original(text, voice, seed)

    original = tts.synthesize
    monkeypatch.setattr(tts, "synthesize", failing)
    with pytest.raises(RuntimeError, match="synthesis failed"):
        speech_set.make_speech_set(tmp_path / "set", train=6, test=2)
    assert not (tmp_path / "set").exists()


def test_a_second_process_waits_for_the_one_making_the_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl
    import threading
    import time

    made: list[Path] = []
    make = speech_set.make_speech_set

    def counted(root: Path, train: int, test: int) -> Path:
        made.append(root)
        return make(root, train=train, test=test)

    monkeypatch.setattr(speech_set, "make_speech_set", counted)
    root, result = tmp_path / "set", []
    with open(tmp_path / "set.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as the torchrun rank that makes the set holds it
        waiter = threading.Thread(target=lambda: result.append(speech_set.ensure_speech_set(root, train=6, test=2)))
        waiter.start()
        time.sleep(0.5)  # the waiter has found no set and is at the lock
        counted(root, train=6, test=2)
    waiter.join(60)
    assert result == [root] and made == [root]  # it used the set made meanwhile, not a second one
    assert len(_lines(root / "train.json")) == 6
