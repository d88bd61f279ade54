"""The featurizer reproduces NeMo 3.0's mel spectrogram (features.pt, made by NeMo) within 1e-5."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nemolite.asr.modules.audio_preprocessing import AudioToMelSpectrogramPreprocessor
from nemolite.asr.modules.mel import mel_filterbank
from tests.asr.conftest import CLIPS, load_batch, load_reference

REF = load_reference("features.pt")


@pytest.mark.parametrize("name", sorted(REF["configs"]))
def test_features_match_nemo(name: str) -> None:
    signal, lengths = load_batch(CLIPS)
    assert torch.equal(lengths, REF["lengths"])
    pre = AudioToMelSpectrogramPreprocessor(**REF["configs"][name]).eval()
    feats, frames = pre(signal, lengths)
    expected = REF[name]
    assert torch.equal(frames, expected["frames"])
    assert feats.shape == expected["features"].shape
    assert (feats - expected["features"]).abs().max() <= 1e-5
    # Our own filterbank, not the one in a checkpoint: it is librosa's to the last bit or so.
    assert (pre.featurizer.fb - expected["fb"]).abs().max() <= 1e-9


@pytest.mark.parametrize("key", sorted(REF["librosa_filterbanks"], key=str))
def test_slaney_filterbank_matches_librosa(key: tuple) -> None:
    sr, n_fft, n_mels, fmin, fmax = key
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax, norm="slaney")
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, REF["librosa_filterbanks"][key].numpy(), rtol=0, atol=1e-9)


def test_dither_only_in_training() -> None:
    signal, lengths = load_batch(CLIPS[:1])
    pre = AudioToMelSpectrogramPreprocessor(**REF["configs"]["fastconformer"])
    pre.eval()
    a, _ = pre(signal, lengths)
    b, _ = pre(signal, lengths)
    assert torch.equal(a, b)
    pre.train()
    c, _ = pre(signal, lengths)
    assert not torch.equal(a, c)
