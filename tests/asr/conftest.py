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
