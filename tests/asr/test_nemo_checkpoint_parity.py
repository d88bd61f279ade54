"""`.nemo` files written by NeMo 3.0 load into nemolite with NeMo's log-probs and transcripts.

The files and NeMo's outputs come from tools/nemo_reference/make_asr_reference.py (a tiny
FastConformer-CTC with random weights and batch-norm statistics, char and BPE vocabularies).
"""

from __future__ import annotations

import pytest
import torch

from nemolite import asr
from tests.asr.conftest import CLIPS, REFERENCE, load_batch, load_reference

KINDS = {"char": asr.EncDecCTCModel, "bpe": asr.EncDecCTCModelBPE}


@pytest.fixture(scope="module", params=sorted(KINDS))
def restored(request: pytest.FixtureRequest):
    kind = request.param
    model = asr.ASRModel.restore_from(REFERENCE / f"tiny_ctc_{kind}.nemo")
    return kind, model, load_reference(f"expected_{kind}.pt")


def test_restores_the_right_class_in_eval_mode(restored) -> None:
    kind, model, _ = restored
    assert type(model) is KINDS[kind]
    assert not model.training


def test_log_probs_match_nemo(restored) -> None:
    _, model, expected = restored
    signal, lengths = load_batch(CLIPS)
    with torch.no_grad():
        log_probs, enc_len, greedy = model(input_signal=signal, input_signal_length=lengths)
    assert torch.equal(enc_len, expected["encoded_len"])
    assert log_probs.shape == expected["log_probs"].shape
    valid = torch.arange(log_probs.shape[1])[None, :] < enc_len[:, None]
    assert (log_probs - expected["log_probs"])[valid].abs().max() <= 1e-4
    assert torch.equal(greedy[valid], expected["greedy"][valid])


def test_transcripts_match_nemo(restored) -> None:
    _, model, expected = restored
    assert model.transcribe([str(p) for p in CLIPS], batch_size=4) == expected["transcripts"]
    # Batching must not change the result: one clip at a time gives the same text.
    assert model.transcribe([str(p) for p in CLIPS], batch_size=1) == expected["transcripts"]
