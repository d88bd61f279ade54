"""Cheap hardware probes that import no torch (the CLI validates before launching)."""

from __future__ import annotations

import glob
import os
import shutil


def cuda_present() -> bool:
    """Whether this machine has a usable NVIDIA GPU, judged without importing torch.

    `CUDA_VISIBLE_DEVICES=""` (or "-1") hides every GPU, as it does for torch.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    if glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/proc/driver/nvidia/version"):
        return True
    return shutil.which("nvidia-smi") is not None and bool(glob.glob("/dev/nvidia*"))
