"""CLI factories: `tokenizer=byte`, `tokenizer=hf`, `tokenizer=sentencepiece`, `tokenizer=auto`.

Registered with nemo-run for the `TokenizerSpec` type, so any argument or field annotated with it
accepts these names. The module imports nemo_run, so the lead imports it from `nemolite.llm`.
"""

# No `from __future__ import annotations`: nemo-run reads the return annotations at runtime.
import nemo_run as run

from nemolite.llm.tokenizers.base import TokenizerSpec
from nemolite.llm.tokenizers.byte import ByteTokenizer
from nemolite.llm.tokenizers.hf import AutoTokenizer, HFTokenizer, SentencePieceTokenizer


@run.cli.factory
def byte(vocab_multiple: int = 8) -> run.Config[TokenizerSpec]:
    """Byte-level tokenizer: no files, 256 bytes plus pad/bos/eos."""
    return run.Config(ByteTokenizer, vocab_multiple=vocab_multiple)


@run.cli.factory
def hf(path: str = "tokenizer.json") -> run.Config[TokenizerSpec]:
    """HF `tokenizers` from a local tokenizer.json (or its directory)."""
    return run.Config(HFTokenizer, path=path)


@run.cli.factory
def sentencepiece(model_path: str = "tokenizer.model") -> run.Config[TokenizerSpec]:
    """SentencePiece from a local .model file."""
    return run.Config(SentencePieceTokenizer, model_path=model_path)


@run.cli.factory
def auto(pretrained_model_name: str = "gpt2") -> run.Config[TokenizerSpec]:
    """HF transformers AutoTokenizer from a local directory or the local HF cache."""
    return run.Config(AutoTokenizer, pretrained_model_name=pretrained_model_name)
