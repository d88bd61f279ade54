"""The user profile file: cluster settings that stay the same from run to run.

Each remote executor reads its own YAML file, so that `executor=slurm` needs no CLI arguments once
the account, partition and tunnel are written down:

- `$NEMOLITE_SLURM_PROFILE`, else `$XDG_CONFIG_HOME/nemolite/slurm.yaml` (`~/.config/nemolite/...`);
- likewise `NEMOLITE_DOCKER_PROFILE` / `docker.yaml` and `NEMOLITE_LEPTON_PROFILE` / `lepton.yaml`.

A missing file is an empty profile. The keys are the executor's fields (see docs/executors.md);
an unknown key is an error that names the file, not a silently ignored line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nemolite.errors import ConfigError, DataFileError, did_you_mean


def profile_path(kind: str) -> Path:
    """Where the profile of executor `kind` (`slurm`, `docker`, `lepton`) is read from."""
    explicit = os.environ.get(f"NEMOLITE_{kind.upper()}_PROFILE")
    if explicit:
        return Path(explicit).expanduser()
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join("~", ".config")
    return Path(config_home).expanduser() / "nemolite" / f"{kind}.yaml"


def load_profile(kind: str, allowed: Iterable[str]) -> dict[str, Any]:
    """Reads the profile of executor `kind`; keys outside `allowed` are an error.

    Returns:
        The mapping in the file, or `{}` when there is no file.

    Raises:
        DataFileError: the file is not a YAML mapping.
        ConfigError: a key is not a setting of this executor.
    """
    path = profile_path(kind)
    if not path.is_file():
        if os.environ.get(f"NEMOLITE_{kind.upper()}_PROFILE"):
            raise DataFileError(
                path,
                "profile file not found",
                f"create it or unset NEMOLITE_{kind.upper()}_PROFILE",
            )
        return {}
    import yaml  # PyYAML comes with nemo-run; imported here so the CLI pays for it only when used

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        first_line = str(err).splitlines()[0]
        raise DataFileError(path, f"not valid YAML ({first_line})", "fix the syntax") from err
    if not isinstance(data, dict):
        raise DataFileError(path, "must be a mapping of setting: value", "see docs/executors.md")
    names = sorted(allowed)
    for key in data:
        if key not in names:
            raise ConfigError(
                f"{path}:{key}",
                data[key],
                f"not a {kind} executor setting{did_you_mean(str(key), names)}",
                f"use one of: {', '.join(names)}",
            )
    return data
