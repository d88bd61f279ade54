"""Batch-size ramp-up (`data.rampup_batch_size`): megatron-core's schedule, a real run that follows
it step by step, and one-line errors for ramps that cannot run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nemolite.errors import ConfigError
from nemolite.llm.gpt.data.mock import MockDataModule
from nemolite.llm.gpt.data.rampup import parse_ramp

RAMPS = [  # (start, increment, ramp_samples, global_batch_size, micro_batch_size x DP)
    (2, 1, 4, 4, 1), (1, 1, 6, 4, 1), (16, 16, 1000, 128, 4), (32, 32, 300, 256, 8), (4, 4, 7, 12, 2),
]


@pytest.mark.parametrize("start,inc,samples,gbs,step", RAMPS)
def test_schedule_matches_megatron_core_calculator(start, inc, samples, gbs, step) -> None:
    """The reference nobody here wrote: megatron-core's `RampupBatchsizeNumMicroBatchesCalculator`,
    advanced the way Megatron-LM's training loop advances it (update, then consume the batch)."""
    from megatron.core.num_microbatches_calculator import RampupBatchsizeNumMicroBatchesCalculator

    ref = RampupBatchsizeNumMicroBatchesCalculator(gbs, step, 1, False, 1, start, inc, samples)
    ramp = parse_ramp([start, inc, samples], gbs, step)
    assert ramp is not None
    consumed = 0
    for _ in range(samples // start + 3):
        ref.update(consumed, consistency_check=True)
        assert ramp.batch_at(consumed) == ref.get_current_global_batch_size(), consumed
        assert ramp.batch_at(consumed) // step == ref.get()
        consumed += ref.get_current_global_batch_size()
    assert ramp.consumed_after(0, samples // start + 3) == consumed


def test_a_run_follows_the_ramp_and_starts_like_a_constant_start_batch(tmp_path: Path) -> None:
    from nemolite.lightning.callbacks.metrics import NeMoMetrics
    from tests.llm.gpt.model.test_engine_training import SEQ, _fit, cpu_trainer, small_llama

    def run(name: str, steps: int, **data: object) -> list[dict]:
        (tmp_path / name).mkdir()
        spec = MockDataModule(seq_length=SEQ, micro_batch_size=1, **data)  # type: ignore[arg-type]
        _fit(small_llama(), spec, cpu_trainer(steps, callbacks=[NeMoMetrics(tmp_path / name)]))
        return [json.loads(line) for line in (tmp_path / name / "train_metrics.jsonl").read_text().splitlines()]

    # [2, 1, 4] to 4: two increments of 2 samples each; a step's batch is read from the samples
    # consumed before it: 0 -> 2, 2 -> 3, 5 (> 4) -> 4, 9 -> 4.
    ramped = run("ramp", 4, global_batch_size=4, rampup_batch_size=[2, 1, 4])
    assert [r["global_batch_size"] for r in ramped] == [2, 3, 4, 4]
    assert [r["consumed_samples"] for r in ramped] == [2, 5, 9, 13]
    assert [r["step"] for r in ramped] == [1, 2, 3, 4]
    constant = run("constant", 1, global_batch_size=2)
    assert constant[0]["global_batch_size"] == 2
    assert ramped[0]["reduced_train_loss"] == constant[0]["reduced_train_loss"]  # the same 2 samples


BAD = [  # (rampup_batch_size, global_batch_size, micro_batch_size, words of the one-line error)
    ([4, 8, 100], 16, 1, ["data.rampup_batch_size=[4, 8, 100]", "does not reach data.global_batch_size=16"]),
    ([3, 5, 100], 8, 2, ["start_global_batch=3 is not a multiple of data.micro_batch_size = 2"]),
    ([2, 4, 100], 8, 1, ["the ramp from 2 by 4 does not reach"]),
    ([4, 2, 100], 16, 4, ["increment=2 is not a multiple of data.micro_batch_size = 4"]),
    ([0, 2, 100], 8, 1, ["start_global_batch=0 must be a positive integer"]),
    ([2, -2, 100], 8, 1, ["increment=-2 must be a positive integer"]),
    ([2, 2, 0], 8, 1, ["ramp_samples=0 must be a positive integer"]),
    ([2, 2], 8, 1, ["must be a list of three integers"]),
    ([8, 2, 100], 8, 1, ["start_global_batch=8 must be smaller than data.global_batch_size=8"]),
]


@pytest.mark.parametrize("ramp,gbs,mbs,words", BAD, ids=[str(b[0]) for b in BAD])
def test_bad_ramp_is_one_line_naming_field_value_and_fix(ramp, gbs, mbs, words) -> None:
    with pytest.raises(ConfigError) as err:
        MockDataModule(global_batch_size=gbs, micro_batch_size=mbs, rampup_batch_size=ramp).validate()
    message = str(err.value)
    assert "\n" not in message and "fix:" in message and message.startswith("data.rampup_batch_size=")
    for word in words:
        assert word in message, (word, message)
