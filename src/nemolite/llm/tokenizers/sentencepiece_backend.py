"""A built SentencePiece tokenizer (imports `sentencepiece` only when building)."""

from __future__ import annotations

import os
from typing import Any

from nemolite.errors import DataFileError
from nemolite.llm.tokenizers.base import default_chat_text


class SentencePieceImpl:
    """A `sentencepiece.SentencePieceProcessor` behind the nemolite `Tokenizer` protocol."""

    def __init__(self, processor: Any) -> None:
        self._sp = processor
        self.vocab_size = processor.get_piece_size()
        # sentencepiece reports -1 for special tokens the model was trained without.
        self.bos_id = _or_none(processor.bos_id())
        self.eos_id = _or_none(processor.eos_id())
        self.pad_id = _or_none(processor.pad_id())
        self.eod = self.eos_id if self.eos_id is not None else self.vocab_size - 1

    def text_to_ids(self, text: str) -> list[int]:
        """Encodes without bos/eos."""
        return self._sp.encode(text)

    def texts_to_ids(self, texts: list[str]) -> list[list[int]]:
        """Encodes a batch (sentencepiece threads it internally)."""
        return self._sp.encode(texts)

    def ids_to_text(self, ids: list[int]) -> str:
        """Decodes, dropping control tokens."""
        return self._sp.decode([int(i) for i in ids])

    def apply_chat_template(self, messages: list[dict[str, str]]) -> list[int]:
        """bos, the plain chat rendering, eos after each assistant turn."""
        ids = [self.bos_id] if self.bos_id is not None else []
        for message in messages:
            ids += self.text_to_ids(default_chat_text([message]))
            if message["role"] == "assistant":
                ids.append(self.eod)
        return ids


def _or_none(value: int) -> int | None:
    return None if value < 0 else int(value)


def load_sentencepiece(model_path: str) -> SentencePieceImpl:
    """Loads a `.model` file; one-line error when it is missing or not a SentencePiece model."""
    import sentencepiece

    if not os.path.isfile(model_path):
        raise DataFileError(model_path, "SentencePiece model not found",
                            "point tokenizer.model_path at a local .model file")
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.Load(model_path)
    except (OSError, RuntimeError) as err:
        raise DataFileError(model_path, f"does not load as a SentencePiece model ({str(err)[:60]})",
                            "use the .model file written by sentencepiece training") from None
    return SentencePieceImpl(processor)
