"""Preprocessing throughput (tokens/s): nemolite vs Megatron-LM's tools/preprocess_data.py.

Both tokenize the same JSONL with the same SentencePiece model and the same number of worker
processes, one after the other in this run; the result is the ratio of their tokens/s.

    python benchmarks/data_preprocess.py --megatron-lm /path/to/Megatron-LM [--mb 20 --workers 2]

Megatron-LM is not part of nemolite: pass a checkout (or set MEGATRON_LM). Without one, only
nemolite's throughput is reported. The input is the bundled corpus repeated to `--mb` megabytes;
the SentencePiece model (vocab 8000) is trained on it first.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time


def _make_input(directory: str, megabytes: int) -> str:
    from nemolite.llm.gpt.data.corpus import BundledCorpusDataModule

    with gzip.open(BundledCorpusDataModule().corpus_path(), "rt", encoding="utf-8") as f:
        lines = f.readlines()
    path = os.path.join(directory, "input.jsonl")
    with open(path, "w", encoding="utf-8") as out:
        while out.tell() < megabytes * 1_000_000:
            out.writelines(lines)
    return path


def _train_sentencepiece(directory: str, source: str) -> str:
    import json

    import sentencepiece

    text = os.path.join(directory, "sp.txt")
    with open(source, encoding="utf-8") as f, open(text, "w", encoding="utf-8") as out:
        for _, line in zip(range(1042), f):
            out.write(json.loads(line)["text"] + "\n")
    prefix = os.path.join(directory, "sp")
    sentencepiece.SentencePieceTrainer.train(input=text, model_prefix=prefix, vocab_size=8000,
                                             minloglevel=2)
    return prefix + ".model"


def _nemolite(source: str, model: str, out: str, workers: int) -> tuple[float, int]:
    from nemolite.llm.gpt.data.preprocessing import preprocess_files
    from nemolite.llm.tokenizers import SentencePieceTokenizer

    start = time.perf_counter()
    result = preprocess_files([source], out, SentencePieceTokenizer(model_path=model),
                              workers=workers, show_progress=False)
    return time.perf_counter() - start, result.tokens


def _megatron(repo: str, source: str, model: str, out: str, workers: int) -> float:
    cmd = [sys.executable, os.path.join(repo, "tools", "preprocess_data.py"), "--input", source,
           "--output-prefix", out, "--tokenizer-type", "SentencePieceTokenizer",
           "--tokenizer-model", model, "--workers", str(workers), "--append-eod",
           "--json-keys", "text"]
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megatron-lm", default=os.environ.get("MEGATRON_LM"))
    parser.add_argument("--mb", type=int, default=20, help="input size in megabytes")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = _make_input(tmp, args.mb)
        model = _train_sentencepiece(tmp, source)
        ours_s, tokens = _nemolite(source, model, os.path.join(tmp, "ours"), args.workers)
        print(f"nemolite:    {tokens / ours_s:12,.0f} tokens/s ({tokens:,} tokens, {ours_s:.1f} s)")
        if not args.megatron_lm:
            print("Megatron-LM: skipped (pass --megatron-lm or set MEGATRON_LM)")
            return
        theirs_s = _megatron(args.megatron_lm, source, model, os.path.join(tmp, "mlm"),
                             args.workers)
        print(f"Megatron-LM: {tokens / theirs_s:12,.0f} tokens/s ({theirs_s:.1f} s)")
        print(f"speed-up:    {theirs_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
