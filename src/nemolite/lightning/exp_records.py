"""What a run directory records about how the run was made: recipe, command, git commit, versions."""

from __future__ import annotations

import importlib.metadata
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGES = ("nemolite", "torch", "megatron-core", "lightning", "nemo-run", "fiddle", "numpy",
            "transformer-engine", "tokenizers", "sentencepiece")


def write_records(run_dir: Path, task_config: Any | None) -> None:
    """Writes `config.yaml`, `cmd-args.log`, `git-info.txt` and `versions.txt` (global rank 0)."""
    if task_config is not None:
        (run_dir / "config.yaml").write_text(config_yaml(task_config))
    with open(run_dir / "cmd-args.log", "a") as f:
        f.write(shlex.join([sys.executable, *sys.argv]) + "\n")
    (run_dir / "git-info.txt").write_text(git_info())
    (run_dir / "versions.txt").write_text(versions())


def config_yaml(task_config: Any) -> str:
    """The task's fiddle config as YAML (nemo-run's serializer).

    A config holding objects YAML cannot represent (e.g. a Lightning callback instance) still gets
    recorded, as fiddle's flattened listing, so that writing the record never stops a run.
    """
    import fiddle as fdl

    if not isinstance(task_config, fdl.Buildable):
        return f"# not a fiddle config; repr:\n# {task_config!r}\n"
    from nemo_run.core.serialization.yaml import YamlSerializer

    try:
        return YamlSerializer().serialize(task_config)
    except Exception as err:  # noqa: BLE001 - any unserializable value: fall back, do not fail
        from fiddle import printing

        return (f"# not representable as YAML ({type(err).__name__}); fiddle's flattened listing:\n"
                + "".join(f"# {line}\n" for line in printing.as_str_flattened(task_config).splitlines()))


def git_info(cwd: Path | None = None) -> str:
    """Commit, branch and dirty state of the git checkout the run was started from (if any)."""
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    if not commit:
        return "commit: none (not started from a git checkout)\n"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return (f"commit: {commit}\nbranch: {git('rev-parse', '--abbrev-ref', 'HEAD')}\n"
            f"dirty: {'yes' if dirty else 'no'}\n")


def versions() -> str:
    """Python, platform and the versions of the packages that decide numerics and behaviour."""
    lines = [f"python: {platform.python_version()}", f"platform: {platform.platform()}"]
    for name in PACKAGES:
        try:
            lines.append(f"{name}: {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return "\n".join(lines) + "\n"
