"""Size and package count of a fresh install of nemolite (CPU torch), next to NeMo 2.7.3's.

Creates a throwaway virtual environment, installs `torch==2.13.0` (CPU) and this checkout, and
measures the environment on disk and `pip list`. Reference: NeMo 2.7.3 with its LLM extra installs
2.9 GB in 259 packages.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        empty = _size(venv)
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, str(ROOT)], check=True)
        listed = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
            check=True, capture_output=True, text=True,
        ).stdout.split()
        total = _size(venv) - empty
        torch_dir = next((venv / "lib").glob("python*/site-packages/torch"))
        torch_size = _size(torch_dir)
    rows = [
        ["nemolite (CPU torch)", f"{total / 1e9:.2f} GB", str(len(listed)), f"{torch_size / 1e9:.2f} GB"],
        ["NeMo 2.7.3 with its LLM extra (reference)", "2.9 GB", "259", "-"],
    ]
    report("install_size", "Fresh install", ["install", "size on disk", "packages", "of which torch"], rows)


if __name__ == "__main__":
    main()
