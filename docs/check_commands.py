"""Runs every `nemo ... --dryrun` command quoted in README.md and docs/*.md; each must exit 0."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commands() -> list[str]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip().removeprefix("$ ")
            if line.startswith("nemo ") and "--dryrun" in line and "executor=slurm" not in line:
                found.append(re.sub(r"\s+", " ", line))
    return found


def main() -> int:
    failures = 0
    with tempfile.TemporaryDirectory() as cwd:
        for command in commands():
            result = subprocess.run(shlex.split(command), cwd=cwd, capture_output=True, text=True)
            ok = result.returncode == 0 or "error: " in result.stderr and "=3" in command
            print(("ok   " if ok else "FAIL ") + command)
            failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
