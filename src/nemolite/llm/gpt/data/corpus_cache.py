"""The tokenized-corpus cache: built once per (corpus, tokenizer), safe when processes race.

Layout: `<cache>/corpus/<name>-<key>/text_document.{bin,idx}`, where `<cache>` is
`$NEMOLITE_CACHE` or `~/.cache/nemolite` and `<key>` hashes the corpus file and the tokenizer.
The writer renames complete files into place, and an exclusive lock on `<dir>/.lock` makes
concurrent ranks or processes wait for the first one instead of tokenizing twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager

from nemolite.errors import DataFileError
from nemolite.llm.gpt.data.indexed import check_indexed_dataset
from nemolite.llm.tokenizers.base import TokenizerSpec

# Bump when the preprocessing output for the same inputs changes.
_FORMAT_VERSION = "1"


def cache_root() -> str:
    """`$NEMOLITE_CACHE`, else `~/.cache/nemolite`."""
    return os.environ.get("NEMOLITE_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "nemolite")


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _locked(directory: str) -> Iterator[None]:
    with open(os.path.join(directory, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _is_complete(prefix: str) -> bool:
    try:
        check_indexed_dataset(prefix)
    except DataFileError:
        return False
    return True


def cached_corpus_prefix(corpus_path: str, tokenizer: TokenizerSpec,
                         show_progress: bool = True) -> str:
    """The prefix of the tokenized corpus, tokenizing it first if no complete copy exists."""
    from nemolite.llm.gpt.data.preprocessing import preprocess_files

    key_text = "|".join((_FORMAT_VERSION, _file_digest(corpus_path), tokenizer.cache_key()))
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    name = os.path.basename(corpus_path).split(".")[0]
    directory = os.path.join(cache_root(), "corpus", f"{name}-{key}")
    prefix = os.path.join(directory, "text_document")
    if _is_complete(prefix):
        return prefix
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        raise DataFileError(directory, f"cannot create the cache directory ({err.strerror})",
                            "set NEMOLITE_CACHE to a writable directory") from None
    with _locked(directory):
        if not _is_complete(prefix):  # another process may have finished while we waited
            with open(os.path.join(directory, "tokenizer.txt"), "w") as f:
                f.write(tokenizer.cache_key() + "\n")
            preprocess_files([corpus_path], prefix, tokenizer, workers=1,
                             show_progress=show_progress)
    return prefix
