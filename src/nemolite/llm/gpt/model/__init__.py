"""GPT model specs (light) and the megatron-core LightningModule they build (heavy, lazily)."""

from nemolite.llm.gpt.model.base import GPTConfig, GPTModel
from nemolite.llm.gpt.model.llama import (
    Llama2Config7B,
    Llama3Config,
    Llama3Config8B,
    Llama3Config70B,
    LlamaConfig,
    LlamaTinyConfig,
)
from nemolite.llm.gpt.model.mixtral import MixtralConfig, MixtralConfig8x7B, MixtralTinyConfig

__all__ = [
    "GPTConfig",
    "GPTModel",
    "LlamaConfig",
    "Llama2Config7B",
    "Llama3Config",
    "Llama3Config8B",
    "Llama3Config70B",
    "LlamaTinyConfig",
    "MixtralConfig",
    "MixtralConfig8x7B",
    "MixtralTinyConfig",
]
