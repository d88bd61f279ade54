"""The tokenizer contract and its light base spec.

A tokenizer *spec* is a small dataclass a recipe can name; `spec.build()` imports the backend
library (HF `tokenizers`, `sentencepiece`, `transformers`) and returns an object that satisfies
`Tokenizer`. Data modules and the model read only this protocol.
"""

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@runtime_checkable
class Tokenizer(Protocol):
    """What every built tokenizer offers (names follow NeMo's TokenizerSpec).

    The ids are read-only properties here so that a tokenizer whose ids always exist may declare
    them `int` (a mutable `int | None` protocol attribute would demand exactly `int | None`).
    """

    @property
    def vocab_size(self) -> int: ...

    @property
    def eod(self) -> int: ...

    @property
    def bos_id(self) -> int | None: ...

    @property
    def eos_id(self) -> int | None: ...

    @property
    def pad_id(self) -> int | None: ...

    def text_to_ids(self, text: str) -> list[int]:
        """Encodes text without adding special tokens."""
        ...

    def ids_to_text(self, ids: list[int]) -> str:
        """Decodes ids, dropping special tokens."""
        ...

    def apply_chat_template(self, messages: list[dict[str, str]]) -> list[int]:
        """Encodes a chat (`[{"role": ..., "content": ...}]`) with the tokenizer's template."""
        ...


@dataclass(kw_only=True)
class TokenizerSpec:
    """Base of all tokenizer specs: `build()` returns a `Tokenizer`."""

    def build(self) -> Tokenizer:
        """Loads the tokenizer (imports its backend library)."""
        raise NotImplementedError(f"{type(self).__name__}.build")

    def cache_key(self) -> str:
        """A string that changes whenever the token ids this tokenizer produces may change."""
        return repr(self)


def default_chat_text(messages: list[dict[str, str]]) -> str:
    """Renders a chat as plain text, for tokenizers that ship no chat template.

    Each turn is `<|role|>\\ncontent\\n`; a model fine-tuned on this learns the markers as text.
    """
    return "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)
