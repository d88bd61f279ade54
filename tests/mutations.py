"""The standing mutation check: each deliberate breakage in `mutations.toml` must fail its test.

    python tests/mutations.py                 # every entry (what `nox -s mutations` and CI run)
    python tests/mutations.py --only NAME ... # some entries, e.g. the one you just added
    python tests/mutations.py --list          # the table

The repository's files (tracked and untracked-but-not-ignored, as `git ls-files` lists them) are
copied once into a scratch directory. For each entry the runner replaces `find` by `replace` in
`file` there (the text must occur exactly once), runs pytest on the entry's tests inside the copy,
and puts the file back. A breakage "survives" when its tests still pass: the check then fails.

The venv's editable install points at the original tree, so the copy is made importable on its own:
`src/nemolite/recipes` and `src/nemolite/executors` become links to the copy's `recipes/` and
`executors/` (what setup.py's package_dir does), and PYTHONPATH puts the copy's `src` first. The
runner verifies that `nemolite`, `nemolite.recipes` and `nemolite.executors` import from the copy
before it starts, and subprocesses the tests start (torchrun, the `nemo` CLI) inherit PYTHONPATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parents[1]
TABLE = Path(__file__).with_name("mutations.toml")
# pytest exit codes: 0 all passed, 1 some failed, 5 nothing collected/selected.
CAUGHT, SURVIVED = 1, 0


@dataclass(frozen=True)
class Mutation:
    """One deliberate breakage: where, the exact text replacement, and the tests that must fail."""

    name: str
    file: str
    find: str
    replace: str
    tests: list[str]
    why: str = ""


def load(path: Path = TABLE) -> list[Mutation]:
    """The table's entries; a malformed entry is a one-line error naming it."""
    entries = tomllib.loads(path.read_text())["mutation"]
    mutations = []
    for i, entry in enumerate(entries):
        missing = {"name", "file", "find", "replace", "tests"} - set(entry)
        if missing:
            raise SystemExit(f"{path.name}: entry {i} ({entry.get('name', '?')}) lacks {sorted(missing)}")
        mutations.append(Mutation(**entry))
    names = [m.name for m in mutations]
    if len(set(names)) != len(names):
        raise SystemExit(f"{path.name}: duplicate names {sorted({n for n in names if names.count(n) > 1})}")
    return mutations


def copy_repo(dest: Path) -> Path:
    """Copies the working tree (what git would see, uncommitted edits included) to `dest/repo`."""
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    root = dest / "repo"
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():  # listed but deleted in the working tree: skip
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / rel)
    for name in ("recipes", "executors"):  # setup.py's package_dir, without installing
        (root / "src" / "nemolite" / name).symlink_to(root / name, target_is_directory=True)
    return root


def env_for(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root / "src"), env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["COLUMNS"] = "250"  # pytest cuts the failure reasons in its summary to the width
    return env


def check_imports_from(root: Path) -> None:
    """Fails unless the copy's packages, not the editable install's, are what Python imports."""
    code = ("import nemolite, nemolite.recipes, nemolite.executors as e, os; "
            "print('\\n'.join(os.path.realpath(m.__file__) for m in "
            "(nemolite, nemolite.recipes, e)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env_for(root),
                         capture_output=True, text=True, check=True).stdout.split()
    outside = [p for p in out if not Path(p).is_relative_to(root.resolve())]
    if outside or len(out) != 3:
        raise SystemExit(f"the scratch copy is not what gets imported: {outside or out}")


def run_one(root: Path, m: Mutation, timeout: int) -> tuple[str, float, str]:
    """Applies `m` in the copy, runs its tests, restores the file; returns (outcome, seconds, log)."""
    target = root / m.file
    if not target.is_file():
        return "error", 0.0, f"{m.file}: no such file (update the entry)"
    original = target.read_text()
    count = original.count(m.find)
    if count != 1:
        return "error", 0.0, f"{m.file}: `find` occurs {count} times, must be exactly once (update the entry)"
    target.write_text(original.replace(m.find, m.replace))
    start = time.perf_counter()
    try:
        # -m "": node ids name the tests, whatever their markers (pyproject deselects `slow`).
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "",
               "--no-header", "-rfE", *m.tests]
        proc = subprocess.run(cmd, cwd=root, env=env_for(root), capture_output=True, text=True,
                              timeout=timeout)
        code, log = proc.returncode, proc.stdout[-4000:] + proc.stderr[-2000:]
    except subprocess.TimeoutExpired:
        code, log = -1, f"timed out after {timeout} s"
    finally:
        target.write_text(original)
    seconds = time.perf_counter() - start
    outcome = {CAUGHT: "caught", SURVIVED: "SURVIVED"}.get(code, "error")
    return outcome, seconds, log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these entries only")
    parser.add_argument("--list", action="store_true", help="print the table and exit")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per entry")
    args = parser.parse_args(argv)
    mutations = load()
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in mutations})
        if unknown:
            raise SystemExit(f"--only: no entries named {unknown}; names: {[m.name for m in mutations]}")
        mutations = [m for m in mutations if m.name in args.only]

    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    if args.list:
        table = Table("name", "file", "tests", "why")
        for m in mutations:
            table.add_row(m.name, m.file, "\n".join(m.tests), m.why)
        console.print(table)
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="nemolite-mutations-") as tmp:
        root = copy_repo(Path(tmp))
        check_imports_from(root)
        for i, m in enumerate(mutations, 1):
            console.print(f"[{i}/{len(mutations)}] {m.name}: {m.file} -> {' '.join(m.tests)}",
                          markup=False, highlight=False, soft_wrap=True)
            outcome, seconds, log = run_one(root, m, args.timeout)
            results.append((m, outcome, seconds))
            if outcome == "caught":  # why it failed, so a wrong reason shows in the log
                reasons = [line for line in log.splitlines() if line.startswith(("FAILED", "ERROR"))]
                console.print("\n".join(f"    {r[:300]}" for r in reasons), markup=False, highlight=False,
                              soft_wrap=True)
            else:
                console.print(f"{m.name}: {outcome}\n{log}", markup=False, highlight=False)
    table = Table("mutation", "outcome", "seconds", title="mutation check")
    for m, outcome, seconds in results:
        style = "green" if outcome == "caught" else "bold red"
        table.add_row(m.name, f"[{style}]{outcome}[/]", f"{seconds:.0f}")
    console.print(table)
    bad = [m.name for m, outcome, _ in results if outcome != "caught"]
    if bad:
        console.print(f"[bold red]{len(bad)} of {len(results)} breakages not caught: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
