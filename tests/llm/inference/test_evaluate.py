"""The lm-eval backend and llm.evaluate on a small random checkpoint and a task in a local file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from nemolite import llm
from nemolite.errors import ConfigError, NemoliteError
from tests.llm.gpt.model import hf_models

pytest.importorskip("lm_eval")

ROWS = [
    {"question": "The sky is", "choices": [" blue", " green", " loud"], "answer": 0},
    {"question": "Two plus two is", "choices": [" four", " seven"], "answer": 0},
    {"question": "Cats say", "choices": [" woof", " meow"], "answer": 1},
    {"question": "Fire is ", "choices": ["cold", "hot"], "answer": 1},
]


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One task directory for the module: lm-eval indexes it once (task_manager is cached)."""
    root = tmp_path_factory.mktemp("tasks")
    _write_word_task(root)
    return _task_dir(root)


def _task_dir(root: Path) -> Path:
    root.mkdir(exist_ok=True)
    (root / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (root / "tiny_mc.yaml").write_text(
        "task: tiny_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {root / 'mc.jsonl'}\ntest_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: "{{answer}}"\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n")
    return root


def _full_forward_score(engine, context: str, continuation: str) -> float:
    """Sum of log p(continuation bytes | context), from one forward pass without any cache."""
    ctx = engine.tokenizer.text_to_ids(context.rstrip(" "))
    whole = engine.tokenizer.text_to_ids(context + continuation)
    lp = engine.log_probs(torch.tensor([whole[:-1]]))[0]
    return sum(float(lp[i - 1, whole[i]]) for i in range(len(ctx), len(whole)))


def _instances(kind: str, args: list[tuple]) -> list:
    from lm_eval.api.instance import Instance

    return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]


def test_loglikelihood_equals_full_forward(engine) -> None:
    from nemolite.llm.inference.lm_eval_backend import NemoliteLM

    lm = NemoliteLM(engine=engine, batch_size=3)  # 3: batches of unequal lengths, right-padded
    pairs = [(r["question"], c) for r in ROWS for c in r["choices"]]
    got = lm.loglikelihood(_instances("loglikelihood", pairs), disable_tqdm=True)
    for (ctx, cont), (score, _) in zip(pairs, got):
        assert score == pytest.approx(_full_forward_score(engine, ctx, cont), abs=1e-4)


def test_rolling_and_generate_until(engine) -> None:
    from nemolite.llm.inference.generate import generate_with_engine
    from nemolite.llm.inference.lm_eval_backend import NemoliteLM

    lm = NemoliteLM(engine=engine)
    text = "Hello there, general. " * 8  # longer than the 96-token context: several windows
    (rolling,) = lm.loglikelihood_rolling(_instances("loglikelihood_rolling", [(text,)]), disable_tqdm=True)
    ids = engine.tokenizer.text_to_ids(text)
    assert len(ids) > engine.seq_length
    expected = 0.0
    padded = [engine.tokenizer.bos_id] + ids
    for start in range(0, len(ids), engine.seq_length):  # each token predicted once, with full context
        end = min(start + engine.seq_length, len(ids))
        inputs = padded[max(end - engine.seq_length, 0) : end]
        lp = engine.log_probs(torch.tensor([inputs]))[0]
        offset = len(inputs) - (end - start)
        expected += sum(float(lp[offset + i, t]) for i, t in enumerate(ids[start:end]))
    assert rolling == pytest.approx(expected, abs=1e-3)
    greedy = generate_with_engine(engine, ["Hello"], llm.CommonInferenceParams(temperature=0, num_tokens_to_generate=10))
    stop = greedy[0].generated_text[4:6]
    (out,) = lm.generate_until(_instances("generate_until", [("Hello", {"until": [stop], "max_gen_toks": 10})]))
    assert out == greedy[0].generated_text.split(stop)[0]


def test_evaluate_writes_results_and_matches_the_backend(run_dir: Path, engine, tmp_path: Path,
                                                        tasks_dir: Path) -> None:
    tasks = tasks_dir
    texts = ["The cat sat on the mat.", "Hello there!"]
    (tmp_path / "ppl.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    results = llm.evaluate(path=str(run_dir), tasks=["tiny_mc"], include_path=str(tasks),
                           output_dir=str(tmp_path / "out"), perplexity_data=str(tmp_path / "ppl.jsonl"))
    correct = 0
    for row in ROWS:
        scores = [_full_forward_score(engine, row["question"], c) for c in row["choices"]]
        correct += int(max(range(len(scores)), key=scores.__getitem__) == row["answer"])
    assert results["results"]["tiny_mc"]["acc,none"] == pytest.approx(correct / len(ROWS))
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["results"]["tiny_mc"]["acc,none"] == results["results"]["tiny_mc"]["acc,none"]
    assert "| tiny_mc | acc |" in (tmp_path / "out" / "results.md").read_text()
    nll, count = 0.0, 0
    for text in texts:
        ids = engine.tokenizer.text_to_ids(text)
        lp = engine.log_probs(torch.tensor([ids]))[0]
        nll -= sum(float(lp[i - 1, ids[i]]) for i in range(1, len(ids)))
        count += len(ids) - 1
    assert results["perplexity"]["tokens"] == count
    assert results["perplexity"]["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-5)


def test_unknown_task_lists_close_names(run_dir: Path, tmp_path: Path, tasks_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"^tasks\[0\]='tiny_mcc': unknown lm-eval task; fix: close names: tiny_mc"):
        llm.evaluate(path=str(run_dir), tasks=["tiny_mcc"], include_path=str(tasks_dir),
                     output_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


WORD_ROWS = [
    {"question": "w5 w17 w42", "choices": [" w8", " w9 w10", " w99"], "answer": 0},
    {"question": "w3", "choices": [" w77", " w12"], "answer": 1},
    {"question": "w30 w31 w32 w33 w34 w35", "choices": [" w36", " w3 w4 w5"], "answer": 0},
    {"question": "", "choices": ["w61", "w62"], "answer": 1},
]


def test_backend_equals_lm_evals_hf_backend_on_the_exported_model(tmp_path: Path, tasks_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-example log-likelihoods and accuracy: nemolite on an imported model == lm-eval's `hf`
    backend (transformers) on the same model exported back to Hugging Face."""
    import transformers
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from nemolite.llm.inference.evaluate import task_manager
    from nemolite.llm.inference.lm_eval_backend import NemoliteLM
    from tests.llm.inference.inference_ckpts import save_word_tokenizer

    monkeypatch.setenv("NEMO_HOME", str(tmp_path / "nemo_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    src = tmp_path / "hf"
    hf_models.make_hf_model("llama32", src)
    save_word_tokenizer(src, hf_models.VOCAB)
    llm.import_ckpt(source=str(src), output_path=str(tmp_path / "nemo_home" / "models" / "tiny"))
    exported = llm.export_ckpt(path="nemo://tiny", output_path=str(tmp_path / "exported"))

    manager = task_manager(str(tasks_dir))
    hf_lm = HFLM(pretrained=transformers.AutoModelForCausalLM.from_pretrained(exported, dtype=torch.float32),
                 tokenizer=transformers.PreTrainedTokenizerFast.from_pretrained(src), device="cpu", batch_size=4)
    ours_lm = NemoliteLM(path="nemo://tiny", batch_size=4)

    def run(lm):
        out = simple_evaluate(model=lm, tasks=["word_mc"], task_manager=manager, log_samples=True,
                              bootstrap_iters=0)
        return out["results"]["word_mc"]["acc,none"], [
            [float(r[0][0]) for r in sample["resps"]] for sample in out["samples"]["word_mc"]]

    (acc_hf, ll_hf), (acc_ours, ll_ours) = run(hf_lm), run(ours_lm)
    assert len(ll_ours) == len(WORD_ROWS) and len({round(x, 3) for row in ll_ours for x in row}) > 4
    for ours, theirs in zip(ll_ours, ll_hf):
        assert ours == pytest.approx(theirs, abs=1e-4)
    assert acc_ours == acc_hf


def _write_word_task(root: Path) -> None:
    """word_mc: multiple choice over the word-level tokenizer's words (for the hf-backend test)."""
    (root / "word_mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in WORD_ROWS))
    (root / "word_mc.yaml").write_text(
        "task: word_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {root / 'word_mc.jsonl'}\ntest_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: "{{answer}}"\n'
        "target_delimiter: \"\"\nmetric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n")


def test_perplexity_reads_an_indexed_dataset_like_jsonl(engine, tmp_path: Path) -> None:
    """The same documents as JSONL and as a `.bin/.idx` prefix give the same tokens and perplexity;
    a document longer than the context is scored in windows."""
    from nemolite.llm.gpt.data.indexed import IndexedDatasetWriter
    from nemolite.llm.inference.evaluate import perplexity, read_texts

    texts = ["The cat sat on the mat.", "Hello there! " * 12]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    ids = [engine.tokenizer.text_to_ids(t) for t in texts]
    with IndexedDatasetWriter(str(tmp_path / "docs"), "uint16") as writer:
        writer.add_documents([i for doc in ids for i in doc], [len(doc) for doc in ids])
    from_jsonl = read_texts(tmp_path / "docs.jsonl", engine.tokenizer)
    from_indexed = read_texts(tmp_path / "docs", engine.tokenizer)
    assert from_jsonl == from_indexed == ids and len(ids[1]) > engine.seq_length
    assert perplexity(engine, from_indexed) == perplexity(engine, from_jsonl)
    with pytest.raises(NemoliteError, match="neither a .jsonl file nor an indexed dataset prefix"):
        read_texts(tmp_path / "missing", engine.tokenizer)
