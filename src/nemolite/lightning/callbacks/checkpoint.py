"""The Lightning callback behind `nl.ModelCheckpoint`: schedule, atomic publication, top-k.

Saving goes through `trainer.save_checkpoint` (the strategy writes `torch_dist` for megatron, a
single file otherwise) into `<name>.tmp`, then global rank 0 publishes it (see `exp_ckpt_dir`).
With async save the strategy returns before the files are written; publication then waits until
`finalize_async` confirms every rank finished, at a later step boundary or at the end of training.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Checkpoint

from nemolite.lightning import exp_ckpt_dir as ckdir
from nemolite.lightning.callbacks._state import consumed_samples
from nemolite.lightning.checkpoint import ModelCheckpoint

log = logging.getLogger("nemolite.checkpoint")
FILE_NAME = ckdir.SINGLE_FILE


def writes_directory(strategy: Any) -> bool:
    """Whether the strategy saves a sharded directory (megatron `torch_dist`) rather than one file."""
    return bool(getattr(strategy, "saves_checkpoint_directory", "Megatron" in type(strategy).__name__))


def trainer_ckpt_path(ckpt_dir: Path) -> Path:
    """What to pass Lightning as `ckpt_path` for a published checkpoint directory."""
    return ckpt_dir / FILE_NAME if (ckpt_dir / FILE_NAME).is_file() else ckpt_dir


class CheckpointCallback(Checkpoint):
    """Saves on a step/time/epoch schedule; publishes each checkpoint only once it is complete."""

    def __init__(self, spec: ModelCheckpoint, run_dir: Path, model_name: str) -> None:
        self.spec = spec
        self.model_name = model_name
        self.dirpath = Path(spec.dirpath) if spec.dirpath else Path(run_dir) / ckdir.CKPT_SUBDIR
        self.last_saved_step = -1
        self._last_save_time = time.monotonic()
        self._pending: tuple[Path, Path, dict[str, Any]] | None = None
        self.saved: list[Path] = []  # published this session, in order
        self.last_blocked_s = 0.0  # how long the last save held up the step loop

    # -- Lightning hooks ------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if writes_directory(trainer.strategy):
            from nemolite.lightning.resil_writer_queue import install_writer_queue

            install_writer_queue()  # no orphaned writer processes after a crash
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
            for stale in ckdir.remove_stale_tmp(self.dirpath):
                log.info("removed unfinished checkpoint %s", stale)
        self._last_save_time = time.monotonic()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self.finalize_async(trainer, blocking=False)
        if self._due(trainer):
            self.save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        n = self.spec.every_n_epochs
        if self.spec.save_on_train_epoch_end or (n and (trainer.current_epoch + 1) % n == 0):
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        end = trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps
        if self.spec.save_last or self.spec.save_top_k != 0:
            self.save(trainer, end=end, weights_only=not self.spec.save_optim_on_train_end)
        self.finalize_async(trainer, blocking=True)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exc: BaseException) -> None:
        # A checkpoint whose files are complete on every rank may still be published; a crash
        # inside the save leaves its `.tmp` behind, which discovery ignores.
        try:
            self.finalize_async(trainer, blocking=True)
        except Exception:  # noqa: BLE001 - the original exception matters more
            log.warning("pending async checkpoint could not be finalized after %r", exc)

    def state_dict(self) -> dict[str, Any]:
        # Lightning's checkpoint carries no RNG state; one process's is enough for exact resume.
        # Multi-rank strategies must save per-rank RNG state themselves (as sharded objects).
        return {"last_saved_step": self.last_saved_step, "dirpath": str(self.dirpath),
                "rng": _rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_saved_step = int(state_dict.get("last_saved_step", -1))
        if state_dict.get("rng") is not None and _world_size() == 1:
            _set_rng_state(state_dict["rng"])

    # -- saving ---------------------------------------------------------------------------------
    def _due(self, trainer: pl.Trainer) -> bool:
        step = trainer.global_step
        if step == self.last_saved_step or step == 0:
            return False
        n = self.spec.every_n_train_steps
        if n and step % n == 0:
            return True
        if self.spec.train_time_interval is None:
            return False
        # Clocks differ between ranks; rank 0 decides and every rank follows.
        late = time.monotonic() - self._last_save_time >= self.spec.train_time_interval
        return bool(trainer.strategy.broadcast(late, src=0))

    def save(self, trainer: pl.Trainer, end: bool = False, weights_only: bool | None = None) -> Path | None:
        """Saves now (all ranks call this together); returns the final path, or None if already saved."""
        if trainer.global_step == self.last_saved_step:
            if end:
                self._mark_end(trainer)
            return None
        self.finalize_async(trainer, blocking=True)  # one save in flight at a time
        meta = self._meta(trainer, end)
        name = self.spec.format_name(self.model_name, {**meta["metrics"], **_counters(meta)})
        final = self.dirpath / (name + (ckdir.LAST_SUFFIX if self.spec.save_last else ""))
        tmp = ckdir.tmp_path(final)
        if trainer.is_global_zero:
            shutil.rmtree(tmp, ignore_errors=True)
            self.dirpath.mkdir(parents=True, exist_ok=True)
        trainer.strategy.barrier("nemolite_ckpt_prepare")
        target = tmp if writes_directory(trainer.strategy) else tmp / FILE_NAME
        if trainer.is_global_zero and target != tmp:
            tmp.mkdir(parents=True, exist_ok=True)
        weights = self.spec.save_weights_only if weights_only is None else weights_only
        # Set before saving: the checkpoint carries this callback's state (see `state_dict`).
        self.last_saved_step = trainer.global_step
        self._last_save_time = time.monotonic()
        started = time.perf_counter()
        if self._is_async(trainer):
            self._pending = (tmp, final, meta)
            # Runs on every rank once all ranks wrote their shards (megatron's AsyncCallsQueue).
            options = {"async_save": True, "finalize_fns": [lambda: self._publish_async(trainer)]}
            trainer.save_checkpoint(target, weights_only=weights, storage_options=options)
            # `meta` is the dict `_pending` holds: published with the step loop's blocked time.
            self.last_blocked_s = meta["blocked_s"] = time.perf_counter() - started
            return final
        trainer.save_checkpoint(target, weights_only=weights)
        self.last_blocked_s = meta["blocked_s"] = time.perf_counter() - started
        self._publish(trainer, tmp, final, meta)
        return final

    def _is_async(self, trainer: pl.Trainer) -> bool:
        # Only strategies that take `finalize_fns` (megatron_strategy.py) can tell us when an
        # async save is complete; with others, saving stays synchronous.
        strategy = trainer.strategy
        wanted = self.spec.async_save or bool(getattr(getattr(strategy, "spec", None), "ckpt_async_save", False))
        return wanted and callable(getattr(strategy, "finalize_async_saves", None))

    def finalize_async(self, trainer: pl.Trainer, blocking: bool) -> bool:
        """Publishes the in-flight async checkpoint if every rank finished writing it (collective)."""
        if self._pending is None:
            return True
        trainer.strategy.finalize_async_saves(blocking=blocking)  # type: ignore[attr-defined]
        return self._pending is None

    def _publish_async(self, trainer: pl.Trainer) -> None:
        if self._pending is None:
            return
        tmp, final, meta = self._pending
        self._pending = None
        if trainer.is_global_zero:
            ckdir.publish(tmp, final, meta)
            self._prune(final)
            if self.spec.verbose:
                log.info("saved checkpoint %s (async)", final)
        self.saved.append(final)

    def _publish(self, trainer: pl.Trainer, tmp: Path, final: Path, meta: dict[str, Any]) -> None:
        if trainer.is_global_zero:
            ckdir.publish(tmp, final, meta)
            self._prune(final)
            if self.spec.verbose:
                log.info("saved checkpoint %s", final)
        self.saved.append(final)
        trainer.strategy.barrier("nemolite_ckpt_publish")

    def _mark_end(self, trainer: pl.Trainer) -> None:
        self.finalize_async(trainer, blocking=True)
        if trainer.is_global_zero and self.saved:
            ckdir.update_marker(self.saved[-1], end=True)
        trainer.strategy.barrier("nemolite_ckpt_end")

    def _meta(self, trainer: pl.Trainer, end: bool) -> dict[str, Any]:
        metrics = {}
        for key, value in trainer.callback_metrics.items():
            try:
                metrics[key] = float(value)
            except (TypeError, ValueError):
                continue
        score = metrics.get(self.spec.monitor)
        module: Any = trainer.lightning_module
        model_config = getattr(module, "config", None)
        # The vocabulary the model was built with (from the tokenizer when the config leaves it
        # unset, as llama_tiny does): export needs it to rebuild the model.
        vocab = int(module.true_vocab_size()) if hasattr(module, "true_vocab_size") else None
        return {
            "step": trainer.global_step, "epoch": trainer.current_epoch,
            "consumed_samples": consumed_samples(trainer), "end": end, "time": time.time(),
            "metrics": metrics, "monitor": self.spec.monitor,
            "score": score if score is not None and math.isfinite(score) else None,
            "world_size": trainer.world_size, "model_config": _simple_fields(model_config), "vocab_size": vocab,
            # What export needs to rebuild the model (see nemolite.lightning.model_store).
            "config_class": f"{type(model_config).__module__}:{type(model_config).__qualname__}"
            if model_config is not None else None,
            "context": getattr(trainer, "nemolite_model_context", None),
            "peft": getattr(trainer, "nemolite_peft", None),
            "format": "torch_dist" if writes_directory(trainer.strategy) else "torch",
        }

    # -- top-k ----------------------------------------------------------------------------------
    def _prune(self, newest: Path) -> None:
        """Keeps the best `save_top_k` by `monitor` plus the newest (`-last`); global rank 0 only."""
        for info in ckdir.list_complete(self.dirpath):
            if info.path != newest and info.path.name.endswith(ckdir.LAST_SUFFIX):
                plain = info.path.with_name(info.path.name[: -len(ckdir.LAST_SUFFIX)])
                if plain.exists():
                    shutil.rmtree(info.path, ignore_errors=True)
                else:
                    info.path.rename(plain)
        k = self.spec.save_top_k
        if k < 0:
            return
        sign = 1.0 if self.spec.mode == "min" else -1.0
        ranked = sorted(ckdir.list_complete(self.dirpath),
                        key=lambda c: (c.meta.get("score") is None, sign * (c.meta.get("score") or 0.0), -c.step))
        for info in ranked[k:]:
            if info.path != newest or not self.spec.save_last:
                shutil.rmtree(info.path, ignore_errors=True)
                if self.spec.verbose:
                    log.info("removed checkpoint %s (not in the top %d by %s)", info.path, k, self.spec.monitor)


def _counters(meta: dict[str, Any]) -> dict[str, Any]:
    return {"step": meta["step"], "epoch": meta["epoch"], "consumed_samples": meta["consumed_samples"]}


def _simple_fields(config: Any) -> dict[str, Any]:
    if config is None or not dataclasses.is_dataclass(config):
        return {}
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name, None)
        if isinstance(value, (int, float, str, bool)) or value is None:
            out[f.name] = value
    return out


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _rng_state() -> dict[str, Any]:
    import random

    import numpy as np
    import torch

    # Plain types and tensors only: Lightning loads checkpoints with torch.load(weights_only=True).
    name, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    keys_t = torch.from_numpy(np.asarray(keys).astype(np.int64))
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "numpy": [name, keys_t, int(pos), int(has_gauss), float(cached)]}


def _set_rng_state(state: dict[str, Any]) -> None:
    import random

    import numpy as np
    import torch

    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
