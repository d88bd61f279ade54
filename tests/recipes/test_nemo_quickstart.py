"""NeMo 2.0's quickstart (recipe + `run.LocalExecutor` + `run.run`, then a LoRA fine-tune of
`llm.llama32_1b`) runs with only its imports changed, on a laptop CPU through the recipes' CPU twin
switch (`NEMOLITE_CPU_TWIN=2`, set outside the script).

The scripts below are written as for NeMo 2.0 (shaped on its "Quickstart with NeMo-Run" page, with
small step counts and a local fine-tuning set); the test derives nemolite's by changing the import
lines only, checks that nothing else differs, and runs them in subprocesses.

Marked slow: a 2-process torchrun pretraining and a 1-process fine-tune (~1-2 min on 2 busy cores).
"""

from __future__ import annotations

import difflib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.multiproc]

NEMO_IMPORT = "from nemo.collections import llm"
OUR_IMPORT = "from nemolite import llm"

PRETRAIN = '''\
import nemo_run as run

from nemo.collections import llm


def configure_recipe(nodes: int = 1, gpus_per_node: int = 2):
    recipe = llm.llama32_1b.pretrain_recipe(
        dir="checkpoints/llama32_1b",  # Path to store checkpoints
        name="llama32_pretraining",
        tensor_parallelism=2,
        num_nodes=nodes,
        num_gpus_per_node=gpus_per_node,
        max_steps=4,  # Setting a small value for the quickstart
    )

    recipe.trainer.val_check_interval = 4
    return recipe


def local_executor_torchrun(nodes: int = 1, devices: int = 2) -> run.LocalExecutor:
    # Env vars for jobs are configured here
    env_vars = {
        "TORCH_NCCL_AVOID_RECORD_STREAMS": "1",
        "NCCL_NVLS_ENABLE": "0",
        "NVTE_DP_AMAX_REDUCE_INTERVAL": "0",
        "NVTE_ASYNC_AMAX_REDUCTION": "1",
    }

    executor = run.LocalExecutor(ntasks_per_node=devices, launcher="torchrun", env_vars=env_vars)

    return executor


def run_pretraining():
    recipe = configure_recipe()
    executor = local_executor_torchrun(nodes=recipe.trainer.num_nodes, devices=recipe.trainer.devices)

    run.run(recipe, executor=executor, name="llama32_1b_pretraining")


# This condition is necessary for the script to be compatible with Python's multiprocessing module.
if __name__ == "__main__":
    run_pretraining()
'''

FINETUNE = '''\
import nemo_run as run

from nemo.collections import llm


def configure_finetuning_recipe(nodes: int = 1, gpus_per_node: int = 1):
    recipe = llm.llama32_1b.finetune_recipe(
        dir="checkpoints/llama32_1b_finetuning",  # Path to store checkpoints
        name="llama32_lora",
        num_nodes=nodes,
        num_gpus_per_node=gpus_per_node,
        peft_scheme="lora",
    )

    recipe.trainer.max_steps = 6
    recipe.trainer.num_sanity_val_steps = 0

    # Async checkpointing doesn't work with PEFT
    recipe.trainer.strategy.ckpt_async_save = False

    # Need to set this to 1 since the default is 2
    recipe.trainer.strategy.context_parallel_size = 1
    recipe.trainer.val_check_interval = 6

    # This is currently required for LoRA/PEFT
    recipe.trainer.strategy.ddp = "megatron"

    # training.jsonl / validation.jsonl of {"input", "output"} records, as SquadDataModule writes them
    recipe.data.dataset_root = "squad_jsonl"

    return recipe


def local_executor_torchrun(nodes: int = 1, devices: int = 1) -> run.LocalExecutor:
    executor = run.LocalExecutor(ntasks_per_node=devices, launcher="torchrun", env_vars={})
    return executor


if __name__ == "__main__":
    recipe = configure_finetuning_recipe()
    executor = local_executor_torchrun(nodes=recipe.trainer.num_nodes, devices=recipe.trainer.devices)
    run.run(recipe, executor=executor, name="llama32_1b_lora")
'''


def _ported(nemo_script: str) -> str:
    ours = nemo_script.replace(NEMO_IMPORT, OUR_IMPORT)
    changed = [line for line in difflib.unified_diff(nemo_script.splitlines(), ours.splitlines(), n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == [f"-{NEMO_IMPORT}", f"+{OUR_IMPORT}"], changed
    return ours


def _run_script(tmp_path: Path, name: str, text: str) -> subprocess.CompletedProcess:
    script = tmp_path / name
    script.write_text(_ported(text))
    env = os.environ | {"NEMOLITE_CPU_TWIN": "2", "NEMORUN_HOME": str(tmp_path / "nemo_run"),
                        "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env=env, stdin=subprocess.DEVNULL)


def _losses(run_root: Path) -> list[float]:
    (run_dir,) = list(run_root.iterdir())
    rows = [json.loads(x) for x in (run_dir / "train_metrics.jsonl").read_text().splitlines()]
    return [row["reduced_train_loss"] for row in rows if "reduced_train_loss" in row]


def test_nemo_quickstart_runs_with_its_imports_changed(tmp_path: Path) -> None:
    pre = _run_script(tmp_path, "pretraining.py", PRETRAIN)
    out = pre.stdout[-3000:] + pre.stderr[-3000:]
    assert pre.returncode == 0, out
    assert "cpu twin keeps: GQA 32:8 -> 8:2, tied embeddings, RoPE scaling, TP2" in pre.stderr, out
    losses = _losses(tmp_path / "checkpoints" / "llama32_1b" / "llama32_pretraining")
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses), out
    ckpts = list((tmp_path / "checkpoints" / "llama32_1b").glob("*/*/checkpoints/*step=4*"))
    assert ckpts and {p.name for p in ckpts[0].glob("__*_*.distcp")} >= {"__0_0.distcp", "__1_0.distcp"}

    data = tmp_path / "squad_jsonl"
    data.mkdir()
    rows = "".join(json.dumps({"input": f"Context: box {i}. Question: which box? Answer:",
                               "output": f"box {i}"}) + "\n" for i in range(16))
    (data / "training.jsonl").write_text(rows)
    (data / "validation.jsonl").write_text(rows)
    ft = _run_script(tmp_path, "finetuning.py", FINETUNE)
    out = ft.stdout[-3000:] + ft.stderr[-3000:]
    assert ft.returncode == 0, out
    assert "LoRA: 8 adapters" in ft.stdout + ft.stderr  # 2 twin layers x 4 linears
    run_root = tmp_path / "checkpoints" / "llama32_1b_finetuning" / "llama32_lora"
    losses = _losses(run_root)
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses), out
    (marker,) = run_root.glob("*/checkpoints/*step=6*/nemolite_ckpt.json")
    assert json.loads(marker.read_text())["peft"]["method"] == "lora"
