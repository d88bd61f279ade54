"""Context parallelism's data path, against megatron-core's own slicing (CPU, in-process).

CP itself needs TransformerEngine's attention (megatron-core's local attention asserts CP == 1), so
no CP training runs on CPU; `tests/multiproc/test_engine_parallel.py` checks that CP=2 is refused
there with a one-line error. `tests/llm/gpt/model/test_engine_gpu.py` is where a GPU with TE runs it.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from megatron.core import parallel_state
from megatron.core.utils import get_batch_on_this_cp_rank

from nemolite.llm.gpt.model.megatron_module import slice_for_context_parallel


def _megatrons_slice(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """megatron-core's CP slicing: 0.16 reads parallel_state, 0.19 the given CP group's size and rank
    (`is_hybrid_cp` required; the group is faked through torch.distributed.get_world_size/get_rank)."""
    if "is_hybrid_cp" in inspect.signature(get_batch_on_this_cp_rank).parameters:
        return get_batch_on_this_cp_rank(batch, is_hybrid_cp=False, cp_group="cp")
    return get_batch_on_this_cp_rank(batch)


@pytest.mark.parametrize("cp", [2, 4])
def test_cp_slices_are_megatrons_and_cover_each_sequence_once(monkeypatch: pytest.MonkeyPatch, cp: int) -> None:
    seq = 8 * cp
    batch = {
        "tokens": torch.arange(2 * seq).view(2, seq),
        "labels": torch.arange(2 * seq).view(2, seq) + 1000,
        "loss_mask": torch.rand(2, seq),
        "position_ids": torch.arange(seq).repeat(2, 1),
    }
    seen = []
    for rank in range(cp):
        monkeypatch.setattr(parallel_state, "get_context_parallel_world_size", lambda: cp)
        monkeypatch.setattr(parallel_state, "get_context_parallel_rank", lambda r=rank: r)
        monkeypatch.setattr(torch.distributed, "get_world_size", lambda group=None: cp)
        monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None, r=rank: r)
        ours = slice_for_context_parallel(dict(batch))
        theirs = _megatrons_slice({k: v.clone() for k, v in batch.items()})
        for key in batch:
            assert torch.equal(ours[key], theirs[key]), (cp, rank, key)
        # Load balance under causal attention: an early and a late chunk on every rank.
        assert ours["tokens"].shape == (2, seq // cp)
        seen.append(ours["position_ids"][0])
    assert sorted(torch.cat(seen).tolist()) == list(range(seq))
