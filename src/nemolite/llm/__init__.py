"""LLM building blocks and entry points: `from nemolite import llm`.

`llm.pretrain`, `llm.finetune`, `llm.train`, `llm.validate`, `llm.generate` and `llm.evaluate`
are nemo-run entrypoints (`nemo llm pretrain ...`), imported with nemo-run on first use
(`nemolite.llm.api` registers every verb and CLI factory). Model, data and tokenizer specs are
light dataclasses, and `llm.import_ckpt` / `llm.export_ckpt` plain functions: neither they nor
`from nemolite import llm` import nemo-run. Recipe modules (`llm.llama3_8b`, ...) are found
through the `nemolite.recipes` entry-point group and imported on first access, so the library
never imports the recipes package itself.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from nemolite.llm.gpt.model import *  # noqa: F403 - every config and model class, NeMo's names
from nemolite.llm.gpt.model import __all__ as _model_names
from nemolite.llm.hf_api import export_ckpt, import_ckpt
from nemolite.llm.inference.params import CommonInferenceParams
from nemolite.llm.peft import LoRA
from nemolite.llm.tokenizers import (
    AutoTokenizer,
    ByteTokenizer,
    HFTokenizer,
    SentencePieceTokenizer,
    TokenizerSpec,
)

#: The nemo-run verbs: `nemolite.llm.api` (which imports nemo-run and registers the CLI).
_VERBS = ("api", "pretrain", "finetune", "train", "validate", "generate", "evaluate")

# Specs whose modules are imported on first use (they are light, but not all are always needed).
_LAZY = {
    "DataModuleSpec": "nemolite.llm.gpt.data.base",
    "MockDataModule": "nemolite.llm.gpt.data.mock",
    "PreTrainingDataModule": "nemolite.llm.gpt.data.pre_training",
    "BundledCorpusDataModule": "nemolite.llm.gpt.data.corpus",
    "FineTuningDataModule": "nemolite.llm.gpt.data.fine_tuning",
    "SquadDataModule": "nemolite.llm.gpt.data.squad",
    "ChatDataModule": "nemolite.llm.gpt.data.chat",
    "HFDatasetDataModule": "nemolite.llm.gpt.data.hf_dataset",
    "PackedSequenceSpecs": "nemolite.llm.gpt.data.fine_tuning",
}


def __getattr__(name: str) -> Any:
    if name in _VERBS:
        api = importlib.import_module("nemolite.llm.api")
        value = api if name == "api" else getattr(api, name)
        globals()[name] = value
        return value
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    from nemolite.cli import plugins

    if name in plugins.recipe_names():
        return plugins.recipe_module(name)
    raise AttributeError(f"module 'nemolite.llm' has no attribute {name!r}")


def __dir__() -> list[str]:
    from nemolite.cli import plugins

    return sorted(set(globals()) | set(_VERBS) | set(_LAZY) | set(plugins.recipe_names()))


__all__ = [
    *_VERBS,
    "CommonInferenceParams",
    "import_ckpt",
    "export_ckpt",
    *_model_names,
    "LoRA",
    "AutoTokenizer",
    "ByteTokenizer",
    "HFTokenizer",
    "SentencePieceTokenizer",
    "TokenizerSpec",
    *_LAZY,
]

# Under nemo-run already (its CLI, or a script that imported it first) the verbs cost nothing
# more: register them now, so a `nemo_run.cli` entry point still naming this package (an
# install made before it named `nemolite.llm.api`) finds them.
if "nemo_run" in sys.modules:
    from nemolite.llm import api  # noqa: E402, F401
