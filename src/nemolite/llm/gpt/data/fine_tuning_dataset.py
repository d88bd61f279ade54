"""Fine-tuning datasets (heavy: numpy, torch): tokenized examples, padding or packing."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from nemolite.errors import DataFileError
from nemolite.llm.gpt.data.datamodule import GPTDataModule
from nemolite.llm.gpt.data.fine_tuning import SPLIT_FILES, FineTuningDataModule
from nemolite.llm.tokenizers.base import Tokenizer

Example = tuple[list[int], list[int]]  # token ids, and 1 where the token is a loss target


def _template_example(record: dict[str, Any], spec: FineTuningDataModule, tok: Tokenizer,
                      where: str) -> Example:
    cut = spec.prompt_template.index("{" + spec.label_key + "}")
    try:
        prompt = spec.prompt_template[:cut].format(**record)
        answer = spec.prompt_template[cut:].format(**record)
    except KeyError as err:
        raise DataFileError(where, f"has no field {err.args[0]!r} used by data.prompt_template "
                            f"(has {sorted(record)})", "fix the record or the template") from None
    prompt_ids, answer_ids = tok.text_to_ids(prompt), tok.text_to_ids(answer)
    if spec.add_bos and tok.bos_id is not None:
        prompt_ids = [tok.bos_id] + prompt_ids
    if spec.add_eos:
        answer_ids = answer_ids + [tok.eod]
    mask = [0 if spec.answer_only_loss else 1] * len(prompt_ids) + [1] * len(answer_ids)
    return prompt_ids + answer_ids, mask


def _chat_example(messages: Any, spec: FineTuningDataModule, tok: Tokenizer, where: str
                  ) -> Example:
    if not isinstance(messages, list) or not all(
            isinstance(m, dict) and {"role", "content"} <= set(m) for m in messages):
        raise DataFileError(where, "'messages' is not a list of {role, content} objects",
                            'write {"messages": [{"role": "user", "content": "..."}, ...]}')
    ids: list[int] = []
    mask: list[int] = []
    # Rendering growing prefixes attributes each new token to the turn that added it.
    for i, message in enumerate(messages):
        full = tok.apply_chat_template(messages[: i + 1])
        new = full[len(ids):]
        target = message["role"] == "assistant" or not spec.answer_only_loss
        ids, mask = full, mask + [int(target)] * len(new)
    return ids, mask


def _conversation_messages(record: dict[str, Any], where: str) -> list[dict[str, str]]:
    """NeMo's SFT chat record (`conversations` of `{from, value}`, optional `system`) as messages."""
    turns = record["conversations"]
    if not isinstance(turns, list) or not all(
            isinstance(t, dict) and {"from", "value"} <= set(t) for t in turns):
        raise DataFileError(where, "'conversations' is not a list of {from, value} objects",
                            'write {"conversations": [{"from": "User", "value": "..."}, ...]}')
    messages = [{"role": "system", "content": record["system"]}] if record.get("system") else []
    return messages + [{"role": str(t["from"]).lower(), "content": t["value"]} for t in turns]


def record_example(record: Any, spec: FineTuningDataModule, tok: Tokenizer, where: str) -> Example:
    """One record (named fields, `messages` or `conversations`) as token ids and loss mask."""
    if not isinstance(record, dict):
        raise DataFileError(where, "is not a JSON object", "write one object a line")
    if "messages" in record:
        return _chat_example(record["messages"], spec, tok, where)
    if "conversations" in record:
        return _chat_example(_conversation_messages(record, where), spec, tok, where)
    if spec.chat:
        raise DataFileError(where, f"has no 'messages' (has {sorted(record)}); chat data "
                            "(ChatDataModule, dataset_kwargs chat=True) needs chat records",
                            'write {"messages": [{"role": "user", "content": "..."}, ...]}')
    return _template_example(record, spec, tok, where)


def jsonl_records(path: str) -> Iterator[tuple[str, Any]]:
    """(file:line, record) of every non-blank line of a JSONL file."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as err:
                raise DataFileError(where, f"line is not JSON ({err.msg})",
                                    "fix or remove this line") from None


def load_examples(path: str, spec: FineTuningDataModule, tok: Tokenizer,
                  records: Iterable[tuple[str, Any]] | None = None) -> list[Example]:
    """Tokenizes every record of `path` (JSONL, unless `records` are given); errors name the record."""
    examples = [record_example(record, spec, tok, where)
                for where, record in (records if records is not None else jsonl_records(path))]
    if not examples:
        raise DataFileError(path, "holds no examples", "add records or remove the file")
    return examples


class _EpochOrder:
    """Sample i -> item index: a fresh seeded permutation per epoch (pure function of seed, i)."""

    def __init__(self, num_items: int, seed: int) -> None:
        self.num_items, self.seed = num_items, seed
        self._perms: dict[int, np.ndarray] = {}

    def __call__(self, idx: int) -> int:
        epoch, offset = divmod(idx, self.num_items)
        if epoch not in self._perms:
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(
                self.num_items)
        return int(self._perms[epoch][offset])


class PaddedExampleDataset(Dataset):
    """One example per sample, truncated and padded to `seq_length` (padding has no loss)."""

    def __init__(self, examples: list[Example], seq_length: int, num_samples: int, seed: int,
                 pad_id: int) -> None:
        self.examples, self.seq_length, self.num_samples = examples, seq_length, num_samples
        self.order, self.pad_id = _EpochOrder(len(examples), seed), pad_id

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        ids, mask = self.examples[self.order(idx)]
        n = min(len(ids) - 1, self.seq_length)
        tokens = torch.full((self.seq_length,), self.pad_id, dtype=torch.int64)
        labels, loss_mask = tokens.clone(), torch.zeros(self.seq_length, dtype=torch.float32)
        tokens[:n] = torch.tensor(ids[:n])
        labels[:n] = torch.tensor(ids[1: n + 1])
        loss_mask[:n] = torch.tensor(mask[1: n + 1], dtype=torch.float32)
        return {"tokens": tokens, "labels": labels, "loss_mask": loss_mask,
                "position_ids": torch.arange(self.seq_length)}


class FineTuningGPTDataModule(GPTDataModule):
    """The LightningDataModule of `FineTuningDataModule`."""

    spec: FineTuningDataModule

    def __init__(self, spec: FineTuningDataModule) -> None:
        super().__init__(spec)
        self._examples: list[list[Example] | None] | None = None

    def split_sources(self) -> list[tuple[str, Iterable[tuple[str, Any]] | None]]:
        """(name, records) of the train, validation and test splits: the JSONL files by default."""
        root = str(self.spec.root())
        paths = [os.path.join(root, name) for name in SPLIT_FILES]
        if not os.path.isfile(paths[0]):
            raise DataFileError(paths[0], "not found (from data.dataset_root)",
                                "put training.jsonl (and optionally validation.jsonl, "
                                "test.jsonl) in data.dataset_root")
        return [(p, jsonl_records(p) if os.path.isfile(p) else None) for p in paths]

    def examples(self) -> list[list[Example] | None]:
        """Tokenized examples per split (None where a split is absent; training is required)."""
        if self._examples is None:
            self._examples = [None if records is None else
                              load_examples(name, self.spec, self.tokenizer, records)
                              for name, records in self.split_sources()]
        return self._examples

    def _items(self, examples: list[Example]) -> int:
        packed = self.spec.packed_size()
        if packed is None:
            return len(examples)
        from nemolite.llm.gpt.data.packing import pack_examples

        return len(pack_examples([len(i) - 1 for i, _ in examples], packed, self.spec.seed))

    def default_num_samples(self) -> tuple[int | None, int | None, int | None]:
        """One epoch of each split, when no trainer gives the counts."""
        counts = [self._items(e) if e else None for e in self.examples()]
        return counts[0], counts[1], counts[2]

    def build_datasets(self, num_train: int, num_val: int, num_test: int
                       ) -> tuple[Dataset | None, Dataset | None, Dataset | None]:
        """Padded or packed datasets cycling through seeded epochs of each split."""
        tok = self.tokenizer
        pad = tok.pad_id if tok.pad_id is not None else tok.eod
        packed = self.spec.packed_size()

        def make(examples: list[Example] | None, n: int, salt: int) -> Dataset | None:
            if not examples:
                return None
            seed = self.spec.seed + salt
            if packed is None:
                return PaddedExampleDataset(examples, self.spec.seq_length, n, seed, pad)
            from nemolite.llm.gpt.data.packing import PackedExampleDataset

            return PackedExampleDataset(examples, packed, n, seed, pad)

        train, val, test = self.examples()
        return make(train, num_train, 0), make(val, num_val, 1), make(test, num_test, 2)
