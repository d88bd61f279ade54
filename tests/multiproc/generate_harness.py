"""Generation under tensor parallelism, and a pipeline-parallel checkpoint to generate from (torchrun, gloo).

Not a test module: `test_generate_parallel.py` launches it with 2 processes.

    torchrun --standalone --nproc_per_node 2 generate_harness.py RUN_DIR OUT_DIR

1. TP=2: loads RUN_DIR's (TP=1) checkpoint split over both ranks, generates greedily and by sampling,
   and writes the tokens and log-probs to OUT_DIR/tp2.json;
2. PP=2: loads the same weights into a 2-stage pipeline layout and saves them from it, as a
   pipeline-parallel training run would, into OUT_DIR/pp2_run (with RUN_DIR's config.yaml).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

PROMPTS = ["The cat sat on", "Hello", "A much longer prompt than the others, here"]


def generate_tp2(run_dir: Path, out: Path) -> None:
    from nemolite import llm
    from nemolite.llm.inference.generate import generate_with_engine, load_engine

    engine = load_engine(run_dir, tensor_model_parallel_size=2)
    greedy = llm.CommonInferenceParams(temperature=0.0, num_tokens_to_generate=24, return_log_probs=True)
    sampled = llm.CommonInferenceParams(temperature=0.8, top_p=0.9, num_tokens_to_generate=24, random_seed=3)
    greedy_out = generate_with_engine(engine, PROMPTS, greedy)
    result = {
        "greedy": [r.generated_tokens for r in greedy_out],
        "log_probs": [r.generated_log_probs for r in greedy_out],
        "path": engine.path,
        "sampled": [r.generated_tokens for r in generate_with_engine(engine, PROMPTS, sampled)],
    }
    if torch.distributed.get_rank() == 0:
        (out / "tp2.json").write_text(json.dumps(result))


def save_pp2(run_dir: Path, out: Path) -> None:
    from megatron.core import parallel_state

    from nemolite.lightning import megatron_checkpoint as ckpt
    from nemolite.lightning.exp_ckpt_dir import MARKER
    from nemolite.lightning.strategy import MegatronStrategy
    from nemolite.llm.gpt.model import megatron_config as mc
    from nemolite.llm.inference import runtime
    from nemolite.llm.inference.checkpoint import load_spec

    spec = load_spec(run_dir)
    parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel(1, 2)
    tf_config = mc.transformer_config(spec.model.config, MegatronStrategy(pipeline_model_parallel_size=2))
    chunks = mc.build_chunks(spec.model.config, tf_config, runtime.saved_vocab_rows(spec.path) or 0)
    ckpt.load_model_weights(chunks, spec.path)
    target = out / "pp2_run" / "checkpoints" / "default--step=0-last"
    ckpt.save({"state_dict": ckpt.model_sharded_state_dict(chunks)}, target)
    torch.distributed.barrier()
    if torch.distributed.get_rank() == 0:
        (target / MARKER).write_text(json.dumps({"step": 0}))
        shutil.copy(run_dir / "config.yaml", out / "pp2_run" / "config.yaml")
    parallel_state.destroy_model_parallel()


def main(run_dir: str, out_dir: str) -> None:
    torch.distributed.init_process_group("gloo")
    generate_tp2(Path(run_dir), Path(out_dir))
    save_pp2(Path(run_dir), Path(out_dir))
    torch.distributed.barrier()


if __name__ == "__main__":
    main(*sys.argv[1:])
