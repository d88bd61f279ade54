"""Activation recomputation settings (NeMo's / megatron-core's fields), checked before anything starts.

- `recompute_granularity="selective"`: recompute each layer's core attention in backward (the
  memory-heavy, compute-light part); `recompute_method` and `recompute_num_layers` stay None.
- `recompute_granularity="full"`: recompute whole layers. `recompute_method="uniform"` checkpoints
  the layers of each pipeline chunk in groups of `recompute_num_layers`; `"block"` checkpoints the
  first `recompute_num_layers` layers of each chunk and keeps the rest's activations.
Light: no torch.
"""

from __future__ import annotations

from typing import Any

from nemolite.errors import ConfigError, UnknownChoiceError

GRANULARITIES = (None, "full", "selective")
METHODS = (None, "uniform", "block")


def check_recompute(cfg: Any, prefix: str = "model.config", *, layers_per_chunk: int | None = None,
                    where: str = "num_layers") -> None:
    """Raises a one-line `ConfigError` for recompute settings megatron-core would reject or cannot apply.

    Args:
        cfg: a GPTConfig (recompute_granularity, recompute_method, recompute_num_layers, num_layers).
        prefix: dotted name of `cfg` in the task.
        layers_per_chunk: transformer layers in one pipeline (virtual) chunk; default all layers.
        where: how `layers_per_chunk` was derived, for the message.
    """
    granularity, method, count = cfg.recompute_granularity, cfg.recompute_method, cfg.recompute_num_layers
    if granularity not in GRANULARITIES:
        raise UnknownChoiceError(f"{prefix}.recompute_granularity", granularity, [str(g) for g in GRANULARITIES])
    if method not in METHODS:
        raise UnknownChoiceError(f"{prefix}.recompute_method", method, [str(m) for m in METHODS])
    if granularity != "full":
        for name, value in (("recompute_method", method), ("recompute_num_layers", count)):
            if value is not None:
                raise ConfigError(f"{prefix}.{name}", value,
                                  f"applies to recompute_granularity=full only (it is {granularity})",
                                  f"remove {name}, or set recompute_granularity=full")
        return
    if method is None:
        raise ConfigError(f"{prefix}.recompute_method", None, "recompute_granularity=full needs a method",
                          "set recompute_method=uniform or recompute_method=block")
    layers = layers_per_chunk if layers_per_chunk is not None else cfg.num_layers
    if count is None or not 1 <= count <= layers:
        raise ConfigError(f"{prefix}.recompute_num_layers", count,
                          f"must be between 1 and the {layers} layers of a pipeline chunk ({where})",
                          f"set recompute_num_layers to 1..{layers}")


def recompute_fields(cfg: Any) -> dict[str, Any]:
    """megatron-core TransformerConfig fields."""
    return {"recompute_granularity": cfg.recompute_granularity, "recompute_method": cfg.recompute_method,
            "recompute_num_layers": cfg.recompute_num_layers}
