"""`MegatronStrategy` spec (NeMo's field names) and `check_layout`, the parallel-layout validator.

Light module: the Lightning strategy itself is in `megatron_strategy.py`, built by `build()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nemolite.errors import ConfigError, UnknownChoiceError

if TYPE_CHECKING:
    from nemolite.llm.gpt.model.base import GPTConfig

PREFIX = "trainer.strategy"
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(kw_only=True)
class DistributedDataParallelConfig:
    """megatron-core's DDP settings (field names of `megatron.core.distributed.DistributedDataParallelConfig`).

    Attributes:
        grad_reduce_in_fp32: keep gradient buffers and all-reduce in fp32.
        overlap_grad_reduce: overlap gradient reduction with the backward pass.
        overlap_param_gather: overlap the distributed optimizer's param all-gather with forward.
        align_param_gather: start all param all-gathers of a PP stage together.
        use_distributed_optimizer: shard optimizer state and reduce-scatter gradients (ZeRO-1);
            must match `optim.config.use_distributed_optimizer`.
        check_for_nan_in_grad: fail on NaN/Inf gradients before they are reduced.
        bucket_size: gradient bucket size in elements (None = megatron's default).
        average_in_collective: average inside the collective instead of pre-dividing.
        num_distributed_optimizer_instances: distributed optimizer replicas (partial sharding).
    """

    grad_reduce_in_fp32: bool = False
    overlap_grad_reduce: bool = False
    overlap_param_gather: bool = False
    align_param_gather: bool = False
    use_distributed_optimizer: bool = False
    check_for_nan_in_grad: bool = True
    bucket_size: int | None = None
    average_in_collective: bool = False
    num_distributed_optimizer_instances: int = 1


@dataclass(kw_only=True)
class MegatronStrategy:
    """Megatron-core model parallelism under Lightning (NeMo's `nl.MegatronStrategy`).

    Attributes:
        tensor_model_parallel_size: TP: split each layer's weights over this many ranks.
        pipeline_model_parallel_size: PP: split the layers into this many stages.
        virtual_pipeline_model_parallel_size: VP: layer chunks per PP stage (interleaved 1F1B).
        context_parallel_size: CP: split each sequence over this many ranks.
        sequence_parallel: shard norm/dropout activations over the TP ranks (needs TP > 1).
        expert_model_parallel_size: EP: spread MoE experts over this many ranks.
        expert_tensor_parallel_size: TP inside each expert (None = tensor_model_parallel_size).
        pipeline_dtype: dtype sent between pipeline stages (None = the params dtype).
        account_for_embedding_in_pipeline_split: count the input embedding as one layer when
            splitting layers over pipeline stages (Llama 3.1 405B: 126 + 2 = 128 = 8 x 2 x 8).
        account_for_loss_in_pipeline_split: count the output layer and loss as one layer there.
        ddp: "megatron" (defaults) or a `DistributedDataParallelConfig`.
        batch_p2p_comm: batch pipeline sends/receives (None = auto: off over gloo, where
            interleaved pipelines give wrong results with batched isend/irecv).
        overlap_p2p_comm: overlap pipeline communication with compute (interleaved only).
        gradient_as_bucket_view: kept for NeMo compatibility (megatron DDP always uses buckets).
        ckpt_async_save: write checkpoints in a background process.
        ckpt_parallel_save: every data-parallel rank writes a share of the checkpoint.
        ckpt_parallel_load: every data-parallel rank reads a share and exchanges it.
        ckpt_include_optimizer: save the optimizer state with the model.
        save_ckpt_format: dist-checkpointing format ("torch_dist").
        process_group_backend: "gloo" or "nccl" (None = nccl with CUDA, else gloo).
        timeout_minutes: collective timeout.
    """

    tensor_model_parallel_size: int = 1
    pipeline_model_parallel_size: int = 1
    virtual_pipeline_model_parallel_size: int | None = None
    context_parallel_size: int = 1
    sequence_parallel: bool = False
    expert_model_parallel_size: int = 1
    expert_tensor_parallel_size: int | None = None
    pipeline_dtype: str | None = None
    account_for_embedding_in_pipeline_split: bool = False
    account_for_loss_in_pipeline_split: bool = False
    ddp: str | DistributedDataParallelConfig = "megatron"
    batch_p2p_comm: bool | None = None
    overlap_p2p_comm: bool = False
    gradient_as_bucket_view: bool = True
    ckpt_async_save: bool = False
    ckpt_parallel_save: bool = True
    ckpt_parallel_load: bool = True
    ckpt_include_optimizer: bool = True
    save_ckpt_format: str = "torch_dist"
    process_group_backend: str | None = None
    timeout_minutes: int = 30

    def __post_init__(self) -> None:
        from nemolite.lightning.megatron_configs import from_megatron

        # NeMo scripts pass megatron.core.distributed.DistributedDataParallelConfig here.
        self.ddp = from_megatron(self.ddp, DistributedDataParallelConfig, f"{PREFIX}.ddp")

    @property
    def model_parallel_size(self) -> int:
        """TP x PP x CP: ranks that hold one copy of the model."""
        return (
            self.tensor_model_parallel_size
            * self.pipeline_model_parallel_size
            * self.context_parallel_size
        )

    def data_parallel_size(self, world_size: int) -> int:
        """DP = world size / (TP x PP x CP)."""
        return world_size // self.model_parallel_size

    def build(self, **kwargs: Any) -> Any:
        """Returns the heavy Lightning strategy (`megatron_strategy.MegatronLightningStrategy`)."""
        from nemolite.lightning.megatron_strategy import MegatronLightningStrategy

        return MegatronLightningStrategy(self, **kwargs)


def _need(ok: bool, name: str, value: Any, problem: str, fix: str) -> None:
    if not ok:
        raise ConfigError(f"{PREFIX}.{name}" if "." not in name else name, value, problem, fix)


def _check_sizes(s: MegatronStrategy) -> None:
    for name in (
        "tensor_model_parallel_size",
        "pipeline_model_parallel_size",
        "context_parallel_size",
        "expert_model_parallel_size",
    ):
        _need(getattr(s, name) >= 1, name, getattr(s, name), "must be >= 1", "use a positive integer")
    if s.ddp != "megatron" and not isinstance(s.ddp, DistributedDataParallelConfig):
        raise UnknownChoiceError(f"{PREFIX}.ddp", str(s.ddp), ["megatron"])
    if s.pipeline_dtype is not None and s.pipeline_dtype not in DTYPES:
        raise UnknownChoiceError(f"{PREFIX}.pipeline_dtype", s.pipeline_dtype, DTYPES)
    _need(
        not s.sequence_parallel or s.tensor_model_parallel_size > 1,
        "sequence_parallel",
        s.sequence_parallel,
        "sequence parallelism shards over tensor-parallel ranks and tensor_model_parallel_size is 1",
        f"set {PREFIX}.sequence_parallel=False or {PREFIX}.tensor_model_parallel_size>1",
    )
    vp = s.virtual_pipeline_model_parallel_size
    _need(
        vp is None or (vp >= 1 and s.pipeline_model_parallel_size > 1),
        "virtual_pipeline_model_parallel_size",
        vp,
        "interleaved pipelines need pipeline_model_parallel_size > 1",
        f"set {PREFIX}.virtual_pipeline_model_parallel_size=None or raise pipeline_model_parallel_size",
    )


def _check_model(s: MegatronStrategy, cfg: GPTConfig) -> None:
    tp, pp = s.tensor_model_parallel_size, s.pipeline_model_parallel_size
    vp = s.virtual_pipeline_model_parallel_size or 1
    fix_tp = f"use a {PREFIX}.tensor_model_parallel_size that divides it"
    _need(
        cfg.num_attention_heads % tp == 0,
        "tensor_model_parallel_size",
        tp,
        f"does not divide model.config.num_attention_heads={cfg.num_attention_heads}",
        fix_tp,
    )
    _need(
        cfg.query_groups % tp == 0,
        "tensor_model_parallel_size",
        tp,
        f"does not divide model.config.num_query_groups={cfg.query_groups}",
        fix_tp,
    )
    # megatron-core counts the embedding and the loss as layers when told to (transformer_config.py).
    extra = int(s.account_for_embedding_in_pipeline_split) + int(s.account_for_loss_in_pipeline_split)
    layers = cfg.num_layers + extra if pp > 1 else cfg.num_layers
    counted = f"model.config.num_layers={cfg.num_layers}" + (f" + {extra} (embedding/loss)" if layers != cfg.num_layers else "")
    _need(
        layers % (pp * vp) == 0,
        "pipeline_model_parallel_size",
        pp,
        f"x virtual_pipeline_model_parallel_size={vp} does not divide {counted}",
        "pick pipeline and virtual pipeline sizes whose product divides num_layers",
    )
    if s.sequence_parallel:
        _need(
            cfg.seq_length % tp == 0,
            "sequence_parallel",
            True,
            f"model.config.seq_length={cfg.seq_length} is not divisible by tensor_model_parallel_size={tp}",
            "pick a seq_length that is a multiple of the TP size",
        )
    cp = s.context_parallel_size
    _need(
        cfg.seq_length % (2 * cp) == 0 or cp == 1,
        "context_parallel_size",
        cp,
        f"2 x context_parallel_size must divide model.config.seq_length={cfg.seq_length}",
        "pick a seq_length that is a multiple of 2 x CP",
    )
    ep = s.expert_model_parallel_size
    if cfg.num_moe_experts is None:
        _need(ep == 1, "expert_model_parallel_size", ep, "the model has no experts (dense MLP)", f"set {PREFIX}.expert_model_parallel_size=1")
    else:
        # megatron-core's TransformerConfig rejects MoE with TP but without SP.
        _need(
            tp == 1 or s.sequence_parallel,
            "sequence_parallel",
            s.sequence_parallel,
            "mixture-of-experts layers with tensor_model_parallel_size > 1 need sequence parallelism",
            f"set {PREFIX}.sequence_parallel=True",
        )
        _need(
            cfg.num_moe_experts % ep == 0,
            "expert_model_parallel_size",
            ep,
            f"does not divide model.config.num_moe_experts={cfg.num_moe_experts}",
            "use an expert_model_parallel_size that divides the number of experts",
        )


def check_layout(
    strategy: MegatronStrategy,
    *,
    model_config: GPTConfig | None,
    world_size: int,
    global_batch_size: int | None = None,
    micro_batch_size: int | None = None,
) -> None:
    """Raises `ConfigError` when the parallel layout cannot run; imports nothing heavy.

    Checks: sizes >= 1; TP divides heads and query groups; PP x VP divides layers; EP divides the
    experts; SP only with TP > 1; TP x PP x CP divides the world size; the expert layout
    (ETP x EP x PP) divides the world size; the global batch is a multiple of micro batch x DP.

    Args:
        strategy: the strategy spec.
        model_config: the model's config (None skips the model checks).
        world_size: total number of processes (nodes x processes per node).
        global_batch_size: samples per optimizer step (None skips the batch check).
        micro_batch_size: samples per forward pass on one rank.
    """
    s = strategy
    _check_sizes(s)
    if model_config is not None:
        model_config.validate()
        _check_model(s, model_config)
    mp = s.model_parallel_size
    _need(
        world_size >= 1 and world_size % mp == 0,
        "tensor_model_parallel_size",
        s.tensor_model_parallel_size,
        f"TP x PP x CP = {mp} does not divide the world size {world_size}",
        "launch a multiple of TP x PP x CP processes (trainer.devices x trainer.num_nodes) or shrink the layout",
    )
    etp = s.expert_tensor_parallel_size or s.tensor_model_parallel_size
    emp = etp * s.expert_model_parallel_size * s.pipeline_model_parallel_size
    _need(
        world_size % emp == 0,
        "expert_model_parallel_size",
        s.expert_model_parallel_size,
        f"expert TP x EP x PP = {emp} does not divide the world size {world_size}",
        "pick an expert layout whose product divides the number of processes",
    )
    if global_batch_size is None or micro_batch_size is None:
        return
    dp = world_size // mp
    _need(
        micro_batch_size >= 1 and global_batch_size % (micro_batch_size * dp) == 0,
        "data.global_batch_size",
        global_batch_size,
        f"not a multiple of micro_batch_size x data-parallel size = {micro_batch_size} x {dp}",
        f"use a multiple of {micro_batch_size * dp}",
    )
    pp = s.pipeline_model_parallel_size
    if s.virtual_pipeline_model_parallel_size is not None:
        # megatron's interleaved schedule runs micro-batches in groups of PP
        # (pipeline_parallel/schedules.py, microbatch_group_size_per_vp_stage).
        micro_batches = global_batch_size // (micro_batch_size * dp)
        _need(
            micro_batches % pp == 0,
            "data.global_batch_size",
            global_batch_size,
            f"gives {micro_batches} micro-batches per step, and the interleaved pipeline needs a "
            f"multiple of pipeline_model_parallel_size={pp}",
            f"use a multiple of {micro_batch_size * dp * pp}",
        )
