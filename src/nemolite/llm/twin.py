"""The CPU twin of a recipe: the same task, scaled down to train a few steps on a laptop CPU.

`cpu_twin(recipe)` keeps what makes the recipe itself (the model class and its architecture
features: grouped-query ratio, MoE with its top-k, qk-norm, QKV bias, tied embeddings, RoPE scaling,
recomputation; the parallel layout's kinds as far as 1-2 processes allow; the data module class;
the precision, optimizer, logger, checkpointing and resume) and shrinks the sizes: 2-4 layers of
16-wide heads, 64-token sequences, a byte vocabulary, a few steps. A 64-GPU job's config can then be
checked end to end on a laptop before paying for it (`nemo llm pretrain --factory X --cpu-twin`).

Like `recipe_io`, this module works on fiddle configs (the task before it is built); it imports
nothing heavy.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import fiddle as fdl

from nemolite.errors import ConfigError

HEAD_DIM = 16
"""Per-head width of a twin (the real models use 64-128)."""
SEQ_LENGTH = 64
"""Tokens per twin sample: divisible by 2 x CP and by TP for every layout a twin can have."""
MAX_PROCESSES = 2


@dataclass
class TwinPlan:
    """What the twin kept and what it had to drop, one line each (printed by the CLI)."""

    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """`kept: ...` and `dropped: ...` lines for the console."""
        out = [f"cpu twin keeps: {', '.join(self.kept)}"] if self.kept else []
        return out + [f"cpu twin drops: {reason}" for reason in self.dropped]


def cpu_twin(task: fdl.Partial, *, processes: int = 1, steps: int = 10) -> tuple[fdl.Partial, TwinPlan]:
    """Returns a scaled-down copy of `task` (a recipe's `run.Partial`) and what it kept/dropped.

    Args:
        task: a pretrain/finetune recipe, before it is built.
        processes: CPU processes the twin runs on (1 or 2; 2 keeps one parallel kind at size 2).
        steps: optimizer steps to train.

    Raises:
        ConfigError: a feature that cannot shrink to CPU (fp8, TransformerEngine-only layers,
            grouped GEMM experts), or `processes` outside 1-2.
    """
    if not 1 <= processes <= MAX_PROCESSES:
        raise ConfigError("--cpu-twin processes", processes, "a CPU twin runs on 1 or 2 processes",
                          "use executor.ntasks_per_node=1 or 2 (or no executor)")
    twin = copy.deepcopy(task)
    plan = TwinPlan()
    _refuse_gpu_only(twin)
    layout = _shrink_layout(twin.trainer.strategy, processes, _built(twin.model.config), plan)
    _shrink_model(twin.model.config, layout, plan)
    _shrink_data(twin.data, layout)
    _shrink_trainer(twin.trainer, processes, steps)
    _shrink_run(twin, steps, plan)
    return twin, plan


def _built(config: Any) -> Any:
    return fdl.build(config) if isinstance(config, fdl.Buildable) else config


def _refuse_gpu_only(task: fdl.Partial) -> None:
    """One line naming the feature that has no CPU form, and why."""
    plugins = getattr(task.trainer, "plugins", None)
    fp8 = getattr(plugins, "fp8", None) if plugins is not None else None
    if fp8:
        raise ConfigError("trainer.plugins.fp8", fp8,
                          "fp8 needs TransformerEngine on a Hopper-or-newer GPU; a CPU twin cannot run it",
                          "set trainer.plugins.fp8=None for the twin (bf16 keeps the mixed-precision path)")
    config = _built(task.model.config)
    if getattr(config, "transformer_layer_spec", "auto") == "transformer_engine":
        raise ConfigError("model.config.transformer_layer_spec", "transformer_engine",
                          "TransformerEngine layers need a CUDA GPU; a CPU twin cannot build them",
                          "set model.config.transformer_layer_spec=auto (megatron-core's local layers)")
    if getattr(config, "moe_grouped_gemm", False):
        raise ConfigError("model.config.moe_grouped_gemm", True,
                          "grouped-GEMM experts are CUDA kernels; a CPU twin cannot run them",
                          "set model.config.moe_grouped_gemm=False (same experts, one GEMM each)")


@dataclass
class _Layout:
    tp: int = 1
    pp: int = 1
    vp: int | None = None
    cp: int = 1
    ep: int = 1
    sp: bool = False
    count_ends: bool = False


def _shrink_layout(strategy: Any, processes: int, config: Any, plan: TwinPlan) -> _Layout:
    """Each parallel kind of the recipe at size 2 while 2 processes hold it, else 1 (said why)."""
    get = lambda name, default: getattr(strategy, name, default) or default  # noqa: E731
    tp, pp, cp = get("tensor_model_parallel_size", 1), get("pipeline_model_parallel_size", 1), get("context_parallel_size", 1)
    ep, vp = get("expert_model_parallel_size", 1), getattr(strategy, "virtual_pipeline_model_parallel_size", None)
    etp = getattr(strategy, "expert_tensor_parallel_size", None)
    sp = bool(getattr(strategy, "sequence_parallel", False))
    ends = bool(getattr(strategy, "account_for_embedding_in_pipeline_split", False))
    out = _Layout()
    dense = [(kind, size) for kind, size in (("TP", tp), ("PP", pp), ("CP", cp)) if size > 1]
    if processes == 2 and dense:
        kind = dense[0][0]
        out.tp, out.pp, out.cp = (2 if kind == "TP" else 1), (2 if kind == "PP" else 1), (2 if kind == "CP" else 1)
        plan.kept.append(f"{kind}2" + (" SP" if kind == "TP" and sp else ""))
        out.sp = kind == "TP" and sp
        if kind == "PP" and vp:
            out.vp = 2
            plan.kept.append("VP2")
            out.count_ends = ends
        for other, size in dense[1:]:
            plan.dropped.append(f"{other}{size} (the twin's 2 processes already hold {kind}2)")
    else:
        for other, size in dense:
            plan.dropped.append(f"{other}{size} (one process)" if processes == 1 else f"{other}{size}")
        if sp:
            plan.dropped.append("SP (needs TP > 1)")
    if ep > 1:
        # experts share ranks with data/tensor parallelism: expert TP x EP x PP must divide 2
        expert_tp = (etp if etp is not None else out.tp) if out.tp > 1 else 1
        if processes == 2 and expert_tp * 2 * out.pp <= 2:
            out.ep = 2
            plan.kept.append("EP2" + (" ETP1" if out.tp > 1 else ""))
        else:
            plan.dropped.append(f"EP{ep} (" + ("one process" if processes == 1 else "no ranks left for experts") + ")")
    if vp and out.vp is None and processes == 2:
        plan.dropped.append(f"VP{vp} (interleaves pipeline stages, and PP was dropped)")
    _set_strategy(strategy, out, etp)
    return out


def _set_strategy(strategy: Any, out: _Layout, etp: int | None) -> None:
    strategy.tensor_model_parallel_size = out.tp
    strategy.pipeline_model_parallel_size = out.pp
    strategy.virtual_pipeline_model_parallel_size = out.vp
    strategy.context_parallel_size = out.cp
    strategy.expert_model_parallel_size = out.ep
    strategy.sequence_parallel = out.sp
    if etp is not None:
        strategy.expert_tensor_parallel_size = 1 if out.ep > 1 or out.tp == 1 else etp
    if hasattr(strategy, "account_for_embedding_in_pipeline_split"):
        strategy.account_for_embedding_in_pipeline_split = out.count_ends
        strategy.account_for_loss_in_pipeline_split = out.count_ends
    if out.pp == 1:
        strategy.pipeline_dtype = None


def _round(value: float, multiple: int = HEAD_DIM) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def _shrink_model(config: Any, layout: _Layout, plan: TwinPlan) -> None:
    """Same config class (so the same features), 16-wide heads, the GQA ratio and MoE top-k kept."""
    real = _built(config)
    heads, groups = real.num_attention_heads, real.num_query_groups or real.num_attention_heads
    ratio = heads // groups
    twin_groups = min(groups, 2)
    twin_heads = twin_groups * ratio
    if real.kv_channels is not None:  # the head width is set apart from hidden/heads (Qwen3)
        hidden = _round(twin_heads * HEAD_DIM * real.hidden_size / (heads * real.kv_channels))
        config.kv_channels = HEAD_DIM
    else:
        hidden = twin_heads * HEAD_DIM
    stages = layout.pp * (layout.vp or 1)
    layers = 2 * stages - 2 if layout.count_ends else 2 * stages
    config.num_layers = max(layers, 2)
    config.hidden_size = hidden
    config.num_attention_heads = twin_heads
    config.num_query_groups = twin_groups if real.num_query_groups else None
    ffn = real.ffn_hidden_size or 4 * real.hidden_size
    config.ffn_hidden_size = _round(hidden * ffn / real.hidden_size)
    config.seq_length = SEQ_LENGTH
    config.vocab_size = None  # the data's tokenizer (bytes) sets it
    features = [f"GQA {heads}:{groups} -> {twin_heads}:{twin_groups}" if ratio > 1 else "MHA"]
    if real.num_moe_experts:
        experts = min(real.num_moe_experts, max(2 * real.moe_router_topk, 4))
        config.num_moe_experts = experts
        if real.moe_ffn_hidden_size:
            config.moe_ffn_hidden_size = _round(hidden * real.moe_ffn_hidden_size / real.hidden_size)
        features.append(f"MoE {real.num_moe_experts} experts top-{real.moe_router_topk} -> {experts} top-{real.moe_router_topk}")
    for flag, name in (("qk_layernorm", "qk-norm"), ("add_qkv_bias", "QKV bias"),
                       ("share_embeddings_and_output_weights", "tied embeddings"), ("rope_scaling", "RoPE scaling")):
        if getattr(real, flag, False):
            features.append(name)
    if getattr(real, "recompute_granularity", None):
        features.append(f"{real.recompute_granularity} recomputation")
    plan.kept[:0] = features


def _shrink_data(data: Any, layout: _Layout) -> None:
    """The same data module class: 64-token samples, 2 micro-batches of 1-2 samples per step."""
    data.seq_length = SEQ_LENGTH
    micro = min(getattr(data, "micro_batch_size", 1) or 1, 2)
    data.micro_batch_size = micro
    data.global_batch_size = micro * 2 * (layout.pp if layout.vp else 1)
    if getattr(data, "packed_sequence_specs", None) is not None:
        data.packed_sequence_specs.packed_sequence_size = SEQ_LENGTH
    if "tokenizer" in _arguments(data):
        data.tokenizer = None  # bytes: no files, no downloads


def _arguments(config: Any) -> set[str]:
    fn = getattr(config, "__fn_or_cls__", None)
    return {f.name for f in dataclasses.fields(fn)} if dataclasses.is_dataclass(fn) else set()


def _shrink_trainer(trainer: Any, processes: int, steps: int) -> None:
    trainer.accelerator = "cpu"
    trainer.devices = processes
    trainer.num_nodes = 1
    trainer.max_steps = steps
    trainer.val_check_interval = steps
    trainer.limit_val_batches = 1
    trainer.limit_test_batches = 1
    trainer.log_every_n_steps = 1


def _shrink_run(task: fdl.Partial, steps: int, plan: TwinPlan) -> None:
    """Logger, checkpointing and resume as the recipe has them, on the twin's schedule."""
    log = getattr(task, "log", None)
    if log is not None and getattr(log, "ckpt", None) is not None:
        log.ckpt.every_n_train_steps = steps
    optim = getattr(task, "optim", None)
    scheduler = getattr(optim, "lr_scheduler", None) if optim is not None else None
    if scheduler is not None:
        scheduler.warmup_steps = min(getattr(scheduler, "warmup_steps", 0) or 0, steps // 2)
        scheduler.max_steps = None
    resume = getattr(task, "resume", None)
    restore = getattr(resume, "restore_config", None)
    if resume is not None and restore is not None:
        plan.dropped.append(
            f"resume.restore_config (the twin's shrunk weights cannot load {getattr(restore, 'path', restore)})"
        )
        resume.restore_config = None


def retime(task: fdl.Partial, overridden: set[str]) -> None:
    """After `trainer.max_steps=N`: validate and checkpoint at step N unless those were set too."""
    steps = task.trainer.max_steps
    if "trainer.val_check_interval" not in overridden:
        task.trainer.val_check_interval = steps
    log = getattr(task, "log", None)
    if log is not None and getattr(log, "ckpt", None) is not None and "log.ckpt.every_n_train_steps" not in overridden:
        log.ckpt.every_n_train_steps = steps
