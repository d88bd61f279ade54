"""`ChatDataModule`: fine-tuning on chat records only (NeMo's `llm.ChatDataModule`)."""

from dataclasses import dataclass

from nemolite.llm.gpt.data.fine_tuning import FineTuningDataModule


@dataclass
class ChatDataModule(FineTuningDataModule):
    """`training.jsonl` (and optional `validation.jsonl`, `test.jsonl`) of chats in `dataset_root`.

    A record is `{"messages": [{"role", "content"}, ...]}` or NeMo's SFT chat form
    `{"system": ..., "conversations": [{"from": "User", "value": ...}, ...]}`; either is rendered
    by the tokenizer's chat template, and the loss is on the assistant turns. A record that is not
    a chat is an error naming its file and line. See `FineTuningDataModule` for the other fields.
    """

    chat: bool = True
