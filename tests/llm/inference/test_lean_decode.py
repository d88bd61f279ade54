"""The lean decode path (llm/inference/lean_decode.py) computes megatron's forward, step by step.

Its logits are compared with megatron's own KV-cached forward (`StaticInferenceContext`) on the
same engine, over a prefill and decode steps of a batch of prompts of different lengths, fp32, at
1e-5; and models it does not reproduce fall back to megatron's forward.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from nemolite import llm
from tests.llm.inference.inference_ckpts import tiny_config, write_checkpoint

PROMPTS = [[72, 101, 108, 108, 111, 32, 119], [65, 98], [84, 104, 101, 32]]
STEPS = 20


def _step_logits(engine, lean: bool) -> list[torch.Tensor]:
    """Every step's logits for PROMPTS right-padded, prefilled to the shortest, then one position a step."""
    engine.lean = lean
    shortest = min(len(p) for p in PROMPTS)
    total = max(len(p) for p in PROMPTS) + STEPS
    tokens = torch.randint(3, 250, (len(PROMPTS), total), generator=torch.Generator().manual_seed(0))
    for row, prompt in enumerate(PROMPTS):
        tokens[row, : len(prompt)] = torch.tensor(prompt)
    step = engine._session(len(PROMPTS), total, all_logits=True)
    out, prev = [], 0
    with torch.no_grad():
        for cur in range(shortest, total):
            out.append(step(tokens[:, prev:cur], prev))
            prev = cur
    return out


def test_lean_path_is_used_for_llama_and_equals_megatron_per_step(engine) -> None:
    lean = _step_logits(engine, lean=True)
    assert engine.path == "lean"
    reference = _step_logits(engine, lean=False)
    assert engine.path == "megatron"
    engine.lean = True
    assert len(lean) == len(reference) == max(map(len, PROMPTS)) + STEPS - min(map(len, PROMPTS))
    assert lean[0].shape == reference[0].shape == (len(PROMPTS), min(map(len, PROMPTS)), lean[0].shape[-1])
    for got, want in zip(lean, reference):
        real = torch.isfinite(want)
        assert torch.equal(real, torch.isfinite(got))  # the padded vocabulary rows stay -inf
        assert (got[real] - want[real]).abs().max() <= 1e-5
    rows = reference[-1][:, -1].nan_to_num(neginf=0.0)
    assert (rows[0] - rows[1]).abs().max() > 1e-2  # the rows are different sequences


def test_only_last_position_logits_when_not_asked_for_all(engine) -> None:
    step = engine._session(2, 12, all_logits=False)
    tokens = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    assert engine.path == "lean"
    last = step(tokens, 0)
    assert last.shape[:2] == (2, 1)
    full = engine._session(2, 12, all_logits=True)(tokens, 0)
    torch.testing.assert_close(last[:, 0], full[:, -1], atol=1e-5, rtol=0)  # a 1-row matmul rounds alike


def test_unmerged_lora_falls_back_to_megatron_and_says_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Adapters run as forward hooks the lean path would skip: megatron's forward runs them."""
    from nemolite.llm.inference.generate import generate_with_engine, load_engine

    write_checkpoint(tmp_path / "lora", tiny_config(), peft=llm.LoRA(dim=4, alpha=8), adapter_std=0.3)
    adapted = load_engine(tmp_path / "lora")
    params = llm.CommonInferenceParams(temperature=0.0, num_tokens_to_generate=4)
    with caplog.at_level(logging.DEBUG, logger="nemolite.generate"):
        generate_with_engine(adapted, ["Hello"], params)
    assert adapted.path == "megatron"
    assert any("forward hooks" in r.getMessage() and "adapter" in r.getMessage() for r in caplog.records)
