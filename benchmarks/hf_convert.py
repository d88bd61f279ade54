"""Hugging Face import and export vs transformers' own load and save of the same model.

A random Llama 3.2 1B-shaped model (bf16, made locally, sharded safetensors) is: loaded and saved
again by transformers (`from_pretrained` + `save_pretrained`: the peer), imported by nemolite
(`llm.import_ckpt`), and exported back (`llm.export_ckpt`). Each case runs in its own process;
wall time and peak RSS are measured there. Goals (issue 9): import and export at most 1.0x the
peer's time, peak RSS at most 1.25x the checkpoint's size on disk.

    python benchmarks/hf_convert.py [--size 1b|small] [--rounds 3]

With several rounds the cases alternate (transformers, import, export, transformers, ...) and
each keeps its fastest round: on a shared machine the other load only ever adds time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

SIZES = {
    # Llama 3.2 1B: 16 layers, hidden 2048, ffn 8192, 32 heads, 8 groups, vocab 128256, tied.
    "1b": dict(num_hidden_layers=16, hidden_size=2048, intermediate_size=8192, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True),
    "small": dict(num_hidden_layers=4, hidden_size=512, intermediate_size=2048, num_attention_heads=8,
                  num_key_value_heads=2, vocab_size=32000, tie_word_embeddings=True),
}


def make(size: str, out: Path) -> None:
    import torch
    import transformers

    config = transformers.LlamaConfig(**SIZES[size], rope_theta=500000.0, max_position_embeddings=131072,
                                      rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    with torch.device("cpu"):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out / "hf", max_shard_size="500MB")


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def case(name: str, out: Path) -> dict:
    """One measured case in this process."""
    start = time.perf_counter()
    if name == "transformers":
        shutil.rmtree(out / "hf_resaved", ignore_errors=True)
        import torch
        import transformers

        imports = _cpu()
        model = transformers.AutoModelForCausalLM.from_pretrained(out / "hf", dtype=torch.bfloat16)
        model.save_pretrained(out / "hf_resaved", max_shard_size="500MB")
    elif name == "nemolite_import":
        import torch  # noqa: F401 - the conversion's first import, counted as transformers' is

        from nemolite import llm

        imports = _cpu()
        shutil.rmtree(out / "imported", ignore_errors=True)
        llm.import_ckpt(source=str(out / "hf"), output_path=str(out / "imported"))
    elif name == "nemolite_export":
        import torch  # noqa: F401 - the conversion's first import, counted as transformers' is

        from nemolite import llm

        imports = _cpu()
        shutil.rmtree(out / "exported", ignore_errors=True)
        llm.export_ckpt(path=str(out / "imported"), output_path=str(out / "exported"))
    seconds = time.perf_counter() - start
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"seconds": seconds, "peak_rss": own.ru_maxrss * 1024, "child_rss": children.ru_maxrss * 1024,
            "cpu": own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, "imports_cpu": imports}


def _run(name: str, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--case", name, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="1b", choices=sorted(SIZES))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--case")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(case(args.case, Path(args.out))))
        return
    from _report import report

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        os.environ["NEMO_HOME"] = str(out / "nemo_home")
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                        f"import hf_convert; hf_convert.make({args.size!r}, __import__('pathlib').Path({tmp!r}))"],
                       check=True, capture_output=True)
        disk = _size(out / "hf")
        names = ("transformers", "nemolite_import", "nemolite_export")
        results: dict[str, dict] = {}
        for _ in range(args.rounds):
            for name in names:
                r = _run(name, out)
                if name not in results or r["seconds"] < results[name]["seconds"]:
                    results[name] = r
        load = os.getloadavg()
    peer = results["transformers"]["seconds"]
    peer_cpu = results["transformers"]["cpu"]
    rows = [[name, f"{r['seconds']:.1f}", f"{r['seconds'] / peer:.2f}x", f"{r['cpu']:.1f}", f"{r['imports_cpu']:.1f}",
             f"{r['cpu'] / peer_cpu:.2f}x", f"{r['peak_rss'] / 2**30:.2f}", f"{r['peak_rss'] / disk:.2f}x",
             f"{r['child_rss'] / 2**30:.2f}"] for name, r in results.items()]
    report(f"hf_convert_{args.size}", f"HF conversion of a random Llama 3.2 {args.size} (bf16, "
           f"{disk / 2**30:.2f} GiB of safetensors)",
           ["case", "wall s", "vs transformers", "CPU s", "of which imports", "CPU time vs transformers",
            "peak RSS GiB", "RSS / checkpoint size", "largest child's peak RSS GiB"], rows,
           notes="transformers = from_pretrained + save_pretrained of the same files; each case in its own "
                 "process, timed from its first import (peak RSS includes the Python, torch and megatron "
                 "imports). CPU time is user + system of the process and its children (less sensitive to "
                 "other load than wall time); 'of which imports' is the CPU time of `import torch, "
                 "transformers` or `import torch` + `from nemolite import llm` (no nemo-run since 2026-11-30). Children are short-lived "
                 "fork+exec helpers (a fork counts the parent's pages in its peak RSS). "
                 f"Fastest of {args.rounds} round(s) per case; load average at the end "
                 f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) on {os.cpu_count()} CPUs.")


if __name__ == "__main__":
    main()
