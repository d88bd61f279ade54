"""FineTuningDataModule: templates, answer-only loss, chat records, packing equal to padding."""

import json

import pytest
import torch
import torch.nn.functional as F

from nemolite.errors import ConfigError, DataFileError
from nemolite.llm.gpt.data import FineTuningDataModule, PackedSequenceSpecs

RECORDS = [{"input": f"Question {i}: what is {i} plus {i}?" + " really" * (i % 5),
            "output": f"It is {2 * i}."} for i in range(14)]
PACKED = PackedSequenceSpecs(packed_sequence_size=192)


def _root(tmp_path, records=RECORDS, name="training.jsonl"):
    (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(tmp_path)


def _module(root, **overrides):
    fields = dict(seq_length=96, micro_batch_size=1, global_batch_size=1, seed=3)
    dm = FineTuningDataModule(root, **{**fields, **overrides}).build()
    dm.setup("fit")
    return dm


def _targets(batch, row=0):
    keep = batch["loss_mask"][row] > 0
    return batch["labels"][row][keep].tolist()


def test_loss_is_on_the_answer_only(tmp_path):
    dm = _module(_root(tmp_path, [{"input": "Q?", "output": "A!", "extra": 1}]))
    batch = next(iter(dm.train_dataloader()))
    tok = dm.tokenizer
    assert _targets(batch) == tok.text_to_ids("A!") + [tok.eod]
    assert tok.ids_to_text(batch["tokens"][0][:4].tolist()) == "Q? A"
    full = _module(_root(tmp_path, [{"input": "Q?", "output": "A!"}]), answer_only_loss=False)
    assert len(_targets(next(iter(full.train_dataloader())))) == len("Q? A!")


def test_chat_records_train_on_assistant_turns(tmp_path):
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                         {"role": "user", "content": "bye"}, {"role": "assistant", "content": "ok"}]}
    dm = _module(_root(tmp_path, [chat]))
    tok = dm.tokenizer
    targets = _targets(next(iter(dm.train_dataloader())))
    expected = (tok.text_to_ids("<|assistant|>\nyo\n") + [tok.eod]
                + tok.text_to_ids("<|assistant|>\nok\n") + [tok.eod])
    assert targets == expected


def test_packs_restart_positions_at_each_example(tmp_path):
    dm = _module(_root(tmp_path), packed_sequence_specs=PACKED)
    batch = next(iter(dm.train_dataloader()))
    cu = batch["cu_seqlens"][0][: int(batch["cu_seqlens_argmin"][0])].tolist()
    assert len(cu) >= 3 and cu[0] == 0 and cu[-1] == 192  # at least two examples in a pack
    for start, end in zip(cu[:-1], cu[1:]):
        assert batch["position_ids"][0][start:end].tolist() == list(range(end - start))
    assert int(batch["max_seqlen"][0]) == max(b - a for a, b in zip(cu[:-1], cu[1:]))
    assert len(dm.train_ds) < len(RECORDS)


class _TinyLM(torch.nn.Module):
    """One attention layer with learned positions: enough to see any cross-example leak."""

    def __init__(self, vocab: int, dim: int = 32, max_len: int = 192) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.pos = torch.nn.Embedding(vocab, dim), torch.nn.Embedding(max_len, dim)
        self.qkv, self.out = torch.nn.Linear(dim, 3 * dim), torch.nn.Linear(dim, vocab)

    def forward(self, tokens, position_ids, segments):
        x = self.emb(tokens) + self.pos(position_ids)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        s = tokens.shape[1]
        causal = torch.ones(s, s, dtype=torch.bool).tril()
        mask = causal & (segments[:, :, None] == segments[:, None, :])
        return self.out(x + F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None][:, 0]))


def _summed_loss(model, batch):
    b, s = batch["tokens"].shape
    if "cu_seqlens" in batch:
        cu = batch["cu_seqlens"][0][: int(batch["cu_seqlens_argmin"][0])]
        segments = torch.bucketize(torch.arange(s), cu[1:].long(), right=True)[None]
    else:
        segments = torch.zeros(b, s, dtype=torch.long)
    logits = model(batch["tokens"], batch["position_ids"], segments)
    losses = F.cross_entropy(logits.flatten(0, 1).double(), batch["labels"].flatten(),
                             reduction="none")
    return (losses * batch["loss_mask"].flatten()).sum(), batch["loss_mask"].sum()


def test_packed_loss_equals_unpacked_loss(tmp_path):
    root = _root(tmp_path)
    padded, packed = _module(root), _module(root, packed_sequence_specs=PACKED)
    model = _TinyLM(padded.tokenizer.vocab_size)
    with torch.no_grad():
        sums = [[_summed_loss(model, b) for b in dm.train_dataloader()] for dm in (padded, packed)]
    (loss_a, count_a), (loss_b, count_b) = [[sum(x) for x in zip(*s)] for s in sums]
    assert len(sums[0]) == len(RECORDS) and len(sums[1]) < len(RECORDS)
    assert count_a == count_b > 0
    assert torch.allclose(loss_a / count_a, loss_b / count_b, rtol=1e-5)
    # The check can fail: without per-example attention boundaries the losses differ.
    leaky = {k: v for k, v in next(iter(packed.train_dataloader())).items() if k != "cu_seqlens"}
    with torch.no_grad():
        assert not torch.isclose(_summed_loss(model, leaky)[0],
                                 _summed_loss(model, next(iter(packed.train_dataloader())))[0])


def test_bad_fine_tuning_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(DataFileError, match="training.jsonl: not found"):
        _module(str(tmp_path))
    (tmp_path / "training.jsonl").write_text('{"input": "a", "output": "b"}\n{oops\n')
    with pytest.raises(DataFileError, match=r"training.jsonl:2: line is not JSON"):
        _module(str(tmp_path))
    (tmp_path / "training.jsonl").write_text('{"input": "a", "answer": "b"}\n')
    with pytest.raises(DataFileError, match=r"training.jsonl:1: has no field 'output'"):
        _module(str(tmp_path))
    with pytest.raises(ConfigError, match="data.micro_batch_size"):
        _module(str(tmp_path), micro_batch_size=2, global_batch_size=2,
                packed_sequence_specs=PackedSequenceSpecs())
    with pytest.raises(ConfigError, match="data.dataset_root"):
        FineTuningDataModule().build()
