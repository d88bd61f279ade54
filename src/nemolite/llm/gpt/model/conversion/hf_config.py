"""Hugging Face `config.json` <-> `GPTConfig`, read from the family tables (light: no torch).

`config_from_hf` refuses (one-line `ConfigError` naming the HF field and the supported values)
anything that would make a silently different model; `hf_from_config` is its inverse.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from nemolite.errors import ConfigError, UnknownChoiceError
from nemolite.llm.gpt.model.base import GPTConfig
from nemolite.llm.gpt.model.conversion import families as fam

#: Other spellings of the same HF key across transformers versions and families.
ALIASES = {"num_local_experts": ("num_experts",), "num_experts": ("num_local_experts",)}
_MISSING = object()


def load_class(path: str) -> Any:
    """The class named "module:Class"."""
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def class_path(obj: Any) -> str:
    """"module:Class" of an object's class."""
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def normalized(hf: dict[str, Any]) -> dict[str, Any]:
    """The HF config with transformers 5's `rope_parameters` unfolded into `rope_theta`/`rope_scaling`."""
    out = dict(hf)
    params = out.pop("rope_parameters", None)
    if isinstance(params, dict):
        if "rope_theta" in params:
            out.setdefault("rope_theta", params["rope_theta"])
        if params.get("rope_type", "default") != "default":
            out.setdefault("rope_scaling", {k: v for k, v in params.items() if k != "rope_theta"})
    scaling = out.get("rope_scaling")
    if isinstance(scaling, dict) and "type" in scaling and "rope_type" not in scaling:
        out["rope_scaling"] = {**scaling, "rope_type": scaling["type"]}
    return out


def _get(hf: dict[str, Any], key: str) -> Any:
    if key in hf:
        return hf[key]
    for alias in ALIASES.get(key, ()):
        if alias in hf:
            return hf[alias]
    return _MISSING


def family_of(hf: dict[str, Any], where: str = "config.json") -> fam.Family:
    """The family of an HF config, from its `architectures`."""
    archs = hf.get("architectures") or []
    arch = archs[0] if archs else hf.get("model_type", "?")
    family = fam.family_for_architecture(arch)
    if family is None:
        raise UnknownChoiceError(f"{where}.architectures", arch, fam.supported_architectures(),
                                 what="architecture")
    return family


def _lookup(hf: dict[str, Any], key: str) -> Any:
    head, _, sub = key.partition(".")
    value = _get(hf, head)
    if sub:
        value = value.get(sub, _MISSING) if isinstance(value, dict) else _MISSING
    return value


def _window_unused(hf: dict[str, Any], window: Any) -> bool:
    # Qwen configs carry a window with use_sliding_window=false; a window as long as the context
    # is full attention too.
    limit = hf.get("max_position_embeddings")
    return not hf.get("use_sliding_window", True) or (limit is not None and window >= limit)


def check_supported(hf: dict[str, Any], family: fam.Family, where: str = "config.json") -> None:
    """`ConfigError` naming the HF field for a setting nemolite does not implement."""
    for key, allowed in family.supported.items():
        value = _lookup(hf, key)
        if value is _MISSING or value in allowed:
            continue
        if key == "sliding_window" and _window_unused(hf, value):
            continue
        raise ConfigError(f"{where}.{key}", value, "not supported by nemolite",
                          f"supported values: {', '.join(repr(a) for a in allowed)}")


def config_from_hf(hf: dict[str, Any], where: str = "config.json") -> GPTConfig:
    """The family's config class with every mapped HF field taken from `hf`."""
    hf = normalized(hf)
    family = family_of(hf, where)
    check_supported(hf, family, where)
    values: dict[str, Any] = dict(family.fixed)
    for f in family.config:
        value = _get(hf, f.hf)
        if value is _MISSING or value is None:
            continue
        values[f.ours] = (not value) if f.invert else value
    if "rotary_base" in values and float(values["rotary_base"]).is_integer():
        values["rotary_base"] = int(values["rotary_base"])
    scaling = hf.get("rope_scaling")
    if isinstance(scaling, dict) and scaling.get("rope_type") == "llama3":
        values["rope_scaling"] = True
        for f in fam.ROPE_SCALING:
            if f.hf in scaling:
                values[f.ours] = scaling[f.hf]
    cls = load_class(family.config_class)
    if family.name == "llama" and values.get("rope_scaling"):
        cls = load_class("nemolite.llm.gpt.model.llama:Llama31Config")
    names = {f.name for f in dataclasses.fields(cls)}
    config = cls(**{k: v for k, v in values.items() if k in names})
    config.validate(prefix=where)
    return config


def mapped_fields(config: GPTConfig, family: fam.Family) -> dict[str, Any]:
    """The GPTConfig fields the HF config determines (what an import checks a given model against)."""
    names = [f.ours for f in family.config] + list(family.fixed) + ["rope_scaling"]
    if config.rope_scaling:
        names += [f.ours for f in fam.ROPE_SCALING]
    return {name: getattr(config, name) for name in dict.fromkeys(names)}


def hf_from_config(config: GPTConfig, family: fam.Family, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """An HF config dict for `config`: `base` (the imported model's own) with every mapped field set."""
    out = dict(base or {})
    out.pop("rope_parameters", None)  # written below in the form every transformers version reads
    out["architectures"] = [family.architectures[0]]
    out["model_type"] = family.model_type
    head_dim = config.kv_channels or config.hidden_size // config.num_attention_heads
    values = {f.ours: getattr(config, f.ours) for f in family.config}
    # head_dim only where the source had it or it differs from hidden / heads (Qwen2 has no key).
    values["kv_channels"] = head_dim if (config.kv_channels is not None or out.get("head_dim")) else None
    values["num_query_groups"] = config.query_groups
    for f in family.config:
        value = values[f.ours]
        if value is not None:
            out[f.hf] = (not value) if f.invert else value
    out.setdefault("hidden_act", "silu")
    out.setdefault("max_position_embeddings", config.seq_length)
    out["rope_theta"] = float(config.rotary_base)
    if config.rope_scaling:
        out["rope_scaling"] = {"rope_type": "llama3", **{f.hf: getattr(config, f.ours) for f in fam.ROPE_SCALING}}
    else:
        out["rope_scaling"] = None
    return out
