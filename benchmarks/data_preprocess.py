"""Preprocessing throughput (tokens/s): nemolite vs Megatron-LM's tools/preprocess_data.py.

Both tokenize the same JSONL with the same SentencePiece model and the same number of worker
processes, one after the other in this run; the result is the ratio of their tokens/s.

    python benchmarks/data_preprocess.py --megatron-lm /path/to/Megatron-LM \
        [--megatron-python /path/to/venv/bin/python] [--mb 100 --workers 2]

Megatron-LM is not part of nemolite: pass a checkout (or set MEGATRON_LM). Its tool imports
`megatron.training`, which needs packages nemolite does not install (triton, six, pydantic), so
it can run in its own environment: `--megatron-python` (or MEGATRON_LM_PYTHON) names that
interpreter; the default is this one. Measured with Megatron-LM core_v0.16.1 in a separate venv:

    python -m venv /tmp/mlm-venv
    /tmp/mlm-venv/bin/pip install torch==2.13.0 triton numpy sentencepiece tokenizers regex \
        packaging six pydantic

Without a checkout, or when its tool fails, only nemolite's throughput is reported, together
with the reason. The input is the bundled corpus repeated to `--mb` megabytes; the SentencePiece
model (vocab 8000) is trained on it first. Both outputs are checked to hold the same number of
tokens. The table goes to results/data_preprocess.md.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import report  # noqa: E402

GOAL = 1.5


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


def _megatron(python: str, repo: str, source: str, model: str, out: str, workers: int
              ) -> tuple[float, int]:
    """Runs Megatron-LM's tool; returns (seconds, tokens written). Raises RuntimeError on failure."""
    cmd = [python, os.path.join(repo, "tools", "preprocess_data.py"), "--input", source,
           "--output-prefix", out, "--tokenizer-type", "SentencePieceTokenizer",
           "--tokenizer-model", model, "--workers", str(workers), "--append-eod",
           "--json-keys", "text"]
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        raise RuntimeError(lines[-1] if lines else f"exit status {proc.returncode}")
    return seconds, _tokens_in(out + "_text_document")


def _tokens_in(prefix: str) -> int:
    """Tokens in an indexed dataset: `.bin` size over the item size named in the `.idx` header."""
    with open(prefix + ".idx", "rb") as f:
        f.read(9 + 8)  # magic, version
        code = f.read(1)[0]
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 8, 7: 4, 8: 2}  # megatron's DType codes
    return os.path.getsize(prefix + ".bin") // sizes[code]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megatron-lm", default=os.environ.get("MEGATRON_LM"))
    parser.add_argument("--megatron-python", default=os.environ.get("MEGATRON_LM_PYTHON", sys.executable),
                        help="interpreter whose environment can import Megatron-LM's tool")
    parser.add_argument("--mb", type=int, default=100, help="input size in megabytes")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    columns = ["tool", "tokens/s", "seconds", "tokens", "vs Megatron-LM"]
    with tempfile.TemporaryDirectory() as tmp:
        source = _make_input(tmp, args.mb)
        model = _train_sentencepiece(tmp, source)
        ours_s, tokens = _nemolite(source, model, os.path.join(tmp, "ours"), args.workers)
        ours = ["nemolite (`nemo llm preprocess`)", f"{tokens / ours_s:,.0f}", f"{ours_s:.1f}", f"{tokens:,}"]
        setup = (f"Input: bundled corpus repeated to {args.mb} MB of JSONL; SentencePiece model "
                 f"(vocab 8000) trained on it; {args.workers} workers each; `--append-eod`.")
        if not args.megatron_lm:
            reason = "no Megatron-LM checkout given (pass --megatron-lm or set MEGATRON_LM)"
            rows, notes = [ours + ["n/a"]], f"{setup} Megatron-LM NOT measured: {reason}."
        else:
            try:
                theirs_s, theirs_tokens = _megatron(args.megatron_python, args.megatron_lm, source,
                                                    model, os.path.join(tmp, "mlm"), args.workers)
            except RuntimeError as err:
                rows = [ours + ["n/a"], ["Megatron-LM tools/preprocess_data.py", "failed", "", "", ""]]
                notes = (f"{setup} Megatron-LM NOT measured: its tool failed under "
                         f"{args.megatron_python}: {err}")
            else:
                tiny = os.path.join(tmp, "tiny.jsonl")
                with open(source, encoding="utf-8") as f, open(tiny, "w", encoding="utf-8") as out:
                    out.write(f.readline())
                fixed_s, _ = _megatron(args.megatron_python, args.megatron_lm, tiny, model,
                                       os.path.join(tmp, "mlm_tiny"), args.workers)
                ratio = theirs_s / ours_s
                steady = max(theirs_s - fixed_s, 1e-9) / ours_s
                verdict = "meets" if ratio >= GOAL else "MISSES"
                same = "same token count" if theirs_tokens == tokens else (
                    f"token counts DIFFER ({theirs_tokens:,} vs {tokens:,})")
                rows = [ours + [f"{ratio:.2f}x"],
                        ["Megatron-LM tools/preprocess_data.py", f"{theirs_tokens / theirs_s:,.0f}",
                         f"{theirs_s:.1f}", f"{theirs_tokens:,}", "1.00x"]]
                notes = (f"{setup} Megatron-LM: {_version(args.megatron_lm)}, run by "
                         f"{args.megatron_python}; {same}. nemolite / Megatron-LM = {ratio:.2f}x "
                         f"({verdict} the {GOAL}x goal). Seconds include process start-up for both "
                         "(nemolite: worker pool start; Megatron-LM: interpreter and imports). "
                         f"Megatron-LM on a one-document input takes {fixed_s:.1f} s; without that "
                         f"fixed start-up its rate is {theirs_tokens / max(theirs_s - fixed_s, 1e-9):,.0f} "
                         f"tokens/s and the ratio {steady:.2f}x.")
    report("data_preprocess", "Preprocessing throughput: nemolite vs Megatron-LM", columns, rows, notes)


def _version(repo: str) -> str:
    """The checkout's Megatron-Core version, read from its package_info.py."""
    info = os.path.join(repo, "megatron", "core", "package_info.py")
    try:
        scope: dict = {}
        exec(open(info, encoding="utf-8").read(), scope)  # noqa: S102 - a plain constants file
        return f"Megatron-Core {scope.get('__version__', '?')}"
    except Exception:  # noqa: BLE001
        return "version unknown"


if __name__ == "__main__":
    main()
