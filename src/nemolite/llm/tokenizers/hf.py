"""Specs for tokenizers loaded from local files: HF `tokenizers`, SentencePiece, HF AutoTokenizer."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nemolite.llm.tokenizers.base import TokenizerSpec

if TYPE_CHECKING:
    from nemolite.llm.tokenizers.base import Tokenizer


def _file_stamp(path: str) -> str:
    import os

    try:
        stat = os.stat(path)
    except OSError:
        return "missing"
    return f"{stat.st_size}:{int(stat.st_mtime)}"


@dataclass(kw_only=True)
class HFTokenizer(TokenizerSpec):
    """A Hugging Face `tokenizers` tokenizer from a local `tokenizer.json` (no network).

    Args:
        path: the `tokenizer.json` file, or a directory holding it (and optionally
            `tokenizer_config.json`, whose special tokens and chat template are then used).
        bos_token: the beginning-of-sequence token; default: from tokenizer_config.json or a
            well-known name (`<s>`, `<|begin_of_text|>`, `<bos>`, `<|endoftext|>`).
        eos_token: the end-of-sequence token (also the end-of-document token); default as bos_token.
        pad_token: the padding token; default: from tokenizer_config.json or `<pad>` if present.
        chat_template: a Jinja chat template overriding the one in tokenizer_config.json.
    """

    path: str
    bos_token: str | None = None
    eos_token: str | None = None
    pad_token: str | None = None
    chat_template: str | None = None

    def build(self) -> "Tokenizer":
        """Loads the tokenizer with the `tokenizers` library."""
        from nemolite.llm.tokenizers.hf_backend import load_hf_tokenizer

        return load_hf_tokenizer(self)

    def cache_key(self) -> str:
        """The spec plus the file's size and modification time."""
        return f"{self!r}@{_file_stamp(self.path)}"


@dataclass(kw_only=True)
class SentencePieceTokenizer(TokenizerSpec):
    """A SentencePiece model from a local `.model` file.

    Args:
        model_path: the SentencePiece `.model` file.
    """

    model_path: str

    def build(self) -> "Tokenizer":
        """Loads the model with the `sentencepiece` library."""
        from nemolite.llm.tokenizers.sentencepiece_backend import load_sentencepiece

        return load_sentencepiece(self.model_path)

    def cache_key(self) -> str:
        """The spec plus the file's size and modification time."""
        return f"{self!r}@{_file_stamp(self.model_path)}"


@dataclass(kw_only=True)
class AutoTokenizer(TokenizerSpec):
    """HF `transformers.AutoTokenizer` (needs `pip install nemolite[hf]`).

    Args:
        pretrained_model_name: a local directory, or a hub name already in the local HF cache.
        use_fast: use the Rust-backed fast tokenizer.
        trust_remote_code: allow tokenizer code shipped with the model.
    """

    pretrained_model_name: str
    use_fast: bool = True
    trust_remote_code: bool = False

    def build(self) -> "Tokenizer":
        """Loads the tokenizer with `transformers`."""
        from nemolite.llm.tokenizers.hf_backend import load_auto_tokenizer

        return load_auto_tokenizer(self)
