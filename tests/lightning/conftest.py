"""Fixtures shared by the Lightning tests."""

from __future__ import annotations

from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def toy() -> ModuleType:
    """The toy Lightning training script (test_checkpoint_toy.py), imported (torch, lightning)."""
    from tests.lightning import test_checkpoint_toy

    return test_checkpoint_toy
