"""Preprocessing throughput (tokens/s): nemolite vs Megatron-LM's tools/preprocess_data.py.

Both tokenize the same JSONL with the same SentencePiece model and the same number of worker
processes, one after the other in this run, and both are timed the same way: as the command a
user types, in a fresh process (`nemo llm preprocess ...` and `python tools/preprocess_data.py
...`), wall clock. Two ratios are reported: end to end (what the user waits for), and steady
state, where each tool's fixed cost (its time on a one-document input: interpreter, imports,
worker start) is subtracted from its own time.

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
model (vocab 8000) is trained on it first. The two outputs are compared byte for byte (`.bin` and
`.idx`). The table goes to results/data_preprocess.md.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
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


def _run(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Wall-clock seconds of a command in a fresh process. Raises RuntimeError on failure."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        raise RuntimeError(lines[-1] if lines else f"exit status {proc.returncode}")
    return seconds


def _nemolite(source: str, model: str, out: str, workers: int) -> float:
    """`nemo llm preprocess ...` as a user types it; returns seconds (output: out.bin/.idx)."""
    nemo = shutil.which("nemo") or str(Path(sys.executable).with_name("nemo"))
    return _run([nemo, "llm", "preprocess", f"input={source}", f"output_prefix={out}",
                 "tokenizer=sentencepiece", f"tokenizer.model_path={model}", f"workers={workers}",
                 "show_progress=False"])


def _megatron(python: str, repo: str, source: str, model: str, out: str, workers: int) -> float:
    """Megatron-LM's tool as its docs run it; returns seconds (output: out_text_document.bin/.idx)."""
    cmd = [python, os.path.join(repo, "tools", "preprocess_data.py"), "--input", source,
           "--output-prefix", out, "--tokenizer-type", "SentencePieceTokenizer",
           "--tokenizer-model", model, "--workers", str(workers), "--append-eod",
           "--json-keys", "text"]
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return _run(cmd, env)


def _first_line(source: str, path: str) -> str:
    with open(source, encoding="utf-8") as f, open(path, "w", encoding="utf-8") as out:
        out.write(f.readline())
    return path


def _same_bytes(a: str, b: str) -> bool:
    return all(Path(a + ext).read_bytes() == Path(b + ext).read_bytes() for ext in (".bin", ".idx"))


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
    columns = ["tool", "end to end s", "fixed s", "tokens/s end to end", "tokens/s steady", "tokens"]
    with tempfile.TemporaryDirectory() as tmp:
        source = _make_input(tmp, args.mb)
        model = _train_sentencepiece(tmp, source)
        tiny = _first_line(source, os.path.join(tmp, "tiny.jsonl"))
        ours_s = _nemolite(source, model, os.path.join(tmp, "ours"), args.workers)
        ours_fixed = _nemolite(tiny, model, os.path.join(tmp, "ours_tiny"), args.workers)
        tokens = _tokens_in(os.path.join(tmp, "ours"))

        def steady_s(total: float, fixed: float) -> float | None:
            """Seconds of tokenizing proper; None when start-up noise swamps it (raise --mb)."""
            return total - fixed if total - fixed > 0.2 * total else None

        def row(name: str, total: float, fixed: float) -> list[str]:
            work = steady_s(total, fixed)
            return [name, f"{total:.1f}", f"{fixed:.1f}", f"{tokens / total:,.0f}",
                    f"{tokens / work:,.0f}" if work else "n/a (use a larger --mb)", f"{tokens:,}"]

        rows = [row("nemolite: nemo llm preprocess", ours_s, ours_fixed)]
        setup = (f"Input: bundled corpus repeated to {args.mb} MB of JSONL; SentencePiece model "
                 f"(vocab 8000) trained on it; {args.workers} workers each; end of document appended. "
                 "Both timed the same way: the command a user types, in a fresh process, wall clock; "
                 "'fixed' is the same command on a one-document input (interpreter, imports, workers), "
                 "and steady state subtracts it from each tool's own time.")
        if not args.megatron_lm:
            notes = f"{setup} Megatron-LM NOT measured: no checkout given (pass --megatron-lm or set MEGATRON_LM)."
        else:
            mlm = os.path.join(tmp, "mlm")
            try:
                theirs_s = _megatron(args.megatron_python, args.megatron_lm, source, model, mlm, args.workers)
                theirs_fixed = _megatron(args.megatron_python, args.megatron_lm, tiny, model,
                                         os.path.join(tmp, "mlm_tiny"), args.workers)
            except RuntimeError as err:
                notes = (f"{setup} Megatron-LM NOT measured: its tool failed under "
                         f"{args.megatron_python}: {err}")
            else:
                rows.append(row("Megatron-LM: tools/preprocess_data.py", theirs_s, theirs_fixed))
                same = _same_bytes(os.path.join(tmp, "ours"), mlm + "_text_document")
                e2e = theirs_s / ours_s
                ours_work, theirs_work = steady_s(ours_s, ours_fixed), steady_s(theirs_s, theirs_fixed)
                steady = (f"{theirs_work / ours_work:.2f}x steady state" if ours_work and theirs_work
                          else "steady state not measurable at this size (start-up dominates)")
                notes = (f"{setup} Megatron-LM: {_version(args.megatron_lm)}, run by "
                         f"{args.megatron_python}. Outputs (.bin and .idx) "
                         f"{'byte-identical' if same else 'DIFFER'}. nemolite / Megatron-LM: "
                         f"{e2e:.2f}x end to end ({'meets' if e2e >= GOAL else 'MISSES'} the {GOAL}x "
                         f"goal), {steady}.")
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
