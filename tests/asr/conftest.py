"""Fixtures of the ASR tests: the NeMo-made reference files (tools/nemo_reference/make_asr_reference.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REFERENCE = Path(__file__).parent / "reference"
CLIPS = sorted((REFERENCE / "audio").glob("clip*.wav"))


@pytest.fixture(scope="session")
def clips() -> list[Path]:
    return CLIPS


@pytest.fixture(scope="session")
def clip_texts() -> list[str]:
    return json.loads((REFERENCE / "audio" / "transcripts.json").read_text())


def load_batch(paths: list[Path]):
    """The clips as one zero-padded float32 batch, as the reference script batches them."""
    import soundfile as sf
    import torch

    waves = [torch.from_numpy(sf.read(p, dtype="float32")[0]) for p in paths]
    lengths = torch.tensor([w.numel() for w in waves])
    signal = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        signal[i, : w.numel()] = w
    return signal, lengths


def load_reference(name: str) -> dict:
    import torch

    return torch.load(REFERENCE / name, weights_only=True)


def randomize(model, seed: int) -> None:
    """Random weights and batch-norm statistics, decoder scaled so greedy decisions are not ties."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(noise * 0.3 if p.dim() > 1 else (1.0 + 0.2 * noise if name.endswith("weight") else 0.1 * noise))
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.2)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)
        model.decoder.decoder_layers[0].weight.mul_(4.0)


def tiny_size():
    from nemolite.asr.models.fastconformer import FastConformerSize

    return FastConformerSize(d_model=64, n_heads=4, n_layers=2, weight_decay=0.0, subsampling_conv_channels=32)
