"""Heavy: a nemolite checkpoint (imported or trained, saved under any layout) -> a Hugging Face
model directory that `AutoModelForCausalLM.from_pretrained` loads.

The checkpoint is loaded into a one-process megatron model; tensors go through the family table
backwards and out into safetensors shards of at most `max_shard_bytes`, written one by one. The
config comes from the model config through the same table (on top of the imported model's own
config.json when there is one), and the tokenizer saved at import is copied along. Published
atomically, like an import.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
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


class ShardWriter:
    """Writes tensors into numbered safetensors shards and the index, like save_pretrained."""

    def __init__(self, directory: Path, max_bytes: int = MAX_SHARD_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.pending: dict[str, torch.Tensor] = {}
        self.pending_bytes = 0
        self.files: list[tuple[str, list[str]]] = []
        self.total = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        """Queues a tensor; writes the pending shard first when this one would overflow it."""
        size = tensor.numel() * tensor.element_size()
        if self.pending and self.pending_bytes + size > self.max_bytes:
            self.flush()
        self.pending[name] = tensor.detach().contiguous()
        self.pending_bytes += size
        self.total += size

    def flush(self) -> None:
        """Writes the pending tensors as the next shard."""
        from safetensors.torch import save_file

        if not self.pending:
            return
        name = f"part-{len(self.files):05d}.safetensors"
        save_file(self.pending, str(self.directory / name), metadata={"format": "pt"})
        self.files.append((name, list(self.pending)))
        self.pending, self.pending_bytes = {}, 0

    def close(self) -> None:
        """Flushes the last shard and names the files as transformers does (one file, or an index)."""
        self.flush()
        if len(self.files) == 1:
            (self.directory / self.files[0][0]).rename(self.directory / "model.safetensors")
            return
        n = len(self.files)
        weight_map = {}
        for i, (tmp_name, names) in enumerate(self.files):
            final = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            (self.directory / tmp_name).rename(self.directory / final)
            weight_map.update(dict.fromkeys(names, final))
        index = {"metadata": {"total_size": self.total}, "weight_map": dict(sorted(weight_map.items()))}
        (self.directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def write_weights(weights: dict[str, Any], saved: SavedModel, directory: Path, max_shard_bytes: int) -> int:
    """Streams the megatron tensors through the family table into shards; returns the count.

    `weights` maps each megatron name to its tensor, or (a fused SwiGLU `linear_fc1`, as
    `read_weights` gives it) to its [gate, up] halves.
    """
    config = saved.config
    vocab = int(config.vocab_size or 0)
    writer = ShardWriter(directory, max_shard_bytes)
    count = 0
    for step in converter.plan(saved.family, config):
        value = weights[step.ours]
        tensors = list(value) if isinstance(value, list | tuple) else converter.to_hf(step, value, config, vocab)
        for name, tensor in zip(step.hf, tensors, strict=True):
            writer.add(name, tensor.to(saved.dtype))
            count += 1
    writer.close()
    return count


def read_weights(saved: SavedModel) -> dict[str, Any]:
    """A checkpoint's weights (without LoRA adapters) by megatron name, read with no model built.

    The one-process model is built on the meta device only for its checkpoint keys and shapes; the
    loader fills freshly allocated tensors, and a fused SwiGLU weight stays as its two saved halves
    (no concatenation to split again for Hugging Face). Needs megatron_io's one-process world.
    """
    from megatron.core.dist_checkpointing.mapping import ShardedTensor, ShardedTensorFactory

    from nemolite.lightning import megatron_checkpoint as ckpt
    from nemolite.llm.gpt.model.conversion import megatron_io

    state = megatron_io.sharded_layout(saved.config, int(saved.config.vocab_size or 0), saved.dtype)
    template: dict[str, Any] = {}
    for key, entry in state.items():
        parts = entry.build() if isinstance(entry, ShardedTensorFactory) else entry
        if not isinstance(parts, list):
            parts = [parts]
        if not all(isinstance(p, ShardedTensor) for p in parts):
            continue  # _extra_state objects: nothing to export
        for part in parts:
            part.data = torch.empty(part.local_shape, dtype=part.data.dtype)
        template[key] = parts if len(parts) > 1 else parts[0]
    loaded = ckpt.load({"state_dict": {"model0": template}}, saved.checkpoint)
    return dict(loaded["state_dict"]["model0"])


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
    try:
        with megatron_io.single_process_megatron():
            if target == "hf-peft":
                from nemolite.llm.peft.merge import write_peft_adapter

                base = saved.meta.get("imported_from") or _imported_source(saved)
                count = write_peft_adapter(load_model(saved), list(converter.plan(saved.family, saved.config)),
                                           saved.config, saved.peft or {}, tmp, base)
            else:
                if saved.peft is None:  # the weights as saved: no model needed
                    weights = read_weights(saved)
                else:  # LoRA adapters merged into their weights, in the model
                    from nemolite.llm.peft.merge import merge_adapters

                    model = load_model(saved)
                    merge_adapters(model)
                    weights = model.state_dict()
                count = write_weights(weights, saved, tmp, max_shard_bytes)
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
