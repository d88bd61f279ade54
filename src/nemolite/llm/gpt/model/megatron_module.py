"""Heavy: the LightningModule around megatron-core's GPTModel (what `llm.GPTModel.build()` returns).

One training step = one optimizer step: `global_batch_size / (micro_batch_size x DP)` micro-batches
go through megatron's forward-backward schedule (no pipelining, 1F1B, or interleaved 1F1B with VP),
then megatron's optimizer steps and the LR scheduler advances.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch
from megatron.core import parallel_state, tensor_parallel
from megatron.core.pipeline_parallel import get_forward_backward_func

from nemolite.errors import ConfigError
from nemolite.llm.gpt.model import megatron_config as mc

if TYPE_CHECKING:
    from nemolite.lightning.optim import MegatronOptimizerModule
    from nemolite.lightning.precision import MegatronMixedPrecision
    from nemolite.lightning.strategy import MegatronStrategy
    from nemolite.llm.gpt.model.base import GPTConfig

BATCH_KEYS = ("tokens", "labels", "loss_mask", "position_ids")


def slice_for_context_parallel(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """This CP rank's share of each sequence: chunks r and 2*CP-1-r of 2*CP (load-balanced causal)."""
    cp = parallel_state.get_context_parallel_world_size()
    if cp == 1:
        return batch
    rank = parallel_state.get_context_parallel_rank()
    out = {}
    for key, value in batch.items():
        if key not in BATCH_KEYS:
            out[key] = value
            continue
        index = torch.tensor([rank, 2 * cp - 1 - rank], device=value.device)
        shaped = value.view(value.shape[0], 2 * cp, value.shape[1] // (2 * cp), *value.shape[2:])
        out[key] = shaped.index_select(1, index).reshape(value.shape[0], -1, *value.shape[2:])
    return out


def _pack_boundaries(batch: dict[str, torch.Tensor], row: int) -> torch.Tensor:
    """Row `row`'s cu_seqlens without the padding after its last entry (`cu_seqlens_argmin`)."""
    cu = batch["cu_seqlens"][row].view(-1)
    argmin = batch.get("cu_seqlens_argmin")
    n = int(argmin[row].view(-1)[0]) if argmin is not None else int(torch.argmin(cu))
    return cu[:n]


def packed_attention(batch: dict[str, torch.Tensor], *, transformer_engine: bool) -> dict[str, Any]:
    """Keyword arguments for megatron's GPTModel that keep attention inside each example of a pack.

    TransformerEngine's attention reads the pack's `cu_seqlens` (PackedSeqParams, "thd", as NeMo
    passes them; micro-batches of one pack). megatron-core's local DotProductAttention asserts
    `packed_seq_params is None`, but applies a given boolean mask (True = hidden) instead of its
    own causal one (fusions/fused_softmax.py, forward_torch_softmax): a block-diagonal causal mask.
    RoPE's positions then run on across the pack, which changes no score: RoPE is relative.
    """
    if "cu_seqlens" not in batch:
        return {}
    if transformer_engine:
        from megatron.core.packed_seq_params import PackedSeqParams

        cu = _pack_boundaries(batch, 0).to(torch.int32)
        longest = int((cu[1:] - cu[:-1]).max())
        return {"packed_seq_params": PackedSeqParams(
            cu_seqlens_q=cu, cu_seqlens_kv=cu, max_seqlen_q=longest, max_seqlen_kv=longest,
            qkv_format="thd")}
    tokens = batch["tokens"]
    seq = tokens.shape[1]
    pos = torch.arange(seq, device=tokens.device)
    causal = pos[None, :] <= pos[:, None]
    masks = []
    for row in range(tokens.shape[0]):
        example = torch.bucketize(pos, _pack_boundaries(batch, row)[1:].to(pos), right=True)
        masks.append(~(causal & (example[:, None] == example[None, :])))
    return {"attention_mask": torch.stack(masks)[:, None]}  # [b, 1, s, s]


def masked_token_loss(
    loss_mask: torch.Tensor, output_tensor: torch.Tensor, *, per_token: bool = False
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """megatron's 3-tuple loss: (sum of masked token losses, token count, reporting tensor).

    megatron's schedule divides the sum by the count and by the number of micro-batches unless
    `calculate_per_token_loss` (then `finalize_model_grads` divides the gradients by the global
    batch's token count). By default the gradient is thus NeMo's: the mean over micro-batches and
    data-parallel ranks of each micro-batch's mean token loss. Under context parallelism a
    micro-batch's mean is over the whole sequence: the count is summed over the CP ranks, and the
    sum scaled by CP because megatron's DDP averages gradients over the DP x CP ranks.
    """
    losses = output_tensor.float().view(-1)
    mask = loss_mask.view(-1).float()
    loss_sum = torch.sum(losses * mask)
    report = torch.stack([loss_sum.detach().clone(), mask.sum()])  # this rank's share
    num_tokens = mask.sum()
    cp = parallel_state.get_context_parallel_world_size()
    if cp > 1 and not per_token:
        num_tokens = num_tokens.detach().clone()
        torch.distributed.all_reduce(num_tokens, group=parallel_state.get_context_parallel_group())
        loss_sum = loss_sum * cp
    return loss_sum, num_tokens.to(torch.int), {"lm loss": report}


def reduce_reported_losses(reports: list[torch.Tensor], *, per_token: bool) -> torch.Tensor:
    """The logged loss, the same quantity the gradient is taken of, from each micro-batch's report.

    `reports` are this last-stage rank's (masked loss sum, token count) per micro-batch. Returns
    (numerator, denominator) summed over the data-parallel ranks: per-token, the global sums;
    by default, the sum and count of micro-batch means (each mean over its whole sequence, CP ranks
    summed first).
    """
    stacked = torch.stack([r.to(torch.float64) for r in reports])  # [micro-batches, 2]
    if per_token:
        totals = stacked.sum(0)
        group = parallel_state.get_data_parallel_group(with_context_parallel=True)
    else:
        if parallel_state.get_context_parallel_world_size() > 1:
            torch.distributed.all_reduce(stacked, group=parallel_state.get_context_parallel_group())
        means = stacked[:, 0] / stacked[:, 1].clamp(min=1)  # megatron clamps the count the same way
        totals = torch.stack([means.sum(), means.new_tensor(len(reports))])
        group = parallel_state.get_data_parallel_group()
    torch.distributed.all_reduce(totals, group=group)
    return totals


class MegatronGPTModule(pl.LightningModule):
    """megatron-core GPT chunks (one per virtual-pipeline stage) trained by manual optimization."""

    def __init__(
        self,
        config: GPTConfig,
        *,
        optim: MegatronOptimizerModule | None = None,
        tokenizer: Any = None,
        precision: MegatronMixedPrecision | None = None,
        global_batch_size: int | None = None,
        micro_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.optim = optim
        self.tokenizer = tokenizer
        self.precision_spec = precision
        self.global_batch_size = global_batch_size
        self.micro_batch_size = micro_batch_size
        self.automatic_optimization = False
        # Built in configure_model (after model parallelism starts); Any: megatron modules.
        self.chunks: Any = None
        self.tf_config: Any = None
        self.lr_scheduler: Any = None
        self.train_losses: list[float] = []
        self._val_losses: list[float] = []  # this validation pass's per-batch losses (for val_ppl)
        self._unscaled_limits: dict[int, dict[str, Any]] = {}

    # ---- building -------------------------------------------------------------------------
    @property
    def strategy_spec(self) -> MegatronStrategy:
        from nemolite.lightning.strategy import MegatronStrategy

        return getattr(self.trainer.strategy, "spec", None) or MegatronStrategy()

    def true_vocab_size(self) -> int:
        """The vocabulary before padding (from the config, else the tokenizer)."""
        vocab = self.config.vocab_size or getattr(self.tokenizer, "vocab_size", None)
        if vocab is None:
            raise ConfigError(
                "model.config.vocab_size",
                None,
                "no vocabulary size and no tokenizer to take it from",
                "set model.config.vocab_size or give data.tokenizer",
            )
        return int(vocab)

    def vocab_size(self) -> int:
        """The padded vocabulary: rows of the embedding and output layer."""
        tp = self.strategy_spec.tensor_model_parallel_size
        return mc.padded_vocab_size(self.true_vocab_size(), self.config.make_vocab_size_divisible_by, tp)

    def configure_model(self) -> None:
        """Builds the megatron chunks once model parallelism is initialised (Lightning hook)."""
        if self.chunks is not None:
            return
        from megatron.core.transformer.module import Float16Module

        self.tf_config = mc.transformer_config(self.config, self.strategy_spec, self.precision_spec)
        torch.manual_seed(self.config.seed)
        tensor_parallel.model_parallel_cuda_manual_seed(self.config.seed)
        chunks = mc.build_chunks(self.config, self.tf_config, self.vocab_size())
        mc.mask_padded_vocab(chunks, self.true_vocab_size())
        if self.config.layout_independent_init:
            from nemolite.llm.gpt.model.megatron_init import reinitialize

            reinitialize(chunks, self.tf_config, seed=self.config.seed, vocab_size=self.true_vocab_size(),
                         tied=self.config.share_embeddings_and_output_weights)
        if self.tf_config.bf16 or self.tf_config.fp16:
            chunks = [Float16Module(self.tf_config, chunk) for chunk in chunks]
        self.chunks = torch.nn.ModuleList(chunks)

    def configure_optimizers(self) -> Any:
        """megatron's optimizer over the DDP-wrapped chunks, behind a torch Optimizer face."""
        from nemolite.lightning.optim import MegatronOptimizerModule, OptimizerConfig

        optim = self.optim or MegatronOptimizerModule(OptimizerConfig())
        max_steps = self.trainer.max_steps if self.trainer.max_steps > 0 else 1
        optimizer, self.lr_scheduler = optim.build(
            list(self.chunks), max_steps=max_steps, precision=self.precision_spec
        )
        return optimizer

    # ---- stepping -------------------------------------------------------------------------
    def num_microbatches(self, *, training: bool = False) -> int:
        """Micro-batches per optimizer step on this data-parallel rank.

        A training step follows the data module's batch-size ramp-up (`current_global_batch_size`,
        read from the samples consumed before the step); validation and test always use the full
        global batch, so `val_loss` stays comparable across the ramp and Lightning's batch limits
        (scaled once in `setup`) stay right.
        """
        dm = getattr(self.trainer, "datamodule", None)
        gbs = self.global_batch_size or getattr(dm, "global_batch_size", None)
        current = getattr(dm, "current_global_batch_size", None) if training else None
        if isinstance(current, int) and not isinstance(current, bool):
            gbs = current
        mbs = self.micro_batch_size or getattr(dm, "micro_batch_size", None) or 1
        dp = parallel_state.get_data_parallel_world_size()
        return max(1, (gbs or mbs * dp) // (mbs * dp))

    def _forward_step(self, data_iterator: Iterator, model: torch.nn.Module) -> tuple[Any, Any]:
        batch = next(data_iterator)
        batch = slice_for_context_parallel({k: v.to(self.device) for k, v in batch.items()})
        packed = packed_attention(batch, transformer_engine=mc.uses_transformer_engine(self.config))
        attention_mask = packed.pop("attention_mask", None)
        output = model(
            batch["tokens"], batch["position_ids"], attention_mask, labels=batch["labels"], **packed
        )
        per_token = bool(self.tf_config.calculate_per_token_loss)
        return output, functools.partial(masked_token_loss, batch["loss_mask"], per_token=per_token)

    def run_schedule(self, batches: list[dict[str, torch.Tensor]], *, forward_only: bool) -> torch.Tensor:
        """Runs the micro-batches through megatron's schedule; returns the step's loss.

        The loss is the objective whose gradient the step takes (`reduce_reported_losses`), over all
        data-parallel (and context-parallel) ranks, broadcast from the last pipeline stage, so every
        rank reports the same number.
        """
        chunks = list(self.chunks)
        iterators = [iter(batches) for _ in chunks]
        seq = batches[0]["tokens"].shape[1]
        outputs = get_forward_backward_func()(
            forward_step_func=self._forward_step,
            data_iterator=iterators if len(chunks) > 1 else iterators[0],
            model=chunks if len(chunks) > 1 else chunks[0],
            num_microbatches=len(batches),
            seq_length=seq // parallel_state.get_context_parallel_world_size(),
            micro_batch_size=batches[0]["tokens"].shape[0],
            forward_only=forward_only,
        )
        # On the model's device: NCCL reduces CUDA tensors only.
        totals = torch.zeros(2, dtype=torch.float64, device=self.device)
        if parallel_state.is_pipeline_last_stage(ignore_virtual=True):
            per_token = bool(self.tf_config.calculate_per_token_loss)
            reports = [out["lm loss"].to(totals) for out in outputs]
            totals = reduce_reported_losses(reports, per_token=per_token).to(totals)
        if parallel_state.get_pipeline_model_parallel_world_size() > 1:
            last = parallel_state.get_pipeline_model_parallel_last_rank()
            torch.distributed.broadcast(
                totals, src=last, group=parallel_state.get_pipeline_model_parallel_group()
            )
        return (totals[0] / totals[1].clamp(min=1)).float()

    def setup(self, stage: str) -> None:
        """Makes Lightning's batch limits count global batches (validation steps), as NeMo's do.

        Each step here consumes `num_microbatches()` loader items, while Lightning limits the items
        it fetches; an int `limit_val_batches=4` thus means 4 validation steps, not 4 micro-batches.
        The data module has sized its datasets from the unscaled limits already (it sets up first).
        """
        trainer = self.trainer
        n = self.num_microbatches()
        names = ("limit_val_batches", "limit_test_batches", "num_sanity_val_steps")
        # setup runs once per stage (fit, validate, test): scale the user's values, once.
        unscaled = self._unscaled_limits.setdefault(id(trainer), {k: getattr(trainer, k, None) for k in names})
        for name, value in unscaled.items():
            if isinstance(value, int) and not isinstance(value, bool) and n > 1:
                setattr(trainer, name, value * n)

    def _next_batches(self, dataloader_iter: Iterator, *, partial: bool = False,
                      training: bool = False) -> list[dict[str, torch.Tensor]]:
        """The next global batch's micro-batches (fewer at the end of the data when `partial`)."""
        batches: list[dict[str, torch.Tensor]] = []
        for _ in range(self.num_microbatches(training=training)):
            try:
                item = next(dataloader_iter)
            except StopIteration:
                if partial and batches:
                    break
                raise
            batches.append(item[0] if isinstance(item, tuple) else item)
        return batches

    def training_step(self, dataloader_iter: Iterator) -> torch.Tensor:
        """One optimizer step over a global batch."""
        batches = self._next_batches(dataloader_iter, training=True)
        optimizer: Any = self.optimizers()
        for chunk in self.chunks:
            chunk.zero_grad_buffer()
        optimizer.zero_grad()
        loss = self.run_schedule(batches, forward_only=False)
        optimizer.step()
        self.lr_scheduler.step(increment=1)
        self.train_losses.append(loss.item())
        _, grad_norm, _ = optimizer.optimizer.last_step
        self.log("reduced_train_loss", loss, prog_bar=True, batch_size=1, sync_dist=False)
        self.log("lr", self.lr_scheduler.get_lr(optimizer.optimizer.param_groups[0]), batch_size=1)
        # The step's batch over all ranks (NeMo's MegatronDataSampler logs it too); moves with a ramp-up.
        global_batch = len(batches) * batches[0]["tokens"].shape[0] * parallel_state.get_data_parallel_world_size()
        self.log("global_batch_size", float(global_batch), batch_size=1)
        if grad_norm is not None:
            self.log("grad_norm", float(grad_norm), batch_size=1)
        return loss

    def validation_step(self, dataloader_iter: Iterator) -> torch.Tensor:
        """Loss over one global batch, no gradients."""
        batches = self._next_batches(dataloader_iter, partial=True)
        with torch.no_grad():
            loss = self.run_schedule(batches, forward_only=True)
        self.log("val_loss", loss, prog_bar=True, batch_size=1, sync_dist=False)
        self._val_losses.append(float(loss))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_losses = []

    def on_validation_epoch_end(self) -> None:
        """Logs `val_ppl`: exp of this pass's val_loss (the mean per-token loss over its batches)."""
        if self._val_losses:
            mean = sum(self._val_losses) / len(self._val_losses)
            self.log("val_ppl", math.exp(min(mean, 80.0)), batch_size=1, sync_dist=False)

    def test_step(self, dataloader_iter: Iterator) -> torch.Tensor:
        """Loss over one global batch of the test split, no gradients."""
        batches = self._next_batches(dataloader_iter, partial=True)
        with torch.no_grad():
            loss = self.run_schedule(batches, forward_only=True)
        self.log("test_loss", loss, prog_bar=True, batch_size=1, sync_dist=False)
        return loss

    # ---- checkpoint hooks -----------------------------------------------------------------
    def sharded_state_dict(self, prefix: str = "") -> dict[str, Any]:
        """megatron's sharded model state (dist-checkpointing), one entry per VP chunk."""
        from nemolite.lightning.megatron_checkpoint import model_sharded_state_dict

        return model_sharded_state_dict(list(self.chunks), prefix=prefix)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.lr_scheduler is not None:
            checkpoint["megatron_lr_scheduler"] = self.lr_scheduler.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("megatron_lr_scheduler")
        if state is not None and self.lr_scheduler is not None:
            self.lr_scheduler.load_state_dict(state)
