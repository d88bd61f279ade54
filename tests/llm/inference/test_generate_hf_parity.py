"""Greedy generation from imported Hugging Face models equals transformers' `generate` (fp32, CPU).

For each family's tiny random model (tests/llm/gpt/model/hf_models.py), saved with a small word-level
tokenizer and imported with `llm.import_ckpt`: `llm.generate` on `nemo://...` gives exactly
transformers' greedy tokens for 64 new tokens on a batch of 3 prompts of different lengths, and
per-token log-probs within 1e-5 of transformers' raw logits. The dense families run the lean decode
path (llm/inference/lean_decode.py), the mixture-of-experts ones megatron's forward.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.llm.gpt.model import hf_models
from tests.llm.inference.inference_ckpts import save_word_tokenizer

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

NEW_TOKENS = 64
MOE_FAMILIES = ("mixtral", "qwen3_moe")
PROMPTS = ["w5 w17 w42 w8 w99 w23 w61", "w3", "w77 w12 w30"]


def _transformers_greedy(model, tokenizer_dir: Path) -> tuple[list[list[int]], list[list[float]]]:
    # transformers 5 picks a tokenizer class from config.json's model_type; this one is generic.
    tok = transformers.PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    tok.padding_side = "left"  # transformers' way to batch prompts of different lengths
    batch = tok(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=NEW_TOKENS, do_sample=False, output_logits=True,
                             return_dict_in_generate=True, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)
    width = batch["input_ids"].shape[1]
    tokens, log_probs = [], []
    for row in range(len(PROMPTS)):
        gen = out.sequences[row, width:].tolist()
        if tok.eos_token_id in gen:  # transformers pads after EOS; ours stops there
            gen = gen[: gen.index(tok.eos_token_id) + 1]
        tokens.append(gen)
        log_probs.append([float(torch.log_softmax(out.logits[i][row].float(), -1)[t]) for i, t in enumerate(gen)])
    return tokens, log_probs


@pytest.mark.parametrize("family", hf_models.FAMILIES)
def test_greedy_generation_equals_transformers(family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from nemolite import llm

    monkeypatch.setenv("NEMO_HOME", str(tmp_path / "nemo_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    src = tmp_path / "hf" / family
    reference = hf_models.make_hf_model(family, src)
    save_word_tokenizer(src, hf_models.VOCAB)
    want_tokens, want_lps = _transformers_greedy(reference, src)
    llm.import_ckpt(source=str(src), output_path=str(tmp_path / "nemo_home" / "models" / "tiny" / family))
    with caplog.at_level(logging.DEBUG, logger="nemolite.generate"):
        got = llm.generate(path=f"nemo://tiny/{family}", prompts=PROMPTS, inference_params=llm.CommonInferenceParams(
            temperature=0.0, num_tokens_to_generate=NEW_TOKENS, return_log_probs=True, skip_prompt_log_probs=True))
    # The dense families decode on the lean path; the experts' MLPs fall back to megatron's forward.
    fallback = [r.getMessage() for r in caplog.records if "runs megatron's forward" in r.getMessage()]
    assert bool(fallback) == (family in MOE_FAMILIES), fallback
    assert [r.generated_tokens for r in got] == want_tokens
    assert len({tuple(t) for t in want_tokens}) == len(PROMPTS)  # the prompts lead to different texts
    assert max(len(t) for t in want_tokens) == NEW_TOKENS
    for result, lps in zip(got, want_lps):
        assert result.generated_log_probs == pytest.approx(lps, abs=1e-5)
