"""Makes the NeMo reference files nemolite's ASR parity tests compare against (tests/asr/reference/).

Run it with a separate virtual environment that has NeMo itself (nemolite never depends on it):

    python3 -m venv nemo-ref-venv
    nemo-ref-venv/bin/pip install torch==2.13.0 'nemo_toolkit[asr]==3.0.0' espeakng-loader==0.2.4
    nemo-ref-venv/bin/python tools/nemo_reference/make_asr_reference.py            # make
    nemo-ref-venv/bin/python tools/nemo_reference/make_asr_reference.py verify X.nemo CLIPS...  # check

`make` writes:
- audio/clip*.wav: short English sentences spoken by eSpeak NG (offline TTS, GPL-3.0 engine; the
  audio is generated data), resampled to 16 kHz by nemolite's resampler and stored as 16-bit PCM;
- features.pt: NeMo's `AudioToMelSpectrogramPreprocessor` outputs (eval mode) for three
  configurations, with librosa's filterbanks;
- tiny_ctc_char.nemo, tiny_ctc_bpe.nemo: FastConformer-CTC models built and saved by NeMo, with
  random weights (scaled so that greedy decisions are far from ties) and random batch-norm
  statistics;
- expected_char.pt, expected_bpe.pt: what NeMo computes with them: features, log-probs, encoded
  lengths for the padded batch of all clips, and NeMo's `transcribe` output.

`verify` loads a `.nemo` written by nemolite into NeMo and prints one JSON line with NeMo's
log-probs' max difference from nemolite's (stored in the file's sibling `.expected.pt`) and its
transcripts, so tests can check the round trip in the other direction.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "asr" / "reference"
sys.path.insert(0, str(ROOT / "src"))  # nemolite's TTS wrapper and resampler (numpy/torch only)

SENTENCES = [  # (text, eSpeak voice, words per minute, pitch)
    ("we the people of the united states", "en-us", 165, 50),
    ("congress shall make no law", "en-gb-x-rp+f3", 150, 65),
    ("a cynic is a blackguard whose faulty vision sees things as they are", "en-us+m3", 190, 40),
    ("patience is a minor form of despair", "en-029", 140, 55),
]
LABELS = list(" abcdefghijklmnopqrstuvwxyz'")

PREPROCESSOR = {  # fast-conformer_ctc_bpe.yaml's preprocessor
    "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
    "sample_rate": 16000, "normalize": "per_feature", "window_size": 0.025, "window_stride": 0.01,
    "window": "hann", "features": 80, "n_fft": 512, "log": True, "frame_splicing": 1,
    "dither": 0.00001, "pad_to": 0, "pad_value": 0.0,
}  # fmt: skip
FEATURE_CONFIGS = {
    "fastconformer": {k: v for k, v in PREPROCESSOR.items() if k != "_target_"},
    "nemo_defaults": {},
    "clamp_all_features_pad16": {
        "features": 40, "normalize": "all_features", "log_zero_guard_type": "clamp",
        "log_zero_guard_value": "tiny", "pad_to": 16, "window": "hamming", "lowfreq": 60,
        "highfreq": 7600, "preemph": None, "exact_pad": True,
    },
}  # fmt: skip


def tiny_config(vocabulary: list[str] | None, tokenizer_dir: str | None) -> dict:
    """A two-layer FastConformer-CTC config in the layout of NeMo's published ones."""
    cfg = {
        "sample_rate": 16000,
        "ctc_reduction": "mean_volume",
        "preprocessor": dict(PREPROCESSOR),
        "spec_augment": {
            "_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
            "freq_masks": 2, "time_masks": 2, "freq_width": 27, "time_width": 0.05,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": 80, "feat_out": -1, "n_layers": 2, "d_model": 64,
            "subsampling": "dw_striding", "subsampling_factor": 8, "subsampling_conv_channels": 32,
            "causal_downsampling": False, "ff_expansion_factor": 4, "self_attention_model": "rel_pos",
            "n_heads": 4, "att_context_size": [-1, -1], "att_context_style": "regular",
            "xscaling": True, "untie_biases": True, "pos_emb_max_len": 5000,
            "conv_kernel_size": 9, "conv_norm_type": "batch_norm", "conv_context_size": None,
            "dropout": 0.1, "dropout_pre_encoder": 0.1, "dropout_emb": 0.0, "dropout_att": 0.1,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": None, "num_classes": -1, "vocabulary": vocabulary or [],
        },
        "train_ds": {"manifest_filepath": None, "sample_rate": 16000, "batch_size": 4, "shuffle": True},
        "validation_ds": {
            "manifest_filepath": None, "sample_rate": 16000, "batch_size": 4, "shuffle": False,
            "use_start_end_token": False,
        },
        "optim": {"name": "adamw", "lr": 1e-3, "betas": [0.9, 0.98], "weight_decay": 1e-3},
    }  # fmt: skip
    if vocabulary is not None:
        cfg["labels"] = vocabulary
    if tokenizer_dir is not None:
        cfg["tokenizer"] = {"dir": tokenizer_dir, "type": "bpe"}
    return cfg


def make_clips() -> list[Path]:
    from nemolite.asr.data.audio import resample
    from nemolite.asr.data.tts import Voice, synthesize

    (OUT / "audio").mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (text, voice, rate, pitch) in enumerate(SENTENCES):
        wave, sr = synthesize(text, Voice(voice, rate, pitch))
        wave = resample(wave, sr, 16000)
        path = OUT / "audio" / f"clip{i}.wav"
        sf.write(path, np.clip(wave, -1, 1), 16000, subtype="PCM_16")
        paths.append(path)
    (OUT / "audio" / "transcripts.json").write_text(json.dumps([s[0] for s in SENTENCES], indent=1) + "\n")
    return paths


def plain(value):
    """Tensors without the NeMo type annotations its typecheck attaches (so no NeMo to unpickle)."""
    if isinstance(value, torch.Tensor):
        return torch.from_numpy(value.detach().cpu().numpy().copy())
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def batch(paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    waves = [torch.from_numpy(sf.read(p, dtype="float32")[0]) for p in paths]
    lengths = torch.tensor([w.numel() for w in waves])
    signal = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        signal[i, : w.numel()] = w
    return signal, lengths


def make_features(paths: list[Path]) -> None:
    import librosa
    from nemo.collections.asr.modules import AudioToMelSpectrogramPreprocessor

    signal, lengths = batch(paths)
    out = {"lengths": lengths, "configs": FEATURE_CONFIGS}
    for name, kwargs in FEATURE_CONFIGS.items():
        pre = AudioToMelSpectrogramPreprocessor(**kwargs).eval()
        feats, frames = pre(input_signal=signal, length=lengths)
        out[name] = {"features": feats, "frames": frames, "fb": pre.featurizer.fb.clone()}
    out["librosa_filterbanks"] = {
        (sr, n_fft, n_mels, fmin, fmax): torch.from_numpy(
            librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, norm="slaney")
        )
        for sr, n_fft, n_mels, fmin, fmax in [(16000, 512, 80, 0, None), (22050, 1024, 128, 20, 8000), (8000, 256, 40, 0, 4000)]
    }
    torch.save(plain(out), OUT / "features.pt")


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Random weights and batch-norm statistics, decoder scaled so argmax margins are wide."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if p.dim() > 1:
                p.copy_(noise * 0.3)
            elif name.endswith("weight"):  # layer-norm gains around 1, not around 0
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(0.1 * noise)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.2)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)
        model.decoder.decoder_layers[0].weight.mul_(4.0)


def make_model(kind: str, paths: list[Path], workdir: Path) -> None:
    from nemo.collections.asr.models import EncDecCTCModel, EncDecCTCModelBPE
    from omegaconf import OmegaConf

    if kind == "char":
        model = EncDecCTCModel(OmegaConf.create(tiny_config(LABELS, None)))
    else:
        from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

        text = workdir / "text.txt"
        text.write_text("\n".join(s[0] for s in SENTENCES * 4) + "\n")
        create_spt_model(str(text), vocab_size=40, sample_size=-1, do_lower_case=False, output_dir=str(workdir / "tok"))
        model = EncDecCTCModelBPE(OmegaConf.create(tiny_config(None, str(workdir / "tok"))))
    randomize(model, seed=1 if kind == "char" else 2)
    model.eval()
    nemo_path = OUT / f"tiny_ctc_{kind}.nemo"
    model.save_to(str(nemo_path))
    restored = type(model).restore_from(str(nemo_path), map_location="cpu").eval()
    torch.save(plain(reference_outputs(restored, paths)), OUT / f"expected_{kind}.pt")


def reference_outputs(model, paths: list[Path]) -> dict:
    signal, lengths = batch(paths)
    with torch.no_grad():
        feats, frames = model.preprocessor(input_signal=signal, length=lengths)
        log_probs, enc_len, greedy = model(input_signal=signal, input_signal_length=lengths)
    top2 = log_probs.topk(2, dim=-1).values
    valid = torch.arange(log_probs.shape[1])[None, :] < enc_len[:, None]
    margin = float((top2[..., 0] - top2[..., 1])[valid].min())
    hyps = model.transcribe([str(p) for p in paths], batch_size=len(paths), verbose=False)
    texts = [str(h.text if hasattr(h, "text") else h) for h in hyps]
    print(f"{type(model).__name__}: min top-2 margin {margin:.4f}; transcripts {texts}")
    assert margin > 2e-3, "greedy decisions within 20x the 1e-4 parity tolerance of a tie"
    return {
        "frames": frames, "log_probs": log_probs, "encoded_len": enc_len,
        "greedy": greedy, "transcripts": texts, "min_margin": margin,
    }  # fmt: skip


def verify(nemo_path: str, clips: list[str]) -> None:
    """Loads a nemolite-written .nemo into NeMo; prints log-prob difference and transcripts."""
    from nemo.collections.asr.models import ASRModel

    model = ASRModel.restore_from(nemo_path, map_location="cpu").eval()
    outputs = reference_outputs(model, [Path(c) for c in clips])
    expected = torch.load(Path(nemo_path).with_suffix(".expected.pt"), weights_only=False)
    diff = float((outputs["log_probs"] - expected["log_probs"]).abs().max())
    same_len = bool(torch.equal(outputs["encoded_len"], expected["encoded_len"]))
    print(json.dumps({"class": type(model).__name__, "max_abs_diff": diff, "same_lengths": same_len,
                      "transcripts": outputs["transcripts"], "expected": expected["transcripts"]}))  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "verify":
        verify(sys.argv[2], sys.argv[3:])
        return
    torch.manual_seed(0)
    paths = make_clips()
    make_features(paths)
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("char", "bpe"):
            make_model(kind, paths, Path(tmp))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
