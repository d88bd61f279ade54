"""DoRA (`llm.peft.DoRA`) fine-tuning of a real (tiny) megatron-core GPT in one CPU process.

One run (module fixture) of the LoRA harness's 2-layer Llama with `DoRA(dim=4, alpha=8)`, probed
before the transform, after it and at the end, as `test_lora_training.py` does for LoRA.
The run is marked slow (~15-40 s on 2 cores); the spec test is not.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from nemolite.errors import ConfigError
from nemolite.llm.peft import DoRA, LoRA

STEPS = 8


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spec_is_nemos_dora_and_validates_like_lora() -> None:
    # NeMo 2.0's DoRA dataclass (nemo/collections/llm/peft/dora.py): every linear, 32, 64, 0.0.
    assert (DoRA().target_modules, DoRA().dim, DoRA().alpha, DoRA().dropout) == (
        ("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"), 32, 64, 0.0)
    assert (DoRA().method, LoRA().method) == ("dora", "lora")
    with pytest.raises(ConfigError, match=r"peft\.target_modules.*linear_qkv") as err:
        DoRA(target_modules=("linear_qvk",))
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import torch

    h = _load("lora_harness")
    probe = _load("test_lora_training")._probe_cls(h)()
    module = h.run("tp1", tmp_path_factory.mktemp("dora"), steps=STEPS, callbacks=[probe], peft=h.DORA)
    yield h, probe, module
    from megatron.core import parallel_state

    parallel_state.destroy_model_parallel()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_output_equals_base_at_init(run: Any) -> None:
    _, probe, _ = run
    assert probe.base_logits.std() > 0
    assert probe.base_logits.equal(probe.lora_logits)  # bit-exact: B = 0 and m = ||W||


@pytest.mark.slow
def test_only_adapters_and_magnitudes_train(run: Any) -> None:
    _, probe, _ = run
    adapters = {n for n in probe.start_params if "_adapter." in n}
    assert len(adapters) == 2 * 4 * 3  # 2 layers x 4 linears x (A, B, magnitude)
    assert sum(n.endswith("weight_magnitude") for n in adapters) == 8
    assert probe.trainable == probe.optimized == probe.with_main_grad == adapters
    changed = {n for n, p in probe.end_params.items() if not p.equal(probe.start_params[n])}
    assert changed == adapters  # the magnitudes moved too; the base did not
    for name, param in probe.base_params.items():
        assert probe.end_params[name].equal(param), name


@pytest.mark.slow
def test_loss_decreases(run: Any) -> None:
    _, _, module = run
    losses = module.train_losses
    assert len(losses) == STEPS
    assert losses[-1] < losses[0] - 0.3, losses


@pytest.mark.slow
def test_trained_layer_is_magnitude_times_unit_direction(run: Any) -> None:
    """The hook's output equals the model with DoRA's weight `m (W + sBA) / ||W + sBA||` merged in."""
    import torch

    from nemolite.lightning.megatron_checkpoint import unwrap
    from nemolite.llm.peft.merge import merge_adapters

    h, _, module = run
    model = unwrap(module.chunks[0])
    batch = h.sample(*h.PAIRS[1])
    with torch.no_grad():
        hooked = model(batch["tokens"][None], batch["position_ids"][None], None).clone()
        weights = {n: p.clone() for n, p in model.named_parameters() if "_adapter." not in n}
        assert merge_adapters(model) == 8
        merged = model(batch["tokens"][None], batch["position_ids"][None], None)
    assert any(not p.equal(weights[n]) for n, p in model.named_parameters() if n in weights)
    torch.testing.assert_close(merged, hooked, rtol=1e-5, atol=1e-5)
