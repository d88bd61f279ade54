"""PreTrainingDataModule on megatron-core's GPTDataset: blends, splits, resume, per-split paths."""

import re
from collections import Counter

import pytest
import torch

from nemolite.errors import ConfigError
from nemolite.llm.gpt.data import PreTrainingDataModule


def _build(paths, tmp_path, **overrides):
    fields = dict(seq_length=32, micro_batch_size=4, global_batch_size=8, num_train_samples=400,
                  num_val_samples=16, num_test_samples=16, seed=5, split="1,0,0",
                  index_mapping_dir=str(tmp_path / "index"))
    dm = PreTrainingDataModule(paths, **{**fields, **overrides}).build()
    dm.setup("fit")
    return dm


def _texts(batch):
    return [bytes(t for t in row.tolist() if t < 256).decode() for row in batch["tokens"]]


def test_blend_follows_its_weights(letter_prefixes, tmp_path):
    dm = _build(["30", letter_prefixes["a"], "70", letter_prefixes["b"]], tmp_path)
    counts = Counter(text[0] for batch in dm.train_dataloader() for text in _texts(batch))
    assert sum(counts.values()) == 400
    assert abs(counts["a"] / 400 - 0.30) < 0.02 and abs(counts["b"] / 400 - 0.70) < 0.02


def test_unweighted_list_and_labels_are_shifted_tokens(letter_prefixes, tmp_path):
    dm = _build([letter_prefixes["a"], letter_prefixes["b"]], tmp_path)
    batch = next(iter(dm.train_dataloader()))
    assert batch["tokens"].shape == (4, 32) and batch["loss_mask"].dtype == torch.float32
    assert torch.equal(batch["tokens"][:, 1:], batch["labels"][:, :-1])


def _numbers(dataloader):
    return {int(n) for batch in dataloader for text in _texts(batch)
            for n in re.findall(r"<(\d{4})>", text)}


def test_splits_do_not_overlap(numbered_prefix, tmp_path):
    dm = _build(numbered_prefix, tmp_path, split="80,10,10", num_val_samples=40,
                num_test_samples=40)
    train, val, test = (_numbers(dm.train_dataloader()), _numbers(dm.val_dataloader()),
                        _numbers(dm.test_dataloader()))
    assert train and val and test
    assert not train & val and not train & test and not val & test
    assert max(train) < min(val) and max(val) < min(test)  # megatron splits by document ranges


def test_per_split_dict_uses_each_prefix_for_its_split(letter_prefixes, tmp_path):
    dm = _build({"train": letter_prefixes["a"], "validation": letter_prefixes["b"]}, tmp_path)
    assert {t[0] for t in _texts(next(iter(dm.train_dataloader())))} == {"a"}
    assert {t[0] for t in _texts(next(iter(dm.val_dataloader())))} == {"b"}
    assert dm.test_ds is None


def test_resume_continues_the_uninterrupted_stream(numbered_prefix, tmp_path):
    full = [b["tokens"] for b in _build(numbered_prefix, tmp_path).train_dataloader()]
    resumed = _build(numbered_prefix, tmp_path)
    resumed.load_state_dict({"consumed_samples": 24})  # 3 global batches = 6 micro-batches
    rest = [b["tokens"] for b in resumed.train_dataloader()]
    assert len(rest) == len(full) - 6
    assert all(torch.equal(a, b) for a, b in zip(full[6:], rest))
    other_seed = next(iter(_build(numbered_prefix, tmp_path, seed=6).train_dataloader()))
    assert not torch.equal(other_seed["tokens"], full[0])


def test_reset_position_ids_restarts_after_each_document(numbered_prefix, tmp_path):
    dm = _build(numbered_prefix, tmp_path, reset_position_ids=True, eod_mask_loss=True)
    batch = next(iter(dm.train_dataloader()))
    eods = (batch["tokens"] == dm.tokenizer.eod).nonzero().tolist()
    assert eods
    for row, i in eods:
        assert batch["loss_mask"][row, i] == 0
        if i + 1 < 32:
            assert batch["position_ids"][row, i + 1] == 0
            last = max(j for r, j in eods if r == row)
            assert batch["position_ids"][row, -1] == 31 - last - 1 or last == 31


@pytest.mark.parametrize("paths", [["30", "a", "b"], ["30", "a", "70"], ["a", "30", "b", "70"],
                                   ["0", "a", "1", "b"]])
def test_blend_weights_that_do_not_match_paths_are_config_errors(paths):
    with pytest.raises(ConfigError) as err:
        PreTrainingDataModule(paths).validate()
    assert str(err.value).startswith("data.paths=") and "\n" not in str(err.value)
