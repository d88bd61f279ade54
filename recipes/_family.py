"""One row of a family's size table -> that size's `model()`, `pretrain_recipe()` and `finetune_recipe()`.

A size is data: `recipes/llama3.py`, `mistral.py`, `qwen25.py` and `qwen3.py` hold their sizes'
published NeMo 2.0 defaults as `Size` rows, and each per-size module (`llama3_8b.py`, ...) is one
call to `register(row)`. The recipes themselves are built here, once, from `_common`'s builders.

The generated functions keep NeMo 2.0's keyword arguments (`performance_mode`, `peft_scheme`,
`seq_length`, `packed_sequence`) beside nemolite's typed ones (`peft=llm.LoRA(...)`,
`dataset_root`, `restore_from`).
"""

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import nemo_run as run

from nemolite import llm
from nemolite.errors import ConfigError, UnknownChoiceError
from nemolite.recipes import _common

TWIN_ENV = "NEMOLITE_CPU_TWIN"
"""Set to 1 or 2: every catalogue recipe built in this process is its CPU twin on up to that many
processes (a NeMo script then runs on a laptop unchanged; the CLI's switch is `--cpu-twin`)."""

PEFT_SCHEMES = ("lora", "dora", "none")
"""`peft_scheme` values, as NeMo 2.0's recipes take them."""


@dataclass(frozen=True)
class Layout:
    """A parallel layout and the nodes (of 8 GPUs) it is published for."""

    tp: int = 1
    pp: int = 1
    vp: Optional[int] = None
    cp: int = 1
    sp: bool = False
    ep: int = 1
    etp: Optional[int] = None
    nodes: int = 1
    count_ends: bool = False  # embedding and loss count as layers in the pipeline split

    def describe(self) -> str:
        """`TP4 PP4 VP5 CP2 SP over 4x8` (only the kinds in use)."""
        kinds = [f"TP{self.tp}", f"PP{self.pp}"]
        kinds += [f"VP{self.vp}"] if self.vp else []
        kinds += [f"CP{self.cp}"] if self.cp > 1 else []
        kinds += [f"EP{self.ep}"] if self.ep > 1 else []
        kinds += [f"ETP{self.etp}"] if self.etp is not None else []
        kinds += ["SP"] if self.sp else []
        return " ".join(kinds) + f" over {self.nodes}x8"


@dataclass(frozen=True)
class Size:
    """A recipe's published defaults (NeMo 2.0's module of the same name), by field.

    `pretrain` is the pretraining layout; `lora` and `full` the fine-tuning layouts with LoRA and
    without PEFT. `warmup_steps`/`min_lr` None are `_common`'s defaults (2000, max_lr / 10).
    """

    name: str
    title: str
    model: type
    config: type
    hf_id: Optional[str]
    pretrain: Layout
    lora: Layout = Layout()
    full: Layout = Layout()
    model_seq_length: Optional[int] = None
    seq_length: int = 8192
    global_batch_size: int = 512
    micro_batch_size: int = 1
    max_steps: int = 1_168_251
    val_check_interval: int = 2000
    limit_test_batches: int = 50
    warmup_steps: Optional[int] = None
    min_lr: Optional[float] = None
    max_lr: float = 3e-4
    recompute: bool = False
    lora_spec: llm.LoRA = field(default_factory=llm.LoRA)
    finetune_seq_length: int = 2048
    finetune_global_batch_size: Optional[int] = None
    notes: str = ""

    def variant(self, name: str, **changes: Any) -> "Size":
        """This size with a few fields changed (`llama3_8b_16k` is `llama3_8b` at 16k tokens)."""
        return replace(self, name=name, **changes)


def qwen_size(name: str, title: str, model: type, config: type, hf_id: str) -> Size:
    """A Qwen family's base row: NeMo 2.0's Qwen2.5 and Qwen3 recipes publish one schedule.

    4096-token mock data, global batch 32, micro batch 2, 300k steps validated every 500, lr
    3e-4 -> 3e-5 after 500 warmup steps, one GPU; larger sizes are variants of this row.
    """
    return Size(
        name=name,
        title=title,
        model=model,
        config=config,
        hf_id=hf_id,
        pretrain=Layout(),
        seq_length=4096,
        global_batch_size=32,
        micro_batch_size=2,
        max_steps=300_000,
        val_check_interval=500,
        limit_test_batches=32,
        warmup_steps=500,
        min_lr=3e-5,
    )


def with_overrides(size: Size, layout: dict[str, Any], fields: dict[str, Any]) -> Size:
    """The size with the arguments a caller gave (None = the published value)."""
    given_layout = {k: v for k, v in layout.items() if v is not None}
    given = {k: v for k, v in fields.items() if v is not None}
    if "seq_length" in given and given["seq_length"] > (size.model_seq_length or 0):
        given["model_seq_length"] = given["seq_length"]
    return replace(size, pretrain=replace(size.pretrain, **given_layout), **given)


def strategy_config(layout: Layout, *, pipeline_dtype: Optional[str] = "bfloat16") -> run.Config:
    """`_common.strategy` for a layout; the expert TP size is set where the recipe publishes one."""
    strategy = _common.strategy(
        tensor_parallelism=layout.tp,
        pipeline_parallelism=layout.pp,
        virtual_pipeline_parallelism=layout.vp,
        context_parallelism=layout.cp,
        sequence_parallelism=layout.sp,
        expert_parallelism=layout.ep,
        pipeline_dtype=pipeline_dtype if layout.pp > 1 else None,
    )
    if layout.etp is not None:
        strategy.expert_tensor_parallel_size = layout.etp
    if layout.count_ends:
        strategy.account_for_embedding_in_pipeline_split = True
        strategy.account_for_loss_in_pipeline_split = True
    return strategy


def model_config(size: Size, seq_length: Optional[int] = None) -> run.Config:
    """`run.Config(Model, config=run.Config(Config))`, at the recipe's sequence length."""
    config = run.Config(size.config)
    if seq_length or size.model_seq_length:
        config.seq_length = seq_length or size.model_seq_length
    return run.Config(size.model, config=config)


def build_pretrain(
    size: Size,
    *,
    dir: Optional[str],
    name: str,
    num_nodes: Optional[int],
    num_gpus_per_node: int,
    performance_mode: bool,
) -> run.Partial:
    """The pretraining recipe: mock data, the published layout, AdamW with cosine decay."""
    layout = size.pretrain
    trainer = _common.trainer(
        strategy=strategy_config(layout),
        num_nodes=num_nodes if num_nodes is not None else layout.nodes,
        devices=num_gpus_per_node,
        max_steps=size.max_steps,
        val_check_interval=size.val_check_interval,
        limit_test_batches=size.limit_test_batches,
    )
    optim_kwargs: dict[str, Any] = {"max_lr": size.max_lr}
    if size.warmup_steps is not None:
        optim_kwargs["warmup_steps"] = size.warmup_steps
    if size.min_lr is not None:
        optim_kwargs["min_lr"] = size.min_lr
    recipe = _common.pretrain(
        model=model_config(size),
        trainer=trainer,
        data=_common.mock_data(size.seq_length, size.global_batch_size, size.micro_batch_size),
        log=_common.logger(dir=dir, name=name),
        optim=_common.adam_with_cosine_annealing(**optim_kwargs),
    )
    _match_distributed_optimizer(recipe)
    if size.recompute:
        _full_recompute(recipe.model.config)
    if performance_mode:
        # NeMo's pretrain_performance_optimizations: gradients reduced in bf16, not fp32.
        recipe.trainer.plugins.grad_reduce_in_fp32 = False
        recipe.trainer.strategy.ddp.grad_reduce_in_fp32 = False
    return recipe


def _match_distributed_optimizer(recipe: run.Partial) -> None:
    """megatron's DDP must know the optimizer is sharded (its gradient buffers are laid out for it)."""
    recipe.trainer.strategy.ddp.use_distributed_optimizer = recipe.optim.config.use_distributed_optimizer


def _full_recompute(config: run.Config) -> None:
    """Recompute every layer's activations in the backward pass, where the config has the fields."""
    names = {f for f in getattr(config.__fn_or_cls__, "__dataclass_fields__", {})}
    if {"recompute_granularity", "recompute_method", "recompute_num_layers"} <= names:
        config.recompute_granularity = "full"
        config.recompute_method = "uniform"
        config.recompute_num_layers = 1


def resolve_peft(peft: Optional[llm.LoRA], peft_scheme: Optional[str]) -> Optional[llm.LoRA]:
    """NeMo's `peft_scheme` string against nemolite's typed `peft`: "none"/None train every weight.

    "dora" is DoRA with the size's adapter settings (rank, alpha, layers), as NeMo's recipes set
    the same `dim`/`alpha` on whichever of LoRA and DoRA `peft_scheme` names.
    """
    if peft_scheme is None or peft_scheme.lower() == "none":
        return None
    scheme = peft_scheme.lower()
    if scheme not in PEFT_SCHEMES:
        raise UnknownChoiceError("peft_scheme", peft_scheme, [*PEFT_SCHEMES, "None"])
    if scheme == "dora" and peft is not None and not isinstance(peft, llm.peft.DoRA):
        return llm.peft.DoRA(target_modules=peft.target_modules, dim=peft.dim, alpha=peft.alpha,
                             dropout=peft.dropout)
    return peft


def build_finetune(
    size: Size,
    *,
    dir: Optional[str],
    name: str,
    num_nodes: Optional[int],
    num_gpus_per_node: int,
    peft: Optional[llm.LoRA],
    dataset_root: Optional[str],
    restore_from: Optional[str],
    seq_length: Optional[int],
    packed_sequence: Optional[bool],
    performance_mode: bool,
) -> run.Partial:
    """The fine-tuning recipe: JSONL data, LoRA or full, the size's published fine-tuning layout."""
    layout = size.full if peft is None else size.lora
    packed = performance_mode if packed_sequence is None else packed_sequence
    seq = seq_length or (2 * size.finetune_seq_length if packed else size.finetune_seq_length)
    trainer = _common.trainer(
        strategy=strategy_config(layout),
        num_nodes=num_nodes if num_nodes is not None else layout.nodes,
        devices=num_gpus_per_node,
        max_steps=1000,
        val_check_interval=30,
        log_every_n_steps=1,
    )
    recipe = _common.finetune(
        model=model_config(size, seq_length=seq),
        data=_common.finetune_data(dataset_root, seq_length=seq),
        trainer=trainer,
        dir=dir,
        name=name,
        peft=peft,
        restore_from=restore_from,
    )
    if peft is not None:  # NeMo's LoRA recipes: the few adapter weights need no sharded optimizer
        recipe.optim.config.use_distributed_optimizer = False
    _match_distributed_optimizer(recipe)
    if packed:
        recipe.data.packed_sequence_specs = run.Config(
            llm.PackedSequenceSpecs, packed_sequence_size=seq
        )
        recipe.data.global_batch_size = 8  # NeMo's packed default: 8 packs of `seq` tokens
    if size.finetune_global_batch_size:
        recipe.data.global_batch_size = size.finetune_global_batch_size
    if performance_mode:
        # NeMo's finetune_performance_optimizations: bf16 gradient reduction, LoRA on QKV only.
        recipe.trainer.plugins.grad_reduce_in_fp32 = False
        recipe.trainer.strategy.ddp.grad_reduce_in_fp32 = False
        if peft is not None:
            recipe.peft.target_modules = ["linear_qkv"]
    return recipe


def maybe_twin(recipe: run.Partial, gpus: int) -> run.Partial:
    """The recipe, or its CPU twin on min(`gpus`, $NEMOLITE_CPU_TWIN) processes when that is set."""
    value = os.environ.get(TWIN_ENV, "").strip()
    if value in ("", "0"):
        return recipe
    if value not in ("1", "2"):
        raise ConfigError(TWIN_ENV, value, "is the CPU twin's process count, 1 or 2",
                          f"set {TWIN_ENV}=1 or 2, or unset it for the real recipe")
    from nemolite.llm.twin import cpu_twin

    twin, plan = cpu_twin(recipe, processes=max(1, min(int(value), gpus)))
    for line in plan.lines():
        print(line, file=sys.stderr)
    return twin


def register(size: Size) -> tuple[Callable, Callable, Callable]:
    """`model`, `pretrain_recipe` and `finetune_recipe` for one size, registered with nemo-run.

    Returns the three functions; the per-size module binds them to its own names.
    """
    NAME = size.name  # noqa: N806 - the factories' registered name

    @run.cli.factory(name=NAME)
    def model() -> run.Config[llm.GPTModel]:
        return model_config(size)

    @run.cli.factory(target=llm.pretrain, name=NAME)
    def pretrain_recipe(
        dir: Optional[str] = None,
        name: str = "default",
        num_nodes: Optional[int] = None,
        num_gpus_per_node: int = 8,
        performance_mode: bool = False,
        tensor_parallelism: Optional[int] = None,
        pipeline_parallelism: Optional[int] = None,
        virtual_pipeline_parallelism: Optional[int] = None,
        context_parallelism: Optional[int] = None,
        sequence_parallelism: Optional[bool] = None,
        expert_parallelism: Optional[int] = None,
        max_steps: Optional[int] = None,
        seq_length: Optional[int] = None,
        global_batch_size: Optional[int] = None,
        micro_batch_size: Optional[int] = None,
        max_lr: Optional[float] = None,
        min_lr: Optional[float] = None,
        warmup_steps: Optional[int] = None,
    ) -> run.Partial:
        layout = {"tp": tensor_parallelism, "pp": pipeline_parallelism, "vp": virtual_pipeline_parallelism,
                  "cp": context_parallelism, "sp": sequence_parallelism, "ep": expert_parallelism}
        fields = {"max_steps": max_steps, "seq_length": seq_length, "global_batch_size": global_batch_size,
                  "micro_batch_size": micro_batch_size, "max_lr": max_lr, "min_lr": min_lr,
                  "warmup_steps": warmup_steps}
        recipe = build_pretrain(
            with_overrides(size, layout, fields), dir=dir, name=name, num_nodes=num_nodes,
            num_gpus_per_node=num_gpus_per_node, performance_mode=performance_mode,
        )
        twin = maybe_twin(recipe, (num_nodes or 1) * num_gpus_per_node)
        if twin is not recipe and max_steps is not None:
            twin.trainer.max_steps = twin.trainer.val_check_interval = max_steps
            twin.log.ckpt.every_n_train_steps = max_steps
        return twin

    @run.cli.factory(target=llm.finetune, name=NAME)
    def finetune_recipe(
        dir: Optional[str] = None,
        name: str = "default",
        num_nodes: Optional[int] = None,
        num_gpus_per_node: int = 8,
        peft_scheme: Optional[str] = "lora",
        seq_length: Optional[int] = None,
        packed_sequence: Optional[bool] = None,
        performance_mode: bool = False,
        peft: Optional[llm.LoRA] = size.lora_spec,
        dataset_root: Optional[str] = None,
        restore_from: Optional[str] = f"nemo://{size.hf_id}" if size.hf_id else None,
    ) -> run.Partial:
        recipe = build_finetune(
            size, dir=dir, name=name, num_nodes=num_nodes, num_gpus_per_node=num_gpus_per_node,
            peft=resolve_peft(peft, peft_scheme), dataset_root=dataset_root,
            restore_from=restore_from, seq_length=seq_length, packed_sequence=packed_sequence,
            performance_mode=performance_mode,
        )
        return maybe_twin(recipe, (num_nodes or 1) * num_gpus_per_node)

    _document(size, model, pretrain_recipe, finetune_recipe)
    return model, pretrain_recipe, finetune_recipe


def _document(size: Size, model: Callable, pretrain: Callable, finetune: Callable) -> None:
    """Docstrings from the table row, so `--help` and `help()` say what each recipe targets."""
    model.__doc__ = f"{size.title} ({size.config.__name__})."
    pretrain.__doc__ = (
        f"Pretrain {size.title} on mock data: seq {size.seq_length}, global batch "
        f"{size.global_batch_size}, micro batch {size.micro_batch_size}, lr {size.max_lr:g} cosine; "
        f"{size.pretrain.describe()} GPUs, bf16.\n\n"
        "`performance_mode=True` reduces gradients in bf16 (NeMo's performance optimizations)."
        + (f"\n\n{size.notes}" if size.notes else "")
    )
    finetune.__doc__ = (
        f"Fine-tune {size.title} on `dataset_root` (JSONL), from `restore_from` "
        f"(`nemo://{size.hf_id}`: import it first with `nemo llm import source=hf://{size.hf_id} -y`).\n\n"
        f"LoRA (`peft_scheme='lora'`, the default; `'dora'` for DoRA) on {size.lora.describe()}; "
        "full fine-tuning "
        f"(`peft_scheme='none'` or `peft=None`) on {size.full.describe()}. `packed_sequence=True` "
        "packs samples to `seq_length`; `performance_mode=True` packs and adapts only linear_qkv."
    )
    for fn in (model, pretrain, finetune):
        fn.__module__ = f"nemolite.recipes.{size.name}"
