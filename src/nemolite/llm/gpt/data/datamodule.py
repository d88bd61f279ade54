"""`GPTDataModule`: the LightningDataModule all GPT data specs build (heavy: torch, lightning).

Contract with the engine: `train_dataloader()` / `val_dataloader()` yield micro-batches for this
data-parallel rank as dicts of `tokens`, `labels`, `position_ids` (int64) and `loss_mask`
(float32), each [micro_batch_size, seq_length], plus `cu_seqlens` (and `cu_seqlens_argmin`,
`max_seqlen`) for packed sequences. `state_dict()` carries `consumed_samples`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from nemolite.errors import ConfigError
from nemolite.llm.gpt.data.sampler import MegatronPretrainingSampler

if TYPE_CHECKING:
    from nemolite.llm.gpt.data.base import DataModuleSpec

_INT_KEYS = ("tokens", "labels", "position_ids")


def data_parallel_rank_size() -> tuple[int, int]:
    """(rank, size) of this process's data-parallel group; (0, 1) without model parallelism."""
    from megatron.core import parallel_state

    if not parallel_state.model_parallel_is_initialized():
        return 0, 1
    return parallel_state.get_data_parallel_rank(), parallel_state.get_data_parallel_world_size()


def collate_gpt(samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stacks samples into a micro-batch with the contract's dtypes; drops other keys."""
    batch = {key: torch.stack([torch.as_tensor(s[key]) for s in samples]).long()
             for key in _INT_KEYS}
    batch["loss_mask"] = torch.stack([torch.as_tensor(s["loss_mask"]) for s in samples]).float()
    if "cu_seqlens" in samples[0]:
        batch["cu_seqlens"] = torch.stack([torch.as_tensor(s["cu_seqlens"]) for s in samples])
        batch["cu_seqlens_argmin"] = torch.stack(
            [torch.as_tensor(s["cu_seqlens_argmin"]) for s in samples])
        batch["max_seqlen"] = torch.stack([torch.as_tensor(s["max_seqlen"]) for s in samples])
    return batch


class GPTDataModule(pl.LightningDataModule):
    """Shared sampling, sizing and resume logic; subclasses implement `build_datasets`.

    Args:
        spec: the validated data spec this module was built from.
    """

    def __init__(self, spec: DataModuleSpec) -> None:
        super().__init__()
        self.spec = spec
        self.tokenizer = spec.build_tokenizer()
        self.dp_rank, self.dp_size = 0, 1
        self.train_ds: Dataset | None = None
        self.val_ds: Dataset | None = None
        self.test_ds: Dataset | None = None
        self.init_consumed_samples = 0
        self._init_global_step: int | None = None
        self.ramp = spec.batch_ramp()
        self._ramp_cache = (0, 0)  # (steps since resume, consumed samples after them)

    # --- to implement -------------------------------------------------------------------------
    def build_datasets(self, num_train: int, num_val: int, num_test: int
                       ) -> tuple[Dataset | None, Dataset | None, Dataset | None]:
        """Builds train/val/test datasets holding at least the given numbers of samples."""
        raise NotImplementedError

    def default_num_samples(self) -> tuple[int | None, int | None, int | None]:
        """Sample counts to use when no trainer says how many steps will run."""
        return None, None, None

    # --- Lightning hooks ----------------------------------------------------------------------
    def setup(self, stage: str = "") -> None:
        """Reads the data-parallel layout and the trainer's step counts, then builds datasets."""
        if self.train_ds is not None or self.val_ds is not None:
            return
        self.dp_rank, self.dp_size = data_parallel_rank_size()
        step = self.spec.micro_batch_size * self.dp_size
        if self.spec.global_batch_size % step:
            raise ConfigError(
                "data.global_batch_size", self.spec.global_batch_size,
                f"is not a multiple of micro_batch_size x data-parallel size = {step}",
                f"use a multiple of {step}, or change data.micro_batch_size or the parallel layout",
            )
        if self.spec.rampup_batch_size is not None:
            from nemolite.llm.gpt.data.rampup import check_divisible

            check_divisible(self.spec.rampup_batch_size, step, "micro_batch_size x data-parallel size")
        self.train_ds, self.val_ds, self.test_ds = self.build_datasets(*self.num_samples())

    def num_samples(self) -> tuple[int, int, int]:
        """Samples needed per split: from the trainer (max_steps x global batch) when attached."""
        train, val, test = self.default_num_samples()
        trainer = self._trainer_or_none()
        gbs = self.spec.global_batch_size
        if trainer is not None and trainer.max_steps and trainer.max_steps > 0:
            train = trainer.max_steps * gbs
            val_batches = _as_int(trainer.limit_val_batches)
            val_interval = _as_int(trainer.val_check_interval) or trainer.max_steps
            if val_batches:
                val = (trainer.max_steps // val_interval + 1) * val_batches * gbs
            test_batches = _as_int(trainer.limit_test_batches)
            if test_batches:
                test = test_batches * gbs
        if train is None:
            raise ConfigError("trainer.max_steps", getattr(trainer, "max_steps", None),
                              "the data module needs the number of training steps to size its "
                              "datasets", "set trainer.max_steps to a positive number")
        return train, val or gbs, test or gbs

    def _trainer_or_none(self) -> pl.Trainer | None:
        try:
            return self.trainer
        except RuntimeError:
            return None

    def _loader(self, dataset: Dataset | None, consumed_samples: int) -> DataLoader:
        if dataset is None:
            # A list is a valid map-style dataset at runtime; torch's stub asks for `Dataset`.
            return DataLoader(cast(Dataset, []))
        sampler = MegatronPretrainingSampler(
            total_samples=len(dataset),  # type: ignore[arg-type]
            consumed_samples=consumed_samples,
            micro_batch_size=self.spec.micro_batch_size,
            dp_rank=self.dp_rank,
            dp_size=self.dp_size,
        )
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=self.spec.num_workers,
            pin_memory=self.spec.pin_memory,
            persistent_workers=self.spec.persistent_workers and self.spec.num_workers > 0,
            collate_fn=collate_gpt,
        )

    def train_dataloader(self) -> DataLoader:
        """Micro-batches for this rank, starting after the samples consumed before a resume."""
        trainer = self._trainer_or_none()
        self._init_global_step = trainer.global_step if trainer is not None else 0
        self._ramp_cache = (0, self.init_consumed_samples)
        return self._loader(self.train_ds, self.init_consumed_samples)

    def val_dataloader(self) -> DataLoader:
        """Micro-batches of the validation split; every validation pass sees the same samples."""
        return self._loader(self.val_ds, 0)

    def test_dataloader(self) -> DataLoader:
        """Micro-batches of the test split."""
        return self._loader(self.test_ds, 0)

    # --- resume -------------------------------------------------------------------------------
    @property
    def consumed_samples(self) -> int:
        """Training samples consumed over all ranks: at resume plus global batches since."""
        trainer = self._trainer_or_none()
        if trainer is None or self._init_global_step is None:
            return self.init_consumed_samples
        steps = trainer.global_step - self._init_global_step
        if self.ramp is None:
            return self.init_consumed_samples + steps * self.spec.global_batch_size
        done, consumed = self._ramp_cache
        if steps < done:
            done, consumed = 0, self.init_consumed_samples
        consumed = self.ramp.consumed_after(consumed, steps - done)
        self._ramp_cache = (steps, consumed)
        return consumed

    @property
    def current_global_batch_size(self) -> int:
        """The global batch of the next training step (follows `rampup_batch_size`)."""
        if self.ramp is None:
            return self.spec.global_batch_size
        return self.ramp.batch_at(self.consumed_samples)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint stores to resume the sample stream exactly."""
        return {"consumed_samples": self.consumed_samples}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores `consumed_samples`; call before `train_dataloader()`."""
        self.init_consumed_samples = int(state_dict["consumed_samples"])
        self._ramp_cache = (0, self.init_consumed_samples)


def _as_int(value: Any) -> int:
    # Lightning accepts floats (fractions of an epoch) for these; megatron-style datasets are
    # sized in batches, so only integer counts size them.
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
