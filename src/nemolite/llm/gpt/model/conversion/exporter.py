"""Heavy: a nemolite checkpoint (imported or trained, saved under any layout) -> a Hugging Face
model directory that `AutoModelForCausalLM.from_pretrained` loads.

The checkpoint's tensors are read straight from its files (`checkpoint_reader`: no model, no
megatron; a LoRA fine-tune's go through a one-process megatron model to merge the adapters), go
through the family table backwards and out into safetensors shards of at most `max_shard_bytes`,
streamed one tensor at a time (the shapes, hence the headers, are known before any data is read). The
config comes from the model config through the same table (on top of the imported model's own
config.json when there is one), and the tokenizer saved at import is copied along. Published
atomically, like an import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nemolite.errors import ConfigError, DataFileError
from nemolite.lightning import model_store as store
from nemolite.llm.gpt.model.base import GPTConfig
from nemolite.llm.gpt.model.conversion import converter, hf_config
from nemolite.llm.gpt.model.conversion import families as fam

log = logging.getLogger("nemolite.convert")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MAX_SHARD_BYTES = 2 * 1024**3


@dataclasses.dataclass
class SavedModel:
    """What a checkpoint says about its model: config, family, dtype, and the import's context."""

    checkpoint: Path
    config: GPTConfig
    family: fam.Family
    dtype: torch.dtype
    context: Path | None
    meta: dict[str, Any]

    @property
    def peft(self) -> dict[str, Any] | None:
        """The LoRA settings of a LoRA fine-tune's checkpoint (None: no adapters)."""
        peft = self.meta.get("peft")
        return peft if isinstance(peft, dict) else None


def family_for(model_class: str | None, config: GPTConfig) -> fam.Family:
    """The family of a saved model: by its model class, else by its features."""
    moe = config.num_moe_experts is not None
    candidates = [f for f in fam.FAMILIES if f.model_class == model_class]
    for family in candidates:
        if any("{E}" in r.ours for r in family.weights) == moe:
            return family
    if config.qk_layernorm:
        return fam.QWEN3_MOE_FAMILY if moe else fam.QWEN3
    if config.add_qkv_bias:
        return fam.QWEN2
    return fam.MIXTRAL if moe else fam.LLAMA


def read_saved(path: str | Path) -> SavedModel:
    """The checkpoint `path` names (nemo://, model dir, checkpoint dir), checked and described."""
    from nemolite.lightning import exp_ckpt_dir as ckdir

    checkpoint = store.resolve_checkpoint(path, field="path")
    if not checkpoint.is_dir():
        raise DataFileError(checkpoint, "no such checkpoint directory",
                            "give nemo://<repo id>, an imported model directory or a run's checkpoint")
    info = ckdir.check_integrity(checkpoint)
    meta = info.meta
    context = store.context_of(checkpoint)
    model_json = store.read_json(context / store.MODEL_JSON) if context else {}
    config_class = meta.get("config_class") or model_json.get("config_class")
    fields = meta.get("model_config") or {}
    if not fields:
        raise DataFileError(checkpoint, "the checkpoint records no model config",
                            "export a checkpoint written by nemolite")
    cls = hf_config.load_class(config_class) if config_class else GPTConfig  # written before config_class
    names = {f.name for f in dataclasses.fields(cls)}
    config = cls(**{k: v for k, v in fields.items() if k in names})
    if not config.vocab_size and meta.get("vocab_size"):  # the tokenizer's, recorded by the run
        config = dataclasses.replace(config, vocab_size=int(meta["vocab_size"]))
    model_class = meta.get("model_class") or model_json.get("model_class")
    dtype = DTYPES.get(str(meta.get("dtype", "float32")), torch.float32)
    return SavedModel(checkpoint, config, family_for(model_class, config), dtype, context, meta)


#: torch dtype -> safetensors dtype name.
SAFETENSORS_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                      torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
                      torch.uint8: "U8", torch.bool: "BOOL"}

#: One output tensor: its HF name, shape, and the step that makes it (and which of its outputs).
Planned = tuple[str, tuple[int, ...], converter.Step, int]


def plan_shards(saved: SavedModel, shapes: dict[str, tuple[int, ...]], max_bytes: int) -> list[list[Planned]]:
    """The output tensors (names, shapes) grouped into shards of at most `max_bytes`, in plan order.

    `shapes` gives each megatron tensor's shape: the HF shapes follow from the family's transforms,
    run on meta tensors, so the shards and their headers are known before any data is read.
    """
    config = saved.config
    vocab = int(config.vocab_size or 0)
    size = torch.empty((), dtype=saved.dtype).element_size()
    shards: list[list[Planned]] = [[]]
    used = 0
    for step in converter.plan(saved.family, config):
        meta = torch.empty(shapes[step.ours], device="meta")
        for i, (name, tensor) in enumerate(zip(step.hf, converter.to_hf(step, meta, config, vocab), strict=True)):
            nbytes = tensor.numel() * size
            if shards[-1] and used + nbytes > max_bytes:
                shards.append([])
                used = 0
            shards[-1].append((name, tuple(tensor.shape), step, i))
            used += nbytes
    return shards


@dataclasses.dataclass(frozen=True)
class FileSlices:
    """An HF tensor as byte ranges of the checkpoint's files, in order: (file, offset, length)."""

    ranges: list[tuple[Path, int, int]]

    @property
    def nbytes(self) -> int:
        return sum(n for _, _, n in self.ranges)


#: What `fetch(step)` gives for each of a step's HF tensors: a tensor, or its bytes in files.
Source = torch.Tensor | FileSlices


def _write_all(fd: int, data: Any) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


def _copy_ranges(fd: int, slices: FileSlices) -> None:
    """Appends the bytes of `slices` to `fd`, file to file in the kernel where it can.

    `os.copy_file_range` (Linux) copies page-cache pages without mapping them into this process:
    no page faults, no user-space copy; elsewhere (or where the kernel refuses) 16 MiB reads.
    """
    for path, offset, length in slices.ranges:
        with open(path, "rb", buffering=0) as src:
            done = 0
            if hasattr(os, "copy_file_range"):
                with contextlib.suppress(OSError):
                    while done < length:
                        n = os.copy_file_range(src.fileno(), fd, length - done, offset + done)
                        if n == 0:
                            break
                        done += n
            while done < length:
                chunk = os.pread(src.fileno(), min(length - done, 16 << 20), offset + done)
                if not chunk:
                    raise DataFileError(path, f"ends before byte {offset + length}", "export a complete checkpoint")
                _write_all(fd, chunk)
                done += len(chunk)


def _write_shard(path: Path, tensors: list[Planned], dtype: torch.dtype,
                 fetch: Callable[[converter.Step], list[Source]]) -> int:
    """One safetensors file, written tensor by tensor (the header first: the shapes are known)."""
    size = torch.empty((), dtype=dtype).element_size()
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, _, _ in tensors:
        end = offset + math.prod(shape) * size
        header[name] = {"dtype": SAFETENSORS_DTYPES[dtype], "shape": list(shape), "data_offsets": [offset, end]}
        offset = end
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb", buffering=0) as f:
        fd = f.fileno()
        _write_all(fd, struct.pack("<Q", len(raw)) + raw)
        cached: tuple[converter.Step, list[Source]] | None = None
        for name, shape, step, i in tensors:
            if cached is None or cached[0] is not step:
                cached = (step, fetch(step))
            source = cached[1][i]
            if isinstance(source, FileSlices):
                if source.nbytes != math.prod(shape) * size:
                    raise DataFileError(name, f"{source.nbytes} bytes in the checkpoint, planned {shape}",
                                        "export a checkpoint of this model (its config and weights disagree)")
                _copy_ranges(fd, source)
                continue
            tensor = source.to(dtype).contiguous()
            if tuple(tensor.shape) != shape:
                raise DataFileError(name, f"shape {tuple(tensor.shape)}, planned {shape}",
                                    "export a checkpoint of this model (its config and weights disagree)")
            _write_all(fd, tensor.reshape(-1).view(torch.uint8).numpy().data)
    return offset


def write_weights(saved: SavedModel, directory: Path, max_shard_bytes: int, shapes: dict[str, tuple[int, ...]],
                  fetch: Callable[[converter.Step], list[Source]]) -> int:
    """The model's safetensors shards (and index, as save_pretrained writes them); returns the count.

    `fetch(step)` gives one plan step's HF tensors; shards are written one tensor at a time, so
    only the tensors of the step being written are in memory.
    """
    shards = plan_shards(saved, shapes, max_shard_bytes)
    n = len(shards)
    names = ["model.safetensors"] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    total = sum(_write_shard(directory / name, shard, saved.dtype, fetch) for name, shard in zip(names, shards,
                                                                                              strict=True))
    if n > 1:
        weight_map = {t[0]: name for name, shard in zip(names, shards, strict=True) for t in shard}
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return sum(len(shard) for shard in shards)


def checkpoint_fetch(saved: SavedModel) -> tuple[dict[str, tuple[int, ...]], Callable[[converter.Step],
                                                                                     list[Source]]]:
    """(megatron shapes, fetch) reading the checkpoint's files directly (`checkpoint_reader`).

    No model and no megatron: each step's tensor is read from whichever chunks of the checkpoint
    (saved under any layout) cover it, and a fused SwiGLU weight is split into its halves by the
    family's transform as for any other tensor. Where the HF tensors are runs of the saved
    tensor's rows, in the saved dtype, they are copied file to file (`row_slices`).
    """
    from nemolite.llm.gpt.model.conversion.checkpoint_reader import CheckpointReader

    reader = CheckpointReader(saved.checkpoint)
    config = saved.config
    vocab = int(config.vocab_size or 0)
    steps = list(converter.plan(saved.family, config))
    shapes = {step.ours: reader.shape(step.ours) for step in steps}

    def fetch(step: converter.Step) -> list[Source]:
        direct = row_slices(reader, step, config, vocab, saved.dtype)
        if direct is not None:
            return list(direct)
        return list(converter.to_hf(step, reader.read(step.ours), config, vocab))

    return shapes, fetch


def row_slices(reader: Any, step: converter.Step, config: GPTConfig, vocab: int,
               dtype: torch.dtype) -> list[FileSlices] | None:
    """A step's HF tensors as byte ranges of the checkpoint's files, or None (read and convert them).

    Every transform in the family tables picks whole rows of the megatron tensor (a split of
    fused rows, the un-interleaving of a grouped QKV, the vocabulary's first rows): running it on
    the row numbers (`to_hf` on an arange) says which rows, in which order, make each HF tensor.
    """
    found = reader.row_pieces(step.ours)
    if found is None or found[0] != dtype:
        return None
    _, row_bytes, pieces = found
    rows = converter.to_hf(step, torch.arange(pieces[-1][1]), config, vocab)
    out = []
    for picked in rows:
        ranges: list[tuple[Path, int, int]] = []
        for first, end in _runs(picked.reshape(-1).tolist()):
            for start, stop, path, offset in pieces:
                lo, hi = max(first, start), min(end, stop)
                if lo >= hi:
                    continue
                at, n = offset + (lo - start) * row_bytes, (hi - lo) * row_bytes
                if ranges and ranges[-1][0] == path and ranges[-1][1] + ranges[-1][2] == at:
                    ranges[-1] = (path, ranges[-1][1], ranges[-1][2] + n)  # adjacent: one copy
                else:
                    ranges.append((path, at, n))
        out.append(FileSlices(ranges))
    return out


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """[3, 4, 5, 9, 10] -> [(3, 6), (9, 11)]: runs of consecutive row numbers, as [first, end)."""
    runs: list[tuple[int, int]] = []
    for r in rows:
        if runs and runs[-1][1] == r:
            runs[-1] = (runs[-1][0], r + 1)
        else:
            runs.append((r, r + 1))
    return runs


def model_fetch(weights: dict[str, torch.Tensor], saved: SavedModel) -> tuple[
        dict[str, tuple[int, ...]], Callable[[converter.Step], list[Source]]]:
    """(megatron shapes, fetch) from an in-memory model's state dict (a LoRA fine-tune, merged)."""
    config = saved.config
    vocab = int(config.vocab_size or 0)
    shapes = {step.ours: tuple(weights[step.ours].shape) for step in converter.plan(saved.family, config)}

    def fetch(step: converter.Step) -> list[Source]:
        return list(converter.to_hf(step, weights[step.ours], config, vocab))

    return shapes, fetch


def write_config(saved: SavedModel, directory: Path) -> None:
    """config.json (and generation_config.json, tokenizer files) for the exported model."""
    base = store.read_json(saved.context / store.HF_CONFIG) if saved.context else {}
    hf = hf_config.hf_from_config(saved.config, saved.family, base)
    hf["torch_dtype"] = str(saved.dtype).replace("torch.", "")
    hf.pop("dtype", None)
    (directory / "config.json").write_text(json.dumps(hf, indent=2, sort_keys=True))
    if saved.context is None:
        return
    if (saved.context / "generation_config.json").is_file():
        shutil.copy2(saved.context / "generation_config.json", directory / "generation_config.json")
    tok = saved.context / store.TOKENIZER
    if tok.is_dir():
        for item in tok.iterdir():
            shutil.copy2(item, directory / item.name)


def load_model(saved: SavedModel) -> Any:
    """The saved model in this one process (with its LoRA adapters, if it has some); needs megatron_io's world."""
    from nemolite.llm.gpt.model.conversion import megatron_io

    model = megatron_io.build_model(saved.config, int(saved.config.vocab_size or 0), saved.dtype)
    peft = saved.peft
    if peft is not None:
        from nemolite.llm.peft import DoRA, LoRA
        from nemolite.llm.peft.lora_transform import apply_lora

        spec_cls = DoRA if peft.get("method") == "dora" else LoRA
        spec = spec_cls(target_modules=tuple(peft["target_modules"]), dim=peft["dim"], alpha=peft["alpha"],
                    dropout=peft.get("dropout", 0.0))
        apply_lora([model], spec, seed=int(peft.get("seed", 0)))
    megatron_io.load_checkpoint(model, saved.checkpoint)
    return model


TARGETS = ("hf", "hf-peft")


def _prepare(path: str | Path, output_path: str | Path, overwrite: bool) -> tuple[Path, SavedModel]:
    final = Path(output_path)
    if final.exists() and not overwrite:
        raise ConfigError("output_path", str(final), "already exists", "pass overwrite=True to replace it")
    saved = read_saved(path)
    if not saved.config.vocab_size:
        raise ConfigError("model.config.vocab_size", None, "the checkpoint records no vocabulary size",
                          "export a checkpoint whose model config sets vocab_size")
    return final, saved


def export_hf(path: str | Path, output_path: str | Path, overwrite: bool = False,
              max_shard_bytes: int = MAX_SHARD_BYTES, target: str = "hf") -> Path:
    """Exports the checkpoint `path` to a Hugging Face directory `output_path`; returns it.

    `target="hf"` writes the whole model (LoRA adapters merged into their weights);
    `target="hf-peft"` writes only a LoRA fine-tune's adapters, as a `peft` adapter directory.
    """
    from nemolite.llm.gpt.model.conversion import megatron_io

    final, saved = _prepare(path, output_path, overwrite)
    if target == "hf-peft" and saved.peft is None:
        raise ConfigError("target", target, f"{saved.checkpoint} holds no LoRA adapters",
                          "use target=hf for a fully fine-tuned or imported model")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    # The weights as saved are read from the files; a LoRA fine-tune's go through a megatron model.
    needs_model = target == "hf-peft" or saved.peft is not None
    try:
        with megatron_io.single_process_megatron() if needs_model else contextlib.nullcontext():
            if target == "hf-peft":
                from nemolite.llm.peft.merge import write_peft_adapter

                base = saved.meta.get("imported_from") or _imported_source(saved)
                count = write_peft_adapter(load_model(saved), list(converter.plan(saved.family, saved.config)),
                                           saved.config, saved.peft or {}, tmp, base)
            else:
                if saved.peft is None:  # the weights as saved: read from the files, no model
                    shapes, fetch = checkpoint_fetch(saved)
                else:  # LoRA adapters merged into their weights, in the model
                    from nemolite.llm.peft.merge import merge_adapters

                    model = load_model(saved)
                    merge_adapters(model)
                    shapes, fetch = model_fetch(model.state_dict(), saved)
                count = write_weights(saved, tmp, max_shard_bytes, shapes, fetch)
                write_config(saved, tmp)
        store.publish_dir(tmp, final, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %s (%d tensors) to %s", saved.checkpoint, count, final)
    return final


def _imported_source(saved: SavedModel) -> str | None:
    if saved.context is None:
        return None
    return store.read_json(saved.context / store.MODEL_JSON).get("source")


def merge_lora_checkpoint(path: str | Path, output_path: str | Path, overwrite: bool = False) -> Path:
    """A LoRA fine-tune's checkpoint with its adapters merged: a plain nemolite checkpoint."""
    from nemolite.lightning import megatron_checkpoint as ckpt
    from nemolite.llm.gpt.model.conversion import megatron_io

    final, saved = _prepare(path, output_path, overwrite)
    if saved.peft is None:
        raise ConfigError("lora_checkpoint_path", str(path), "holds no LoRA adapters",
                          "give the checkpoint of a LoRA fine-tune (peft=LoRA())")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        with megatron_io.single_process_megatron():
            from nemolite.llm.peft.merge import merge_adapters

            model = load_model(saved)
            merge_adapters(model)
            sharded = {k: v for k, v in ckpt.model_sharded_state_dict([model])["model0"].items()
                       if "_adapter." not in k}
            meta = {k: v for k, v in saved.meta.items() if k != "peft"} | {"merged_from": str(saved.checkpoint)}
            megatron_io.save_checkpoint_state({"model0": sharded}, tmp, meta)
        store.publish_dir(tmp, final, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
