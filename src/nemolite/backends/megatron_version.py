"""The megatron-core versions nemolite supports, and the check that runs where the backend is set up.

nemolite reaches into megatron-core internals (the CPU backend's patches, dist-checkpointing, the
pipeline schedules), so it supports the releases it is tested on: 0.16.x (the newest release for
Python 3.10 and 3.11) and 0.19.x (which requires Python >= 3.12). 0.17 and 0.18 are inside the
range (pip never picks them: it takes the newest release the Python allows) but untested. The
range here is the one in pyproject.toml (tests/backends/test_megatron_version.py keeps them equal).
Where the two releases differ, the code asks `at_least((0, 19))` or looks at upstream's signature.
"""

from __future__ import annotations

import functools
import re

from nemolite.errors import NemoliteError

# pyproject.toml's `megatron-core` requirement, verbatim.
SUPPORTED = ">=0.16.0,<0.20"
TESTED = ("0.16.1", "0.19.2")


class MegatronVersionError(NemoliteError):
    """The installed megatron-core is outside the supported range."""


def parse(text: str) -> tuple[int, int, int]:
    """'0.19.2', '0.19.2+abc', '0.16.0rc0.dev1' -> (0, 19, 2), (0, 19, 2), (0, 16, 0)."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        raise MegatronVersionError(f"megatron-core reports an unreadable version {text!r}")
    major, minor, micro = match.groups()
    return int(major), int(minor), int(micro or 0)


@functools.cache
def installed() -> str:
    """The installed megatron-core's version string (without the local '+...' part)."""
    from megatron.core.package_info import __version__

    return str(__version__).split("+")[0]


def version() -> tuple[int, int, int]:
    return parse(installed())


def at_least(minimum: tuple[int, ...]) -> bool:
    """Whether the installed megatron-core is `minimum` (e.g. (0, 19)) or newer."""
    return version()[: len(minimum)] >= tuple(minimum)


def check(found: str | None = None) -> None:
    """Raises a one-line MegatronVersionError when megatron-core is outside `SUPPORTED`."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    found = installed() if found is None else found
    try:
        inside = SpecifierSet(SUPPORTED).contains(Version(found), prereleases=True)
    except InvalidVersion:
        inside = False
    if not inside:
        raise MegatronVersionError(
            f"megatron-core {found} is installed, but nemolite supports megatron-core{SUPPORTED} "
            f"(tested: {', '.join(TESTED)}); fix: pip install 'megatron-core{SUPPORTED}'"
        )
