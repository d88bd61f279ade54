"""How long a checkpoint save blocks the training step loop, sync vs async, and how long a load takes.

For `llama_tiny` and a larger CPU model, each case in its own process: a few steps with a save every
2 steps through `nl.ModelCheckpoint` (atomic publication included). "blocked" is the time the step
loop waited in the save (from the checkpoint markers); "step" the median step time without a save;
"load" the time `strategy.load_checkpoint` takes to read the last checkpoint back.

    python benchmarks/ckpt_save.py [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

MODELS = {
    "llama_tiny": {},
    "llama_cpu_large": {"num_layers": 8, "hidden_size": 512, "ffn_hidden_size": 1536,
                        "num_attention_heads": 8, "num_query_groups": 4},
}


def run_case(model: str, mode: str, steps: int, out: Path) -> dict:
    """One training run in this process; returns the measurements."""
    from nemolite.lightning import exp_ckpt_dir as ckdir
    from nemolite.lightning.callbacks.metrics import read_metrics
    from nemolite.lightning.checkpoint import ModelCheckpoint
    from nemolite.lightning.logger import NeMoLogger
    from nemolite.lightning.optim import MegatronOptimizerModule, OptimizerConfig
    from nemolite.lightning.strategy import MegatronStrategy
    from nemolite.lightning.trainer import Trainer
    from nemolite.llm.gpt.data.mock import MockDataModule
    from nemolite.llm.gpt.model import GPTModel, LlamaTinyConfig
    from nemolite.llm.training import build_run

    config = LlamaTinyConfig(**MODELS[model])
    trainer = Trainer(accelerator="cpu", devices=1, max_steps=steps, limit_val_batches=0,
                      num_sanity_val_steps=0, log_every_n_steps=1, enable_progress_bar=False,
                      strategy=MegatronStrategy(ckpt_async_save=mode == "async"))
    data = MockDataModule(seq_length=config.seq_length, micro_batch_size=2, global_batch_size=4)
    optim = MegatronOptimizerModule(OptimizerConfig(lr=1e-3, use_distributed_optimizer=False))
    pl_trainer, dm, module = build_run(model=GPTModel(config, optim=optim), data=data, trainer=trainer)
    log = NeMoLogger(explicit_log_dir=str(out), ckpt=ModelCheckpoint(every_n_train_steps=2, save_top_k=-1))
    log.setup(pl_trainer)
    pl_trainer.fit(module, datamodule=dm)
    ckpts = ckdir.list_complete(out / "checkpoints")
    blocked = [c.meta["blocked_s"] for c in ckpts if "blocked_s" in c.meta]
    step_times = [r["train_step_timing in s"] for s, r in read_metrics(out).items() if s % 2 and s > 1]
    start = time.perf_counter()
    pl_trainer.strategy.load_checkpoint(ckpts[-1].path)
    load_s = time.perf_counter() - start
    size = sum(f.stat().st_size for f in ckpts[-1].path.rglob("*") if f.is_file())
    params = sum(p.numel() for p in module.parameters())
    return {"blocked_s": statistics.median(blocked), "step_s": statistics.median(step_times),
            "load_s": load_s, "size_mb": size / 2**20, "params_m": params / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--case", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        with tempfile.TemporaryDirectory() as tmp:
            print("RESULT " + json.dumps(run_case(*args.case, args.steps, Path(tmp) / "run")))
        return
    from _report import report

    rows, results = [], {}
    for model in MODELS:
        for mode in ("sync", "async"):
            proc = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--case", model, mode],
                                  capture_output=True, text=True)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if not line:
                raise SystemExit(f"{model}/{mode} failed:\n{proc.stderr[-3000:]}")
            results[model, mode] = r = json.loads(line[0][7:])
            rows.append([model, f"{r['params_m']:.1f}M", f"{r['size_mb']:.0f} MB", mode,
                         f"{r['step_s'] * 1e3:.0f} ms", f"{r['blocked_s'] * 1e3:.0f} ms",
                         f"{r['load_s'] * 1e3:.0f} ms"])
    ratios = ", ".join(f"{m}: async blocks {results[m, 'async']['blocked_s'] / results[m, 'sync']['blocked_s']:.0%}"
                       " of the sync save" for m in MODELS)
    report("ckpt_save", "Checkpoint save: time the step loop is blocked (CPU, torch_dist)",
           ["model", "params", "checkpoint", "save", "step (no save)", "blocked by save", "load"],
           rows, notes=f"Median over the saves of one run; {ratios}.")


if __name__ == "__main__":
    main()
