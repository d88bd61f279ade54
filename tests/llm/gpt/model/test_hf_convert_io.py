"""The conversion's own checkpoint writer and reader (megatron_io.in_process_strategy, checkpoint_reader).

The import writes megatron's `torch_dist` checkpoint in this process, reading each HF tensor when
the writer reaches it; the export reads the checkpoint's files by key without megatron. These
tests pin what both rely on: the files hold exactly megatron's layout (keys, global shapes, dtypes)
and megatron's own loader reads them back; the reader's key mapping is megatron's; chunks saved
under a split layout are reassembled; a failed write never publishes a checkpoint; the streamed
safetensors shards load in safetensors and transformers. (Loading into TP=2 / PP=2 / EP=2 layouts:
tests/multiproc/test_hf_parallel.py, slow.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.llm.gpt.model import hf_models
from tests.llm.gpt.model.test_hf_convert import _nemo_home  # noqa: F401 - the same autouse NEMO_HOME / offline

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _layout(family: str, directory: Path) -> tuple[Any, dict[str, Any]]:
    """(config, megatron's one-process sharded layout) of a family's tiny model."""
    from nemolite.llm.gpt.model.conversion import hf_source, importer, megatron_io

    hf = hf_source.read_config(directory)
    config, _, _ = importer.target_config(None, hf, str(directory))
    with megatron_io.single_process_megatron():
        layout = megatron_io.sharded_layout(config, config.vocab_size, importer._dtype(hf))
    return config, layout


def _tensors(layout: dict[str, Any]) -> list[tuple[str, Any]]:
    """(state dict name, ShardedTensor) of every tensor in a layout (factories built)."""
    from megatron.core.dist_checkpointing.mapping import ShardedTensor, ShardedTensorFactory

    out = []
    for name, entry in layout.items():
        parts = entry.build() if isinstance(entry, ShardedTensorFactory) else entry
        for part in parts if isinstance(parts, list) else [parts]:
            if isinstance(part, ShardedTensor):
                out.append((name, part))
    return out


@pytest.mark.parametrize("family", ["llama32", "mixtral", "qwen3_moe"])
def test_reader_keys_and_written_files_are_megatrons_layout(family: str, tmp_path: Path) -> None:
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import BytesStorageMetadata, TensorStorageMetadata

    from nemolite import llm
    from nemolite.llm.gpt.model.conversion.checkpoint_reader import (
        CheckpointReader,
        checkpoint_key,
        read_metadata,
    )

    src = tmp_path / "hf"
    hf_models.make_hf_model(family, src)
    _, layout = _layout(family, src)
    tensors = _tensors(layout)
    for name, part in tensors:  # the export reader's names -> megatron's keys and leading offsets
        assert checkpoint_key(name) == (part.key, tuple(part.global_offset[: part.prepend_axis_num])), name

    imported = llm.import_ckpt(source=str(src), output_path=str(tmp_path / "imported"))
    weights = imported / "weights"
    metadata = FileSystemReader(str(weights)).read_metadata().state_dict_metadata
    expected = {part.key: (tuple(part.global_shape), part.data.dtype) for _, part in tensors}
    written = {k: (tuple(v.size), v.properties.dtype) for k, v in metadata.items()
               if isinstance(v, TensorStorageMetadata)}
    assert written == expected
    objects = {k.split("/")[0] for k, v in metadata.items() if isinstance(v, BytesStorageMetadata)}
    assert objects == {entry.key for entry in layout.values() if type(entry).__name__ == "ShardedObject"} | {
        entry.key for e in layout.values() if isinstance(e, list) for entry in e
        if type(entry).__name__ == "ShardedObject"}
    assert json.loads((weights / "metadata.json").read_text())["sharded_backend"] == "torch_dist"
    # The export reads .metadata without torch.distributed.checkpoint: the same tensors and places.
    full = FileSystemReader(str(weights)).read_metadata()
    light_tensors, light_storage = read_metadata(weights / ".metadata")
    assert light_tensors == {k: (tuple(v.size), v.properties.dtype, [(tuple(c.offsets), tuple(c.sizes))
                                                                     for c in v.chunks])
                             for k, v in metadata.items() if isinstance(v, TensorStorageMetadata)}
    assert light_storage == {(i.fqn, tuple(i.offset)): (v.relative_path, v.offset, v.length)
                             for i, v in full.storage_data.items() if i.offset is not None}
    assert sorted(p.name for p in weights.glob("*.distcp")) == ["__0_0.distcp", "__0_1.distcp"]

    # megatron's own loader (dist_checkpointing.load, into a one-process model) and the export
    # reader read the same tensors back.
    from nemolite.llm.gpt.model.conversion import exporter, megatron_io

    with megatron_io.single_process_megatron():
        model = exporter.load_model(exporter.read_saved(imported))
    reader = CheckpointReader(weights)
    compared = 0
    for name, value in model.state_dict().items():
        if isinstance(value, torch.Tensor) and "_extra_state" not in name:
            assert torch.equal(reader.read(name), value.to(reader.meta(name).dtype)), name
            compared += 1
    assert compared == len(layout) - sum("_extra_state" in k for k in layout)


def test_reader_reassembles_a_split_layout(tmp_path: Path) -> None:
    """Chunks saved as TP-style column/row splits of per-layer tensors read back whole."""
    from megatron.core.dist_checkpointing.mapping import ShardedTensor

    from nemolite.llm.gpt.model.conversion import megatron_io
    from nemolite.llm.gpt.model.conversion.checkpoint_reader import CheckpointReader

    full = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    embedding = torch.randn(10, 4, generator=torch.Generator().manual_seed(1))
    state: dict[str, Any] = {}
    for layer in range(3):
        for part in range(2):  # row-parallel split of the input dimension
            data = full[layer][:, part * 2:(part + 1) * 2].clone()
            state[f"l{layer}p{part}"] = ShardedTensor.from_rank_offsets(
                "decoder.layers.mlp.linear_fc2.weight", data, (0, layer, 3), (2, part, 2), prepend_axis_num=1)
    qkv = torch.randn(3, 8, 2, generator=torch.Generator().manual_seed(2)).to(torch.bfloat16)
    for part in range(2):  # column-parallel split of the output rows, one chunk holding every layer
        state[f"q{part}"] = ShardedTensor.from_rank_offsets(
            "decoder.layers.self_attention.linear_qkv.weight", qkv[:, part * 4:(part + 1) * 4].clone(), (1, part, 2))
    for part in range(2):  # vocabulary-parallel split of the rows
        state[f"e{part}"] = ShardedTensor.from_rank_offsets(
            "embedding.word_embeddings.weight", embedding[part * 5:(part + 1) * 5].clone(), (0, part, 2))
    with megatron_io.single_process_megatron():
        megatron_io.save_checkpoint_state(state, tmp_path / "ckpt", {"step": 0})
    reader = CheckpointReader(tmp_path / "ckpt")
    for layer in range(3):
        assert torch.equal(reader.read(f"decoder.layers.{layer}.mlp.linear_fc2.weight"), full[layer])
        assert torch.equal(reader.read(f"decoder.layers.{layer}.self_attention.linear_qkv.weight"), qkv[layer])
    assert reader.shape("decoder.layers.0.mlp.linear_fc2.weight") == (6, 4)
    assert torch.equal(reader.read("embedding.word_embeddings.weight"), embedding)
    # Row splits are also found as byte ranges of the files (export copies those file to file);
    # a split of another dimension is not.
    assert reader.row_pieces("decoder.layers.1.mlp.linear_fc2.weight") is None
    for name, expected in [("decoder.layers.1.self_attention.linear_qkv.weight", qkv[1]),
                           ("decoder.layers.2.self_attention.linear_qkv.weight", qkv[2]),
                           ("embedding.word_embeddings.weight", embedding)]:
        found = reader.row_pieces(name)
        assert found is not None and len(found[2]) == 2, name
        dtype, row_bytes, pieces = found
        data = b"".join(_read_bytes(path, offset, (end - start) * row_bytes) for start, end, path, offset in pieces)
        assert torch.equal(torch.frombuffer(bytearray(data), dtype=dtype).view(expected.shape), expected), name


def _read_bytes(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


@pytest.mark.parametrize("family,kernel_copy", [("llama32", True), ("mixtral", True), ("llama32", False)])
def test_export_of_a_one_process_checkpoint_copies_file_to_file(family: str, kernel_copy: bool, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Every tensor of an imported checkpoint goes out as byte ranges (no read, no conversion), exactly;
    also where the OS has no `copy_file_range` (macOS: reads and writes instead)."""
    import os

    from safetensors.torch import load_file

    from nemolite import llm
    from nemolite.llm.gpt.model.conversion import exporter
    from nemolite.llm.gpt.model.conversion.checkpoint_reader import CheckpointReader

    src = tmp_path / "hf"
    hf_models.make_hf_model(family, src)
    imported = llm.import_ckpt(source=str(src), output_path=str(tmp_path / "imported"))

    def refuse(self: Any, name: str) -> Any:
        raise AssertionError(f"{name} was read and converted, not copied")

    monkeypatch.setattr(CheckpointReader, "read", refuse)
    if not kernel_copy:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    out = exporter.export_hf(imported, tmp_path / "exported", max_shard_bytes=200_000)
    seen: dict[str, Any] = {}
    before: dict[str, Any] = {}  # the files transformers wrote
    for directory, tensors in ((out, seen), (src, before)):
        for f in directory.glob("*.safetensors"):
            tensors |= load_file(str(f))
    assert seen.keys() == before.keys() and len(seen) > 20
    assert [k for k in seen if seen[k].dtype != before[k].dtype or not torch.equal(seen[k], before[k])] == []


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # torch's writer thread
@pytest.mark.parametrize("fail_on", ["model.layers.0.self_attn.q_proj.weight", "model.layers.3.mlp.down_proj.weight",
                                     "model.embed_tokens.weight"])
def test_a_failed_write_publishes_nothing(fail_on: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read failing in either writer thread: an error, no checkpoint, no temporary directory."""
    from nemolite import llm
    from nemolite.llm.gpt.model.conversion import hf_source

    src = tmp_path / "hf"
    hf_models.make_hf_model("llama32", src)
    real_get = hf_source.ShardReader.get

    def get(self: Any, name: str) -> Any:
        if name == fail_on:
            raise OSError(f"disk read failed: {name}")
        return real_get(self, name)

    monkeypatch.setattr(hf_source.ShardReader, "get", get)
    out = tmp_path / "out" / "imported"
    with pytest.raises(OSError, match="disk read failed"):  # the reader's own error, from any thread
        llm.import_ckpt(source=str(src), output_path=str(out))
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_export_streams_several_shards_that_transformers_loads(tmp_path: Path) -> None:
    from safetensors import safe_open

    from nemolite import llm
    from nemolite.llm.gpt.model.conversion.exporter import export_hf

    src = tmp_path / "hf"
    reference = hf_models.make_hf_model("qwen2", src)
    imported = llm.import_ckpt(source=str(src), output_path=str(tmp_path / "imported"))
    out = export_hf(imported, tmp_path / "exported", max_shard_bytes=40_000)
    files = sorted(out.glob("*.safetensors"))
    assert len(files) > 3
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {f.name for f in files}
    before = reference.state_dict()
    seen = {}
    for f in files:
        with safe_open(str(f), framework="pt") as opened:
            for name in opened.keys():  # noqa: SIM118 - safe_open has no __iter__
                assert index["weight_map"][name] == f.name
                seen[name] = opened.get_tensor(name)
    assert seen.keys() == before.keys() - {"lm_head.weight"} or seen.keys() == before.keys()
    assert [k for k in seen if not torch.equal(seen[k], before[k])] == []
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in seen.values())
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    after = reloaded.state_dict()
    assert [k for k in before if not torch.equal(before[k], after[k])] == []


def test_import_writes_records_without_crc_in_every_writer_thread(tmp_path: Path) -> None:
    """torch.save's CRC32 (~1.2 s of CPU for a 1B model) is off in torch's writer threads too
    (the config patch is thread-local), and stays on for the caller's own later saves."""
    import zipfile

    from torch.utils.serialization import config as serialization_config

    from nemolite import llm
    from nemolite.llm.gpt.model.conversion.checkpoint_reader import CheckpointReader, _FileView

    src = tmp_path / "hf"
    hf_models.make_hf_model("llama32", src)
    imported = llm.import_ckpt(source=str(src), output_path=str(tmp_path / "imported"))
    reader = CheckpointReader(imported / "weights")
    crcs: dict[str, list[int]] = {}
    for relative, offset, length in reader.storage.values():
        with open(reader.path / relative, "rb") as f:
            infos = zipfile.ZipFile(_FileView(f, offset, length)).infolist()
        crcs.setdefault(relative, []).extend(i.CRC for i in infos if "/data/" in i.filename)
    assert len(crcs) == 2, crcs.keys()  # both threads wrote a file
    assert {name: sum(c != 0 for c in values) for name, values in crcs.items()} == dict.fromkeys(crcs, 0)
    assert serialization_config.save.compute_crc32 is True
