"""A byte-level tokenizer that needs no files: 256 byte values plus a few special tokens."""

from dataclasses import dataclass

from nemolite.llm.tokenizers.base import TokenizerSpec, default_chat_text

_NUM_BYTES = 256


@dataclass(kw_only=True)
class ByteTokenizer(TokenizerSpec):
    """UTF-8 bytes as tokens (ids 0-255) plus pad, bos and eos; needs no files.

    Args:
        vocab_multiple: the vocabulary (256 bytes + 3 specials) is rounded up to a multiple of this,
            so that embedding tables have friendly shapes; the padding ids are never produced.
    """

    vocab_multiple: int = 8

    def build(self) -> "_ByteTokenizer":
        """Returns the tokenizer (pure Python, nothing to load)."""
        from nemolite.errors import ConfigError

        if self.vocab_multiple < 1:
            raise ConfigError(
                "tokenizer.vocab_multiple", self.vocab_multiple, "must be at least 1", "use 1 or 8"
            )
        return _ByteTokenizer(self.vocab_multiple)


class _ByteTokenizer:
    """The built byte tokenizer; ids 256, 257 and 258 are pad, bos and eos (eod is eos)."""

    def __init__(self, vocab_multiple: int) -> None:
        self.pad_id, self.bos_id, self.eos_id = _NUM_BYTES, _NUM_BYTES + 1, _NUM_BYTES + 2
        self.eod = self.eos_id
        used = _NUM_BYTES + 3
        self.vocab_size = -(-used // vocab_multiple) * vocab_multiple

    def text_to_ids(self, text: str) -> list[int]:
        """UTF-8 bytes of `text`."""
        return list(text.encode("utf-8"))

    def ids_to_text(self, ids: list[int]) -> str:
        """Decodes the byte ids, skipping specials; invalid UTF-8 becomes U+FFFD."""
        return bytes(i for i in ids if 0 <= i < _NUM_BYTES).decode("utf-8", errors="replace")

    def apply_chat_template(self, messages: list[dict[str, str]]) -> list[int]:
        """bos, then each turn as `<|role|>\\ncontent\\n`; assistant turns end with eos."""
        ids = [self.bos_id]
        for message in messages:
            ids += self.text_to_ids(default_chat_text([message]))
            if message["role"] == "assistant":
                ids.append(self.eos_id)
        return ids
