"""Loads imported Hugging Face models into parallel layouts and records the first step's loss.

Not a test module: `test_hf_parallel.py` imports the models into $NEMO_HOME and launches this
with torchrun. Each mode fine-tunes one step at learning rate 1e-30 (below every weight's last bit) from `nemo://<name>` (the loss of
step 1 is the imported weights' loss on the first global batch), saves the run's checkpoint, and
the reference mode also records the micro-batches it saw for the transformers comparison.

    torchrun --standalone --nproc_per_node N hf_harness.py OUT_DIR MODE [MODE ...]
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

import torch

from nemolite import lightning as nl
from nemolite import llm
from nemolite.llm.gpt.model.conversion import exporter
from nemolite.llm.training import run_training

# mode -> (imported model name, strategy fields)
MODES: dict[str, tuple[str, dict[str, Any]]] = {
    "ref_dense": ("dense", {}),
    "ref_moe": ("moe", {}),
    "tp2": ("dense", {"tensor_model_parallel_size": 2}),
    "pp2": ("dense", {"pipeline_model_parallel_size": 2}),
    "ep2": ("moe", {"expert_model_parallel_size": 2}),
}


class SpyBatches:
    """Records the micro-batches the module's first step consumes."""

    def __init__(self, module: Any) -> None:
        self.seen: list[dict[str, torch.Tensor]] = []
        original = module._next_batches

        def spy(*args: Any, **kwargs: Any) -> Any:
            batches = original(*args, **kwargs)
            if not self.seen:
                self.seen.extend({k: v.clone() for k, v in b.items()} for b in batches)
            return batches

        module._next_batches = spy


def run_mode(mode: str, out: Path) -> dict[str, Any]:
    import nemolite.llm.training as training

    name, fields = MODES[mode]
    world = torch.distributed.get_world_size()
    config = exporter.read_saved(f"nemo://{name}").config
    trainer = nl.Trainer(accelerator="cpu", devices=world, max_steps=1, strategy=nl.MegatronStrategy(**fields),
                         enable_progress_bar=False, limit_val_batches=0, num_sanity_val_steps=0)
    holder: dict[str, Any] = {}
    original_build = training.build_run

    def build_and_spy(**kwargs: Any) -> Any:
        built = original_build(**kwargs)
        holder["module"], holder["spy"] = built[2], SpyBatches(built[2])
        return built

    training.build_run = build_and_spy
    try:
        run_training(
            model=llm.GPTModel(config),
            data=llm.MockDataModule(seq_length=32, micro_batch_size=1, global_batch_size=2, num_train_samples=8),
            trainer=trainer,
            log=nl.NeMoLogger(log_dir=str(out / f"run_{mode}"), ckpt=nl.ModelCheckpoint(save_last=True)),
            resume=nl.AutoResume(restore_config=nl.RestoreConfig(path=f"nemo://{name}")),
            optim=nl.MegatronOptimizerModule(nl.OptimizerConfig(lr=1e-30, use_distributed_optimizer=False)),
        )
    finally:
        training.build_run = original_build
    if mode.startswith("ref_") and torch.distributed.get_rank() == 0:
        torch.save(holder["spy"].seen, out / f"batches_{name}.pt")
    return {"loss": holder["module"].train_losses[0]}


def main(out_dir: str, *modes: str) -> None:
    out = Path(out_dir)
    torch.distributed.init_process_group("gloo")
    results: dict[str, Any] = {}
    for mode in modes:
        try:
            results[mode] = run_mode(mode, out)
        except Exception as exc:  # recorded per mode so one broken layout does not hide the rest
            results[mode] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
    if torch.distributed.get_rank() == 0:
        (out / f"results_{torch.distributed.get_world_size()}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
