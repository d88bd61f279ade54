"""Specs back to configs, and configs to YAML: how a run records the task it ran.

Specs are dataclasses, so a built task (a `functools.partial` of `llm.pretrain` over specs) can be
turned back into the `run.Partial` it came from, whatever executor or process built it. The run
directory's `task.yaml` and `--to-yaml` both come from here.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any

import fiddle as fdl
import nemo_run as run


def to_config(value: Any) -> Any:
    """A `run.Config` for a spec dataclass (recursively); other values are returned as they are."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        kwargs = {
            f.name: to_config(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init
        }
        return run.Config(type(value), **kwargs)
    if isinstance(value, (list, tuple)):
        return type(value)(to_config(v) for v in value)
    if isinstance(value, dict):
        return {k: to_config(v) for k, v in value.items()}
    return value


def task_config(fn: Callable, **specs: Any) -> run.Partial:
    """The `run.Partial` of `fn` over `specs`, e.g. for a run directory's task.yaml."""
    return run.Partial(fn, **{name: to_config(spec) for name, spec in specs.items()})


def to_yaml(task: fdl.Buildable) -> str:
    """The task as YAML, in nemo-run's format (`_target_` keys), readable back with `--yaml`."""
    from nemo_run.core.serialization.yaml import YamlSerializer

    return YamlSerializer().serialize(_plain_enums(task))


def from_yaml(text: str) -> Any:
    """The config `to_yaml` wrote. Values keep the types YAML gives them.

    nemo-run's own YAML loader re-parses every value through its CLI parser, which rejects
    `X | None` annotations (nemo-run 0.11), so configs are rebuilt here directly.
    """
    import yaml

    return _from_plain(yaml.safe_load(text))


def _from_plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_plain(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "_target_" not in value:
        return {k: _from_plain(v) for k, v in value.items()}
    target = _import(value["_target_"])
    kwargs = {k: _from_plain(v) for k, v in value.items() if not k.startswith("_")}
    kind = run.Partial if value.get("_partial_") else run.Config
    return kind(target, **kwargs)


def _import(dotted: str) -> Any:
    import importlib

    module, _, name = dotted.rpartition(".")
    obj: Any = importlib.import_module(module)
    for part in name.split(":"):
        obj = getattr(obj, part)
    return obj


def _plain_enums(task: fdl.Buildable) -> fdl.Buildable:
    """YAML has no enum type: store enum members by value (their constructors accept it)."""
    copy = task.__copy__()
    for name, value in list(copy.__arguments__.items()):
        if isinstance(value, enum.Enum):
            setattr(copy, name, value.value)
        elif isinstance(value, fdl.Buildable):
            setattr(copy, name, _plain_enums(value))
    return copy
