"""`self.log` without Lightning's per-call walk over each logged metric's state.

Lightning's `_ResultCollection.log` (trainer/connectors/logger_connector/result.py) calls
`_ResultMetric.to(value.device)` on every `self.log` after the first, and that `to` runs
`apply_to_collection` over the metric's whole `__dict__`: it deep-copies the metric's `_Metadata`
dataclass, rebuilds every dict and list it holds, and moves tensors that are already where they
should be. About 0.3-0.5 ms a call on a laptop CPU: with the four metrics a training step logs,
more than a small model's step spends in megatron's schedule code.

`apply()` puts a check in front of it: when every tensor and metric the `_ResultMetric` holds
(walking its dicts, lists and tuples, as `apply_to_collection` does; Lightning's `_Metadata`
dataclass holds none) is already on the target device, the call returns the metric as it is,
which is what upstream's `to` would produce (`Tensor.to` of a tensor on that device is the tensor
itself); any other call (another device, a dtype, more arguments) goes to upstream's `to`.
Delete this the day Lightning skips the walk itself.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import torch
from torchmetrics import Metric

_PATCHED = "__nemolite_fast_log__"


def _held(obj: Any) -> Iterator[Any]:
    """Tensors and torchmetrics `Metric`s in `obj`, through dicts, lists and tuples."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _held(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _held(value)
    elif isinstance(obj, Metric):
        yield obj


def _on(obj: torch.Tensor | Metric, device: torch.device) -> bool:
    return (obj.device if isinstance(obj, torch.Tensor) else obj._device) == device


def fast_to(original: Any) -> Any:
    """`_ResultMetric.to` that returns early when there is nothing to move."""

    @functools.wraps(original)
    def to(self: Any, *args: Any, **kwargs: Any) -> Any:
        target = kwargs.get("device") if not args and len(kwargs) == 1 else (
            args[0] if len(args) == 1 and not kwargs else None)
        if isinstance(target, (str, torch.device)):
            device = torch.device(target)
            if device.index is not None or device.type == "cpu":
                if all(_on(item, device) for item in _held(self.__dict__)):
                    return self
        return original(self, *args, **kwargs)

    setattr(to, _PATCHED, True)
    return to


def apply() -> None:
    """Installs the check into Lightning's `_ResultMetric.to` (idempotent)."""
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric

    if not getattr(_ResultMetric.to, _PATCHED, False):
        _ResultMetric.to = fast_to(_ResultMetric.to)  # type: ignore[method-assign]
