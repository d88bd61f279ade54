"""The checkpoint writer's process does not re-run the user's script (README's Python snippet)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
print("top level of the user's script", flush=True)
from nemolite.lightning.resil_writer_queue import install_writer_queue
from megatron.core.dist_checkpointing.strategies import filesystem_async

assert install_writer_queue()
queue = filesystem_async._results_queue
queue.put("written")
print("queue says", queue.get(timeout=30), flush=True)
"""


def test_spawned_writer_does_not_import_main(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)  # top level, no `if __name__ == "__main__":` guard, as in the README
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("top level of the user's script") == 1, done.stdout + done.stderr
    assert "queue says written" in done.stdout
