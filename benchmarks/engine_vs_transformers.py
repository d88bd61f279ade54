"""nemolite's training step against transformers' LlamaForCausalLM on the same Llama, CPU, one process.

Goal (issue 15): nemolite's median step time <= 1.0x transformers' (SDPA attention, torch AdamW),
both measured in this run on the same architecture, batch (2 micro-batches of 4 x 256 tokens, as
`llama_tiny`'s recipe), fp32 and thread count, in alternating rounds so that load from other
processes hits both alike. Two models: `llama_tiny` and a ~100M-parameter Llama.

    python benchmarks/engine_vs_transformers.py [--models tiny,100m] [--steps 6] [--rounds 3]
    python benchmarks/engine_vs_transformers.py --profile nemolite   # torch.profiler table of a step
    python benchmarks/engine_vs_transformers.py --profile transformers
"""

from __future__ import annotations

import os

# One thread by default, as benchmarks/engine_overhead.py: on a shared machine a multi-threaded
# matmul waits for its slowest thread. Set OMP_NUM_THREADS to measure otherwise; both sides get it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _report import report  # noqa: E402

from nemolite.lightning.optim import MegatronOptimizerModule, OptimizerConfig  # noqa: E402
from nemolite.lightning.strategy import MegatronStrategy  # noqa: E402
from nemolite.lightning.trainer import Trainer  # noqa: E402
from nemolite.llm.gpt.data.mock import MockDataModule  # noqa: E402
from nemolite.llm.gpt.model import GPTModel, LlamaTinyConfig  # noqa: E402
from nemolite.llm.gpt.model.llama import LlamaConfig  # noqa: E402

MICRO, GLOBAL, SEQ = 4, 8, 256
LR, WD, CLIP = 1e-3, 0.01, 1.0


@dataclass
class Case:
    """One benchmarked architecture."""

    name: str
    config: LlamaConfig
    vocab: int  # the true vocabulary; nemolite pads it to a multiple of 128 and masks the padding


def cases() -> dict[str, Case]:
    tiny = LlamaTinyConfig(seq_length=SEQ)
    # ~100M parameters: GPT-2-small-sized Llama (12 x 768, GQA 12/4), 32k vocabulary.
    mid = LlamaConfig(num_layers=12, hidden_size=768, ffn_hidden_size=2048, num_attention_heads=12,
                      num_query_groups=4, seq_length=SEQ, vocab_size=32000)
    return {"tiny": Case("llama_tiny", tiny, 264), "100m": Case("Llama ~100M", mid, 32000)}


# ---- nemolite ----------------------------------------------------------------------------------
def nemolite_run(case: Case, steps: int, profile: Any = None) -> tuple[list[tuple[float, float]], int]:
    """Step end times of `Trainer.fit` through nemolite's engine (as `nemo llm pretrain` runs it)."""
    import lightning.pytorch as pl

    from nemolite.llm.training import build_run

    ends: list[tuple[float, float]] = []

    class Clock(pl.Callback):
        def on_train_batch_end(self, *args: Any) -> None:
            ends.append((time.perf_counter(), time.process_time()))
            if profile is not None and len(ends) == 2:
                profile.start()  # after two warm-up steps

    config = replace(case.config, vocab_size=case.vocab)
    model = GPTModel(config, optim=MegatronOptimizerModule(
        OptimizerConfig(lr=LR, weight_decay=WD, clip_grad=CLIP, adam_beta1=0.9, adam_beta2=0.95, adam_eps=1e-5)))
    data = MockDataModule(seq_length=SEQ, micro_batch_size=MICRO, global_batch_size=GLOBAL)
    trainer = Trainer(accelerator="cpu", devices=1, max_steps=steps, strategy=MegatronStrategy(),
                      enable_progress_bar=False, enable_checkpointing=False, limit_val_batches=0,
                      num_sanity_val_steps=0, logger=False)
    pl_trainer, dm, module = build_run(model=model, data=data, trainer=trainer)
    pl_trainer.callbacks.append(Clock())
    pl_trainer.fit(module, datamodule=dm)
    numel = sum(p.numel() for p in module.chunks.parameters())
    return ends, numel


# ---- transformers ------------------------------------------------------------------------------
def hf_model(case: Case) -> Any:
    from transformers import LlamaConfig as HFLlamaConfig
    from transformers import LlamaForCausalLM

    c = case.config
    hf = HFLlamaConfig(
        vocab_size=case.vocab, hidden_size=c.hidden_size, intermediate_size=c.ffn_hidden_size,
        num_hidden_layers=c.num_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.query_groups, max_position_embeddings=SEQ, rms_norm_eps=c.layernorm_epsilon,
        rope_theta=float(c.rotary_base), tie_word_embeddings=c.share_embeddings_and_output_weights,
        attention_bias=False, mlp_bias=False, initializer_range=c.init_method_std,
    )
    torch.manual_seed(c.seed)
    return LlamaForCausalLM._from_config(hf, attn_implementation="sdpa", torch_dtype=torch.float32)


def hf_run(case: Case, steps: int, profile: Any = None) -> tuple[list[tuple[float, float]], int]:
    """Step end times of a plain PyTorch loop over transformers' Llama: the same work per step."""
    model = hf_model(case)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.95), eps=1e-5, weight_decay=WD)
    gen = torch.Generator().manual_seed(0)
    n_micro = GLOBAL // MICRO
    ends = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        for _ in range(n_micro):
            text = torch.randint(case.vocab, (MICRO, SEQ + 1), generator=gen)
            out = model(input_ids=text[:, :-1], labels=None)
            loss = torch.nn.functional.cross_entropy(
                out.logits.float().view(-1, case.vocab), text[:, 1:].reshape(-1)
            )
            (loss / n_micro).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        ends.append((time.perf_counter(), time.process_time()))
        if profile is not None and len(ends) == 2:
            profile.start()  # after two warm-up steps, as nemolite_run
    return ends, sum(p.numel() for p in model.parameters())


def step_times(ends: list[tuple[float, float]], warmup: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each step after the warm-up.

    CPU time (all threads of this process) is what a step costs; on a loaded machine it is far
    steadier than wall time, which also counts the time other processes held the cores.
    """
    kept = ends[warmup:]
    return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(kept, kept[1:], strict=False)]


def measure(case: Case, steps: int, warmup: int, rounds: int) -> tuple[list[str], str]:
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    total = steps + warmup + 1
    numel = hf_numel = 0
    for _ in range(rounds):
        ends, hf_numel = hf_run(case, total)
        theirs += step_times(ends, warmup)
        gc.collect()
        ends, numel = nemolite_run(case, total)
        ours += step_times(ends, warmup)
        gc.collect()
    ours_wall, theirs_wall = (statistics.median(t[0] for t in ts) for ts in (ours, theirs))
    ours_cpu, theirs_cpu = (statistics.median(t[1] for t in ts) for ts in (ours, theirs))
    row = [case.name, f"{hf_numel / 1e6:.1f} M", f"{theirs_wall * 1000:.0f} ms", f"{ours_wall * 1000:.0f} ms",
           f"{ours_wall / theirs_wall:.2f}x", f"{theirs_cpu * 1000:.0f} ms", f"{ours_cpu * 1000:.0f} ms",
           f"{ours_cpu / theirs_cpu:.2f}x"]
    note = (f"{case.name}: nemolite holds {numel / 1e6:.1f} M parameters (vocabulary padded to a multiple "
            f"of 128), median of {len(ours)} steps each")
    return row, note


def profile_side(side: str, case: Case, steps: int, rows: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU])
    if side == "nemolite":
        nemolite_run(case, steps + 2, profile=prof)
    else:
        hf_run(case, steps + 2, profile=prof)
    prof.stop()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,100m", help="comma-separated: tiny, 100m")
    parser.add_argument("--steps", type=int, default=6, help="measured steps per round")
    parser.add_argument("--warmup", type=int, default=2, help="steps dropped at the start of each round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating transformers/nemolite rounds")
    parser.add_argument("--profile", choices=["nemolite", "transformers"],
                        help="print a torch.profiler table of one side's steps instead")
    args = parser.parse_args()
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    torch.distributed.init_process_group("gloo", rank=0, world_size=1)
    from nemolite.backends import cpu

    cpu.apply()
    chosen = [cases()[m] for m in args.models.split(",")]
    if args.profile:
        profile_side(args.profile, chosen[0], args.steps, 40)
        return
    rows, notes = [], []
    for case in chosen:
        row, note = measure(case, args.steps, args.warmup, args.rounds)
        rows.append(row)
        notes.append(note)
    report("engine_vs_transformers", "Training step: nemolite vs transformers' LlamaForCausalLM (CPU, fp32)",
           ["model", "params (HF)", "transformers (wall)", "nemolite (wall)", "ratio (wall)",
            "transformers (CPU)", "nemolite (CPU)", "ratio (CPU)"], rows,
           f"Batch {GLOBAL // MICRO} x {MICRO} x {SEQ} tokens per step, {torch.get_num_threads()} thread(s), "
           f"1 process, fp32, AdamW lr {LR} wd {WD}, clip {CLIP}; " + "; ".join(notes)
           + f". Goal: ratio <= 1.0. Load average during the run: {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()
