"""Heavy: LoRA (and DoRA) adapters folded into the weights they adapt, or written as a PEFT adapter.

`merge_adapters` turns each adapted layer's `W` into `W + alpha/dim x B A` (one process, TP=1:
A and B are whole), after which the model computes what base + adapters computed. The PEFT export
splits B like the fused weight it adapts (through the family table: QKV interleaving, gate/up),
with A shared by the parts: `B_q A` is exactly the q rows of `B A`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nemolite.llm.peft.dora_transform import DoRAAdapter
from nemolite.llm.peft.lora_transform import LoRAAdapter


def adapters(model: torch.nn.Module) -> dict[str, LoRAAdapter]:
    """Adapter modules by the state-dict name of the weight they adapt (`...linear_qkv.weight`)."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, LoRAAdapter):
            out[name.removesuffix("_adapter") + ".weight"] = module
    return out


def merge_adapters(model: torch.nn.Module) -> int:
    """Adds `scale x B A` to every adapted weight and zeroes B; returns how many were merged.

    A DoRA adapter's weight becomes `m (W + scale x B A) / ||W + scale x B A||`, and its magnitude
    the new weight's norm, so the adapter left in place is the identity again.
    """
    params = dict(model.named_parameters())
    found = adapters(model)
    with torch.no_grad():
        for weight_name, adapter in found.items():
            delta = adapter.linear_out.weight.float() @ adapter.linear_in.weight.float()
            weight = params[weight_name]
            merged = weight.float() + adapter.scale * delta
            if isinstance(adapter, DoRAAdapter):
                norm = merged.pow(2).sum(dim=1, keepdim=True).sqrt()
                merged = merged * (adapter.weight_magnitude.float()[:, None] / norm)
            weight.copy_(merged.to(weight.dtype))
            adapter.linear_out.weight.zero_()
            if isinstance(adapter, DoRAAdapter):
                adapter.weight_magnitude.copy_(adapter.weight_norm(weight))
    return len(found)


def write_peft_adapter(model: torch.nn.Module, steps: list[Any], config: Any, peft: dict[str, Any],
                       directory: Path, base_model: str | None) -> int:
    """adapter_config.json + adapter_model.safetensors that the `peft` library loads; returns tensors."""
    from safetensors.torch import save_file

    from nemolite.llm.gpt.model.conversion import converter

    found = adapters(model)
    tensors: dict[str, torch.Tensor] = {}
    targets: set[str] = set()
    for step in steps:
        adapter = found.get(step.ours)
        if adapter is None:
            continue
        a = adapter.linear_in.weight.detach()
        parts = converter.to_hf(step, adapter.linear_out.weight.detach(), config, 0)
        # DoRA's magnitudes are per output row: split like B's rows (peft's key has no ".weight").
        magnitudes = (converter.to_hf(step, adapter.weight_magnitude.detach(), config, 0)
                      if isinstance(adapter, DoRAAdapter) else [None] * len(parts))
        for hf_name, b, m in zip(step.hf, parts, magnitudes, strict=True):
            stem = "base_model.model." + hf_name.removesuffix(".weight")
            tensors[stem + ".lora_A.weight"] = a.contiguous().clone()
            tensors[stem + ".lora_B.weight"] = b.contiguous().clone()
            if m is not None:
                tensors[stem + ".lora_magnitude_vector"] = m.contiguous().clone()
            targets.add(hf_name.removesuffix(".weight").rsplit(".", 1)[-1])
    save_file(tensors, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
    adapter_config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": peft["dim"], "lora_alpha": peft["alpha"],
        "lora_dropout": peft.get("dropout", 0.0), "target_modules": sorted(targets), "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "base_model_name_or_path": base_model,
        "use_dora": peft.get("method") == "dora",
    }
    (directory / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2, sort_keys=True))
    return len(tensors)
