"""Shared output for benchmarks: a rich table on the console and a markdown file in results/."""

from __future__ import annotations

import platform
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"


def report(name: str, title: str, columns: list[str], rows: list[list[str]], notes: str = "") -> Path:
    """Prints the table and writes `results/<name>.md`; returns the file's path."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    if notes:
        Console().print(notes)
    RESULTS.mkdir(exist_ok=True)
    lines = [f"# {title}", "", f"Machine: {platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}", ""]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if notes:
        lines += ["", notes]
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
