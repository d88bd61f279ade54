"""llm.generate on small random checkpoints: KV cache vs full re-forward, batching, log-probs, stops, LoRA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nemolite import llm
from nemolite.errors import ConfigError, NemoliteError
from tests.llm.inference.inference_ckpts import tiny_config, write_checkpoint

PROMPTS = ["The cat sat on", "Hello", "A much longer prompt than the others, here"]


def _greedy(n: int, **kw) -> llm.CommonInferenceParams:
    return llm.CommonInferenceParams(temperature=0.0, num_tokens_to_generate=n, **kw)


def _reference_greedy(engine, prompt_ids: list[int], n: int) -> tuple[list[int], list[float]]:
    """No cache: the whole sequence through the model again for every new token."""
    ids, lps = list(prompt_ids), []
    for _ in range(n):
        lp = engine.log_probs(torch.tensor([ids]))[0, -1]
        token = int(lp.argmax())
        ids.append(token)
        lps.append(float(lp[token]))
    return ids[len(prompt_ids):], lps


def test_kv_cache_greedy_equals_full_reforward_and_log_probs(engine) -> None:
    from nemolite.llm.inference.generate import generate_with_engine

    out = generate_with_engine(engine, PROMPTS, _greedy(24, return_log_probs=True))
    for result in out:
        tokens, lps = _reference_greedy(engine, result.prompt_tokens, 24)
        assert result.generated_tokens == tokens
        assert result.generated_log_probs == pytest.approx(lps, abs=1e-5)
        full = engine.log_probs(torch.tensor([result.prompt_tokens]))[0]
        expected = [float(full[i - 1, t]) for i, t in enumerate(result.prompt_tokens) if i > 0]
        assert result.prompt_log_probs == pytest.approx(expected, abs=1e-5)
    assert len({tuple(r.generated_tokens) for r in out}) == len(PROMPTS)  # prompts matter


def test_batched_equals_one_by_one(engine) -> None:
    from nemolite.llm.inference.generate import generate_with_engine

    batched = generate_with_engine(engine, PROMPTS, _greedy(16))
    single = [generate_with_engine(engine, [p], _greedy(16))[0] for p in PROMPTS]
    assert [r.generated_tokens for r in batched] == [r.generated_tokens for r in single]
    assert [r.request_id for r in batched] == [0, 1, 2]


def test_sampling_is_seeded(engine) -> None:
    from nemolite.llm.inference.generate import generate_with_engine

    def run(seed: int) -> list[list[int]]:
        params = llm.CommonInferenceParams(temperature=1.0, top_p=0.9, num_tokens_to_generate=12, random_seed=seed)
        return [r.generated_tokens for r in generate_with_engine(engine, PROMPTS, params)]

    assert run(1) == run(1)
    assert run(1) != run(2)
    topk = llm.CommonInferenceParams(temperature=0.7, top_k=1, num_tokens_to_generate=12)
    greedy = [r.generated_tokens for r in generate_with_engine(engine, PROMPTS, _greedy(12))]
    assert [r.generated_tokens for r in generate_with_engine(engine, PROMPTS, topk)] == greedy


def test_stop_word_and_eos(engine) -> None:
    from nemolite.llm.inference.generate import generate_with_engine

    full = generate_with_engine(engine, ["Hello"], _greedy(20))[0]
    stop = full.generated_text[5:7]
    cut = generate_with_engine(engine, ["Hello"], _greedy(20, stop_words=[stop]))[0]
    assert cut.stop_reason == "stop_word" and cut.generated_length < 20
    assert stop not in cut.generated_text and full.generated_text.startswith(cut.generated_text)

    class EosAt:  # the byte tokenizer, with the first greedy token declared to be EOS
        def __init__(self, tok, eos: int) -> None:
            self._tok, self.eos_id = tok, eos

        def __getattr__(self, name: str):
            return getattr(self._tok, name)

    original = engine.tokenizer
    engine.tokenizer = EosAt(original, full.generated_tokens[3])
    try:
        ended = generate_with_engine(engine, ["Hello"], _greedy(20))[0]
    finally:
        engine.tokenizer = original
    assert ended.stop_reason == "eos" and ended.generated_tokens == full.generated_tokens[:4]


def test_generate_verb_text_only_and_chat(run_dir: Path, tmp_path: Path) -> None:
    texts = llm.generate(path=str(run_dir), prompts=PROMPTS[:2], inference_params=_greedy(8), text_only=True,
                         output_path=str(tmp_path / "out.jsonl"))
    assert all(isinstance(t, str) for t in texts) and len(texts) == 2
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    chat = llm.generate(path=str(run_dir), prompts=["Hi"], chat=True, inference_params=_greedy(4))[0]
    tok = llm.ByteTokenizer().build()
    assert chat.prompt_tokens == tok.apply_chat_template([{"role": "user", "content": "Hi"}]) + list(
        b"<|assistant|>\n")


def test_lora_checkpoint_generates_with_adapters_unmerged(tmp_path: Path) -> None:
    """Adapters applied through their hooks == the same adapters merged into the base weights."""
    from nemolite.llm.inference.generate import generate_with_engine, load_engine

    lora = llm.LoRA(dim=4, alpha=8)
    write_checkpoint(tmp_path / "lora", tiny_config(), peft=lora, adapter_std=0.3)
    adapted = load_engine(tmp_path / "lora")
    got = generate_with_engine(adapted, PROMPTS, _greedy(12))
    merged = _merged_engine(adapted, lora)
    want = generate_with_engine(merged, PROMPTS, _greedy(12))
    assert [r.generated_tokens for r in got] == [r.generated_tokens for r in want]
    # The hooked adapters take megatron's forward; the merged plain model the lean decode path.
    assert (adapted.path, merged.path) == ("megatron", "lean")
    write_checkpoint(tmp_path / "base", tiny_config())
    base = generate_with_engine(load_engine(tmp_path / "base"), PROMPTS, _greedy(12))
    assert [r.generated_tokens for r in got] != [r.generated_tokens for r in base]


def _merged_engine(adapted, lora: llm.LoRA):
    """A plain model (no adapter modules) whose weights are W + B @ A * alpha / dim."""
    from nemolite.llm.inference import runtime
    from nemolite.llm.inference.engine import InferenceEngine

    plain = runtime.build_model(tiny_config(), adapted.model.embedding.word_embeddings.weight.shape[0])
    state = adapted.model.state_dict()
    merged = {}
    for name in plain.state_dict():
        if name.endswith("._extra_state"):
            continue
        weight = state[name].clone()
        layer = name.rsplit(".weight", 1)[0]
        a_key, b_key = f"{layer}_adapter.linear_in.weight", f"{layer}_adapter.linear_out.weight"
        if a_key in state:
            weight += state[b_key] @ state[a_key] * (lora.alpha / lora.dim)
        merged[name] = weight
    plain.load_state_dict(merged, strict=False)
    return InferenceEngine(plain, adapted.tokenizer, vocab_size=adapted.vocab_size, seq_length=adapted.seq_length)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prompts": "not a list"}, "prompts"),
        ({"prompts": ["ok", 3]}, "prompts[1]"),
        ({"inference_params": llm.CommonInferenceParams(num_tokens_to_generate=0)},
         "inference_params.num_tokens_to_generate"),
        ({"inference_params": llm.CommonInferenceParams(top_p=1.5)}, "inference_params.top_p"),
        ({"inference_params": llm.CommonInferenceParams(temperature=-1.0)}, "inference_params.temperature"),
        ({"prompts": ["x" * 200]}, "prompts[0]"),
        ({}, None),
    ],
)
def test_bad_input_is_one_line(run_dir: Path, kwargs: dict, field: str | None) -> None:
    if field is None:
        from nemolite.lightning.strategy import MegatronStrategy
        from nemolite.lightning.trainer import Trainer

        kwargs = {"trainer": Trainer(strategy=MegatronStrategy(pipeline_model_parallel_size=2))}
        field = "trainer.strategy.pipeline_model_parallel_size"
    args = {"path": str(run_dir), "prompts": ["hi"], **kwargs}
    with pytest.raises(ConfigError) as info:
        llm.generate(**args)
    assert str(info.value).startswith(f"{field}=") and "\n" not in str(info.value)


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(NemoliteError, match="^path="):
        llm.generate(path=str(tmp_path / "nothing"), prompts=["hi"])
    with pytest.raises(NemoliteError, match="no complete nemolite checkpoint"):
        llm.generate(path=str(tmp_path), prompts=["hi"])


def test_chat_uses_the_tokenizers_template_with_the_generation_prompt(tmp_path: Path) -> None:
    """A Hugging Face tokenizer's Jinja template, rendered with add_generation_prompt=True."""
    import transformers

    from nemolite.llm.inference.prompting import encode
    from tests.llm.inference.inference_ckpts import save_word_tokenizer

    save_word_tokenizer(tmp_path, 100)
    tok = transformers.PreTrainedTokenizerFast.from_pretrained(tmp_path)
    tok.chat_template = ("{% for m in messages %}<s> {{ m['content'] }} </s> {% endfor %}"
                         "{% if add_generation_prompt %}<s> {% endif %}")
    tok.save_pretrained(tmp_path)
    built = llm.AutoTokenizer(pretrained_model_name=str(tmp_path)).build()
    assert encode(built, "w5 w6", chat=True, add_bos=False) == [1, 5, 6, 2, 1]
    assert encode(built, [{"role": "user", "content": "w7"}], chat=False, add_bos=False) == [1, 7, 2, 1]
    assert encode(built, "w5 w6", chat=False, add_bos=True) == [1, 5, 6]
