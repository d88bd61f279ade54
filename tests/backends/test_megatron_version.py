"""The supported megatron-core range: one range in pyproject and code, checked where the backend is set up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nemolite.backends import megatron_version
from nemolite.errors import NemoliteError

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_pyproject_pins_the_supported_range() -> None:
    pins = re.findall(r'"megatron-core([^"]*)"', PYPROJECT.read_text())
    assert pins == [megatron_version.SUPPORTED]


def test_the_installed_release_is_supported_and_tested() -> None:
    megatron_version.check()
    assert megatron_version.installed() in megatron_version.TESTED


@pytest.mark.parametrize("found", ["0.15.3", "0.16.0rc0", "0.20.0", "1.0.0"])
def test_outside_the_range_is_one_line_naming_version_and_range(found: str) -> None:
    with pytest.raises(megatron_version.MegatronVersionError) as error:
        megatron_version.check(found)
    line = str(error.value)
    assert "\n" not in line and isinstance(error.value, NemoliteError)
    assert f"megatron-core {found} is installed" in line
    assert f"megatron-core{megatron_version.SUPPORTED}" in line


@pytest.mark.parametrize("found", ["0.16.0", "0.16.1", "0.17.1", "0.19.2", "0.19.9+abc"])
def test_inside_the_range_passes(found: str) -> None:
    megatron_version.check(found)


def test_training_refuses_an_unsupported_release_before_building(monkeypatch: pytest.MonkeyPatch) -> None:
    from nemolite.llm.training import build_run

    monkeypatch.setattr(megatron_version, "installed", lambda: "0.15.3")
    with pytest.raises(megatron_version.MegatronVersionError, match=r"megatron-core 0\.15\.3 is installed"):
        build_run(model=None, data=None, trainer=None)


def test_version_gates_compare_the_installed_release(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(megatron_version, "installed", lambda: "0.19.2")
    assert megatron_version.at_least((0, 19)) and megatron_version.at_least((0, 16, 1))
    assert not megatron_version.at_least((0, 19, 3))
    monkeypatch.setattr(megatron_version, "installed", lambda: "0.16.1")
    assert not megatron_version.at_least((0, 19))
