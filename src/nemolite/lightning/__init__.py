"""Lightning integration: `from nemolite import lightning as nl`.

Everything here is a light spec (a dataclass) with NeMo 2.0's names and fields; the Lightning
trainer, the Megatron strategy and the callbacks they stand for are built inside the job.
"""

from nemolite.lightning.callbacks import (
    GarbageCollectionCallback,
    MemoryProfileCallback,
    PreemptionCallback,
    ProgressBar,
    StragglerDetection,
)
from nemolite.lightning.checkpoint import ModelCheckpoint
from nemolite.lightning.ddp_strategy import DDPStrategy
from nemolite.lightning.fault_tolerance import FaultTolerance
from nemolite.lightning.logger import NeMoLogger, TensorBoardLogger, WandbLogger
from nemolite.lightning.optim import (
    CosineAnnealingScheduler,
    MegatronOptimizerModule,
    OptimizerConfig,
    WarmupStableDecayScheduler,
)
from nemolite.lightning.precision import MegatronMixedPrecision, bf16_mixed, fp16_mixed
from nemolite.lightning.resume import AutoResume, RestoreConfig
from nemolite.lightning.strategy import DistributedDataParallelConfig, MegatronStrategy
from nemolite.lightning.trainer import Trainer

__all__ = [
    "AutoResume",
    "CosineAnnealingScheduler",
    "DDPStrategy",
    "DistributedDataParallelConfig",
    "FaultTolerance",
    "GarbageCollectionCallback",
    "MegatronMixedPrecision",
    "MegatronOptimizerModule",
    "MegatronStrategy",
    "MemoryProfileCallback",
    "ModelCheckpoint",
    "NeMoLogger",
    "OptimizerConfig",
    "PreemptionCallback",
    "ProgressBar",
    "RestoreConfig",
    "StragglerDetection",
    "TensorBoardLogger",
    "Trainer",
    "WandbLogger",
    "WarmupStableDecayScheduler",
    "bf16_mixed",
    "fp16_mixed",
]
