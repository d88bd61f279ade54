"""`--dryrun` with executor=local / torchrun prints the command nemo-run would really start."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


def _launch_section(out: str) -> str:
    section = out.split("launch", 1)[1].split("Dry run:", 1)[0]
    text = " ".join(section.replace("─", " ").split())
    return re.sub(r"--rdzv-id \d+", "--rdzv-id <random>", text) + "\n"


@pytest.mark.parametrize(
    "name,args",
    [
        ("local", ["executor=local"]),
        ("torchrun", ["executor=torchrun", "executor.ntasks_per_node=2", "trainer.devices=2"]),
    ],
)
def test_dry_run_renders_the_launch_command(llm_cli, tmp_path: Path, name: str, args: list[str]) -> None:
    code, out, err = llm_cli("pretrain", "--factory", "llama_tiny", *args, "--dryrun", "-y")
    assert code == 0, err
    rendered = _launch_section(out)
    golden = GOLDEN / f"{name}_launch.txt"
    if os.environ.get("NEMOLITE_UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text()
    assert "nemo_run.core.runners.fdl_runner" in rendered
    assert list(tmp_path.iterdir()) == []


def test_fault_tolerance_reaches_the_local_torchrun_command(llm_cli, tmp_path: Path) -> None:
    """`executor.launcher=ft` on the CLI: torchrun itself with an in-job restart bound."""
    code, out, err = llm_cli("pretrain", "--factory", "llama_tiny", "executor=torchrun", "trainer.devices=2",
                             "executor.launcher=ft", "--dryrun", "-y")
    assert code == 0, err
    rendered = _launch_section(out)
    assert rendered.startswith("LOGLEVEL=INFO OMP_NUM_THREADS=1 TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 "
                               "torchrun --max-restarts=3 --monitor-interval=1 "), rendered
    assert "ft_launcher" not in rendered and list(tmp_path.iterdir()) == []


def test_fault_tolerance_plugin_sets_restarts_and_retries() -> None:
    """NeMo 2.0's `FaultTolerancePlugin` on a local torchrun executor, as a Python script uses it."""
    import nemo_run as run

    from nemolite.executors import local
    from nemolite.lightning.run.plugins import FaultTolerancePlugin

    executor = run.LocalExecutor(ntasks_per_node=2, launcher="torchrun")
    task = run.Partial(os.path.join, "x")
    FaultTolerancePlugin(num_in_job_restarts=1, num_job_retries_on_failure=0).setup(task, executor)
    assert executor.retries == 0
    assert "torchrun --max-restarts=1 --monitor-interval=1 " in local.render(executor, task, "job")
    executor.launcher = run.FaultTolerance(max_restarts=0, workload_check_interval=0.5)
    assert "torchrun --max-restarts=0 --monitor-interval=0.5 " in local.render(executor, task, "job")
