"""MockDataModule and the megatron-style sampler: batch contract, determinism, exact resume."""

import pytest
import torch

from nemolite.errors import ConfigError
from nemolite.llm.gpt.data import MockDataModule
from nemolite.llm.gpt.data.sampler import MegatronPretrainingSampler


def _module(**overrides):
    fields = dict(seq_length=16, micro_batch_size=2, global_batch_size=4, num_train_samples=40,
                  num_val_samples=8, num_test_samples=8, seed=7)
    dm = MockDataModule(**{**fields, **overrides}).build()
    dm.setup("fit")
    return dm


def test_micro_batches_follow_the_engine_contract():
    dm = _module()
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"tokens", "labels", "loss_mask", "position_ids"}
    for key in ("tokens", "labels", "position_ids"):
        assert batch[key].shape == (2, 16) and batch[key].dtype == torch.int64
    assert batch["loss_mask"].dtype == torch.float32 and batch["loss_mask"].shape == (2, 16)
    assert torch.equal(batch["tokens"][:, 1:], batch["labels"][:, :-1])
    assert int(batch["tokens"].max()) < dm.tokenizer.vocab_size
    assert torch.equal(batch["position_ids"][1], torch.arange(16))
    assert len(dm.train_dataloader()) == 20  # 40 samples / micro-batches of 2


def test_stream_is_a_pure_function_of_seed():
    first = [b["tokens"] for b in _module().train_dataloader()]
    again = [b["tokens"] for b in _module().train_dataloader()]
    other = [b["tokens"] for b in _module(seed=8).train_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])
    val = next(iter(_module().val_dataloader()))["tokens"]
    assert not torch.equal(val, first[0])  # splits draw independent streams


def test_resume_sees_exactly_the_remaining_samples():
    full = [b["tokens"] for b in _module().train_dataloader()]
    resumed = _module()
    resumed.load_state_dict({"consumed_samples": 12})  # three global batches of 4
    rest = [b["tokens"] for b in resumed.train_dataloader()]
    assert len(rest) == len(full) - 6
    assert all(torch.equal(a, b) for a, b in zip(full[6:], rest))
    assert resumed.state_dict() == {"consumed_samples": 12}


def test_sampler_splits_each_step_over_data_parallel_ranks_without_overlap():
    streams = [list(MegatronPretrainingSampler(30, 6, 2, rank, 3)) for rank in range(3)]
    assert [len(s) for s in streams] == [4, 4, 4]
    step0 = sorted(i for s in streams for i in s[0])
    assert step0 == list(range(6, 12))
    seen = [i for s in streams for batch in s for i in batch]
    assert sorted(seen) == list(range(6, 30))


def test_global_batch_must_divide_by_micro_batch():
    with pytest.raises(ConfigError, match="data.global_batch_size"):
        MockDataModule(micro_batch_size=3, global_batch_size=8).build()
    with pytest.raises(ConfigError, match="data.rampup_batch_size"):
        MockDataModule(rampup_batch_size=[4, 3, 100]).validate()  # 4 + 3k never reaches 8


def test_data_mock_factory_resolves():
    import fiddle as fdl
    import nemo_run as run

    import nemolite.llm.gpt.data.factories  # noqa: F401
    from nemolite.llm.gpt.data import DataModuleSpec

    spec = fdl.build(run.cli.resolve_factory(DataModuleSpec, "mock")(seq_length=32))
    assert isinstance(spec, MockDataModule) and spec.seq_length == 32
