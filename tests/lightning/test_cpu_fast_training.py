"""CPU training fast paths (weight grads accumulated in the matmul, fused Adam) change only rounding.

A real megatron model trained through `build_run` for a few steps with both fast paths ends with the
parameters of the same run without them (the per-tensor AdamW loop and DDP's per-parameter
`main_grad.add_`), within float32 rounding.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nemolite import lightning as nl

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU fast paths apply without CUDA only")


def _train(tmp_path: Path, *, tied: bool = False) -> tuple[dict[str, torch.Tensor], object]:
    from nemolite.llm.gpt.data.mock import MockDataModule
    from nemolite.llm.gpt.model import GPTModel, LlamaConfig
    from nemolite.llm.training import build_run

    config = LlamaConfig(num_layers=2, hidden_size=32, ffn_hidden_size=64, num_attention_heads=4,
                         num_query_groups=2, seq_length=16, share_embeddings_and_output_weights=tied)
    trainer = nl.Trainer(accelerator="cpu", devices=1, max_steps=3, logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0,
                         default_root_dir=str(tmp_path))
    data = MockDataModule(seq_length=16, micro_batch_size=2, global_batch_size=4)  # 2 micro-batches a step
    pl_trainer, dm, module = build_run(model=GPTModel(config), data=data, trainer=trainer)
    pl_trainer.fit(module, datamodule=dm)
    params = {name: p.detach().clone() for name, p in module.chunks.named_parameters()}
    return params, pl_trainer.strategy.optimizers[0]


def _inner_torch_optimizers(optimizer: object) -> list[torch.optim.Optimizer]:
    from nemolite.lightning.megatron_optim import _torch_optimizers

    return _torch_optimizers(getattr(optimizer, "mcore_optimizer", optimizer))


@pytest.mark.parametrize("tied", [False, True])
def test_fast_paths_train_as_the_plain_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tied: bool) -> None:
    from nemolite.backends import cpu_speed
    from nemolite.lightning import megatron_optim

    calls = []
    real = cpu_speed._LinearIntoMainGrad.backward

    def counted(ctx, grad_output):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(ctx, grad_output)

    from nemolite.llm.gpt.model import megatron_config

    logits_calls = []
    real_logits = megatron_config._PaddedLogits.backward

    def counted_logits(ctx, grad):  # type: ignore[no-untyped-def]
        logits_calls.append(ctx.into_main_grad)
        return real_logits(ctx, grad)

    monkeypatch.setattr(cpu_speed._LinearIntoMainGrad, "backward", staticmethod(counted))
    monkeypatch.setattr(megatron_config._PaddedLogits, "backward", staticmethod(counted_logits))
    fast, optimizer = _train(tmp_path / "fast", tied=tied)
    inner = _inner_torch_optimizers(optimizer)
    assert inner and all(g["fused"] and not g["foreach"] for o in inner for g in o.param_groups)
    # 2 layers x 4 linears x 2 micro-batches x 3 steps; the output layer (padded vocabulary) takes
    # its weight gradient into main_grad too unless tied to the embedding, which also adds into it
    assert len(calls) == 2 * 4 * 2 * 3
    assert logits_calls == [not tied] * 2 * 3
    monkeypatch.undo()

    monkeypatch.setattr(cpu_speed, "accumulates_into_main_grad", lambda input, weight: False)
    monkeypatch.setattr(megatron_optim, "fuse_cpu_adam", lambda optimizer: 0)
    plain, optimizer = _train(tmp_path / "plain", tied=tied)
    assert not any(g["fused"] for o in _inner_torch_optimizers(optimizer) for g in o.param_groups)
    assert fast.keys() == plain.keys()
    moved = 0
    for name, p in fast.items():
        torch.testing.assert_close(p, plain[name], rtol=1e-5, atol=1e-6, msg=name)
        moved += 1
    assert moved > 10


def test_fused_flag_survives_an_old_checkpoint(tmp_path: Path) -> None:
    """A checkpoint saved by the per-tensor loop (fused=False in its groups) resumes on the fused kernel."""
    from nemolite.lightning.megatron_optim import fuse_cpu_adam

    p = torch.nn.Parameter(torch.randn(8))

    class Wrapper:  # megatron's FP32Optimizer keeps the torch optimizer as `.optimizer`
        optimizer = torch.optim.AdamW([p])

    assert fuse_cpu_adam(Wrapper()) == 1
    state = Wrapper.optimizer.state_dict()
    for group in state["param_groups"]:
        group["fused"], group["foreach"] = False, None
    Wrapper.optimizer.load_state_dict(state)
    assert Wrapper.optimizer.param_groups[0]["fused"] is True
    assert fuse_cpu_adam(type("OnGpu", (), {"optimizer": object()})()) == 0


def test_nan_gradients_still_stop_the_step_with_one_data_parallel_rank(tmp_path: Path) -> None:
    """In a one-process run the NaN/Inf check rides on the optimizer's gradient norm (fold_nan_check)."""
    import lightning.pytorch as pl

    from nemolite.lightning import megatron_optim
    from nemolite.llm.gpt.data.mock import MockDataModule
    from nemolite.llm.gpt.model import GPTModel, LlamaConfig
    from nemolite.llm.training import build_run

    folded = []
    real_fold = megatron_optim.fold_nan_check
    saved = {}

    class Poison(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):  # type: ignore[no-untyped-def]
            if trainer.global_step == 1:  # a clean first step, then a NaN weight: NaN gradients
                weight = module.chunks[0].module.decoder.final_layernorm.weight
                saved.update({n: p.detach().clone() for n, p in module.chunks.named_parameters()})
                with torch.no_grad():
                    weight[0] = float("nan")
                saved["poisoned"] = weight.detach().clone()

    def fold(optimizer, chunks):  # type: ignore[no-untyped-def]
        folded.append(real_fold(optimizer, chunks))
        assert not any(c.ddp_config.check_for_nan_in_grad for c in chunks)  # DDP's own pass is off
        return folded[-1]

    megatron_optim.fold_nan_check, original = fold, megatron_optim.fold_nan_check
    try:
        config = LlamaConfig(num_layers=1, hidden_size=32, ffn_hidden_size=64, num_attention_heads=4,
                             num_query_groups=2, seq_length=16)
        trainer = nl.Trainer(accelerator="cpu", devices=1, max_steps=3, logger=False, enable_progress_bar=False,
                             enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0,
                             default_root_dir=str(tmp_path), callbacks=[Poison()])
        data = MockDataModule(seq_length=16, micro_batch_size=2, global_batch_size=2)
        pl_trainer, dm, module = build_run(model=GPTModel(config), data=data, trainer=trainer)
        with pytest.raises(FloatingPointError, match="NaN in the gradients"):
            pl_trainer.fit(module, datamodule=dm)
    finally:
        megatron_optim.fold_nan_check = original
    assert folded == [True]
    after = dict(module.chunks.named_parameters())
    for name, before in saved.items():  # the step stopped before the optimizer touched anything
        if name != "poisoned":
            want = saved["poisoned"] if name.endswith("final_layernorm.weight") else before
            torch.testing.assert_close(after[name].detach(), want, rtol=0, atol=0, equal_nan=True, msg=name)
