"""`DDPStrategy`: Lightning's plain data parallelism, for models that are not megatron-core's (ASR).

Light spec; `build()` imports Lightning. One process gets Lightning's single-device strategy, more
get `lightning.pytorch.strategies.DDPStrategy` (gloo on CPU, NCCL on GPU), with the usual
torchrun/Slurm environment detection. Optimization is Lightning's automatic one, so the
trainer's `precision` and `gradient_clip_val` apply (megatron's strategy handles both itself).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from nemolite.errors import UnknownChoiceError

BACKENDS = ("gloo", "nccl")


@dataclass(kw_only=True)
class DDPStrategy:
    """PyTorch DistributedDataParallel under Lightning (NeMo ASR's `strategy: ddp`).

    Attributes:
        process_group_backend: "gloo" or "nccl" (None = nccl with CUDA, else gloo).
        find_unused_parameters: let DDP tolerate parameters without gradients in a step.
        gradient_as_bucket_view: gradients are views into DDP's buckets (saves a copy).
        timeout_minutes: collective timeout.
    """

    process_group_backend: str | None = None
    find_unused_parameters: bool = False
    gradient_as_bucket_view: bool = True
    timeout_minutes: int = 30

    def validate(self, prefix: str = "trainer.strategy") -> None:
        if self.process_group_backend is not None and self.process_group_backend not in BACKENDS:
            raise UnknownChoiceError(f"{prefix}.process_group_backend", self.process_group_backend, BACKENDS)

    def build(self, *, world_size: int, on_gpu: bool) -> Any:
        """Lightning's strategy: "auto" (single device) for one process, else DDP."""
        self.validate()
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        if max(world_size, launched) <= 1:
            return "auto"
        from datetime import timedelta

        from lightning.pytorch.strategies import DDPStrategy as LightningDDP

        return LightningDDP(
            process_group_backend=self.process_group_backend or ("nccl" if on_gpu else "gloo"),
            find_unused_parameters=self.find_unused_parameters,
            gradient_as_bucket_view=self.gradient_as_bucket_view,
            timeout=timedelta(minutes=self.timeout_minutes),
        )
