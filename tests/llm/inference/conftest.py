"""Fixtures shared by the generation and evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.llm.inference.inference_ckpts import tiny_config, write_checkpoint


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory holding one checkpoint of the tiny random Llama (`tiny_config()`)."""
    root = tmp_path_factory.mktemp("run")
    write_checkpoint(root, tiny_config())
    return root


@pytest.fixture(scope="module")
def engine(run_dir: Path):
    """The generation engine loaded from `run_dir`."""
    from nemolite.llm.inference.generate import load_engine

    return load_engine(run_dir)
