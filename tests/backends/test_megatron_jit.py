"""Without CUDA, importing megatron-core through nemolite does not import TorchDynamo / Inductor."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="megatron's torch.compile fusers stay on with CUDA")

PROBE = (
    "import sys, nemolite, megatron.core.models.gpt, megatron.core.jit as j; "
    "print(j.jit_fuser.__name__, 'torch._dynamo' in sys.modules, 'torch._inductor.compile_fx' in sys.modules)"
)


def _probe(**env: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **env}, check=True)
    return out.stdout.split()


def test_megatron_fusers_are_not_compiled_without_cuda() -> None:
    assert _probe(NEMOLITE_MEGATRON_JIT="") == ["noop_decorator", "False", "False"]


def test_the_environment_keeps_megatrons_choice() -> None:
    assert _probe(NEMOLITE_MEGATRON_JIT="1")[0] == "compile"
