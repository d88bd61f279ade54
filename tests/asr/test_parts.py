"""WER/CER, CTC loss reductions, the resampler, SpecAugment and greedy CTC decoding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nemolite import asr
from nemolite.asr.data.audio import resample
from nemolite.asr.losses import CTCLoss
from nemolite.asr.metrics import edit_distance, word_error_rate
from nemolite.asr.modules.spec_augment import SpectrogramAugmentation


def test_word_and_character_error_rates() -> None:
    assert edit_distance("kitten".split(), "sitting".split()) == 1
    assert edit_distance(list("kitten"), list("sitting")) == 3
    refs = ["the cat sat on the mat", "hello world"]
    hyps = ["the cat sat on mat", "hello there world"]
    assert word_error_rate(hyps, refs) == pytest.approx(2 / 8)  # one deletion, one insertion
    assert word_error_rate(["abc"], ["abd"], use_cer=True) == pytest.approx(1 / 3)
    assert word_error_rate([""], ["two words"]) == 1.0


def test_ctc_loss_reductions_against_torch() -> None:
    torch.manual_seed(0)
    log_probs = torch.randn(3, 20, 6).log_softmax(-1)
    targets = torch.randint(0, 5, (3, 7))
    in_len, tgt_len = torch.tensor([20, 18, 15]), torch.tensor([7, 5, 3])
    per_utt = torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), targets, in_len, tgt_len, blank=5, reduction="none")
    assert CTCLoss(5, "mean_batch")(log_probs, targets, in_len, tgt_len) == pytest.approx(float(per_utt.mean()))
    assert CTCLoss(5, "mean_volume")(log_probs, targets, in_len, tgt_len) == pytest.approx(float(per_utt.sum() / 15))
    torch_mean = torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), targets, in_len, tgt_len, blank=5)
    assert CTCLoss(5, "mean")(log_probs, targets, in_len, tgt_len) == pytest.approx(float(torch_mean))
    with pytest.raises(ValueError, match="ctc_reduction='avg'"):
        CTCLoss(5, "avg")


@pytest.mark.parametrize(("orig", "new"), [(22050, 16000), (8000, 16000), (44100, 16000)])
def test_resampler_keeps_a_tone_and_removes_aliases(orig: int, new: int) -> None:
    t = np.arange(orig) / orig
    tone = np.sin(2 * math.pi * 440 * t)
    out = resample(tone, orig, new)
    assert out.shape == (new,)
    expected = np.sin(2 * math.pi * 440 * np.arange(new) / new)
    inner = slice(200, new - 200)  # away from the zero-padded edges
    assert np.abs(out[inner] - expected[inner]).max() < 2e-3
    if orig > new:  # a tone above the new Nyquist frequency must not fold back into the band
        alias = resample(np.sin(2 * math.pi * (new / 2 + 2500) * t), orig, new)
        assert np.abs(alias[inner]).max() < 1e-2  # >= 40 dB down


def test_spec_augment_masks_bands_and_spans_within_limits() -> None:
    torch.manual_seed(0)
    aug = SpectrogramAugmentation(freq_masks=2, time_masks=3, freq_width=10, time_width=0.1)
    spec = torch.randn(4, 80, 200) + 10.0  # no natural zeros
    out = aug(spec, torch.tensor([200, 150, 100, 50]))
    masked = out == 0
    assert masked.any()
    for b in range(4):
        full_bands = masked[b].all(dim=1).sum()
        assert 0 < full_bands <= 20  # at most 2 masks of width <= 10
    assert not masked[3, :, 50:].all(dim=0).any() or masked[3].all(dim=1).any()


def test_greedy_ctc_collapses_repeats_and_drops_blanks() -> None:
    from nemolite.asr.models.fastconformer import CHAR_LABELS, fastconformer_ctc_config
    from tests.asr.conftest import tiny_size

    model = asr.EncDecCTCModel(fastconformer_ctc_config(tiny_size(), labels=CHAR_LABELS))
    blank = model.blank_id
    assert blank == len(CHAR_LABELS)
    h, i, space = CHAR_LABELS.index("h"), CHAR_LABELS.index("i"), 0
    frames = torch.tensor([[h, h, blank, i, i, blank, i, space, h, blank, blank]])
    assert model.decode_texts(frames, torch.tensor([11])) == ["hii h"]
    assert model.decode_texts(frames, torch.tensor([4])) == ["hi"]


def test_subsampling_factor_of_the_spec_sets_the_encoders() -> None:
    from nemolite.errors import ConfigError

    assert asr.FastConformerCTC(size="tiny").config(None, "tok")["encoder"]["subsampling_factor"] == 8
    assert asr.FastConformerCTC(size="tiny", subsampling_factor=4).config(None, "tok")["encoder"]["subsampling_factor"] == 4
    with pytest.raises(ConfigError, match="subsampling_factor"):
        asr.FastConformerCTC(subsampling_factor=6).validate()
