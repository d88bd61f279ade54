"""Runs several parallel layouts of a tiny model under torchrun and writes per-step losses as JSON.

Not a test module: `test_engine_parallel.py` launches it, once with 1 process (the references, which
also save the initial weights) and once with 2 processes (every parallel mode in turn, each starting
from the reference's initial weights, loaded through dist-checkpointing into its own layout).

    torchrun --standalone --nproc_per_node N engine_harness.py OUT_DIR MODE [MODE ...]
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
from nemolite.llm.gpt.data.mock import MockDataModule
from nemolite.llm.gpt.model import GPTModel, LlamaConfig, MixtralConfig
from nemolite.llm.training import build_run

STEPS = 5
SEQ = 32
GLOBAL_BATCH = 4

# The byte tokenizer's 264 ids fit in vocab_size=512, which pads to 512 for TP=1 and TP=2 alike
# (megatron pads to a multiple of make_vocab_size_divisible_by x TP; padded rows change the loss).
# Much smaller than llama_tiny: 4 layers so that PP=2 x VP=2 divides them, 4 heads / 2 groups so
# that TP=2 divides both.
DENSE = LlamaConfig(
    num_layers=4, hidden_size=64, ffn_hidden_size=128, num_attention_heads=4, num_query_groups=2,
    seq_length=SEQ, vocab_size=512, make_vocab_size_divisible_by=128,
)
MOE = MixtralConfig(
    num_layers=2, hidden_size=64, ffn_hidden_size=64, num_attention_heads=4, num_query_groups=2,
    seq_length=SEQ, vocab_size=512, make_vocab_size_divisible_by=128, num_moe_experts=4,
    moe_router_topk=2, moe_aux_loss_coeff=0.0, moe_token_dispatcher_type="alltoall",
)

# mode -> (model family, strategy fields, distributed optimizer)
MODES: dict[str, tuple[str, dict[str, Any], bool]] = {
    "ref_dense": ("dense", {}, False),
    "ref_moe": ("moe", {}, False),
    "tp2": ("dense", {"tensor_model_parallel_size": 2}, False),
    "tp2_sp": ("dense", {"tensor_model_parallel_size": 2, "sequence_parallel": True}, False),
    "pp2": ("dense", {"pipeline_model_parallel_size": 2}, False),
    "pp2_vp2": ("dense", {"pipeline_model_parallel_size": 2, "virtual_pipeline_model_parallel_size": 2}, False),
    "dp2": ("dense", {}, False),
    "dp2_distopt": ("dense", {}, True),
    "cp2": ("dense", {"context_parallel_size": 2}, False),
    "ep2": ("moe", {"expert_model_parallel_size": 2}, False),
    # 4 processes: combined layouts.
    "tp2_pp2": ("dense", {"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 2}, False),
    "tp2_sp_dp2_distopt": ("dense", {"tensor_model_parallel_size": 2, "sequence_parallel": True}, True),
    "pp2_vp2_dp2": ("dense", {"pipeline_model_parallel_size": 2, "virtual_pipeline_model_parallel_size": 2}, False),
    "ep2_tp2_sp": ("moe", {"expert_model_parallel_size": 2, "tensor_model_parallel_size": 2,
                           "sequence_parallel": True}, False),
    # Resume for RESUME_STEPS more steps from the checkpoint another mode saved after STEPS steps.
    "tp2_ckpt_to_dp2": ("dense", {}, False),
    "dp2_distopt_ckpt_to_dp2_distopt": ("dense", {}, True),
}
# Modes that save a full checkpoint (model + optimizer + trainer state) after their last step,
# and the modes that resume from it (in another layout: TP2 -> TP1 x DP2).
SAVES = {"tp2", "dp2_distopt"}
RESUMES = {"tp2_ckpt_to_dp2": "tp2", "dp2_distopt_ckpt_to_dp2_distopt": "dp2_distopt"}
RESUME_STEPS = 2


class InitialWeights(pl.Callback):
    """References save their initial weights; parallel runs load them into their own layout."""

    def __init__(self, path: Path, save: bool) -> None:
        self.path, self.save = path, save

    def on_fit_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        chunks = list(module.chunks)
        if self.save:
            ckpt.save({"state_dict": ckpt.model_sharded_state_dict(chunks)}, self.path)
        else:
            ckpt.load_model_weights(chunks, self.path)


class RecordLayout(pl.Callback):
    """Records what actually ran on every rank: megatron's group sizes and the local shards.

    Parity of losses alone cannot tell TP=2 from DP=2 (both match one process); these records can.
    """

    def __init__(self) -> None:
        self.ranks: list[dict[str, Any]] = []

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        from megatron.core import parallel_state as ps

        chunks = [ckpt.unwrap(chunk) for chunk in module.chunks]
        inner = trainer.optimizers[0].mcore_optimizer
        mine = {
            "tp": ps.get_tensor_model_parallel_world_size(),
            "pp": ps.get_pipeline_model_parallel_world_size(),
            "vp": ps.get_virtual_pipeline_model_parallel_world_size(),
            "cp": ps.get_context_parallel_world_size(),
            "ep": ps.get_expert_model_parallel_world_size(),
            "dp": ps.get_data_parallel_world_size(),
            "pp_rank": ps.get_pipeline_model_parallel_rank(),
            "sequence_parallel": bool(module.tf_config.sequence_parallel),
            "optimizers": [type(o).__name__ for o in getattr(inner, "chained_optimizers", [inner])],
            "layers_per_chunk": [len(chunk.decoder.layers) for chunk in chunks],
            # Parameter name -> local shape, for the first chunk's first layer and embedding.
            "shapes": {
                name: list(param.shape)
                for name, param in chunks[0].named_parameters()
                if name.startswith(("decoder.layers.0.", "embedding."))
            },
        }
        gathered: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(gathered, mine)
        self.ranks = gathered


def run_mode(mode: str, out_dir: Path) -> dict[str, Any]:
    family, strategy_fields, dist_opt = MODES[mode]
    resume_from = RESUMES.get(mode)
    # References run long enough to compare the resumed modes too.
    steps = STEPS + RESUME_STEPS if mode.startswith("ref_") or resume_from else STEPS
    config = DENSE if family == "dense" else MOE
    optim = MegatronOptimizerModule(
        OptimizerConfig(lr=3e-3, use_distributed_optimizer=dist_opt, clip_grad=1.0)
    )
    layout = RecordLayout()
    weights = [] if resume_from else [InitialWeights(out_dir / f"init_{family}", save=mode.startswith("ref_"))]
    trainer = Trainer(
        accelerator="cpu",
        devices=torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1,
        max_steps=steps,
        strategy=MegatronStrategy(**strategy_fields),
        callbacks=[*weights, layout],
        enable_progress_bar=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    data = MockDataModule(seq_length=SEQ, micro_batch_size=1, global_batch_size=GLOBAL_BATCH,
                          num_train_samples=steps * GLOBAL_BATCH)
    pl_trainer, dm, module = build_run(model=GPTModel(config, optim=optim), data=data, trainer=trainer)
    ckpt_path = str(out_dir / f"ckpt_{resume_from}") if resume_from else None
    pl_trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    if mode in SAVES:
        pl_trainer.save_checkpoint(str(out_dir / f"ckpt_{mode}"))
    return {"losses": module.train_losses, "ranks": layout.ranks}


def main(out_dir: str, *modes: str) -> None:
    out = Path(out_dir)
    torch.distributed.init_process_group("gloo")
    results: dict[str, Any] = {}
    for mode in modes:
        start = time.perf_counter()
        try:
            results[mode] = run_mode(mode, out)
        except Exception as exc:  # recorded per mode so one broken layout does not hide the rest
            results[mode] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        results[mode]["seconds"] = time.perf_counter() - start
    if torch.distributed.get_rank() == 0:
        name = {1: "reference", 2: "parallel"}.get(torch.distributed.get_world_size(), "parallel4")
        (out / f"{name}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
