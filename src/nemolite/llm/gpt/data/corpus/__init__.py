"""`BundledCorpusDataModule`: the public-domain English corpus shipped in this package.

The first run tokenizes `english.jsonl.gz` with the chosen tokenizer into the cache directory
(`$NEMOLITE_CACHE` or `~/.cache/nemolite`); later runs reuse it. See README.md for the texts.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nemolite.llm.gpt.data.pre_training import IndexedDataOptions

if TYPE_CHECKING:
    from nemolite.llm.gpt.data.datamodule import GPTDataModule

CORPUS_FILE = "english.jsonl.gz"


@dataclass(kw_only=True)
class BundledCorpusDataModule(IndexedDataOptions):
    """Pretraining data from the bundled public-domain English corpus (about 480 KB of text).

    Takes PreTrainingDataModule's arguments except `paths`; `split` defaults to "98,1,1" so that
    the small validation split still holds a few dozen documents.
    """

    split: str = "98,1,1"

    def corpus_path(self) -> str:
        """The shipped JSONL file."""
        import os

        return os.path.join(os.path.dirname(__file__), CORPUS_FILE)

    def build(self) -> "GPTDataModule":
        """Tokenizes the corpus into the cache when needed; returns the data module over it."""
        from dataclasses import fields

        from nemolite.llm.gpt.data.corpus_cache import cached_corpus_prefix
        from nemolite.llm.gpt.data.pre_training import PreTrainingDataModule

        self.validate()
        prefix = cached_corpus_prefix(self.corpus_path(), self.tokenizer_spec())
        options = {f.name: getattr(self, f.name) for f in fields(IndexedDataOptions)}
        return PreTrainingDataModule(paths=prefix, **options).build()
