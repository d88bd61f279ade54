"""Single-process CPU training through the whole engine: specs -> Lightning -> megatron-core."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

from nemolite.lightning.optim import (
    CosineAnnealingScheduler,
    MegatronOptimizerModule,
    OptimizerConfig,
)
from nemolite.lightning.precision import MegatronMixedPrecision
from nemolite.lightning.strategy import MegatronStrategy
from nemolite.lightning.trainer import Trainer
from nemolite.llm.gpt.data.mock import MockDataModule
from nemolite.llm.gpt.model import GPTModel, LlamaTinyConfig
from nemolite.llm.training import build_run

SEQ = 64


def small_llama(**optim_fields: Any) -> GPTModel:
    """LlamaTinyConfig's architecture at a quarter of its width, so a test step takes milliseconds."""
    config = LlamaTinyConfig(num_layers=2, hidden_size=64, ffn_hidden_size=176, num_attention_heads=4,
                             num_query_groups=2, seq_length=SEQ)
    optim = MegatronOptimizerModule(
        OptimizerConfig(**({"lr": 1e-2} | optim_fields)),
        CosineAnnealingScheduler(warmup_steps=2, min_lr=1e-3),
    )
    return GPTModel(config, optim=optim)


def mock_data(global_batch_size: int = 4) -> MockDataModule:
    return MockDataModule(seq_length=SEQ, micro_batch_size=2, global_batch_size=global_batch_size)


def english_data(global_batch_size: int = 4) -> Any:
    """The bundled English corpus: learnable, where mock data's uniform tokens are not (with the
    padded vocabulary masked, an untrained model already predicts them as well as anything can)."""
    from nemolite.llm.gpt.data.corpus import BundledCorpusDataModule

    return BundledCorpusDataModule(seq_length=SEQ, micro_batch_size=2, global_batch_size=global_batch_size)


def cpu_trainer(max_steps: int, **fields: Any) -> Trainer:
    defaults: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_steps": max_steps,
        "strategy": MegatronStrategy(),
        "enable_progress_bar": False,
        "enable_checkpointing": False,
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
    }
    return Trainer(**(defaults | fields))


def _fit(model, data, trainer):
    pl_trainer, dm, module = build_run(model=model, data=data, trainer=trainer)
    pl_trainer.fit(module, datamodule=dm)
    return pl_trainer, module


def test_llama_trains_and_loss_decreases() -> None:
    pl_trainer, module = _fit(small_llama(), mock_data(), cpu_trainer(12))
    losses = module.train_losses
    assert pl_trainer.global_step == 12 and len(losses) == 12
    # Uniform random byte tokens: nothing to learn, and the padded vocabulary rows (264 -> 384)
    # take no probability (megatron_config.mask_padded_vocab), so the loss starts at log(264).
    assert abs(losses[0] - math.log(264)) < 0.05, losses
    assert len(set(losses)) > 1, losses  # the steps changed the weights
    assert all(torch.isfinite(torch.tensor(losses)))


def test_micro_batches_accumulate_into_one_step() -> None:
    """global 4 / micro 2 = 2 micro-batches per step: the same samples as one micro-batch of 4."""
    _, accumulated = _fit(small_llama(), mock_data(global_batch_size=4), cpu_trainer(3))
    data = mock_data(global_batch_size=4)
    data.micro_batch_size = 4
    _, single = _fit(small_llama(), data, cpu_trainer(3))
    assert accumulated.train_losses == pytest.approx(single.train_losses, rel=1e-5)


def sft_data(tmp_path: Path, micro_batch_size: int = 2) -> Any:
    """Answer-only loss masks of varying length: micro-batches hold different token counts."""
    from nemolite.llm.gpt.data import FineTuningDataModule

    records = [{"input": f"Q{i}: " + "why " * (i % 4), "output": "yes" + "!" * (3 * i % 13)}
               for i in range(16)]
    (tmp_path / "training.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return FineTuningDataModule(str(tmp_path), seq_length=SEQ, micro_batch_size=micro_batch_size,
                                global_batch_size=4, seed=5)


class FirstStepReference(pl.Callback):
    """Recomputes step 1 with plain autograd: the objective and its gradient norm at the init weights.

    The engine's first logged loss and grad norm (megatron's, before clipping) must be these: the
    number it logs is the one it takes the gradient of.
    """

    def __init__(self, module: Any, per_token: bool) -> None:
        self.per_token, self.batches = per_token, []
        self.loss = self.grad_norm = self.logged_grad_norm = None
        record = module._next_batches

        def recording(*args: Any, **kwargs: Any) -> Any:
            batches = record(*args, **kwargs)
            if not self.batches:
                self.batches = batches
            return batches

        module._next_batches = recording

    def on_train_start(self, trainer: pl.Trainer, module: Any) -> None:
        from nemolite.lightning.megatron_checkpoint import unwrap

        self.model = unwrap(module.chunks[0])
        self.params = {n: p.detach().clone().requires_grad_() for n, p in self.model.named_parameters()}

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, *args: Any) -> None:
        if self.loss is not None:
            return
        self.logged_grad_norm = float(trainer.callback_metrics["grad_norm"])
        sums, counts = [], []
        for b in self.batches:  # the engine's own micro-batches of step 1
            losses = torch.func.functional_call(
                self.model, self.params, (b["tokens"], b["position_ids"], None), {"labels": b["labels"]})
            sums.append((losses.float() * b["loss_mask"]).sum())
            counts.append(b["loss_mask"].sum())
        if self.per_token:
            objective = sum(sums) / sum(counts)
        else:  # NeMo's: the mean of each micro-batch's mean token loss
            objective = sum(s / c for s, c in zip(sums, counts)) / len(sums)
        grads = torch.autograd.grad(objective, list(self.params.values()))
        self.loss = float(objective.detach())
        self.grad_norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))


def _sft_config(per_token: bool) -> GPTModel:
    model = small_llama(clip_grad=1e9)  # no clipping: the grad norm megatron logs is the raw one
    model.config.calculate_per_token_loss = per_token
    return model


@pytest.mark.parametrize("per_token", [False, True], ids=["nemo_default", "per_token"])
def test_logged_loss_is_what_the_gradient_is_taken_of(tmp_path: Path, per_token: bool) -> None:
    pl_trainer, dm, module = build_run(model=_sft_config(per_token), data=sft_data(tmp_path),
                                       trainer=cpu_trainer(1))
    ref = FirstStepReference(module, per_token)
    pl_trainer.callbacks.append(ref)
    pl_trainer.fit(module, datamodule=dm)
    counts = [int(b["loss_mask"].sum()) for b in ref.batches]
    assert len(counts) == 2 and counts[0] != counts[1], counts  # variable masks, or this proves nothing
    # fp32 throughout; the engine sums in another order (megatron's buffers): 1e-5 relative.
    assert module.train_losses[0] == pytest.approx(ref.loss, rel=1e-5)
    assert ref.logged_grad_norm == pytest.approx(ref.grad_norm, rel=1e-4)


def test_per_token_loss_does_not_depend_on_micro_batching(tmp_path: Path) -> None:
    """With per-token loss, 2 micro-batches of 2 train exactly as 1 of 4 under answer-only masks."""
    runs = []
    for mbs in (2, 4):
        _, module = _fit(_sft_config(per_token=True), sft_data(tmp_path, mbs), cpu_trainer(4))
        runs.append(module.train_losses)
    assert runs[0] == pytest.approx(runs[1], rel=1e-5)
    # The two means differ on these masks by far more than that (~1e-2): the test can tell.
    _, default = _fit(_sft_config(per_token=False), sft_data(tmp_path, 2), cpu_trainer(4))
    assert abs(default.train_losses[-1] - runs[0][-1]) > 1e-3 * runs[0][-1]


def test_bf16_mixed_trains_close_to_fp32() -> None:
    _, fp32 = _fit(small_llama(), english_data(), cpu_trainer(6))
    _, bf16 = _fit(small_llama(), english_data(), cpu_trainer(6, plugins=MegatronMixedPrecision("bf16-mixed")))
    chunk = bf16.chunks[0]
    assert any(p.dtype == torch.bfloat16 for p in chunk.parameters())
    # It trains: the same fall as fp32 (~0.22 in 6 steps; a run whose updates are lost stays flat).
    assert bf16.train_losses[-1] < bf16.train_losses[0] - 0.15, bf16.train_losses
    # Observed on English text: at most 1.0e-3 relative over 6 steps (5e-5 on uniform mock tokens,
    # which no longer train). bf16 rounds each weight and activation to ~3 significant digits, but
    # the loss averages 256 tokens in fp32 (megatron's Float16Module hands back fp32 logits) and
    # fp32 main params keep every update exact; 3e-3 leaves 3x headroom, far below the fall of 0.15.
    assert bf16.train_losses == pytest.approx(fp32.train_losses, rel=3e-3)


def test_run_training_fits_and_validates(tmp_path: Path) -> None:
    trainer = cpu_trainer(2, default_root_dir=str(tmp_path), limit_val_batches=1, val_check_interval=2)
    run_dir = trainer.fit(small_llama(), mock_data())  # the notebook helper, over run_training
    assert run_dir is not None and Path(run_dir).is_relative_to(tmp_path)

    def evaluate(steps: int) -> tuple[Any, float, float]:
        pl_trainer, dm, module = build_run(model=small_llama(), data=english_data(), trainer=cpu_trainer(
            max(steps, 1), default_root_dir=str(tmp_path), limit_val_batches=2, limit_test_batches=1))
        if steps:
            pl_trainer.fit(module, datamodule=dm)
        metrics = pl_trainer.validate(module, datamodule=dm)[0]
        val = metrics["val_loss"]
        # Perplexity is exp of the pass's mean per-token loss (the batches hold equal token counts).
        assert metrics["val_ppl"] == pytest.approx(math.exp(val), rel=1e-5), metrics
        return pl_trainer, val, pl_trainer.test(module, datamodule=dm)[0]["test_loss"]

    untrained, val0, test0 = evaluate(0)
    # limit_val_batches counts global batches (2 micro-batches each here), as in NeMo.
    assert untrained.limit_val_batches == 4
    # 6 steps on English text move the model from uniform over the 264 byte ids toward English's
    # byte frequencies: validation and test, on held-out documents, must see it too.
    _, val6, test6 = evaluate(6)
    assert val6 < val0 - 0.1 and test6 < test0 - 0.1, (val0, val6, test0, test6)
