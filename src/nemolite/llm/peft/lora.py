"""LoRA: low-rank adapters on the linear layers of a frozen model (Hu et al., 2021).

Light spec: nothing heavy at import time. `LoRA.build()` gives the Lightning callback
(`lora_callback.py`) that adds the adapters (`lora_transform.py`) to the engine's megatron model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nemolite.errors import ConfigError

if TYPE_CHECKING:
    from nemolite.llm.peft.lora_callback import LoRACallback

#: Megatron-core names of the linear layers in a GPT block, the ones LoRA can adapt.
ADAPTABLE_MODULES = ("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2")


@dataclass(frozen=True, kw_only=True)
class LoRA:
    """Train rank-`dim` adapters beside the chosen linear layers; every other weight stays frozen.

    Args:
        target_modules: which linear layers get an adapter (megatron-core names).
        dim: the adapters' rank.
        alpha: scale numerator; the adapter output is multiplied by `alpha / dim`.
        dropout: dropout on the adapter input.
    """

    target_modules: tuple[str, ...] = field(default=ADAPTABLE_MODULES)
    dim: int = 32
    alpha: int = 32
    dropout: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, prefix: str = "peft") -> None:
        """Raises `ConfigError` naming the field for an unknown layer name, a rank < 1 or a bad dropout."""
        from nemolite.errors import UnknownChoiceError

        if isinstance(self.target_modules, str) or not self.target_modules:
            raise ConfigError(f"{prefix}.target_modules", self.target_modules,
                              "must be a non-empty list of layer names",
                              f"use some of {list(ADAPTABLE_MODULES)}")
        for name in self.target_modules:
            if name not in ADAPTABLE_MODULES:
                raise UnknownChoiceError(f"{prefix}.target_modules", name, ADAPTABLE_MODULES)
        if self.dim < 1:
            raise ConfigError(f"{prefix}.dim", self.dim, "the adapter rank must be >= 1", "use e.g. 8, 16 or 32")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{prefix}.dropout", self.dropout, "must be in [0, 1)", "use e.g. 0.0 or 0.1")

    @property
    def method(self) -> str:
        """The name checkpoints record (`peft.method` in a checkpoint's marker)."""
        return "lora"

    def build(self) -> LoRACallback:
        """The Lightning callback that freezes the model and adds the adapters (imports lightning)."""
        from nemolite.llm.peft.lora_callback import LoRACallback

        return LoRACallback(self)
