"""`nemo llm preprocess`: JSONL or plain-text files -> megatron `.bin/.idx` (indexed dataset).

    nemo llm preprocess input=data/*.jsonl output_prefix=data/my_corpus tokenizer=byte \\
        text_field=text workers=2 append_eod=true

Several worker processes tokenize, a rich progress bar shows the bytes done, each document ends
with the tokenizer's end-of-document token, and the output is written under temporary names
and renamed only when complete. The heavy work lives in `preprocessing.py`.
"""

# No `from __future__ import annotations`: nemo-run reads the annotations at runtime.

import nemo_run as run

from nemolite.cli.simple import SimpleEntrypoint
from nemolite.errors import ConfigError, UnknownChoiceError
from nemolite.llm.tokenizers.base import TokenizerSpec

TEXT_SPLITS = ("file", "paragraph", "line")


@run.cli.entrypoint(namespace="llm", enable_executor=False, entrypoint_cls=SimpleEntrypoint)
def preprocess(
    input: str,
    output_prefix: str,
    tokenizer: TokenizerSpec | None = None,
    text_field: str = "text",
    workers: int = 2,
    append_eod: bool = True,
    text_split: str = "file",
    show_progress: bool = True,
) -> str:
    """Tokenize JSONL or plain-text files into a megatron indexed dataset (.bin/.idx).

    Args:
        input: files, directories or globs, comma-separated; `.jsonl`/`.json` (one JSON object a
            line; `.gz` allowed) or plain text (`.txt`).
        output_prefix: where to write `<output_prefix>.bin` and `<output_prefix>.idx`.
        tokenizer: the tokenizer (`tokenizer=byte`, `tokenizer=hf tokenizer.path=...`); byte-level
            when unset.
        text_field: the JSON field holding each document's text.
        workers: tokenizer processes (1 tokenizes in this process).
        append_eod: end every document with the tokenizer's end-of-document token.
        text_split: how plain-text files become documents: `file`, `paragraph` (blank lines) or
            `line`.
        show_progress: show a progress bar.

    Returns:
        The output prefix, for use in `PreTrainingDataModule(paths=...)`.
    """
    from nemolite.llm.gpt.data.preprocessing import preprocess_files, resolve_inputs
    from nemolite.llm.tokenizers.byte import ByteTokenizer

    if text_split not in TEXT_SPLITS:
        raise UnknownChoiceError("text_split", text_split, TEXT_SPLITS)
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError("workers", workers, "must be at least 1", "set workers=1 or more")
    result = preprocess_files(
        resolve_inputs(input), output_prefix, tokenizer or ByteTokenizer(), text_field=text_field,
        workers=workers, append_eod=append_eod, text_split=text_split, show_progress=show_progress,
    )
    if show_progress:
        print(f"wrote {result.output_prefix}.bin/.idx: {result.documents} documents, "
              f"{result.tokens} tokens")
    return result.output_prefix
