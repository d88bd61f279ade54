"""Built tokenizers over HF `tokenizers` and `transformers` (imported only when building)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from nemolite.errors import ConfigError, DataFileError
from nemolite.llm.tokenizers.base import default_chat_text

if TYPE_CHECKING:
    from nemolite.llm.tokenizers.hf import AutoTokenizer, HFTokenizer

_BOS_NAMES = ("<s>", "<|begin_of_text|>", "<bos>", "<|endoftext|>")
_EOS_NAMES = ("</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>")


def _token_text(value: Any) -> str | None:
    # tokenizer_config.json stores special tokens either as strings or as AddedToken dicts.
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


class HFTokenizerImpl:
    """A `tokenizers.Tokenizer` behind the nemolite `Tokenizer` protocol."""

    def __init__(self, tokenizer: Any, config: dict[str, Any], spec: HFTokenizer) -> None:
        self._tok = tokenizer
        self._chat_template = spec.chat_template or config.get("chat_template")
        self._config = config
        self.bos_id = self._special(spec.bos_token, "bos_token", _BOS_NAMES)
        self.eos_id = self._special(spec.eos_token, "eos_token", _EOS_NAMES)
        self.pad_id = self._special(spec.pad_token, "pad_token", ("<pad>",))
        if self.eos_id is None:
            raise DataFileError(
                spec.path,
                "found no end-of-sequence token (tried tokenizer_config.json and "
                + ", ".join(_EOS_NAMES) + ")",
                "pass tokenizer.eos_token=<token> naming the tokenizer's end-of-text token",
            )
        self.eod = self.eos_id
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)

    def _special(self, explicit: str | None, key: str, names: tuple[str, ...]) -> int | None:
        candidates = [explicit] if explicit else [_token_text(self._config.get(key)), *names]
        for name in candidates:
            if name and (token_id := self._tok.token_to_id(name)) is not None:
                return int(token_id)
        return None

    def text_to_ids(self, text: str) -> list[int]:
        """Encodes without adding special tokens."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def texts_to_ids(self, texts: list[str]) -> list[list[int]]:
        """Encodes a batch in parallel (the Rust side uses all cores)."""
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def ids_to_text(self, ids: list[int]) -> str:
        """Decodes, skipping special tokens."""
        return self._tok.decode(list(ids), skip_special_tokens=True)

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> list[int]:
        """Renders the Jinja chat template (or the plain default) and encodes it.

        `add_generation_prompt` opens the assistant's turn (for generation), as in transformers.
        """
        if not self._chat_template:
            prefix = [self.bos_id] if self.bos_id is not None else []
            opened = default_chat_text([{"role": "assistant", "content": ""}])[:-1] if add_generation_prompt else ""
            return prefix + self.text_to_ids(default_chat_text(messages) + opened)
        import jinja2

        template = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(
            self._chat_template
        )
        bos = _token_text(self._config.get("bos_token")) or ""
        eos = _token_text(self._config.get("eos_token")) or ""
        text = template.render(messages=messages, bos_token=bos, eos_token=eos,
                               add_generation_prompt=add_generation_prompt)
        # The template writes special tokens as text; encode them as specials.
        return self._tok.encode(text, add_special_tokens=False).ids


def load_hf_tokenizer(spec: HFTokenizer) -> HFTokenizerImpl:
    """Loads `tokenizer.json` (and `tokenizer_config.json` beside it, when present)."""
    from tokenizers import Tokenizer as RustTokenizer

    path = os.path.join(spec.path, "tokenizer.json") if os.path.isdir(spec.path) else spec.path
    if not os.path.isfile(path):
        raise DataFileError(path, "tokenizer file not found",
                            "point tokenizer.path at a local tokenizer.json or its directory")
    try:
        tokenizer = RustTokenizer.from_file(path)
    except Exception as err:  # the Rust loader raises a bare Exception with a long message
        raise DataFileError(path, f"does not load as a HF tokenizers file ({str(err)[:80]})",
                            "use a tokenizer.json saved by `tokenizers` or `transformers`") from None
    config: dict[str, Any] = {}
    config_path = os.path.join(os.path.dirname(path), "tokenizer_config.json")
    if os.path.isfile(config_path):
        try:
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            raise DataFileError(config_path, f"is not valid JSON ({err})",
                                "fix or remove tokenizer_config.json") from None
    return HFTokenizerImpl(tokenizer, config, spec)


class AutoTokenizerImpl:
    """`transformers.AutoTokenizer` behind the nemolite `Tokenizer` protocol."""

    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer
        self.bos_id = tokenizer.bos_token_id
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id
        self.eod = self.eos_id
        self.vocab_size = len(tokenizer)

    def text_to_ids(self, text: str) -> list[int]:
        """Encodes without adding special tokens."""
        return self._tok.encode(text, add_special_tokens=False)

    def ids_to_text(self, ids: list[int]) -> str:
        """Decodes, skipping special tokens."""
        return self._tok.decode(list(ids), skip_special_tokens=True)

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> list[int]:
        """The tokenizer's own chat template, or the plain default when it has none."""
        if getattr(self._tok, "chat_template", None):
            out = self._tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt)
            # transformers 5 returns a BatchEncoding (return_dict=True by default), 4.x a list of ids.
            return list(out["input_ids"] if hasattr(out, "keys") else out)
        opened = default_chat_text([{"role": "assistant", "content": ""}])[:-1] if add_generation_prompt else ""
        return self.text_to_ids(default_chat_text(messages) + opened)


def load_auto_tokenizer(spec: AutoTokenizer) -> AutoTokenizerImpl:
    """Loads with `transformers.AutoTokenizer`, offline."""
    try:
        import transformers
    except ImportError:
        raise ConfigError("tokenizer", "AutoTokenizer", "needs the transformers package",
                          "pip install 'nemolite[hf]', or use tokenizer=hf with a tokenizer.json") from None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            spec.pretrained_model_name, use_fast=spec.use_fast,
            trust_remote_code=spec.trust_remote_code, local_files_only=True,
        )
    except (OSError, ValueError) as err:
        raise DataFileError(spec.pretrained_model_name,
                            f"transformers could not load a tokenizer ({str(err)[:80]})",
                            "pass a local directory holding the tokenizer files") from None
    if tokenizer.eos_token_id is None:
        raise DataFileError(spec.pretrained_model_name, "tokenizer has no eos token",
                            "use a tokenizer with an end-of-text token")
    return AutoTokenizerImpl(tokenizer)
