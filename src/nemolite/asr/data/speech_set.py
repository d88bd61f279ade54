"""An English speech set made offline: phrases of the bundled corpus spoken by eSpeak NG.

Text: nemolite's bundled public-domain English corpus (The Devil's Dictionary, the U.S.
Constitution, the Declaration of Independence; see llm/gpt/data/corpus/README.md), cut into
sentences at . ! ? ; : and into phrases of 3-12 words at commas (clauses are packed together
up to 12 words; a longer clause is cut into near-equal parts), normalised to lower-case letters,
apostrophes and spaces. The held-out split is whole documents (dictionary entries, articles)
that the train split never sees, so no held-out phrase shares a sentence with a training one.

Speech: each phrase is spoken by one of 120 eSpeak voices (8 English accents x 15 voice
variants) at a random rate and pitch, the same distribution for both splits, resampled to
16 kHz and stored as FLAC, with NeMo manifests and a SentencePiece tokenizer trained on the
train text. The audio is synthetic speech generated on the user's machine by eSpeak NG
(GPL-3.0; installed with the `speech-data` extra, used as a tool, not linked into nemolite); the
texts are public domain, and so are the recordings made from them.

Generation runs in one process in a fixed order, which makes it reproducible (eSpeak keeps state
between utterances; see `tts.synthesize`). The directory is published atomically: it is built
under `<dir>.tmp` and renamed when complete.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import random
import re
import shutil
from pathlib import Path

VERSION = 3
TRAIN_SENTENCES = 6000
TEST_SENTENCES = 200
VOCAB_SIZE = 128
MIN_WORDS, MAX_WORDS = 3, 12
RATES = (120, 200)  # words per minute (eSpeak's default 175)
PITCHES = (25, 75)  # 0..99
ACCENTS = ("en-us", "en-us-nyc", "en", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
# eSpeak's voice variants (espeak-ng-data/voices/!v): male, female and Klatt-synthesiser formant sets.
# An unknown variant is silently ignored by eSpeak, so only shipped ones are listed.
VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt4")
VOICES = tuple(a + (f"+{v}" if v else "") for a in ACCENTS for v in VARIANTS)
_CORPUS = Path(__file__).resolve().parents[2] / "llm" / "gpt" / "data" / "corpus" / "english.jsonl.gz"


def default_dir() -> Path:
    return Path(os.environ.get("NEMOLITE_CACHE", Path.home() / ".cache" / "nemolite")) / f"speech_set_v{VERSION}"


def _words(raw: str) -> list[str]:
    words = re.sub(r"[^a-z' ]+", " ", raw.lower().replace("\u2019", "'")).split()
    return [w.strip("'") for w in words if w.strip("'")]


def _phrases(clauses: list[list[str]], min_words: int, max_words: int) -> list[list[str]]:
    """Consecutive clauses packed up to `max_words`; a longer clause cut into near-equal parts."""
    out: list[list[str]] = []
    current: list[str] = []
    for clause in clauses:
        if len(clause) > max_words:
            parts = -(-len(clause) // max_words)
            size = -(-len(clause) // parts)
            pieces = [clause[i : i + size] for i in range(0, len(clause), size)]
        else:
            pieces = [clause]
        for piece in pieces:
            if current and len(current) + len(piece) > max_words:
                out.append(current)
                current = []
            current = current + piece
    out.append(current)
    return [p for p in out if min_words <= len(p) <= max_words]


def corpus_documents(min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> list[list[str]]:
    """Each corpus document's distinct normalised phrases (none repeated across documents), in order."""
    seen: set[str] = set()
    documents = []
    with gzip.open(_CORPUS, "rt", encoding="utf-8") as handle:
        for line in handle:
            phrases = []
            for raw in re.split(r"[.!?;:()\"]+|\n\s*\n|--", json.loads(line)["text"]):
                if re.search(r"[0-9_&]", raw):
                    continue
                clauses = [_words(c) for c in raw.split(",")]
                if any(len(w) == 1 and w not in ("a", "i", "o") for c in clauses for w in c):
                    continue  # dictionary fragments ("frying pan n"), not sentences
                for words in _phrases([c for c in clauses if c], min_words, max_words):
                    phrase = " ".join(words)
                    if phrase not in seen:
                        seen.add(phrase)
                        phrases.append(phrase)
            documents.append(phrases)
    return documents


def corpus_sentences(min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> list[str]:
    """All distinct normalised phrases of the bundled corpus, in a fixed order."""
    return [p for doc in corpus_documents(min_words, max_words) for p in doc]


def split_sentences(train: int, test: int, seed: int = 0) -> dict[str, list[str]]:
    """Held-out and training phrases from disjoint documents, each split shuffled (fixed seed)."""
    documents = corpus_documents()
    rng = random.Random(seed)
    rng.shuffle(documents)
    held: list[str] = []
    rest: list[str] = []
    for doc in documents:
        (held if len(held) < test else rest).extend(doc)
    rng.shuffle(held)
    rng.shuffle(rest)
    if len(held) < test or len(rest) < train:
        raise ValueError(f"the corpus has {len(held) + len(rest)} phrases; asked for {train} + {test}")
    return {"test": held[:test], "train": rest[:train]}


def ensure_speech_set(directory: str | Path | None = None, train: int = TRAIN_SENTENCES, test: int = TEST_SENTENCES) -> Path:
    """The speech set's directory, generating it first if it is not there.

    Processes that start together (the ranks of a torchrun job) take a file lock, so one makes
    the set while the others wait and then use it, instead of each deleting the others' `.tmp`.
    """
    root = Path(directory).expanduser() if directory else default_dir()
    if (root / "test.json").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.with_name(root.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / "test.json").is_file():
            return root
        return make_speech_set(root, train=train, test=test)


def make_speech_set(root: Path, train: int, test: int, seed: int = 0) -> Path:
    """Generates the set into `root` (atomically); returns `root`."""
    import soundfile as sf
    import torch
    from rich.progress import MofNCompleteColumn, Progress, TimeElapsedColumn

    from nemolite.asr.data.audio import resample
    from nemolite.asr.data.manifest import write_manifest
    from nemolite.asr.data.tts import Voice, synthesize
    from nemolite.asr.tokenizers import train_sentencepiece

    splits = split_sentences(train, test, seed)
    rng = random.Random(seed)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "audio").mkdir(parents=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the resampler's small convolutions run slower on more threads
    try:
        with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), TimeElapsedColumn()) as progress:
            task = progress.add_task(f"making the eSpeak speech set ({train} + {test} utterances)", total=train + test)
            for split, texts in splits.items():
                entries = []
                for i, text in enumerate(texts):
                    voice = Voice(rng.choice(VOICES), rate=rng.randint(*RATES), pitch=rng.randint(*PITCHES))
                    wave, rate = synthesize(text, voice)
                    wave = resample(wave, rate, 16000)
                    name = f"audio/{split}_{i:05d}.flac"
                    sf.write(tmp / name, wave.clip(-1, 1), 16000, subtype="PCM_16")
                    entries.append({"audio_filepath": name, "duration": round(len(wave) / 16000, 4), "text": text,
                                    "voice": voice.name, "rate": voice.rate, "pitch": voice.pitch})  # fmt: skip
                    progress.advance(task)
                write_manifest(tmp / f"{split}.json", entries)
    finally:
        torch.set_num_threads(threads)
    train_sentencepiece(splits["train"], tmp / "tokenizer", vocab_size=VOCAB_SIZE)
    readme = _README.format(train=train, test=test, n_voices=len(VOICES), accents=", ".join(ACCENTS),
                            variants=", ".join(v for v in VARIANTS if v), rates=RATES, pitches=PITCHES)  # fmt: skip
    (tmp / "README.md").write_text(readme)
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
    return root


_README = """# nemolite's eSpeak English speech set

{train} training and {test} held-out utterances, 16 kHz mono FLAC, NeMo manifests `train.json` /
`test.json` (with each utterance's voice, rate and pitch), a SentencePiece BPE tokenizer
(`tokenizer/`) trained on the training text.

- Text: phrases of 3-12 words of nemolite's bundled public-domain corpus (The Devil's
  Dictionary, 1911; the U.S. Constitution; the Declaration of Independence), cut at sentence
  ends and commas, lower-cased, punctuation removed. Held-out phrases come from documents
  (dictionary entries, articles) that no training phrase comes from.
- Speech: synthesised on this machine by eSpeak NG (GPL-3.0, from the `espeakng-loader` wheel),
  {n_voices} voices (accents {accents}, each plain and with the variants {variants}),
  {rates[0]}-{rates[1]} words per minute, pitch {pitches[0]}-{pitches[1]}, drawn alike for both splits.
- Licence: the texts are in the public domain; the synthetic audio made from them carries no
  further rights (eSpeak NG's licence covers the program, not its output).
- Made by `nemolite.asr.data.speech_set.make_speech_set` (reproducible: one process, fixed order).
"""
