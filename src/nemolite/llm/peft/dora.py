"""DoRA: weight-decomposed low-rank adaptation (Liu et al., 2024), NeMo 2.0's `llm.peft.DoRA`.

Each adapted layer's weight is split into a direction and a per-output-feature magnitude:
`W' = m * (W + alpha/dim B A) / ||W + alpha/dim B A||` (row norms). `A`, `B` and the magnitude `m`
train, `W` stays frozen; `m` starts at `||W||`, and `B` at zero, so the model starts as the base.

Light spec: the adapters themselves are in `dora_transform.py`, added by LoRA's callback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nemolite.llm.peft.lora import ADAPTABLE_MODULES, LoRA


@dataclass(frozen=True, kw_only=True)
class DoRA(LoRA):
    """LoRA on the direction of the chosen linear layers' weights, plus a trained magnitude per row.

    NeMo 2.0's defaults (nemo/collections/llm/peft/dora.py): every linear layer, rank 32, alpha 64,
    no dropout. Like NeMo's, the weight norm is not differentiated (the DoRA paper's section 4.3:
    it is treated as a constant in the backward pass, which saves the memory of its graph).

    Args:
        target_modules: which linear layers get an adapter (megatron-core names).
        dim: the adapters' rank.
        alpha: scale numerator; the low-rank update is multiplied by `alpha / dim`.
        dropout: dropout on the adapter input (NeMo's "pre" position, with its correction term).
    """

    target_modules: tuple[str, ...] = field(default=ADAPTABLE_MODULES)
    dim: int = 32
    alpha: int = 64
    dropout: float = 0.0

    @property
    def method(self) -> str:
        """The name checkpoints record (`peft.method` in a checkpoint's marker)."""
        return "dora"
