"""The optimizer and LR schedule a NeMo ASR config's `optim:` section describes.

`name`: adamw, adam or sgd; `sched.name`: CosineAnnealing (linear warmup over `warmup_steps` or
`warmup_ratio` of the run, then cosine from `lr` to `min_lr`); `sched: null` keeps `lr` constant.
The schedule steps every optimizer step, as NeMo's does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

_OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def cosine_with_warmup(step: int, warmup: int, total: int, lr: float, min_lr: float) -> float:
    """NeMo's CosineAnnealing with linear warmup: the LR at `step`."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if step >= total:
        return min_lr
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def optimizer_from_config(cfg: dict[str, Any], params: Iterable[torch.nn.Parameter], trainer: Any) -> Any:
    """Lightning's `configure_optimizers` result for an `optim:` section."""
    name = str(cfg.get("name", "adamw")).lower()
    if name not in _OPTIMIZERS:
        raise ValueError(f"model.optim.name={name!r}: use one of {', '.join(_OPTIMIZERS)}")
    kwargs: dict[str, Any] = {"lr": float(cfg.get("lr", 1e-3))}
    if "weight_decay" in cfg:
        kwargs["weight_decay"] = float(cfg["weight_decay"])
    if name != "sgd" and cfg.get("betas") is not None:
        kwargs["betas"] = tuple(float(b) for b in cfg["betas"])
    if name == "sgd" and "momentum" in cfg:
        kwargs["momentum"] = float(cfg["momentum"])
    optimizer = _OPTIMIZERS[name](params, **kwargs)
    sched = cfg.get("sched")
    if not sched:
        return optimizer
    if sched.get("name") != "CosineAnnealing":
        raise ValueError(f"model.optim.sched.name={sched.get('name')!r}: only CosineAnnealing is supported")
    total = int(sched.get("max_steps") or getattr(trainer, "max_steps", -1) or -1)
    if total <= 0:
        raise ValueError("model.optim.sched needs max_steps (or trainer.max_steps) for CosineAnnealing")
    warmup = sched.get("warmup_steps")
    if warmup is None:
        warmup = int(float(sched.get("warmup_ratio") or 0.0) * total)
    lr, min_lr = kwargs["lr"], float(sched.get("min_lr", 0.0))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_with_warmup(step, int(warmup), total, lr, min_lr) / lr
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
