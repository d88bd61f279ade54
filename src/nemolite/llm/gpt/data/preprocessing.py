"""Tokenizes JSONL or plain-text files into megatron's `.bin/.idx` with worker processes.

The main process reads lines and hands batches to a process pool; workers parse JSON and
tokenize; the main process writes results in input order through `IndexedDatasetWriter`, which
only renames its temporary files into place once everything succeeded.
"""

from __future__ import annotations

import glob
import gzip
import itertools
import json
import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from nemolite.errors import ConfigError, DataFileError
from nemolite.llm.gpt.data.indexed import IndexedDatasetWriter, token_dtype
from nemolite.llm.tokenizers.base import TokenizerSpec

_JSON_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
_TEXT_SUFFIXES = (".txt", ".txt.gz", ".text")
_BATCH_BYTES = 1 << 20  # ~1 MiB of input text per task keeps IPC small against tokenizing time



@dataclass
class PreprocessResult:
    """What `preprocess_files` wrote."""

    output_prefix: str
    documents: int
    tokens: int
    input_bytes: int


@dataclass
class _Batch:
    path: str
    first_line: int  # 1-based line number of the first item
    items: list[str]
    is_json: bool
    nbytes: int  # input characters this batch covers, for the progress bar


def resolve_inputs(inputs: str) -> list[str]:
    """Expands a comma-separated list of files, directories and globs into sorted files."""
    files: list[str] = []
    for item in [p.strip() for p in inputs.split(",") if p.strip()]:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, n) for n in os.listdir(item)
                           if n.endswith(_JSON_SUFFIXES + _TEXT_SUFFIXES))
        else:
            found = sorted(glob.glob(item)) if glob.has_magic(item) else [item]
        if not found or not all(os.path.isfile(f) for f in found):
            missing = next((f for f in found if not os.path.isfile(f)), item)
            raise DataFileError(missing, "input not found (from input=...)",
                                "pass existing .jsonl/.json/.txt files, directories or globs")
        files += found
    if not files:
        raise ConfigError("input", inputs, "names no files", "pass at least one input file")
    return files


def _text_size(path: str) -> int:
    """Input size for the progress bar; for .gz the uncompressed size from the gzip trailer."""
    if not path.endswith(".gz"):
        return os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        return int.from_bytes(f.read(4), "little")  # ISIZE: size mod 2**32, fine for a bar


def _open(path: str) -> IO[str]:
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _read_batches(path: str, text_split: str) -> Iterator[_Batch]:
    is_json = path.endswith(_JSON_SUFFIXES)
    with _open(path) as f:
        if not is_json and text_split != "line":
            text = f.read()
            docs = [text] if text_split == "file" else text.split("\n\n")
            yield _Batch(path, 1, [d + "\n" for d in docs if d.strip()], False, len(text))
            return
        items: list[str] = []
        first, size = 1, 0
        for number, line in enumerate(f, start=1):
            items.append(line)
            size += len(line)
            if size >= _BATCH_BYTES:
                yield _Batch(path, first, items, is_json, size)
                items, first, size = [], number + 1, 0
        if items:
            yield _Batch(path, first, items, is_json, size)


_WORKER: dict[str, Any] = {}


def _init_worker(spec: TokenizerSpec, text_field: str, append_eod: bool) -> None:
    tokenizer = spec.build()
    _WORKER.update(tokenizer=tokenizer, text_field=text_field, append_eod=append_eod,
                   encode_batch=getattr(tokenizer, "texts_to_ids", None),
                   dtype=token_dtype(tokenizer.vocab_size))


def _texts(batch: _Batch, text_field: str) -> list[str] | tuple[str, str, str]:
    """The batch's documents, or (where, problem, fix) for the first bad JSON line."""
    if not batch.is_json:
        return [line.rstrip("\n") for line in batch.items if line.strip()]
    texts = []
    for offset, line in enumerate(batch.items):
        if not line.strip():
            continue
        where = f"{batch.path}:{batch.first_line + offset}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            return (where, f"line is not JSON ({err.msg})", "fix or remove this line")
        if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
            keys = sorted(record) if isinstance(record, dict) else type(record).__name__
            return (where, f"has no string field {text_field!r} (has {keys})",
                    "pass text_field=<the field holding the text>")
        texts.append(record[text_field])
    return texts


def _tokenize(batch: _Batch) -> tuple[Any, ...]:
    """Worker task: ("ok", tokens, lengths, nbytes) or ("error", where, problem, fix)."""
    texts = _texts(batch, _WORKER["text_field"])
    if isinstance(texts, tuple):
        return ("error", *texts)
    tokenizer, encode = _WORKER["tokenizer"], _WORKER["encode_batch"]
    ids = encode(texts) if encode else [tokenizer.text_to_ids(t) for t in texts]
    ids = [d for d in ids if d]  # an empty text would become a lone end-of-document token
    if _WORKER["append_eod"]:
        eod = [tokenizer.eod]
        ids = [d + eod for d in ids]
    lengths = np.fromiter(map(len, ids), dtype=np.int32, count=len(ids))
    tokens = np.fromiter(itertools.chain.from_iterable(ids), dtype=_WORKER["dtype"],
                         count=int(lengths.sum()))
    return ("ok", tokens, lengths, batch.nbytes)


def _batches(files: list[str], text_split: str) -> Iterator[_Batch]:
    for path in files:
        yield from _read_batches(path, text_split)


def preprocess_files(files: list[str], output_prefix: str, tokenizer: TokenizerSpec,
                     text_field: str = "text", workers: int = 2, append_eod: bool = True,
                     text_split: str = "file", show_progress: bool = True) -> PreprocessResult:
    """Tokenizes `files` into `output_prefix.bin/.idx`; nothing is left on disk on error."""
    from nemolite.llm.gpt.data.progress import byte_progress

    vocab_size = tokenizer.build().vocab_size
    parent = os.path.dirname(os.path.abspath(output_prefix))
    os.makedirs(parent, exist_ok=True)
    total_bytes = sum(_text_size(f) for f in files)
    initargs = (tokenizer, text_field, append_eod)
    documents = tokens = 0
    with IndexedDatasetWriter(output_prefix, token_dtype(vocab_size)) as writer, \
            byte_progress(f"tokenizing -> {output_prefix}", total_bytes, show_progress) as advance:
        results: Iterator[tuple[Any, ...]]
        pool = None
        if workers > 1:
            # fork: workers inherit the imported modules instead of re-importing them.
            ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
            pool = ctx.Pool(workers, initializer=_init_worker, initargs=initargs)
            results = pool.imap(_tokenize, _batches(files, text_split))
        else:
            _init_worker(*initargs)
            results = map(_tokenize, _batches(files, text_split))
        try:
            for result in results:
                if result[0] == "error":
                    raise DataFileError(*result[1:])
                _, batch_tokens, lengths, nbytes = result
                writer.add_documents(batch_tokens, lengths)
                documents, tokens = documents + len(lengths), tokens + len(batch_tokens)
                advance(nbytes)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
        if documents == 0:
            raise DataFileError(files[0], "holds no documents" + (
                f" with text in field {text_field!r}" if files[0].endswith(_JSON_SUFFIXES) else ""),
                "pass non-empty inputs")
    return PreprocessResult(output_prefix, documents, tokens, total_bytes)
