"""A small English speech set made offline: sentences of the bundled corpus spoken by eSpeak NG.

Sentences come from nemolite's bundled public-domain English corpus (The Devil's Dictionary,
the U.S. Constitution, the Declaration of Independence; see llm/gpt/data/corpus/README.md),
normalised to lower-case letters, apostrophes and spaces. Each is spoken by one of several eSpeak
voices and variants at a random rate and pitch, resampled to 16 kHz and stored as FLAC, with
NeMo manifests for a train split and a held-out test split of different sentences, and a
SentencePiece tokenizer trained on the train text. The audio is synthetic speech generated on
the user's machine by eSpeak NG (GPL-3.0; installed with the `speech-data` extra, used as a tool,
not linked into nemolite); the texts are public domain, and so are the recordings made from them.

Generation runs in one process in a fixed order, which makes it reproducible (eSpeak keeps state
between utterances; see `tts.synthesize`). The directory is published atomically: it is built
under `<dir>.tmp` and renamed when complete.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import shutil
from pathlib import Path

VERSION = 2
TRAIN_SENTENCES = 800
TEST_SENTENCES = 80
VOCAB_SIZE = 128
VOICES = ("en-us", "en-us+m3", "en-us+f2", "en", "en+m1", "en+f4", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-scotland")
_CORPUS = Path(__file__).resolve().parents[2] / "llm" / "gpt" / "data" / "corpus" / "english.jsonl.gz"


def default_dir() -> Path:
    return Path(os.environ.get("NEMOLITE_CACHE", Path.home() / ".cache" / "nemolite")) / f"speech_set_v{VERSION}"


def corpus_sentences(min_words: int = 3, max_words: int = 10) -> list[str]:
    """Distinct normalised sentences of the bundled corpus, in a fixed order."""
    seen, out = set(), []
    with gzip.open(_CORPUS, "rt", encoding="utf-8") as handle:
        for line in handle:
            text = json.loads(line)["text"]
            for raw in re.split(r"[.!?;:]+|\n\s*\n", text):
                if re.search(r"[0-9_&]", raw):
                    continue
                words = re.sub(r"[^a-z' ]+", " ", raw.lower().replace("\u2019", "'")).split()
                words = [w.strip("'") for w in words if w.strip("'")]
                if any(len(w) == 1 and w not in ("a", "i", "o") for w in words):
                    continue  # dictionary fragments ("frying pan n"), not sentences
                sentence = " ".join(words)
                if min_words <= len(words) <= max_words and sentence not in seen:
                    seen.add(sentence)
                    out.append(sentence)
    return out


def ensure_speech_set(directory: str | Path | None = None, train: int = TRAIN_SENTENCES, test: int = TEST_SENTENCES) -> Path:
    """The speech set's directory, generating it first if it is not there."""
    root = Path(directory).expanduser() if directory else default_dir()
    if (root / "test.json").is_file():
        return root
    return make_speech_set(root, train=train, test=test)


def make_speech_set(root: Path, train: int, test: int, seed: int = 0) -> Path:
    """Generates the set into `root` (atomically); returns `root`."""
    import soundfile as sf
    from rich.progress import Progress

    from nemolite.asr.data.audio import resample
    from nemolite.asr.data.manifest import write_manifest
    from nemolite.asr.data.tts import Voice, synthesize
    from nemolite.asr.tokenizers import train_sentencepiece

    sentences = corpus_sentences()
    rng = random.Random(seed)
    rng.shuffle(sentences)
    splits = {"test": sentences[:test], "train": sentences[test : test + train]}
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "audio").mkdir(parents=True)
    with Progress(transient=True) as progress:
        task = progress.add_task("making the eSpeak speech set", total=train + test)
        for split, texts in splits.items():
            entries = []
            for i, text in enumerate(texts):
                voice = Voice(rng.choice(VOICES), rate=rng.randint(130, 185), pitch=rng.randint(30, 70))
                wave, rate = synthesize(text, voice)
                wave = resample(wave, rate, 16000)
                name = f"audio/{split}_{i:04d}.flac"
                sf.write(tmp / name, wave.clip(-1, 1), 16000, subtype="PCM_16")
                entries.append({"audio_filepath": name, "duration": round(len(wave) / 16000, 4), "text": text,
                                "voice": voice.name, "rate": voice.rate, "pitch": voice.pitch})  # fmt: skip
                progress.advance(task)
            write_manifest(tmp / f"{split}.json", entries)
    train_sentencepiece(splits["train"], tmp / "tokenizer", vocab_size=VOCAB_SIZE)
    (tmp / "README.md").write_text(_README.format(train=train, test=test, voices=", ".join(VOICES)))
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    return root


_README = """# nemolite's eSpeak English speech set

{train} training and {test} held-out utterances (different sentences), 16 kHz mono FLAC, NeMo
manifests `train.json` / `test.json`, a SentencePiece BPE tokenizer (`tokenizer/`) trained on the
training text.

- Text: sentences of nemolite's bundled public-domain corpus (The Devil's Dictionary, 1911; the
  U.S. Constitution; the Declaration of Independence), lower-cased, punctuation removed.
- Speech: synthesised on this machine by eSpeak NG (GPL-3.0, from the `espeakng-loader` wheel),
  voices {voices}, 130-185 words per minute, pitch 30-70.
- Licence: the texts are in the public domain; the synthetic audio made from them carries no
  further rights (eSpeak NG's licence covers the program, not its output).
- Made by `nemolite.asr.data.speech_set.make_speech_set` (reproducible: one process, fixed order).
"""
