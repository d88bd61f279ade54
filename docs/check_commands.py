"""Runs every `nemo ... --dryrun` command quoted in README.md and docs/*.md.

A command must exit 0, unless the doc shows it failing (the next line starts with `error:`): then it
must exit 2 with that line's beginning on stderr. Slurm commands need a cluster and are skipped.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commands() -> list[tuple[str, str | None]]:
    """(command, expected error prefix or None) for each dry-run command in the docs."""
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        lines = doc.read_text().replace("\\\n", " ").splitlines()
        for line, after in zip(lines, [*lines[1:], ""]):
            line = line.split(" #", 1)[0].strip().removeprefix("$ ")
            if line.startswith("nemo ") and "--dryrun" in line and "executor=slurm" not in line:
                expected = after.split(":", 2)[:2] if after.startswith("error:") else None
                found.append((re.sub(r"\s+", " ", line), ":".join(expected) if expected else None))
    return found


def main() -> int:
    failures = 0
    with tempfile.TemporaryDirectory() as cwd:
        for command, error in commands():
            result = subprocess.run(shlex.split(command), cwd=cwd, capture_output=True, text=True)
            if error is None:
                ok = result.returncode == 0
            else:
                ok = result.returncode == 2 and result.stderr.startswith(error)
            print(("ok   " if ok else "FAIL ") + command)
            failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
