"""LoRA: low-rank adapters on the linear layers of a frozen model (Hu et al., 2021)."""

from __future__ import annotations

from dataclasses import dataclass, field

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
