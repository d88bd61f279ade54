"""Dotted CLI overrides (`trainer.strategy.tensor_model_parallel_size=2`) applied to a task config.

nemo-run's parser (0.11) cannot parse `X | None` annotations, reports an unknown field with the
whole config's repr, and prints its own error line before raising. Overrides are therefore parsed
here: each name is checked against the signature it lands in ("did you mean ...?"), each value
against its annotation, and only factory values (`data=mock`, `model=llama3_8b`) go to nemo-run's
factory registry.
"""

from __future__ import annotations

import ast
import contextlib
import enum
import inspect
import io
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union

import fiddle as fdl
import nemo_run as run

from nemolite.errors import ConfigError, NemoliteError, UnknownChoiceError, did_you_mean

_NONE_WORDS = {"None", "none", "null", "~"}
_TRUE, _FALSE = {"true", "True", "1", "yes", "on"}, {"false", "False", "0", "no", "off"}


def split_executor_args(args: list[str]) -> tuple[str | None, list[str], list[str]]:
    """Splits `executor=E executor.k=v ...` from the task's own arguments."""
    name, executor_args, rest = None, [], []
    for arg in args:
        if arg.startswith("executor="):
            name = arg.split("=", 1)[1]
        elif arg.startswith("executor."):
            executor_args.append(arg[len("executor.") :])
        else:
            rest.append(arg)
    if executor_args and name is None:
        raise ConfigError(
            "executor", None, f"'{executor_args[0]}' overrides an executor that was not chosen",
            "choose one first, e.g. executor=torchrun executor.ntasks_per_node=2",
        )
    return name, executor_args, rest


def parse_task(ctx: Any, fn: Callable, args: list[str]) -> run.Partial:
    """The task from `--factory`/`--yaml` (through nemo-run), then each override applied in order."""
    if ctx.yaml:
        task = _load_yaml(ctx.yaml, fn, ctx.factory)
        for arg in args:
            apply_override(task, arg)
        return task
    if ctx.factory:
        _check_factory_name(ctx.factory, getattr(ctx, "recipe_group", None))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            task = ctx.parse_fn(fn, [])
    except NemoliteError:
        raise
    except Exception as error:  # nemo-run raises bare ValueError/CLIException for bad factories
        raise ConfigError("--factory", ctx.factory, _first_line(error), "see `--help` for the recipes") from None
    for arg in args:
        apply_override(task, arg)
    return task


def _load_yaml(path: str, fn: Callable, factory: str | None) -> run.Partial:
    """A task saved with `--to-yaml` (nemo-run's YAML format); its target must be this verb."""
    from nemolite.llm.recipe_io import from_yaml

    if factory:
        raise ConfigError("--yaml", path, "cannot be combined with --factory", "give one of the two")
    file = Path(path)
    if not file.is_file():
        raise ConfigError("--yaml", path, "no such file", "give the path of a task saved with --to-yaml")
    try:
        task = from_yaml(file.read_text())
    except Exception as error:
        raise ConfigError("--yaml", path, f"not a saved task ({_first_line(error)})",
                          "write it with --to-yaml") from None
    if not isinstance(task, fdl.Partial) or task.__fn_or_cls__.__name__ != fn.__name__:
        raise ConfigError("--yaml", path, f"is not a saved `{fn.__name__}` task",
                          f"save it from `nemo llm {fn.__name__} ... --to-yaml {path}`")
    return task


def _check_factory_name(factory: str, group: str | None = None) -> None:
    from nemolite.cli import plugins

    names = plugins.recipe_names(group or plugins.RECIPE_GROUP)
    name = factory.split("(", 1)[0].strip()
    if "." not in name and name not in names:
        raise UnknownChoiceError("--factory", name, names, what="recipe")


def apply_override(task: fdl.Buildable, arg: str) -> None:
    """Applies one `dotted.key=value` to `task` in place."""
    if "=" not in arg:
        raise ConfigError(arg, None, "is not an override", "write overrides as dotted.field=value")
    key, raw = arg.split("=", 1)
    if key.endswith(("+", "-", "*", "/", "|")):
        raise ConfigError(key[:-1], raw, f"operator '{key[-1]}=' is not supported", "give the new value with '='")
    parent, name, annotation = _resolve(task, key, raw)
    value = parse_value(key, raw, annotation, parent)
    setattr(parent, name, value)
    if key == "data" and "(" not in raw:
        _data_follows_model(task, value)


def _data_follows_model(task: fdl.Buildable, data: Any) -> None:
    """`data=mock` (a factory without arguments) takes the model's sequence length.

    The data factories' defaults (2048) suit the big recipes; on `llama_tiny` (256) they would be
    refused by the sequence-length check. An explicit `data=mock(seq_length=N)` or a later
    `data.seq_length=N` still wins.
    """
    if not isinstance(data, fdl.Buildable) or "seq_length" not in _parameters(data):
        return
    config = getattr(getattr(task, "model", None), "config", None)
    model_len = getattr(config, "seq_length", None) if isinstance(config, fdl.Buildable) else None
    if isinstance(model_len, int) and not isinstance(model_len, bool):
        data.seq_length = model_len


def _resolve(task: fdl.Buildable, key: str, raw: str) -> tuple[fdl.Buildable, str, Any]:
    node: fdl.Buildable = task
    walked: list[str] = []
    parts = key.split(".")
    for part in parts:
        params = _parameters(node)
        if part not in params:
            owner = ".".join(walked) or "the task"
            raise ConfigError(
                key, raw, f"{owner} has no field '{part}'{did_you_mean(part, params)}",
                f"use one of: {', '.join(sorted(params))}",
            )
        walked.append(part)
        if len(walked) == len(parts):
            return node, part, params[part]
        child = getattr(node, part, None)
        if not isinstance(child, fdl.Buildable):
            child = _dataclass_config(node, part, child, params[part])
        if not isinstance(child, fdl.Buildable):
            raise ConfigError(
                ".".join(walked), child, "is not a configurable object here",
                f"set it to one first (e.g. {'.'.join(walked)}=<factory>) or drop the override",
            )
        node = child
    raise AssertionError("unreachable")


def _dataclass_config(node: fdl.Buildable, name: str, value: Any, annotation: Any) -> Any:
    """`inference_params.temperature=0` where inference_params defaults to None (or to a dataclass
    instance): the field becomes a config of its annotated dataclass, which the override then edits."""
    import dataclasses

    from nemolite.llm.recipe_io import to_config

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        config = to_config(value)
    else:
        members = [m for m in typing.get_args(annotation) if m is not type(None)] or [annotation]
        kinds = [m for m in members if inspect.isclass(m) and dataclasses.is_dataclass(m)]
        if value is not None or len(kinds) != 1:
            return value
        config = run.Config(kinds[0])
    setattr(node, name, config)
    return config


def _parameters(node: fdl.Buildable) -> dict[str, Any]:
    target = node.__fn_or_cls__
    signature = inspect.signature(target)
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # unresolvable forward references: fall back to no type information
        hints = {}
    return {
        name: hints.get(name, Any)
        for name, p in signature.parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name != "self"
    }


def parse_value(key: str, raw: str, annotation: Any, parent: fdl.Buildable | None = None) -> Any:
    """Parses `raw` as `annotation`; a mismatch is a ConfigError naming `key`."""
    raw = raw.strip()
    origin, members = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        if raw in _NONE_WORDS and type(None) in members:
            return None
        errors = []
        for member in (m for m in members if m is not type(None)):
            try:
                return parse_value(key, raw, member, parent)
            except ConfigError as error:
                errors.append(error.problem)
        raise ConfigError(key, raw, "; ".join(errors) or "cannot be None", f"give a {_name(annotation)}")
    if raw in _NONE_WORDS and annotation is not str:
        return None
    return _parse_plain(key, raw, annotation, origin, members, parent)


def _parse_plain(key: str, raw: str, annotation: Any, origin: Any, members: tuple, parent: Any) -> Any:
    unquoted = raw[1:-1] if len(raw) > 1 and raw[0] == raw[-1] and raw[0] in "'\"" else raw
    if annotation is bool:
        if raw in _TRUE | _FALSE:
            return raw in _TRUE
        raise ConfigError(key, raw, "expected true or false", f"write {key}=true or {key}=false")
    if annotation in (int, float):
        try:
            return annotation(raw)
        except ValueError:
            raise ConfigError(key, raw, f"expected {annotation.__name__}", f"write a number, e.g. {key}=2") from None
    if annotation in (str, Path):
        return annotation(unquoted)
    if origin is typing.Literal:
        if unquoted in [str(m) for m in members]:
            return next(m for m in members if str(m) == unquoted)
        raise UnknownChoiceError(key, unquoted, [str(m) for m in members])
    if inspect.isclass(annotation) and issubclass(annotation, enum.Enum):
        for member in annotation:
            if unquoted in (member.name, str(member.value)):
                return member
        raise UnknownChoiceError(key, unquoted, [m.name for m in annotation])
    if origin in (list, tuple, dict, set) or annotation in (list, tuple, dict):
        return _literal(key, raw, origin or annotation)
    if inspect.isclass(annotation) and annotation is not typing.Any:
        return _factory(key, unquoted, annotation, parent)
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return unquoted


def _literal(key: str, raw: str, kind: type) -> Any:
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, (list, tuple, dict, set)):
        raise ConfigError(key, raw, f"expected a {kind.__name__}", f"write it as a Python literal, e.g. {key}='[1, 2]'")
    return kind(value) if kind in (list, tuple, set) and not isinstance(value, dict) else value


def _factory(key: str, name: str, annotation: type, parent: Any) -> Any:
    """`data=mock`: a factory registered with nemo-run for the field's type."""
    from nemo_run.cli.cli_parser import parse_factory

    from nemolite.cli import plugins

    plugins.load_all_recipes()
    target = parent.__fn_or_cls__ if parent is not None else annotation
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return parse_factory(target, key.rsplit(".", 1)[-1], annotation, name)
    except Exception:
        choices = _factory_names(annotation)
        raise UnknownChoiceError(key, name, choices, what=f"{annotation.__name__} factory") from None


def _factory_names(annotation: type) -> list[str]:
    import catalogue
    from nemo_run.config import get_type_namespace

    return sorted(key[-1] for key in catalogue._get_all([get_type_namespace(annotation)]))


def _name(annotation: Any) -> str:
    members = [m for m in typing.get_args(annotation) if m is not type(None)]
    if typing.get_origin(annotation) in (Union, types.UnionType) and len(members) == 1:
        return _name(members[0])  # Optional[list[str]] -> "list"
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
