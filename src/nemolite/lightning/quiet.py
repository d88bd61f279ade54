"""Third-party lines that say nothing to a nemolite user, silenced before a run starts.

Each entry names the library and why its message is noise here, so it can go the day upstream
stops printing it. Real problems (errors, our own warnings, megatron's numerics checks) still show.
"""

from __future__ import annotations

import logging
import warnings

# (message regex, why it is noise here) for `warnings.warn` calls made while importing or running.
WARNINGS = (
    # megatron-core (optimizer/__init__.py, models/backends.py, ...): CPU and plain-torch GPU runs
    # never have TE/Apex; the fallbacks are the code paths we test.
    (r"Transformer Engine and Apex are not installed", "megatron fallback"),
    (r"Apex is not installed", "megatron fallback"),
    # megatron transformer_config.py: the default cuda_graph_scope of an unused feature.
    (r"full scope is deprecated", "megatron default"),
    # lightning/pytorch/utilities/_pytree.py against torch 2.13.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", "lightning vs torch"),
    # lightning loops: megatron's pipeline schedules need `dataloader_iter` steps, by design.
    (r"You are using the `dataloader_iter` step flavor", "megatron schedules"),
    (r"Found `dataloader_iter` argument in the", "megatron schedules"),
    # lightning result.py: the model reduces val_loss (and so val_ppl) over data-parallel ranks itself.
    (r"It is recommended to use `self.log\('val_(loss|ppl)'", "reduced by the model"),
    # lightning training_epoch_loop.py: our data module resumes its position exactly
    # (consumed_samples in the checkpoint), which Lightning cannot see on the DataLoader.
    (r"You're resuming from a checkpoint that ended before the epoch ended", "exact resume"),
    # lightning fabric slurm.py: a machine with Slurm installed that runs us without srun.
    (r"The `srun` command is available on your system but is not used", "srun hint"),
    # lightning fit_loop.py: a short run (fewer steps than log_every_n_steps) logs at its end anyway.
    (r"is smaller than the logging interval", "short run"),
    # torch.distributed.checkpoint utils: one-process saves are what we ask for.
    (r"torch.distributed is disabled, unavailable or uninitialized", "one-process save"),
)

# Lightning's rank-zero info lines before the first step: hardware summary, ads, process-group banner.
_LIGHTNING_INFO = ("💡 Tip", "GPU available:", "TPU available:", "HPU available:",
                   "Initializing distributed:", "-" * 20)


class _DropLightningInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (record.levelno <= logging.INFO and message.lstrip().startswith(_LIGHTNING_INFO))


_installed = False


def quiet_third_party() -> None:
    """Installs the filters (idempotent); call before megatron-core or Lightning is imported."""
    global _installed
    if _installed:
        return
    _installed = True
    for pattern, _why in WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    drop = _DropLightningInfo()
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.fabric.utilities.distributed", "lightning.pytorch.utilities.distributed"):
        logging.getLogger(name).addFilter(drop)
    # megatron rerun_state_machine.py logs its (disabled) mode at WARNING on every run.
    logging.getLogger("megatron.core.rerun_state_machine").setLevel(logging.ERROR)
