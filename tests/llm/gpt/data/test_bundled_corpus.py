"""The shipped corpus: tokenized into the cache on first use, reused after, safe under races."""

import multiprocessing
import os

from nemolite.llm.gpt.data import BundledCorpusDataModule
from nemolite.llm.gpt.data.corpus_cache import cached_corpus_prefix
from nemolite.llm.tokenizers import ByteTokenizer


def _prefix_in_child(corpus: str, cache: str, queue) -> None:
    os.environ["NEMOLITE_CACHE"] = cache
    queue.put(cached_corpus_prefix(corpus, ByteTokenizer(), show_progress=False))


def test_bundled_corpus_is_cached_once_and_yields_english(tmp_path, monkeypatch):
    monkeypatch.setenv("NEMOLITE_CACHE", str(tmp_path))
    spec = BundledCorpusDataModule(seq_length=64, micro_batch_size=2, global_batch_size=4,
                                   num_train_samples=32, num_val_samples=8, num_test_samples=8)
    dm = spec.build()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    text = bytes(t for t in batch["tokens"].flatten().tolist() if t < 256).decode()
    assert sum(w in text.lower().split() for w in ("the", "of", "and", "a", "to")) >= 2
    (cache_dir,) = (tmp_path / "corpus").iterdir()
    bin_file = cache_dir / "text_document.bin"
    stamp = bin_file.stat().st_mtime_ns
    spec.build()  # second run: reuses the cache
    assert bin_file.stat().st_mtime_ns == stamp
    assert not [n for n in os.listdir(cache_dir) if ".tmp-" in n]


def test_racing_processes_produce_one_complete_cache(tmp_path):
    corpus = BundledCorpusDataModule().corpus_path()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_prefix_in_child, args=(corpus, str(tmp_path), queue))
             for _ in range(2)]
    for p in procs:
        p.start()
    prefixes = {queue.get(timeout=120) for _ in procs}
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    (prefix,) = prefixes
    from nemolite.llm.gpt.data.indexed import check_indexed_dataset

    assert check_indexed_dataset(prefix) == 1042
    assert sorted(os.listdir(os.path.dirname(prefix))) == [
        ".lock", "text_document.bin", "text_document.idx", "tokenizer.txt"]
