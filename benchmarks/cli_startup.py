"""How fast `nemo llm pretrain --factory llama3_8b --dryrun -y` answers, against `import nemo_run`.

Goal (issue 2): the dry run within 1.3x of `python -c "import nemo_run"` measured in the same run.
NeMo 2.7.3 takes 17-20 s for the same dry run on these machines (13.5 s importing its LLM collection).
Runs alternate between the commands so that machine load affects both alike; medians are reported.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import report  # noqa: E402

REPEATS = 7
NEMO = shutil.which("nemo") or str(Path(sys.executable).with_name("nemo"))
COMMANDS = {
    "python -c 'import nemo_run' (baseline)": [sys.executable, "-c", "import nemo_run"],
    "python -c 'import nemolite'": [sys.executable, "-c", "import nemolite"],
    "python -c 'import nemolite.llm'": [sys.executable, "-c", "import nemolite.llm"],
    "nemo llm pretrain --factory llama3_8b --dryrun -y": [
        NEMO, "llm", "pretrain", "--factory", "llama3_8b", "--dryrun", "-y"
    ],
}


def main() -> None:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(REPEATS):
            for name, command in COMMANDS.items():
                start = time.perf_counter()
                subprocess.run(command, cwd=cwd, check=True, capture_output=True)
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times[next(iter(COMMANDS))])
    rows = [
        [name, f"{statistics.median(t):.2f}", f"{min(t):.2f}", f"{statistics.median(t) / base:.2f}x"]
        for name, t in times.items()
    ]
    ratio = statistics.median(times[list(COMMANDS)[-1]]) / base
    verdict = "meets" if ratio <= 1.3 else "MISSES"
    notes = f"Dry run / import nemo_run = {ratio:.2f}x ({verdict} the 1.3x goal). NeMo 2.7.3: 17-20 s."
    report("cli_startup", "CLI start-up (seconds, median of 7)", ["command", "median s", "min s", "vs baseline"], rows, notes)


if __name__ == "__main__":
    main()
