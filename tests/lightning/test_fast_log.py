"""`self.log` through Lightning's result collection is unchanged by the early return in `_ResultMetric.to`."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.trainer.connectors.logger_connector.result import (
    _ResultCollection,
    _ResultMetric,
)

from nemolite.lightning import fast_log


def _log_steps(values: list[float]) -> tuple[list[float], float]:
    """Logs each value on step (as a training step does) and one epoch mean; returns what Lightning reports."""
    results = _ResultCollection(training=True)
    seen = []
    for v in values:
        results.log("training_step", "loss", torch.tensor(v), on_step=True, on_epoch=False, batch_size=1)
        results.log("training_step", "mean", torch.tensor(v), on_step=False, on_epoch=True, batch_size=2)
        seen.append(float(results.metrics(on_step=True)["log"]["loss"]))
    return seen, float(results.metrics(on_step=False)["log"]["mean"])


def test_logged_values_are_lightnings_own() -> None:
    values = [3.5, 2.25, 1.0, 0.5]
    original = _ResultMetric.to
    try:
        _ResultMetric.to = getattr(original, "__wrapped__", original)
        want = _log_steps(values)
        fast_log.apply()
        assert getattr(_ResultMetric.to, fast_log._PATCHED)
        fast_log.apply()  # idempotent: one wrapper
        assert not getattr(_ResultMetric.to.__wrapped__, fast_log._PATCHED, False)
        assert _log_steps(values) == want == (values, sum(values) / len(values))
    finally:
        _ResultMetric.to = original


def test_to_returns_early_only_when_nothing_moves() -> None:
    calls = []
    upstream = _ResultMetric.to.__wrapped__ if hasattr(_ResultMetric.to, "__wrapped__") else _ResultMetric.to

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((args, kwargs))
        return upstream(self, *args, **kwargs)

    fast = fast_log.fast_to(counting)
    results = _ResultCollection(training=True)
    results.log("training_step", "x", torch.tensor(1.0), on_step=True, on_epoch=False, batch_size=1)
    metric = results["training_step.x"]
    assert fast(metric, torch.device("cpu")) is metric and fast(metric, device="cpu") is metric
    assert not calls
    fast(metric, torch.float64)  # a dtype: upstream's
    fast(metric, "meta")  # another device: upstream's, which moves every tensor it holds
    assert len(calls) == 2 and metric.value.device.type == "meta"
    assert metric._defaults["value"].device.type == "meta"
    # To the CPU with tensors elsewhere: upstream's move must run (and here fails: meta holds no data).
    with pytest.raises(NotImplementedError):
        fast(metric, torch.device("cpu"))
    assert len(calls) == 3
