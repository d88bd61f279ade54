"""A tiny plain-torch Lightning run wired through NeMoLogger/AutoResume, for checkpoint tests.

Run as a script it trains (the same command resumes); imported, it offers the pieces. It exercises
the run-directory, checkpoint and resume machinery without the megatron engine. Fault injection via
environment: TOY_KILL_AT="5,10" SIGKILLs the process at those steps (once each, remembered in the
run directory), TOY_KILL_IN_SAVE_AT=6 SIGKILLs it while the checkpoint of step 6 is being written.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from nemolite.lightning.checkpoint import ModelCheckpoint
from nemolite.lightning.logger import NeMoLogger, TensorBoardLogger
from nemolite.lightning.resume import AutoResume

GBS = 4


class ToyData(Dataset):
    """Deterministic samples: sample i depends only on i."""

    def __len__(self) -> int:
        return 10_000

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        x = torch.randn(8, generator=g)
        return x, x.sum(dim=0, keepdim=True) * 0.5


class ToyDataModule(pl.LightningDataModule):
    """Resumes its position from the number of consumed samples (megatron-sampler style)."""

    global_batch_size = GBS

    def __init__(self) -> None:
        super().__init__()
        self.start = 0

    def state_dict(self) -> dict:
        return {"consumed_samples": self.trainer.global_step * GBS}

    def load_state_dict(self, state: dict) -> None:
        self.start = state["consumed_samples"]

    def val_dataloader(self) -> DataLoader:
        return DataLoader(torch.utils.data.Subset(ToyData(), range(9000, 9000 + GBS)), batch_size=GBS)

    def train_dataloader(self) -> DataLoader:
        indices = list(range(self.start, len(ToyData())))
        return DataLoader(torch.utils.data.Subset(ToyData(), indices), batch_size=GBS, shuffle=False)


class ToyModule(pl.LightningModule):
    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(8, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("reduced_train_loss", loss, on_step=True, prog_bar=True, batch_size=GBS)
        return loss

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y), batch_size=GBS)

    def configure_optimizers(self):  # noqa: ANN201
        opt = torch.optim.AdamW(self.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.7)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class FaultInjector(pl.Callback):
    """SIGKILLs this process at chosen steps, each once per run directory."""

    def __init__(self, run_dir: Path, steps: list[int], sig: int = signal.SIGKILL) -> None:
        self.run_dir, self.steps, self.sig = run_dir, steps, sig

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        step = trainer.global_step
        flag = self.run_dir / f"signal_{self.sig}_at_{step}"
        if step in self.steps and not flag.exists():
            flag.touch()
            os.kill(os.getpid(), self.sig)


def kill_inside_save(trainer: pl.Trainer, run_dir: Path, step: int) -> None:
    """Makes the strategy die after writing part of the checkpoint of `step`."""
    original = trainer.strategy.save_checkpoint

    def save(checkpoint, filepath, storage_options=None):  # noqa: ANN001, ANN202
        flag = run_dir / f"killed_in_save_{step}"
        if trainer.global_step == step and not flag.exists():
            flag.touch()
            Path(filepath).write_bytes(b"half a checkpoint")
            os.kill(os.getpid(), signal.SIGKILL)
        return original(checkpoint, filepath, storage_options=storage_options)

    trainer.strategy.save_checkpoint = save


def train(run_dir: Path, max_steps: int, every_n: int, hidden: int = 16, kill_at: list[int] = (),
          kill_in_save_at: int | None = None, resume: AutoResume | None = None, top_k: int = -1,
          sigterm_at: list[int] = (), callbacks: list | None = None,
          ckpt: ModelCheckpoint | None = None, val_every: int | None = None) -> pl.Trainer:
    """One training run through NeMoLogger + AutoResume, like the engine's run_training does."""
    callbacks = list(callbacks or [])
    if kill_at:
        callbacks.append(FaultInjector(run_dir, list(kill_at)))
    if sigterm_at:
        callbacks.append(FaultInjector(run_dir, list(sigterm_at), signal.SIGTERM))
    devices = int(os.environ.get("WORLD_SIZE", "1"))
    trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", devices=devices, callbacks=callbacks,
                         log_every_n_steps=1, enable_model_summary=False, num_sanity_val_steps=0,
                         val_check_interval=val_every, limit_val_batches=1 if val_every else 0)
    ckpt = ckpt or ModelCheckpoint(every_n_train_steps=every_n, save_top_k=top_k)
    if os.environ.get("TOY_VERSIONED"):  # <run_dir>/toy/<datetime>/, chosen by the ranks together
        log = NeMoLogger(log_dir=str(run_dir), name="toy", tensorboard=TensorBoardLogger(), ckpt=ckpt)
        if int(os.environ.get("RANK", "0")) == 1:
            time.sleep(1.5)  # a later clock on rank 1: its own datetime would differ
    else:
        log = NeMoLogger(explicit_log_dir=str(run_dir), tensorboard=TensorBoardLogger(), ckpt=ckpt)
    model = ToyModule(hidden)
    resume = resume or AutoResume(resume_if_exists=True, resume_ignore_no_checkpoint=True)
    chosen = log.setup(trainer, resume_if_exists=resume.resume_if_exists)
    (run_dir / f"run_dir_rank{os.environ.get('RANK', '0')}.txt").write_text(str(chosen))
    resume.setup(trainer, model)
    if kill_in_save_at is not None:
        kill_inside_save(trainer, run_dir, kill_in_save_at)
    trainer.fit(model, datamodule=ToyDataModule())
    return trainer


class SlowRank(pl.Callback):
    """Makes global rank 1 sleep each step: a straggler on purpose."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_rank == 1:
            time.sleep(self.seconds)


def straggler_callbacks(seconds: float) -> list:
    from nemolite.lightning.callbacks import StragglerDetection

    # After the detector: the delay falls inside its window, as slow forward compute would.
    return [StragglerDetection(report_every_n_steps=3, threshold=1.5).build(), SlowRank(seconds)]


def report_straggler(trainer: pl.Trainer, run_dir: Path) -> None:
    """Writes each rank's last straggler report as JSON (tests read it)."""
    import json

    from nemolite.lightning.callbacks.straggler import StragglerCallback

    for cb in trainer.callbacks:
        if isinstance(cb, StragglerCallback) and cb.last_report is not None:
            (run_dir / f"straggler_rank{trainer.global_rank}.json").write_text(json.dumps(cb.last_report))


def main(argv: list[str]) -> None:
    run_dir, max_steps, every_n = Path(argv[0]), int(argv[1]), int(argv[2])
    kill_at = [int(s) for s in os.environ.get("TOY_KILL_AT", "").split(",") if s]
    in_save = os.environ.get("TOY_KILL_IN_SAVE_AT")
    sigterm_at = [int(s) for s in os.environ.get("TOY_SIGTERM_AT", "").split(",") if s]
    callbacks = []
    if os.environ.get("TOY_STRAGGLER"):
        callbacks += straggler_callbacks(float(os.environ["TOY_STRAGGLER"]))
    trainer = train(run_dir, max_steps, every_n, kill_at=kill_at, sigterm_at=sigterm_at,
                    kill_in_save_at=int(in_save) if in_save else None, callbacks=callbacks)
    report_straggler(trainer, run_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
