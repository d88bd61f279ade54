"""Heavy: the one generic converter that reads a family table (`families.py`) both ways.

`import_plan` / `export_plan` expand a family's rules for one config into concrete tensor names
(every layer, every expert); `to_ours` / `to_hf` apply a rule's transform. Nothing here knows a
family: a new one is a new table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from nemolite.llm.gpt.model.base import GPTConfig
from nemolite.llm.gpt.model.conversion import families as fam


@dataclass(frozen=True)
class Step:
    """One rule applied to one layer (and expert): these HF tensors <-> this megatron tensor."""

    hf: tuple[str, ...]
    ours: str
    op: str


def _holds(when: str | None, config: GPTConfig) -> bool:
    if when is None:
        return True
    if when.startswith("!"):
        return not getattr(config, when[1:])
    return bool(getattr(config, when))


def plan(family: fam.Family, config: GPTConfig) -> Iterator[Step]:
    """Every (HF names, megatron name, transform) of a model with this config, layer by layer."""
    experts = range(config.num_moe_experts or 0)
    for rule in family.weights:
        if not _holds(rule.when, config):
            continue
        per_layer = "{L}" in rule.ours
        for layer in range(config.num_layers) if per_layer else [None]:
            for expert in experts if "{E}" in rule.ours else [None]:
                def fill(name: str, layer: int | None = layer, expert: int | None = expert) -> str:
                    return name.replace("{L}", str(layer)).replace("{E}", str(expert))

                yield Step(tuple(fill(n) for n in rule.hf), fill(rule.ours), rule.op)


def _qkv_shape(config: GPTConfig) -> tuple[int, int, int]:
    groups = config.query_groups
    head = config.kv_channels or config.hidden_size // config.num_attention_heads
    return groups, config.num_attention_heads // groups, head


def to_ours(step: Step, tensors: list[torch.Tensor], config: GPTConfig, padded_vocab: int) -> torch.Tensor:
    """The megatron tensor from the HF tensors of one step."""
    if step.op == fam.COPY:
        return tensors[0]
    if step.op == fam.GATE_UP:
        return torch.cat(tensors, dim=0)
    if step.op == fam.VOCAB:
        (weight,) = tensors
        pad = padded_vocab - weight.shape[0]
        return torch.cat([weight, weight.new_zeros(pad, *weight.shape[1:])]) if pad > 0 else weight
    if step.op == fam.QKV:
        groups, per_group, head = _qkv_shape(config)
        q, k, v = tensors
        rest = q.shape[1:]
        parts = [q.reshape(groups, per_group, head, *rest), k.reshape(groups, 1, head, *rest),
                 v.reshape(groups, 1, head, *rest)]
        return torch.cat(parts, dim=1).reshape(groups * (per_group + 2) * head, *rest)
    raise ValueError(f"unknown transform {step.op!r}")


def ours_shape(step: Step, shapes: list[tuple[int, ...]], config: GPTConfig,
               padded_vocab: int) -> tuple[int, ...] | None:
    """The shape `to_ours` gives for HF tensors of `shapes`, reading no data; None if they do not fit.

    Every transform moves whole rows (dim 0), so it runs on one boolean per row; not on the meta
    device, where torch's Python meta kernel of `cat` imports TorchDynamo (~0.8 s of CPU).
    """
    rests = {tuple(shape[1:]) for shape in shapes}
    if len(rests) != 1 or any(not shape for shape in shapes):
        return None
    try:
        out = to_ours(step, [torch.zeros(shape[0], dtype=torch.bool) for shape in shapes], config, padded_vocab)
    except RuntimeError:  # rows that do not split into the config's heads
        return None
    return (out.shape[0], *rests.pop())


def to_hf(step: Step, tensor: torch.Tensor, config: GPTConfig, vocab: int) -> list[torch.Tensor]:
    """The HF tensors of one step from the megatron tensor (the inverse of `to_ours`)."""
    if step.op == fam.COPY:
        return [tensor]
    if step.op == fam.GATE_UP:
        return list(torch.chunk(tensor, 2, dim=0))
    if step.op == fam.VOCAB:
        return [tensor[:vocab]]
    if step.op == fam.QKV:
        groups, per_group, head = _qkv_shape(config)
        rest = tensor.shape[1:]
        grouped = tensor.reshape(groups, per_group + 2, head, *rest)
        q, k, v = torch.split(grouped, [per_group, 1, 1], dim=1)
        return [x.reshape(-1, *rest) for x in (q, k, v)]
    raise ValueError(f"unknown transform {step.op!r}")
