"""megatron-core's own `OptimizerConfig` / `DistributedDataParallelConfig`, accepted where NeMo scripts pass them.

NeMo 2.0 scripts build `megatron.core.optimizer.OptimizerConfig(...)` for `nl.MegatronOptimizerModule`
and `megatron.core.distributed.DistributedDataParallelConfig(...)` for `nl.MegatronStrategy(ddp=...)`.
`from_megatron` turns them into nemolite's light spec of the same field names. A field the user
changed from megatron's default that nemolite does not carry is a one-line error, never dropped.
Light: reads the objects' dataclass fields; imports nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from nemolite.errors import ConfigError

T = TypeVar("T")


def is_megatron_config(value: Any) -> bool:
    """Whether `value` is a megatron-core dataclass instance."""
    return dataclasses.is_dataclass(value) and not isinstance(value, type) and \
        type(value).__module__.startswith("megatron.core")


def _plain(value: Any) -> Any:
    """torch dtypes as the names our specs take ("bfloat16")."""
    text = str(value)
    return text.removeprefix("torch.") if text.startswith("torch.") and not isinstance(value, str) else value


def from_megatron(value: Any, cls: type[T], prefix: str) -> T:
    """Our `cls` with the fields of megatron's dataclass `value` (else `value` unchanged)."""
    if not is_megatron_config(value):
        return value
    ours = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(value):
        current = getattr(value, f.name)
        if f.name in ours:
            kwargs[f.name] = _plain(current)
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        if f.init and default is not dataclasses.MISSING and _differs(current, default):
            raise ConfigError(f"{prefix}.{f.name}", current,
                              f"megatron's {type(value).__name__} field is not supported by nemolite",
                              f"leave {f.name} at megatron's default ({default!r}) or use nemolite's "
                              f"{cls.__name__}")
    return cls(**kwargs)


def _differs(current: Any, default: Any) -> bool:
    try:
        return bool(current != default)
    except Exception:  # tensors, objects without equality: treat as changed only if not identical
        return current is not default
