"""`.nemo` files nemolite writes: NeMo's layout, exact round trip, and (opt-in) NeMo loads them.

The NeMo check needs a virtual environment with nemo_toolkit[asr]==3.0.0; point
NEMOLITE_NEMO_PYTHON at its python to run it (CI's optional NeMo step does).
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import torch
import yaml

from nemolite import asr
from nemolite.asr.models.fastconformer import CHAR_LABELS, fastconformer_ctc_config
from nemolite.asr.tokenizers import train_sentencepiece
from tests.asr.conftest import CLIPS, load_batch, randomize, tiny_size

ROOT = Path(__file__).resolve().parents[2]
NEMO_PYTHON = os.environ.get("NEMOLITE_NEMO_PYTHON")


def _model(kind: str, tmp_path: Path):
    if kind == "char":
        return asr.EncDecCTCModel(fastconformer_ctc_config(tiny_size(), labels=CHAR_LABELS))
    texts = json.loads((CLIPS[0].parent / "transcripts.json").read_text()) * 3
    tok = train_sentencepiece(texts, tmp_path / "tok", vocab_size=40)
    return asr.EncDecCTCModelBPE(fastconformer_ctc_config(tiny_size(), tokenizer_dir=str(tok)))


def _written(kind: str, tmp_path: Path) -> tuple[Path, dict]:
    torch.manual_seed(0)
    model = _model(kind, tmp_path)
    randomize(model, seed=3)
    model.eval()
    path = model.save_to(tmp_path / f"written_{kind}.nemo")
    signal, lengths = load_batch(CLIPS)
    with torch.no_grad():
        log_probs, enc_len, _ = model(input_signal=signal, input_signal_length=lengths)
    outputs = {"log_probs": log_probs, "encoded_len": enc_len, "transcripts": model.transcribe([str(c) for c in CLIPS])}
    torch.save(outputs, path.with_suffix(".expected.pt"))
    return path, outputs


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_written_file_has_nemo_layout_and_round_trips(kind: str, tmp_path: Path) -> None:
    path, outputs = _written(kind, tmp_path)
    with tarfile.open(path) as tar:
        names = tar.getnames()
        config = yaml.safe_load(tar.extractfile("./model_config.yaml").read())  # type: ignore[union-attr]
    assert "./model_config.yaml" in names and "./model_weights.ckpt" in names
    assert config["target"].startswith("nemo.collections.asr.models.ctc")
    if kind == "bpe":
        for key in ("model_path", "vocab_path", "spe_tokenizer_vocab"):
            ref = config["tokenizer"][key]
            assert ref.startswith("nemo:") and f"./{ref[5:]}" in names
    restored = asr.ASRModel.restore_from(path)
    signal, lengths = load_batch(CLIPS)
    with torch.no_grad():
        log_probs, enc_len, _ = restored(input_signal=signal, input_signal_length=lengths)
    assert torch.equal(log_probs, outputs["log_probs"])
    assert restored.transcribe([str(c) for c in CLIPS]) == outputs["transcripts"]
    assert len(set(outputs["transcripts"])) > 1  # the check is not about one repeated token


@pytest.mark.slow
@pytest.mark.skipif(not NEMO_PYTHON, reason="set NEMOLITE_NEMO_PYTHON to a python with nemo_toolkit[asr]")
@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_nemo_restores_nemolite_file_with_the_same_outputs(kind: str, tmp_path: Path) -> None:
    path, outputs = _written(kind, tmp_path)
    script = ROOT / "tools" / "nemo_reference" / "make_asr_reference.py"
    run = subprocess.run(
        [str(NEMO_PYTHON), str(script), "verify", str(path), *map(str, CLIPS)],
        capture_output=True, text=True, timeout=600, env=os.environ | {"HOME": str(tmp_path)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["class"] == {"char": "EncDecCTCModel", "bpe": "EncDecCTCModelBPE"}[kind]
    assert result["same_lengths"]
    assert result["max_abs_diff"] <= 1e-4
    assert result["transcripts"] == outputs["transcripts"]
