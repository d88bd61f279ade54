"""Our Trainer's step time against a bare megatron-core training loop: same model, batch, process.

Goal (issue 3): overhead ratio (nemolite step / bare step) <= 1.10 on CPU, both measured in this run,
alternating rounds so that load from other processes hits both alike. Also reports the peak RSS
growth of training steps next to the parameter + gradient + optimizer bytes the model needs.

    python benchmarks/engine_overhead.py [--steps 6] [--rounds 3] [--warmup 2]
    torchrun --nproc_per_node 2 benchmarks/engine_overhead.py   # both loops with DP=2 over gloo
"""

from __future__ import annotations

import os

# One thread per process: with as many threads as cores, any other load on the machine stalls
# every parallel matmul on its slowest thread and step times swing 5x; one thread keeps both
# loops comparable. Set OMP_NUM_THREADS yourself to measure otherwise.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _report import report  # noqa: E402

from nemolite.lightning.optim import MegatronOptimizerModule, OptimizerConfig  # noqa: E402
from nemolite.lightning.strategy import MegatronStrategy  # noqa: E402
from nemolite.lightning.trainer import Trainer  # noqa: E402
from nemolite.llm.gpt.data.mock import MockDataModule  # noqa: E402
from nemolite.llm.gpt.model import GPTModel, LlamaTinyConfig  # noqa: E402

MICRO, GLOBAL = 2, 4


class PeakRss:
    """Samples this process's RSS every 5 ms in a thread; `peak` is the largest seen."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def specs(steps: int) -> tuple[GPTModel, MockDataModule, Trainer]:
    config = LlamaTinyConfig()
    model = GPTModel(config, optim=MegatronOptimizerModule(OptimizerConfig(lr=1e-3)))
    data = MockDataModule(seq_length=config.seq_length, micro_batch_size=MICRO, global_batch_size=GLOBAL)
    trainer = Trainer(accelerator="cpu", devices=torch.distributed.get_world_size(), max_steps=steps, strategy=MegatronStrategy(),
                      enable_progress_bar=False, enable_checkpointing=False, limit_val_batches=0,
                      num_sanity_val_steps=0)
    return model, data, trainer


def ours(steps: int) -> tuple[list[tuple[float, float]], Any]:
    """Step end times of `trainer.fit` through nemolite's whole engine."""
    import lightning.pytorch as pl

    from nemolite.llm.training import build_run

    ends: list[tuple[float, float]] = []

    class Clock(pl.Callback):
        def on_train_batch_end(self, *args: Any) -> None:
            ends.append((time.perf_counter(), time.process_time()))

    model, data, trainer = specs(steps)
    pl_trainer, dm, module = build_run(model=model, data=data, trainer=trainer)
    pl_trainer.callbacks.append(Clock())
    pl_trainer.fit(module, datamodule=dm)
    return ends, module


def bare(steps: int) -> list[tuple[float, float]]:
    """The same model and batches through megatron-core alone: DDP, optimizer, schedule, step."""
    from megatron.core import parallel_state
    from megatron.core.distributed import (
        DistributedDataParallel,
        DistributedDataParallelConfig,
        finalize_model_grads,
    )
    from megatron.core.optimizer import OptimizerConfig as McoreOptimizerConfig
    from megatron.core.optimizer import get_megatron_optimizer
    from megatron.core.pipeline_parallel import get_forward_backward_func
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    from nemolite.llm.gpt.model import megatron_config as mc
    from nemolite.llm.gpt.model.megatron_module import masked_token_loss

    model, data, _ = specs(steps)
    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel()
    tf = mc.transformer_config(model.config, MegatronStrategy())
    torch.manual_seed(model.config.seed)
    model_parallel_cuda_manual_seed(model.config.seed)
    vocab = mc.padded_vocab_size(data.build_tokenizer().vocab_size, 128, 1)
    chunk = DistributedDataParallel(tf, DistributedDataParallelConfig(), mc.build_chunks(model.config, tf, vocab)[0])
    tf.no_sync_func, tf.finalize_model_grads_func = chunk.no_sync, finalize_model_grads
    optimizer = get_megatron_optimizer(McoreOptimizerConfig(lr=1e-3, clip_grad=1.0), [chunk])
    dm = data.build()
    dm.setup("fit")
    batches = iter(dm.train_dataloader())

    def forward_step(it: Any, m: Any) -> Any:
        b = next(it)
        return m(b["tokens"], b["position_ids"], None, labels=b["labels"]), lambda o: masked_token_loss(b["loss_mask"], o)

    ends = []
    for _ in range(steps):
        chunk.zero_grad_buffer()
        optimizer.zero_grad()
        get_forward_backward_func()(forward_step_func=forward_step, data_iterator=batches, model=chunk,
                                    num_microbatches=GLOBAL // (MICRO * torch.distributed.get_world_size()), seq_length=model.config.seq_length,
                                    micro_batch_size=MICRO, forward_only=False)
        optimizer.step()
        ends.append((time.perf_counter(), time.process_time()))
    return ends


def step_times(ends: list[tuple[float, float]], warmup: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each step after the warm-up.

    CPU time (all threads of this process) is what the step costs; it is steadier than wall time
    when other processes load the machine.
    """
    kept = ends[warmup:]
    return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(kept, kept[1:], strict=False)]


def state_bytes(module: Any) -> dict[str, int]:
    """fp32 training: params 4 B, megatron's fp32 grad buffer 4 B, Adam exp_avg + exp_avg_sq 8 B."""
    numel = sum(p.numel() for p in module.chunks.parameters())
    return {"params": 4 * numel, "grads": 4 * numel, "optimizer": 8 * numel, "numel": numel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="measured steps per round")
    parser.add_argument("--warmup", type=int, default=2, help="steps dropped at the start of each round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating ours/bare rounds")
    args = parser.parse_args()
    if "WORLD_SIZE" in os.environ:  # under torchrun: both loops data-parallel over its processes
        torch.distributed.init_process_group("gloo")
    else:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
        torch.distributed.init_process_group("gloo", rank=0, world_size=1)
    world = torch.distributed.get_world_size()
    from nemolite.backends import cpu

    cpu.apply()
    cpu.set_cpu_threads(world)
    total = args.steps + args.warmup + 1
    bare_times: list[tuple[float, float]] = []
    our_times: list[tuple[float, float]] = []
    # The first fit runs before anything else has grown the heap, so its RSS growth is its own.
    with PeakRss() as rss:
        ends, module = ours(total)
    growth = rss.peak - rss.start
    our_times += step_times(ends, args.warmup)
    for i in range(args.rounds):
        bare_times += step_times(bare(total), args.warmup)
        if i + 1 < args.rounds:
            module = None
            gc.collect()
            ends, module = ours(total)
            our_times += step_times(ends, args.warmup)
    bare_wall, ours_wall = (statistics.median(t[0] for t in ts) for ts in (bare_times, our_times))
    bare_cpu, ours_cpu = (statistics.median(t[1] for t in ts) for ts in (bare_times, our_times))
    mem = state_bytes(module)
    mib = 1 / 2**20
    rows = [
        ["bare megatron-core loop", f"{bare_wall * 1000:.0f} ms", "1.00", f"{bare_cpu * 1000:.0f} ms", "1.00"],
        ["nemolite Trainer.fit", f"{ours_wall * 1000:.0f} ms", f"{ours_wall / bare_wall:.3f}",
         f"{ours_cpu * 1000:.0f} ms", f"{ours_cpu / bare_cpu:.3f}"],
    ]
    notes = (
        f"LlamaTinyConfig ({mem['numel'] / 1e6:.2f} M params), seq {LlamaTinyConfig().seq_length}, "
        f"micro batch {MICRO}, global batch {GLOBAL}, {world} process(es) (DP={world}), "
        f"{torch.get_num_threads()} thread(s) each, "
        f"median of {len(bare_times)} steps each; goal: ratio <= 1.10.\n\n"
        f"Memory: params {mem['params'] * mib:.1f} MiB + grads {mem['grads'] * mib:.1f} MiB + "
        f"Adam state {mem['optimizer'] * mib:.1f} MiB = "
        f"{(mem['params'] + mem['grads'] + mem['optimizer']) * mib:.1f} MiB; peak RSS growth over "
        f"the first `Trainer.fit` in the process (model, megatron buffers, optimizer, activations, "
        f"allocator caches, Lightning/data objects): {growth * mib:.0f} MiB "
        f"(peak RSS {rss.peak * mib:.0f} MiB, imports included)."
    )
    if torch.distributed.get_rank() != 0:
        return
    name = "engine_overhead" if world == 1 else f"engine_overhead_{world}proc"
    report(name, "Engine step time: nemolite Trainer vs bare megatron-core (CPU)",
           ["loop", "median step (wall)", "ratio (wall)", "median step (CPU)", "ratio (CPU)"],
           rows, notes + f" Load average during the run: {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()
