"""Hugging Face import and export against transformers itself, for every family (CPU, no downloads).

Each family's tiny random model (hf_models.py) is written with save_pretrained in several shards,
imported, and run by nemolite: its logits must equal transformers' (1e-5, fp32) and the padded
vocabulary rows must take no probability (the log-probs match too). Exporting the import must give
back every tensor bit for bit and an equivalent config.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.llm.gpt.model import hf_models

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def _nemo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEMO_HOME", str(tmp_path / "nemo_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("family", hf_models.FAMILIES)
def test_import_matches_transformers_and_export_round_trips(family: str, tmp_path: Path) -> None:
    from nemolite import llm

    src = tmp_path / "hf"
    reference = hf_models.make_hf_model(family, src)
    assert len(list(src.glob("*.safetensors"))) > 1  # sharded input
    imported = llm.import_ckpt(source=str(src))
    assert imported == tmp_path / "nemo_home" / "models" / "hf"
    assert (imported / "weights" / "nemolite_ckpt.json").is_file()
    assert not [p for p in imported.parent.iterdir() if p.name.endswith(".tmp")]

    tokens = hf_models.batch()
    ours = hf_models.nemolite_logits(imported, tokens)
    with torch.no_grad():
        theirs = reference(tokens).logits
    assert ours.shape[-1] == 128  # padded vocabulary
    assert (ours[..., : hf_models.VOCAB] - theirs).abs().max().item() <= 1e-5
    log_probs = torch.log_softmax(ours.float(), dim=-1)[..., : hf_models.VOCAB]
    assert (log_probs - torch.log_softmax(theirs, dim=-1)).abs().max().item() <= 1e-5

    out = llm.export_ckpt(path=str(imported), target="hf", output_path=str(tmp_path / "exported"))
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    before, after = reference.state_dict(), reloaded.state_dict()
    assert before.keys() == after.keys()
    assert [k for k in before if not torch.equal(before[k], after[k])] == []
    a, b = reference.config.to_dict(), reloaded.config.to_dict()
    a.pop("_name_or_path", None), b.pop("_name_or_path", None)
    assert a == b


def test_imported_config_has_the_family_features(tmp_path: Path) -> None:
    from nemolite import llm

    for family, expect in [("llama31", {"rope_scaling": True, "old_context_len": 64, "scale_factor": 8.0}),
                           ("llama32", {"share_embeddings_and_output_weights": True}),
                           ("qwen2", {"add_qkv_bias": True}),
                           ("qwen3", {"qk_layernorm": True, "kv_channels": 16}),
                           ("qwen3_moe", {"num_moe_experts": 4, "moe_router_pre_softmax": True,
                                          "moe_ffn_hidden_size": 32})]:
        hf_models.make_hf_model(family, tmp_path / family)
        out = llm.import_ckpt(source=f"hf://{tmp_path / family}")
        model = json.loads((out / "context" / "model.json").read_text())
        assert {k: model["config"][k] for k in expect} == expect, family


def test_model_config_is_checked_against_the_source(tmp_path: Path) -> None:
    from nemolite import llm
    from nemolite.errors import ConfigError

    hf_models.make_hf_model("llama32", tmp_path / "hf")
    wrong = llm.LlamaModel(llm.Llama32Config1B())
    with pytest.raises(ConfigError, match=r"model.config.num_layers=16: disagrees .* \(4\)"):
        llm.import_ckpt(model=wrong, source=str(tmp_path / "hf"))
    assert not (tmp_path / "nemo_home" / "models" / "hf").exists()
    right = llm.LlamaModel(llm.Llama32Config1B(num_layers=4, hidden_size=64, ffn_hidden_size=128,
                                               num_attention_heads=4, num_query_groups=2, vocab_size=100,
                                               layernorm_epsilon=1e-6, rope_scaling=False))
    out = llm.import_ckpt(model=right, source=str(tmp_path / "hf"))
    assert json.loads((out / "context" / "model.json").read_text())["config_class"].endswith("Llama32Config1B")


def test_bf16_import_trains_in_fp32_and_exports_bf16_bit_identical(tmp_path: Path) -> None:
    """Hub models are bf16: the checkpoint keeps bf16, loads into an fp32 (CPU) model, exports bf16."""
    from nemolite import llm
    from nemolite.llm.gpt.model.conversion import exporter, megatron_io

    reference = transformers.AutoModelForCausalLM.from_config(hf_models.hf_config("qwen2"), dtype=torch.bfloat16)
    reference.save_pretrained(tmp_path / "hf")
    imported = llm.import_ckpt(source=str(tmp_path / "hf"))
    saved = exporter.read_saved(imported)
    assert saved.dtype == torch.bfloat16
    with megatron_io.single_process_megatron():
        model = megatron_io.build_model(saved.config, hf_models.VOCAB, torch.float32)
        megatron_io.load_checkpoint(model, saved.checkpoint)
        fc2 = model.state_dict()["decoder.layers.0.mlp.linear_fc2.weight"]
    assert fc2.dtype == torch.float32
    assert torch.equal(fc2, reference.state_dict()["model.layers.0.mlp.down_proj.weight"].float())
    out = llm.export_ckpt(path="nemo://hf", output_path=str(tmp_path / "exported"))
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out)
    assert reloaded.dtype == torch.bfloat16
    assert all(torch.equal(v, reloaded.state_dict()[k]) for k, v in reference.state_dict().items())


def test_tokenizer_is_saved_with_the_import_and_used_by_default(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    from nemolite import llm
    from nemolite.lightning.resume import AutoResume, RestoreConfig
    from nemolite.llm.imported import use_imported_tokenizer

    hf_models.make_hf_model("llama32", tmp_path / "tok-model")
    words = {"<unk>": 0, "<s>": 1, "</s>": 2, "hello": 3, "world": 4}
    backend = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                         unk_token="<unk>").save_pretrained(tmp_path / "tok-model")
    imported = llm.import_ckpt(source=str(tmp_path / "tok-model"))
    assert (imported / "context" / "tokenizer" / "tokenizer.json").is_file()

    model = llm.LlamaModel(llm.LlamaConfig())
    data = llm.MockDataModule(seq_length=16, micro_batch_size=1, global_batch_size=1)
    use_imported_tokenizer(model, data, AutoResume(restore_config=RestoreConfig(path="nemo://tok-model")))
    assert data.tokenizer is model.tokenizer is not None
    assert model.tokenizer.build().text_to_ids("hello world") == [3, 4]

    exported = llm.export_ckpt(path="nemo://tok-model", output_path=str(tmp_path / "exported"))
    assert transformers.AutoTokenizer.from_pretrained(exported)("world hello")["input_ids"][-2:] == [4, 3]
