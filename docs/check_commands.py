"""Runs every ```bash command and ```python snippet of README.md and docs/*.md, in order.

What a newcomer would do, on a fresh temporary HOME and in a fresh temporary working directory
shared by all blocks (so later blocks see what earlier ones made: the quick start's run, a
`task.yaml`, a `docs.jsonl`). ```text, ```console, ```yaml and unlabeled blocks are output or
file contents, not commands, and are not run. Nothing else is skipped.

Two documented rewrites, because the runner already runs inside an installed virtual environment:

- in a `&&` chain, the parts that create or activate a virtual environment (`python3 -m venv
  .venv`, `. .venv/bin/activate`) or `pip install` are dropped: the runner reuses its own venv;
- `pytest ...` (the README's test command) runs as `pytest --collect-only` on the repository's
  tests: running the whole suite from inside one of its tests would run it twice.

A bash block runs under `bash -e -o pipefail` (each line must exit 0); a python block runs as a
script with the runner's interpreter. Usage: `python docs/check_commands.py [--list]`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_LANGS = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}
_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_DROPPED = (
    re.compile(r"^python3? -m venv \S+$"),
    re.compile(r"^(\.|source) \S*bin/activate$"),
    re.compile(r"^(python3? -m )?pip install\b.*$"),
)


@dataclass(frozen=True)
class Block:
    """One runnable block: where it is, its language and its text (after the rewrites)."""

    doc: str
    line: int
    lang: str
    text: str

    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def docs() -> list[Path]:
    """README.md first, then docs/*.md in name order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(paths: list[Path] | None = None) -> list[Block]:
    """The runnable blocks of `paths` (default: `docs()`), in order."""
    found = []
    for path in paths or docs():
        text = path.read_text()
        for match in _FENCE.finditer(text):
            lang = RUN_LANGS.get(match.group(1).lower())
            if lang is None:
                continue
            body = match.group(2)
            line = text.count("\n", 0, match.start()) + 2
            found.append(Block(str(path.relative_to(ROOT)), line, lang,
                               rewrite_bash(body) if lang == "bash" else body))
    return found


def rewrite_bash(body: str) -> str:
    """Applies the two documented rewrites to each command line of a bash block."""
    out = []
    for line in body.replace("\\\n", " ").splitlines():
        command, _, comment = line.partition(" #")
        parts = [p.strip() for p in command.split("&&")]
        kept = [p for p in parts if p and not any(rx.match(p) for rx in _DROPPED)]
        kept = [f"pytest --collect-only -q -p no:cacheprovider {ROOT / 'tests'}"
                if re.match(r"^pytest\b", p) else p for p in kept]
        if command.strip() and not kept:
            continue  # the whole line was environment setup
        out.append(" && ".join(kept) if command.strip() else line)
    return "\n".join(out) + "\n"


def environment(home: Path) -> dict[str, str]:
    """A fresh home: nemo-run's, Hugging Face's and every cache directory under it."""
    env = dict(os.environ)
    for var in ("NEMOLITE_SLURM_PROFILE", "NEMOLITE_DOCKER_PROFILE", "NEMOLITE_LEPTON_PROFILE"):
        env.pop(var, None)
    env.update(
        HOME=str(home), NEMORUN_HOME=str(home / ".nemo_run"), NEMO_HOME=str(home / ".cache" / "nemo"),
        HF_HOME=str(home / ".cache" / "huggingface"), XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"), MPLCONFIGDIR=str(home / ".config" / "matplotlib"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        NO_COLOR="1", COLUMNS="200", PYTHONUNBUFFERED="1",
    )
    return env


def run_block(block: Block, cwd: Path, env: dict[str, str], timeout: float = 1800) -> subprocess.CompletedProcess:
    """Runs one block in `cwd`; stdin is closed, as in CI."""
    if block.lang == "bash":
        argv = ["bash", "-e", "-o", "pipefail", "-c", block.text]
    else:
        script = cwd.parent / f"snippet_{Path(block.doc).stem}_{block.line}.py"
        script.write_text(block.text)
        argv = [sys.executable, str(script)]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def main(argv: list[str]) -> int:
    if "--list" in argv:
        for block in blocks():
            print(f"--- {block.where()} [{block.lang}]\n{block.text}")
        return 0
    failures = 0
    with tempfile.TemporaryDirectory(prefix="nemolite-docs-") as scratch:
        home, cwd = Path(scratch) / "home", Path(scratch) / "work"
        home.mkdir()
        cwd.mkdir()
        env = environment(home)
        for block in blocks():
            done = run_block(block, cwd, env)
            ok = done.returncode == 0
            print(("ok   " if ok else "FAIL ") + block.where(), flush=True)
            if not ok:
                failures += 1
                print(done.stdout[-3000:] + done.stderr[-3000:])
    shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
