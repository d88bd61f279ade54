"""The LoRA spec: light, validated at construction with one-line errors naming the CLI field."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nemolite.errors import ConfigError
from nemolite.llm.peft import LoRA


def test_bad_fields_are_one_line_errors_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"peft\.target_modules.*linear_qkv") as err:
        LoRA(target_modules=("linear_qvk",))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"peft\.dim"):
        LoRA(dim=0)
    with pytest.raises(ConfigError, match=r"peft\.dropout"):
        LoRA(dropout=1.0)
    with pytest.raises(ConfigError, match=r"peft\.target_modules"):
        LoRA(target_modules=())


def test_spec_import_stays_light() -> None:
    # torch itself comes with nemo_run (which imports it); lightning and megatron must not.
    code = ("import sys; from nemolite.llm.peft import LoRA; LoRA(dim=8); "
            "print(sorted(m for m in ('lightning', 'megatron') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
