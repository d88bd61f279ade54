"""Probes megatron-core *without* nemolite's CPU patches; prints which CUDA assumptions still hold.

Run in a fresh interpreter by tests/backends/test_cpu.py (the test process may be patched already).
Each probe is True when upstream still breaks on CPU, i.e. when its patch is still needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch


def fails(fn: Callable[[], Any]) -> bool:
    try:
        fn()
    except Exception:
        return True
    return False


def main() -> None:
    from megatron.core.tensor_parallel import random as rnd
    from megatron.core.transformer import TransformerConfig
    from megatron.core.transformer.moe import moe_utils
    from megatron.core.transformer.torch_norm import WrappedTorchNorm

    sp_config = TransformerConfig(
        num_layers=1, hidden_size=8, num_attention_heads=2, tensor_model_parallel_size=2,
        sequence_parallel=True,
    )
    probes = {
        "cuda_current_device": fails(torch.cuda.current_device),
        "cuda_factory": fails(lambda: torch.zeros(1, device="cuda")),
        "rng_tracker_add": fails(lambda: rnd.CudaRNGStatesTracker().add("probe", 1)),
        "norm_sequence_parallel": fails(lambda: WrappedTorchNorm(sp_config, 8)),
        "te_general_gemm_missing": not hasattr(moe_utils, "te_general_gemm"),
        "moe_split_sizes_stay_tensors": torch.is_tensor(
            moe_utils.maybe_move_tensor_to_cpu(torch.tensor([1, 2]), as_numpy=True)
        ),
    }
    print("PROBES " + json.dumps(probes))


if __name__ == "__main__":
    main()
