"""megatron-core's `jit_fuser` without torch.compile on machines without CUDA.

megatron-core decorates its fused element-wise kernels (bias + GeLU/SwiGLU, bias + dropout + add,
...) with `megatron.core.jit.jit_fuser`, which is `torch.compile` on torch >= 2.2. Decorating
imports TorchDynamo and Inductor's `compile_fx` as megatron-core itself is imported: about half of
its import time (1.5 s of CPU of 2.9 on this project's machines), paid by every process that
imports megatron (every CLI run, every rank, every conversion) although nemolite turns these
fusions off without CUDA (`megatron_config.py`: `bias_activation_fusion` and friends need CUDA).

`install()` (run by `import nemolite`, cheap: one entry on `sys.meta_path`) has megatron's own
`disable_jit_fuser()` called right after `megatron.core.jit` executes and before any module
decorates with it, when torch sees no CUDA device. With CUDA, or with `NEMOLITE_MEGATRON_JIT=1`, or
when megatron-core was imported before nemolite, megatron's choice stands. The fused functions
stay what they are, uncompiled.
"""

from __future__ import annotations

import os
import sys
from typing import Any

MODULE = "megatron.core.jit"
KEEP_ENV = "NEMOLITE_MEGATRON_JIT"


def _disable_without_cuda(module: Any) -> None:
    import torch  # megatron.core.jit has imported it already

    if os.environ.get(KEEP_ENV, "") not in ("", "0") or torch.cuda.is_available():
        return
    module.disable_jit_fuser()


class _JitFinder:  # a meta path finder (importlib.abc would cost 14 ms of `import nemolite`)
    """Finds `megatron.core.jit` through the other finders and runs `_disable_without_cuda` after it."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != MODULE:
            return None
        others = [f for f in sys.meta_path if not isinstance(f, _JitFinder)]
        spec = None
        for finder in others:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        original = loader.exec_module

        class _Loader:
            def create_module(self, spec: Any) -> Any:
                return loader.create_module(spec)

            def exec_module(self, module: Any) -> None:
                original(module)
                if hasattr(module, "disable_jit_fuser"):
                    _disable_without_cuda(module)

        spec.loader = _Loader()
        return spec


def install() -> None:
    """Puts the finder first on `sys.meta_path` (idempotent; nothing if megatron's jit is loaded)."""
    if MODULE in sys.modules or any(isinstance(f, _JitFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _JitFinder())
