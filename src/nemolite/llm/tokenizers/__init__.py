"""Tokenizers as light specs: `ByteTokenizer()`, `HFTokenizer(path)`, `SentencePieceTokenizer(...)`,
`AutoTokenizer(...)`. `spec.build()` loads the backend and returns a `Tokenizer`.

CLI factories (`tokenizer=byte` ...) live in `nemolite.llm.tokenizers.factories`, which imports
nemo_run and is therefore not imported here.
"""

from nemolite.llm.tokenizers.base import Tokenizer, TokenizerSpec
from nemolite.llm.tokenizers.byte import ByteTokenizer
from nemolite.llm.tokenizers.hf import AutoTokenizer, HFTokenizer, SentencePieceTokenizer

__all__ = [
    "AutoTokenizer",
    "ByteTokenizer",
    "HFTokenizer",
    "SentencePieceTokenizer",
    "Tokenizer",
    "TokenizerSpec",
]
