"""Runs LoRA fine-tuning of a tiny megatron GPT in several parallel layouts; writes results as JSON.

Not a test module: `test_lora_parallel.py` launches it under torchrun with 2 processes, and
`test_lora_training.py` imports its pieces for single-process runs.

    torchrun --standalone --nproc_per_node 2 lora_harness.py OUT_DIR [peft=dora] MODE [MODE ...]

Every mode starts from the same base weights (the first mode saves them, the others load them
through dist-checkpointing into their own layout) and the same adapter initialisation (drawn
per layer, independent of the layout), then trains the adapters on the same fixed batches.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from nemolite.lightning import megatron_checkpoint as ckpt
from nemolite.lightning.optim import MegatronOptimizerModule, OptimizerConfig
from nemolite.lightning.strategy import MegatronStrategy
from nemolite.lightning.trainer import Trainer
from nemolite.llm.gpt.model import GPTModel, LlamaConfig
from nemolite.llm.peft import DoRA, LoRA
from nemolite.llm.training import build_run

SEQ = 32
GLOBAL_BATCH = 4
# 2 layers of a Llama (SwiGLU, GQA): 4 heads / 2 groups so that TP=2 divides both; vocab 512 pads to
# 512 for TP=1 and TP=2 alike.
CONFIG = LlamaConfig(
    num_layers=2, hidden_size=64, ffn_hidden_size=128, num_attention_heads=4, num_query_groups=2,
    seq_length=SEQ, vocab_size=512, make_vocab_size_divisible_by=128,
)
LORA = LoRA(dim=4, alpha=8)
DORA = DoRA(dim=4, alpha=8)
PEFTS = {"lora": LORA, "dora": DORA}
# Question/answer pairs: the loss covers only the answer bytes, as supervised fine-tuning does.
PAIRS = [
    ("Capital of France?", " Paris."), ("Two plus two?", " Four."),
    ("Colour of the sky?", " Blue."), ("Opposite of hot?", " Cold."),
]

# mode -> strategy fields
MODES: dict[str, dict[str, Any]] = {
    "tp1": {},
    "tp2": {"tensor_model_parallel_size": 2},
    "tp2_sp": {"tensor_model_parallel_size": 2, "sequence_parallel": True},
    "pp2": {"pipeline_model_parallel_size": 2},
}


def write_jsonl(path: Path) -> Path:
    """The tiny fine-tuning set, as JSONL with NeMo's input/output fields."""
    path.write_text("".join(json.dumps({"input": q, "output": a}) + "\n" for q, a in PAIRS))
    return path


def sample(prompt: str, answer: str) -> dict[str, torch.Tensor]:
    """One byte-tokenized sequence padded to SEQ + 1; loss on the answer (and the first pad) only."""
    ids = list(prompt.encode()) + list(answer.encode())
    ids = (ids + [0] * (SEQ + 1))[: SEQ + 1]
    mask = torch.zeros(SEQ)
    first, last = len(prompt.encode()) - 1, min(len(prompt.encode()) + len(answer.encode()), SEQ)
    mask[first:last] = 1.0
    seq = torch.tensor(ids)
    return {"tokens": seq[:-1], "labels": seq[1:], "loss_mask": mask, "position_ids": torch.arange(SEQ)}


class PairsData(pl.LightningDataModule):
    """Every global batch is the same 4 pairs; data-parallel ranks take their share of each."""

    def __init__(self, jsonl: Path, steps: int, micro_batch_size: int = 1) -> None:
        super().__init__()
        self.rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
        self.steps = steps
        self.micro_batch_size = micro_batch_size
        self.global_batch_size = GLOBAL_BATCH

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        from megatron.core import parallel_state

        dp, rank = parallel_state.get_data_parallel_world_size(), parallel_state.get_data_parallel_rank()
        mine = [sample(r["input"], r["output"]) for r in self.rows][rank::dp]
        return torch.utils.data.DataLoader(mine * self.steps, batch_size=self.micro_batch_size)


class BaseWeights(pl.Callback):
    """Before LoRA's setup: builds the model and saves (first mode) or loads the shared base weights."""

    def __init__(self, path: Path, save: bool) -> None:
        self.path, self.save = path, save

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        pl_module.configure_model()
        chunks = list(pl_module.chunks)
        if self.save:
            ckpt.save({"state_dict": ckpt.model_sharded_state_dict(chunks)}, self.path)
        else:
            ckpt.load_model_weights(chunks, self.path)


class RecordLayout(pl.Callback):
    """What actually ran, per rank: megatron's group sizes and the first layer's local shapes.

    Equal losses cannot tell TP=2 from DP=2 (tp1 here is DP=2 and matches TP=2); these can.
    """

    def __init__(self) -> None:
        self.ranks: list[dict[str, Any]] = []

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        from megatron.core import parallel_state as ps

        chunks = [ckpt.unwrap(chunk) for chunk in module.chunks]
        mine = {
            "tp": ps.get_tensor_model_parallel_world_size(),
            "pp": ps.get_pipeline_model_parallel_world_size(),
            "dp": ps.get_data_parallel_world_size(),
            "sequence_parallel": bool(module.tf_config.sequence_parallel),
            "layers_per_chunk": [len(chunk.decoder.layers) for chunk in chunks],
            "shapes": {name: list(param.shape) for name, param in chunks[0].named_parameters()
                       if name.startswith("decoder.layers.0.")},
            "trainable": sorted(name for name, param in chunks[0].named_parameters()
                                if param.requires_grad and name.startswith("decoder.layers.0.")),
        }
        gathered: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, mine)
        self.ranks = gathered


def run(mode: str, out: Path, *, steps: int, callbacks: list[pl.Callback], lr: float = 1e-2,
        peft: LoRA = LORA) -> Any:
    """Fine-tunes with `peft` for `steps` steps in `mode`'s layout; returns the LightningModule."""
    optim = MegatronOptimizerModule(OptimizerConfig(lr=lr, clip_grad=1.0))
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    trainer = Trainer(
        accelerator="cpu", devices=world, max_steps=steps, strategy=MegatronStrategy(**MODES[mode]),
        callbacks=[*callbacks, peft.build()], enable_progress_bar=False, enable_checkpointing=False,
        limit_val_batches=0, num_sanity_val_steps=0, logger=False,
    )
    # One file per rank: ranks writing one shared file race (a rank could read it truncated, empty).
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    data = PairsData(write_jsonl(out / f"train_rank{rank}.jsonl"), steps)
    pl_trainer, _, module = build_run(model=GPTModel(CONFIG, optim=optim), data=data, trainer=trainer)
    pl_trainer.fit(module, datamodule=data)
    return module


def adapter_state(module: Any) -> dict[str, Any]:
    """The adapters' sharded state dict (TP-layout independent keys)."""
    full = ckpt.model_sharded_state_dict(list(module.chunks))
    return {"model0": {k: v for k, v in full["model0"].items() if "_adapter." in k}}


def run_mode(mode: str, out: Path, first: bool, peft: LoRA = LORA) -> dict[str, Any]:
    """Trains `mode`; saves its adapters, and compares them with the first mode's after resharding."""
    layout = RecordLayout()
    module = run(mode, out, steps=5, callbacks=[BaseWeights(out / "base", save=first), layout],
                 peft=peft)
    result: dict[str, Any] = {"losses": module.train_losses, "ranks": layout.ranks}
    mine = adapter_state(module)
    ckpt.save({"state_dict": mine}, out / f"adapters_{mode}")
    if not first:
        # Load the first mode's adapters into this layout (a TP1 -> TP2 / PP2 reshard). megatron
        # loads into the template's tensors, which are the parameters: keep a copy of ours first.
        own = {k: v.detach().clone() for k, v in ckpt.unwrap(module.chunks[0]).state_dict().items()
               if "_adapter." in k}
        loaded = ckpt.load({"state_dict": adapter_state(module)}, out / "adapters_tp1")["state_dict"]
        diffs = [float((own[k] - loaded["model0"][k]).abs().max()) for k in own]
        result["adapter_max_abs_diff"] = max(diffs)
        result["adapters_compared"] = len(diffs)
    return result


def main(out_dir: str, *modes: str) -> None:
    out = Path(out_dir)
    peft = LORA
    if modes and modes[0].startswith("peft="):
        peft, modes = PEFTS[modes[0].removeprefix("peft=")], modes[1:]
    torch.distributed.init_process_group("gloo")
    results: dict[str, Any] = {}
    for i, mode in enumerate(modes):
        start = time.perf_counter()
        try:
            results[mode] = run_mode(mode, out, first=i == 0, peft=peft)
        except Exception as exc:  # recorded per mode so one broken layout does not hide the rest
            results[mode] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        results[mode]["seconds"] = time.perf_counter() - start
    if torch.distributed.get_rank() == 0:
        (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
