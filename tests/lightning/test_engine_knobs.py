"""NeMo-script knobs: plugins as a list, megatron-core's own config objects, GC and memory-profile callbacks."""

from __future__ import annotations

import gc
import json
import warnings
from pathlib import Path

import pytest

from nemolite import lightning as nl
from nemolite.errors import ConfigError
from nemolite.lightning.trainer import precision_plugin


def test_plugins_accepts_a_list_of_one_precision() -> None:
    bf16 = nl.MegatronMixedPrecision(precision="bf16-mixed")
    assert precision_plugin(nl.Trainer(plugins=[bf16])) is bf16
    assert precision_plugin(nl.Trainer(plugins=[])) is None
    assert precision_plugin(nl.Trainer(plugins=bf16)) is bf16


def test_plugins_rejects_other_plugins_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^trainer.plugins\[1\]='str': only megatron mixed-precision"):
        precision_plugin(nl.Trainer(plugins=[nl.MegatronMixedPrecision(precision="bf16-mixed"), "x"]))


def test_megatron_core_configs_become_ours() -> None:
    import torch
    from megatron.core.distributed import DistributedDataParallelConfig as McoreDDP
    from megatron.core.optimizer import OptimizerConfig as McoreOptim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optim = nl.MegatronOptimizerModule(config=McoreOptim(lr=2e-4, adam_beta2=0.95, bf16=True,
                                                              params_dtype=torch.bfloat16, clip_grad=0.5))
        strategy = nl.MegatronStrategy(ddp=McoreDDP(grad_reduce_in_fp32=True, overlap_grad_reduce=True))
    assert isinstance(optim.config, nl.OptimizerConfig)
    assert (optim.config.lr, optim.config.adam_beta2, optim.config.params_dtype, optim.config.clip_grad) == (
        2e-4, 0.95, "bfloat16", 0.5)
    assert isinstance(strategy.ddp, nl.DistributedDataParallelConfig)
    assert strategy.ddp.grad_reduce_in_fp32 and strategy.ddp.overlap_grad_reduce
    with pytest.raises(ConfigError, match=r"^optim.config.optimizer_cpu_offload=True: .*not supported"):
        nl.MegatronOptimizerModule(config=McoreOptim(lr=1e-3, optimizer_cpu_offload=True))


def test_gc_and_memory_profile_callbacks_in_a_run(tmp_path: Path) -> None:
    from nemolite.lightning.callbacks.memory import GarbageCollection
    from nemolite.llm.gpt.data.mock import MockDataModule
    from nemolite.llm.gpt.model import GPTModel, LlamaConfig
    from nemolite.llm.training import build_run

    config = LlamaConfig(num_layers=2, hidden_size=32, ffn_hidden_size=64, num_attention_heads=2,
                         seq_length=16)
    trainer = nl.Trainer(accelerator="cpu", devices=1, max_steps=3, plugins=[], logger=False,
                         enable_progress_bar=False, enable_checkpointing=False, limit_val_batches=0,
                         num_sanity_val_steps=0, default_root_dir=str(tmp_path),
                         callbacks=[nl.GarbageCollectionCallback(gc_interval_train=2, gc_interval_val=1),
                                    nl.MemoryProfileCallback(dir=str(tmp_path / "mem"))])
    data = MockDataModule(seq_length=16, micro_batch_size=1, global_batch_size=2)
    pl_trainer, dm, module = build_run(model=GPTModel(config), data=data, trainer=trainer)
    pl_trainer.fit(module, datamodule=dm)
    (collector,) = [c for c in pl_trainer.callbacks if isinstance(c, GarbageCollection)]
    assert collector.collections == 1 and gc.isenabled()  # step 2 of 3; automatic GC back on after
    records = [json.loads(line) for line in (tmp_path / "mem" / "memory_rank0.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(r["rss"] > 0 and r["peak_rss"] > 0 for r in records)
