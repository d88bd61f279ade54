"""NeMo 2.0's fine-tuning data names over local files: `FineTuningDataModule(dataset_kwargs=...)`,
`SquadDataModule`, `ChatDataModule`, `HFDatasetDataModule`. Tiny data in tmp dirs; no network."""

import json
import sys

import pytest

from nemolite import llm
from nemolite.errors import ConfigError, DataFileError

SMALL = dict(seq_length=128, micro_batch_size=1, global_batch_size=1, seed=3)


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _first_targets(spec):
    """The label tokens with loss in the first training sample, as text."""
    dm = spec.build()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    keep = batch["loss_mask"][0] > 0
    return dm.tokenizer.ids_to_text(batch["labels"][0][keep].tolist()), dm


SQUAD_ROWS = [{"id": str(i), "title": "t", "context": f"Box {i} holds {i} balls.",
               "question": f"How many balls in box {i}?",
               "answers": {"text": [f"{i} balls", f"{i}"], "answer_start": [0, 0]}} for i in range(20)]


def test_dataset_kwargs_set_the_template_and_answer_field(tmp_path):
    _jsonl(tmp_path / "training.jsonl", [{"question": "Two plus two?", "answer": "Four"}])
    spec = llm.FineTuningDataModule(str(tmp_path), **SMALL, dataset_kwargs={
        "prompt_template": "Q: {question}\nA: {answer}", "label_key": "answer",
        "truncation_method": "right", "pad_to_max_length": True})
    text, dm = _first_targets(spec)
    assert text == "Four" and dm.spec.label_key == "answer"
    tokens = dm.tokenizer.ids_to_text(next(iter(dm.train_dataloader()))["tokens"][0][:24].tolist())
    assert tokens == "Q: Two plus two?\nA: Four"


@pytest.mark.parametrize("kwargs, match", [
    ({"prompt_templat": "{input} {output}"},
     r"data\.dataset_kwargs='prompt_templat': unknown key \(did you mean 'prompt_template'\?\)"),
    ({"add_sep": True}, r"data\.dataset_kwargs\.add_sep=True: is a NeMo option nemolite does not"),
    ({"truncation_method": "left"}, r"data\.dataset_kwargs\.truncation_method='left'.*fix: "),
])
def test_bad_dataset_kwargs_are_one_line_errors(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match) as err:
        llm.FineTuningDataModule(str(tmp_path), dataset_kwargs=kwargs)
    assert "\n" not in str(err.value)


def test_a_field_and_dataset_kwargs_that_disagree_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset_kwargs\.label_key='answer': conflicts with "
                                          r"data\.label_key='target'"):
        llm.FineTuningDataModule(str(tmp_path), label_key="target", dataset_kwargs={"label_key": "answer"})


def test_squad_is_prepared_as_nemo_writes_it(tmp_path):
    raw = tmp_path / "raw"
    _jsonl(raw / "train.jsonl", SQUAD_ROWS)
    _jsonl(raw / "validation.jsonl", SQUAD_ROWS[:3])
    out = tmp_path / "squad"
    text, _ = _first_targets(llm.SquadDataModule(dataset_root=str(out), source=str(raw), **SMALL))
    lines = {name: [json.loads(x) for x in (out / f"{name}.jsonl").read_text().splitlines()]
             for name in ("training", "validation", "test")}
    assert [len(v) for v in lines.values()] == [19, 1, 3]  # 5% of train is validation; test = validation
    assert {r["input"] for r in lines["training"] + lines["validation"]} == {
        f"Context: Box {i} holds {i} balls. Question: How many balls in box {i}? Answer:" for i in range(20)}
    assert lines["test"][1] == {"input": "Context: Box 1 holds 1 balls. Question: How many balls in box 1? "
                                "Answer:", "output": "1 balls", "original_answers": ["1 balls", "1"]}
    assert text.endswith(" balls") and text.split()[0] in {str(i) for i in range(20)}
    assert raw.joinpath("train.jsonl").is_file()  # a local source is never deleted


def test_squad_defaults_to_nemo_home_and_reads_a_saved_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("NEMO_HOME", str(tmp_path / "nemo"))
    assert llm.SquadDataModule().root() == str(tmp_path / "nemo" / "datasets" / "squad")
    datasets = pytest.importorskip("datasets")
    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(SQUAD_ROWS),
                          "validation": datasets.Dataset.from_list(SQUAD_ROWS[:2])}).save_to_disk(str(saved))
    _first_targets(llm.SquadDataModule(source=str(saved), **SMALL))
    root = tmp_path / "nemo" / "datasets" / "squad"
    assert sorted(p.name for p in root.iterdir()) == ["test.jsonl", "training.jsonl", "validation.jsonl"]


def test_bad_squad_sources_are_one_line_errors(tmp_path):
    _jsonl(tmp_path / "raw" / "train.jsonl", [{"context": "c", "question": "q"}])
    _jsonl(tmp_path / "raw" / "validation.jsonl", [{"context": "c", "question": "q"}])
    spec = llm.SquadDataModule(dataset_root=str(tmp_path / "a"), source=str(tmp_path / "raw"), **SMALL)
    with pytest.raises(DataFileError, match=r"raw\[0\]: is not a SQuAD record \(has \['context', "
                                             r"'question'\]\); fix: give records with context"):
        spec.build().setup("fit")
    spec = llm.SquadDataModule(dataset_root=str(tmp_path / "b"), source=str(tmp_path / "nope"), **SMALL)
    with pytest.raises(DataFileError, match=r"nope: no such file or directory; fix: fix data.source"):
        spec.build().setup("fit")


def test_chat_data_renders_nemo_conversations_and_refuses_other_records(tmp_path):
    _jsonl(tmp_path / "training.jsonl", [{"system": "Be brief.", "conversations": [
        {"from": "User", "value": "hi"}, {"from": "Assistant", "value": "yo"}]}])
    text, dm = _first_targets(llm.ChatDataModule(str(tmp_path), **SMALL))
    assert text == "<|assistant|>\nyo\n" + dm.tokenizer.ids_to_text([dm.tokenizer.eod])
    _jsonl(tmp_path / "training.jsonl", [{"input": "Q?", "output": "A."}])
    with pytest.raises(DataFileError, match=r"training.jsonl:1: has no 'messages' \(has \['input', 'output'\]\)"):
        llm.ChatDataModule(str(tmp_path), **SMALL).build().setup("fit")


def test_hf_dataset_reads_local_split_files(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    rows = [{"input": f"Q{i}?", "output": f"A{i}."} for i in range(4)]
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "train-00000-of-00001.parquet")
    _jsonl(tmp_path / "validation.jsonl", rows[:1])
    spec = llm.HFDatasetDataModule(str(tmp_path), **SMALL)
    text, dm = _first_targets(spec)
    assert text in {f"A{i}." + dm.tokenizer.ids_to_text([dm.tokenizer.eod]) for i in range(4)}
    assert [len(e) if e else None for e in dm.examples()] == [4, 1, None]


def test_hf_dataset_bad_inputs_are_one_line_errors(tmp_path, monkeypatch):
    _jsonl(tmp_path / "dev.jsonl", [{"input": "Q?", "output": "A."}])
    with pytest.raises(ConfigError, match=r"has a split 'dev' that no alias list names; fix: add 'dev' to"):
        llm.HFDatasetDataModule(str(tmp_path), **SMALL).build().setup("fit")
    with pytest.raises(ConfigError, match=r"has no training split \(has \['dev'\]\)"):
        llm.HFDatasetDataModule(str(tmp_path), val_aliases=["dev"], **SMALL).build().setup("fit")
    with pytest.raises(ConfigError, match=r"data.path_or_dataset=None: must name a dataset"):
        llm.HFDatasetDataModule(**SMALL).build()
    monkeypatch.setitem(sys.modules, "datasets", None)  # as where `datasets` is not installed
    with pytest.raises(ConfigError, match=r"data.path_or_dataset='rajpurkar/squad': a Hugging Face hub "
                                          r"dataset needs the `datasets` package, which is not installed"):
        llm.HFDatasetDataModule("rajpurkar/squad", **SMALL).build().setup("fit")
