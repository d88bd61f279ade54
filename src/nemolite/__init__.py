"""nemolite: NeMo 2.0-style LLM recipes and launchers on megatron-core, light enough for a laptop.

`import nemolite` is cheap: the `llm` and `lightning` namespaces load on first use, and nothing here
imports torch, megatron or lightning (those load only where training actually happens).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Without CUDA, megatron-core's fusers need not import TorchDynamo and Inductor (about half of
# megatron's import time); see nemolite/backends/megatron_jit.py. No torch import here.
from nemolite.backends import megatron_jit as _megatron_jit  # noqa: E402

_megatron_jit.install()

_SUBMODULES = ("llm", "asr", "lightning", "backends", "errors")

if TYPE_CHECKING:
    from nemolite import asr, errors, lightning, llm  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"nemolite.{name}")
    raise AttributeError(f"module 'nemolite' has no attribute {name!r}")


__all__ = ["__version__", "llm", "asr", "lightning"]
