"""Fine-tuning from imported Hugging Face weights (`nemo://`), then export: transformers agrees.

A tiny Llama 3.2-style model (tied embeddings) over the byte tokenizer's 264 ids is imported under
$NEMO_HOME, fine-tuned for a few steps by `llm.finetune` restoring `nemo://tiny-llama`, and the
run's checkpoint exported: transformers' logits on the export equal nemolite's on the checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.llm.gpt.model import hf_models

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

BYTE_VOCAB = 264  # ByteTokenizer(): 256 bytes + pad/bos/eos, rounded up to a multiple of 8


def _finetune(tmp_path: Path, steps: int, peft: object = None, name: str = "tiny-llama") -> Path:
    from nemolite import lightning as nl
    from nemolite import llm
    from nemolite.llm.gpt.model.conversion import exporter

    config = exporter.read_saved(f"nemo://{name}").config
    trainer = nl.Trainer(accelerator="cpu", devices=1, max_steps=steps, strategy=nl.MegatronStrategy(),
                         enable_progress_bar=False, limit_val_batches=0, num_sanity_val_steps=0)
    optim = nl.MegatronOptimizerModule(nl.OptimizerConfig(lr=1e-2, use_distributed_optimizer=False))
    llm.finetune(
        model=llm.LlamaModel(config),
        data=llm.MockDataModule(seq_length=32, micro_batch_size=2, global_batch_size=2),
        trainer=trainer,
        log=nl.NeMoLogger(log_dir=str(tmp_path / "runs"), ckpt=nl.ModelCheckpoint(save_last=True)),
        resume=nl.AutoResume(restore_config=nl.RestoreConfig(path=f"nemo://{name}")),
        optim=optim,
        peft=peft,
    )
    (last,) = list((tmp_path / "runs").rglob("*-last"))
    return last


def test_finetune_from_nemo_uri_then_export_matches_transformers(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from nemolite import llm

    monkeypatch.setenv("NEMO_HOME", str(tmp_path / "nemo_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    original = hf_models.make_hf_model("llama32", tmp_path / "tiny-llama", vocab_size=BYTE_VOCAB)
    llm.import_ckpt(source=str(tmp_path / "tiny-llama"))
    checkpoint = _finetune(tmp_path, steps=3)
    meta = json.loads((checkpoint / "nemolite_ckpt.json").read_text())
    assert meta["context"] == str(tmp_path / "nemo_home" / "models" / "tiny-llama" / "context")

    out = llm.export_ckpt(path=str(checkpoint), output_path=str(tmp_path / "exported"))
    tuned = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    changed = [k for k, v in original.state_dict().items() if not torch.equal(v, tuned.state_dict()[k])]
    assert len(changed) > 10  # the fine-tune moved the weights
    tokens = hf_models.batch(size=(2, 16)) * 2  # ids < 200, inside the byte vocabulary
    with torch.no_grad():
        theirs = tuned(tokens).logits
    ours = hf_models.nemolite_logits(checkpoint, tokens, vocab=BYTE_VOCAB)
    assert (ours[..., :BYTE_VOCAB] - theirs).abs().max().item() <= 1e-5


def test_a_model_pretrained_from_scratch_exports_with_its_tokenizers_vocabulary(tmp_path: Path) -> None:
    """A pretrain whose model config leaves vocab_size to the tokenizer (as llama_tiny does) exports."""
    from nemolite import lightning as nl
    from nemolite import llm

    def pretrain(steps: int) -> None:
        config = llm.Llama32Config1B(num_layers=2, hidden_size=64, ffn_hidden_size=128, num_attention_heads=4,
                                     num_query_groups=2, kv_channels=16, seq_length=32, vocab_size=None)
        llm.pretrain(
            model=llm.LlamaModel(config),
            data=llm.MockDataModule(seq_length=32, micro_batch_size=2, global_batch_size=2),
            trainer=nl.Trainer(accelerator="cpu", devices=1, max_steps=steps, strategy=nl.MegatronStrategy(),
                               enable_progress_bar=False, limit_val_batches=0, num_sanity_val_steps=0),
            log=nl.NeMoLogger(log_dir=str(tmp_path / "runs"), ckpt=nl.ModelCheckpoint(save_last=True)),
            resume=nl.AutoResume(resume_if_exists=True, resume_ignore_no_checkpoint=True),
            optim=nl.MegatronOptimizerModule(nl.OptimizerConfig(lr=1e-2, use_distributed_optimizer=False)),
        )

    pretrain(1)
    pretrain(2)  # the recorded vocabulary does not stop the same config from resuming
    (checkpoint,) = list((tmp_path / "runs").rglob("*-last"))
    assert "step=2" in checkpoint.name
    out = llm.export_ckpt(path=str(checkpoint), output_path=str(tmp_path / "exported"))
    exported = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert exported.config.vocab_size == BYTE_VOCAB  # the mock data's byte tokenizer, not a padded size
    tokens = hf_models.batch(size=(2, 16)) * 2
    with torch.no_grad():
        theirs = exported(tokens).logits
    ours = hf_models.nemolite_logits(checkpoint, tokens, vocab=BYTE_VOCAB)
    assert (ours[..., :BYTE_VOCAB] - theirs).abs().max().item() <= 1e-5


@pytest.mark.slow  # ~40 s on 2 cores: a LoRA run plus three exports
def test_lora_finetune_exports_merged_weights_and_a_peft_adapter(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    peft = pytest.importorskip("peft")
    from nemolite import llm

    monkeypatch.setenv("NEMO_HOME", str(tmp_path / "nemo_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = hf_models.make_hf_model("llama31", tmp_path / "tiny-lora", vocab_size=BYTE_VOCAB)
    llm.import_ckpt(source=str(tmp_path / "tiny-lora"))
    checkpoint = _finetune(tmp_path, steps=3, peft=llm.LoRA(dim=4, alpha=8), name="tiny-lora")
    assert json.loads((checkpoint / "nemolite_ckpt.json").read_text())["peft"]["dim"] == 4
    tokens = hf_models.batch(size=(2, 16)) * 2
    ours = hf_models.nemolite_logits(checkpoint, tokens, vocab=BYTE_VOCAB)[..., :BYTE_VOCAB]
    with torch.no_grad():
        assert (ours - base(tokens).logits).abs().max().item() > 1e-3  # the adapters changed the model

    merged_hf = llm.export_ckpt(path=str(checkpoint), output_path=str(tmp_path / "merged_hf"))
    with torch.no_grad():
        theirs = transformers.AutoModelForCausalLM.from_pretrained(merged_hf).eval()(tokens).logits
    assert (ours - theirs).abs().max().item() <= 1e-5

    adapter_dir = llm.export_ckpt(path=str(checkpoint), target="hf-peft", output_path=str(tmp_path / "adapter"))
    assert sorted(p.name for p in adapter_dir.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    fresh = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "tiny-lora").eval()
    with torch.no_grad():
        theirs = peft.PeftModel.from_pretrained(fresh, adapter_dir).eval()(tokens).logits
    assert (ours - theirs).abs().max().item() <= 1e-5

    merged = llm.peft.merge_lora(str(checkpoint), str(tmp_path / "merged"))
    again = hf_models.nemolite_logits(Path(merged), tokens, vocab=BYTE_VOCAB)[..., :BYTE_VOCAB]
    assert (ours - again).abs().max().item() <= 1e-5


@pytest.mark.slow  # ~40 s on 2 cores: a DoRA run plus three exports
def test_dora_finetune_equals_peft_dora_and_the_merged_export(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """HF `peft`'s own DoRA (`use_dora=True`) on our exported adapter computes what nemolite computes."""
    peft = pytest.importorskip("peft")
    from nemolite import llm

    monkeypatch.setenv("NEMO_HOME", str(tmp_path / "nemo_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = hf_models.make_hf_model("llama31", tmp_path / "tiny-dora", vocab_size=BYTE_VOCAB)
    llm.import_ckpt(source=str(tmp_path / "tiny-dora"))
    checkpoint = _finetune(tmp_path, steps=3, peft=llm.peft.DoRA(dim=4, alpha=8), name="tiny-dora")
    assert json.loads((checkpoint / "nemolite_ckpt.json").read_text())["peft"]["method"] == "dora"
    tokens = hf_models.batch(size=(2, 16)) * 2
    ours = hf_models.nemolite_logits(checkpoint, tokens, vocab=BYTE_VOCAB)[..., :BYTE_VOCAB]
    with torch.no_grad():
        assert (ours - base(tokens).logits).abs().max().item() > 1e-3  # the adapters changed the model

    adapter_dir = llm.export_ckpt(path=str(checkpoint), target="hf-peft", output_path=str(tmp_path / "adapter"))
    assert json.loads((adapter_dir / "adapter_config.json").read_text())["use_dora"] is True
    fresh = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "tiny-dora").eval()
    with torch.no_grad():
        theirs = peft.PeftModel.from_pretrained(fresh, adapter_dir).eval()(tokens).logits
    assert (ours - theirs).abs().max().item() <= 1e-5

    merged_hf = llm.export_ckpt(path=str(checkpoint), output_path=str(tmp_path / "merged_hf"))
    with torch.no_grad():
        theirs = transformers.AutoModelForCausalLM.from_pretrained(merged_hf).eval()(tokens).logits
    assert (ours - theirs).abs().max().item() <= 1e-5
