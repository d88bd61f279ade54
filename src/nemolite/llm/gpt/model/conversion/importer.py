"""Heavy: a Hugging Face model -> a nemolite model directory (weights, config, tokenizer).

Tensors stream from the safetensors shards through the family table into the `torch_dist`
checkpoint training runs restore: the checkpoint's keys and shapes come from a megatron model
built on the meta device, and each tensor is read and converted when the writer reaches it. Everything is written into a hidden temporary directory next to the destination and
renamed into place at the end: an import that fails leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nemolite.errors import ConfigError, DataFileError
from nemolite.lightning import model_store as store
from nemolite.llm.gpt.model.base import GPTConfig, GPTModel
from nemolite.llm.gpt.model.conversion import converter, hf_config, hf_source
from nemolite.llm.gpt.model.conversion import families as fam

if TYPE_CHECKING:
    from nemolite.llm.gpt.model.conversion.megatron_io import Loaders

log = logging.getLogger("nemolite.convert")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def check_model_matches(model: GPTModel, derived: GPTConfig, family: fam.Family, source: str) -> None:
    """`ConfigError` naming the first field where `model.config` and the HF config disagree."""
    ours = model.config
    for name, value in hf_config.mapped_fields(derived, family).items():
        mine = getattr(ours, name)
        if name == "num_query_groups":
            mine, value = ours.query_groups, derived.query_groups
        if name == "kv_channels":
            mine = ours.kv_channels or ours.hidden_size // ours.num_attention_heads
            value = derived.kv_channels or derived.hidden_size // derived.num_attention_heads
        if mine != value and not (isinstance(mine, float | int) and isinstance(value, float | int)
                                  and float(mine) == float(value)):
            raise ConfigError(f"model.config.{name}", mine, f"disagrees with {source}'s config.json "
                              f"({value!r})", f"use a model config with {name}={value!r}, or leave model= "
                              "out to take the source's")


def target_config(model: GPTModel | None, hf: dict[str, Any], source: str) -> tuple[GPTConfig, fam.Family, Any]:
    """(config, family, model class path) of the import: the given model's, checked, or derived."""
    family = hf_config.family_of(hf_config.normalized(hf))
    derived = hf_config.config_from_hf(hf)
    if model is None:
        return derived, family, family.model_class
    check_model_matches(model, derived, family, source)
    return model.config, family, hf_config.class_path(model)


def _dtype(hf: dict[str, Any]) -> torch.dtype:
    name = hf.get("torch_dtype") or hf.get("dtype") or "float32"
    return DTYPES.get(str(name).replace("torch.", ""), torch.float32)


def sharded_state_from_hf(reader: hf_source.ShardReader, family: fam.Family, config: GPTConfig,
                          state: dict[str, Any], padded_vocab: int) -> tuple[dict[str, Any], Loaders, int]:
    """`state` (`megatron_io.sharded_layout`) mapped to the HF shards; (state, loaders, tensors mapped).

    The layout gives each tensor's checkpoint key, shape and offsets; every shape is checked here
    against the safetensors headers (the transforms run on meta tensors), before anything is
    written, and each shard of the checkpoint gets a loader that reads and converts its HF tensors
    when the writer comes to it (`megatron_io.in_process_strategy`): the import holds about one
    tensor at a time, not the model. megatron's fused gate/up weight (`linear_fc1` of a SwiGLU
    MLP) is saved as its two halves, straight from the two HF tensors.
    """
    from megatron.core.dist_checkpointing.mapping import ShardedTensor, ShardedTensorFactory

    used: set[str] = set()
    loaders: Loaders = {}
    filled: set[str] = set()
    for step in converter.plan(family, config):
        metas = [tuple(reader.meta(name).shape) for name in step.hf]
        entry = state.get(step.ours)
        values: list[tuple[int, ...] | None]
        if isinstance(entry, ShardedTensorFactory) and step.op == fam.GATE_UP:
            parts, values = entry.build(), list(metas)  # [gate rows, up rows] of the fused weight
            reads = [functools.partial(reader.get, name) for name in step.hf]
        elif isinstance(entry, ShardedTensor):
            parts, values = [entry], [converter.ours_shape(step, metas, config, padded_vocab)]
            reads = [functools.partial(_convert, reader, step, config, padded_vocab)]
        else:
            parts, values, reads = [], [], []
        if not parts or len(parts) != len(values) or any(
                tuple(p.local_shape) != v for p, v in zip(parts, values, strict=True)):
            shapes = [tuple(p.local_shape) for p in parts] or None
            raise DataFileError(step.hf[0], f"shape {metas[0]} does not fit {step.ours} {shapes}",
                                "the weights do not match config.json; re-download the model")
        for part, read in zip(parts, reads, strict=True):
            loaders[(part.key, tuple(part.global_offset))] = read
        state[step.ours] = parts if len(parts) > 1 else parts[0]
        filled.add(step.ours)
        used.update(step.hf)
    unused = sorted(set(reader.names()) - used - {"lm_head.weight"})
    if unused:
        raise DataFileError(unused[0], f"{len(unused)} tensor(s) nemolite does not map (e.g. this one)",
                            "this checkpoint has parts the model family does not; not importable")
    empty = [key for key, value in state.items()
             if isinstance(value, ShardedTensorFactory | ShardedTensor) and key not in filled]
    if empty:
        raise DataFileError(empty[0], f"{len(empty)} weight(s) of the model not in the family table (e.g. this one)",
                            "this model family's conversion table is incomplete")
    return state, loaders, len(used)


def _convert(reader: hf_source.ShardReader, step: converter.Step, config: GPTConfig, padded_vocab: int) -> Any:
    return converter.to_ours(step, [reader.get(name) for name in step.hf], config, padded_vocab)


def _copy_context(src: Path, context: Path, hf: dict[str, Any], config: GPTConfig, model_class: str,
                  source: str) -> None:
    context.mkdir(parents=True)
    (context / store.HF_CONFIG).write_text(json.dumps(hf, indent=1, sort_keys=True))
    model_json = {"model_class": model_class, "config_class": hf_config.class_path(config),
                  "config": dataclasses.asdict(config), "source": source}
    (context / store.MODEL_JSON).write_text(json.dumps(model_json, indent=1, sort_keys=True))
    if (src / "generation_config.json").is_file():
        shutil.copy2(src / "generation_config.json", context / "generation_config.json")
    tok = context / store.TOKENIZER
    tok.mkdir()
    for name in hf_source.TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, tok / name)


def checkpoint_meta(config: GPTConfig, model_class: str, dtype: torch.dtype, source: str) -> dict[str, Any]:
    """The marker of an imported checkpoint: step 0 with the model's config and origin."""
    simple = {k: v for k, v in dataclasses.asdict(config).items()
              if isinstance(v, int | float | str | bool) or v is None}
    return {"step": 0, "epoch": 0, "consumed_samples": 0, "end": False, "time": time.time(),
            "metrics": {}, "monitor": None, "score": None, "world_size": 1, "format": "torch_dist",
            "model_config": simple, "model_class": model_class, "config_class": hf_config.class_path(config),
            "dtype": str(dtype).replace("torch.", ""), "imported_from": source}


def import_hf(model: GPTModel | None, source: str, output_path: str | Path | None = None,
              overwrite: bool = False) -> Path:
    """Imports `source` into `output_path` (default `$NEMO_HOME/models/<repo id>`); returns it."""
    from nemolite.llm.gpt.model import megatron_config as mc
    from nemolite.llm.gpt.model.conversion import megatron_io

    final = Path(output_path) if output_path else store.model_dir(hf_source.default_name(source))
    if final.exists() and not overwrite:
        raise ConfigError("output_path", str(final), "already exists", "pass overwrite=True to replace it")
    src = hf_source.resolve(source)
    hf = hf_source.read_config(src.directory)
    config, family, model_class = target_config(model, hf, source)
    dtype = _dtype(hf)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        with hf_source.ShardReader(src.directory) as reader, megatron_io.single_process_megatron():
            vocab = int(config.vocab_size or hf["vocab_size"])
            padded = mc.padded_vocab_size(vocab, config.make_vocab_size_divisible_by, 1)
            layout = megatron_io.sharded_layout(config, vocab, dtype)
            state, loaders, count = sharded_state_from_hf(reader, family, config, layout, padded)
            _copy_context(src.directory, tmp / store.CONTEXT, hf, config, model_class, source)
            meta = checkpoint_meta(config, model_class, dtype, source)
            meta["context"] = str(final / store.CONTEXT)
            megatron_io.save_checkpoint_state({"model0": state}, tmp / store.WEIGHTS, meta, loaders)
            del layout, state, loaders
        store.publish_dir(tmp, final, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("imported %s (%d tensors, %s) into %s", source, count, meta["dtype"], final)
    return final
