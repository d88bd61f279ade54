"""Hang detection: the watchdog ends a rank that stops making progress, and only such a rank.

The full path (a frozen peer in a 2-process torchrun launch, restarted in place) is the slow test
in tests/multiproc/test_fault_tolerance.py; here the watchdog runs for real in a child process.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from nemolite.errors import ConfigError
from nemolite.lightning.callbacks.hang import EXIT_CODE, HangDetection
from nemolite.lightning.fault_tolerance import FaultTolerance, heartbeat_timeouts

CHILD = textwrap.dedent("""
    import sys, time
    from nemolite.lightning.callbacks.hang import HangDetection
    dog = HangDetection(initial_rank_heartbeat_timeout=1.5, rank_heartbeat_timeout=0.6, poll_interval=0.05)
    dog.start()
    for _ in range(int(sys.argv[1])):  # "steps" that beat in time
        time.sleep(0.2)
        dog.beat()
    if sys.argv[2] == "hang":
        time.sleep(8)  # stuck, as in a collective whose peer froze (far past the 0.6 s timeout)
    dog.stop()
    print("finished")
""")


def _child(steps: int, then: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, str(steps), then], capture_output=True, text=True,
                          timeout=60)


def test_a_rank_that_stops_beating_exits_with_its_stacks() -> None:
    done = _child(5, "hang")
    assert done.returncode == EXIT_CODE, done.stderr
    assert "finished" not in done.stdout
    line = done.stderr.splitlines()[0]
    assert re.match(r"\[nemolite\] rank 0: no progress for \d+ s \(fault tolerance rank_heartbeat_timeout=0.6 s\)", line)
    assert 'File "<string>", line 10' in done.stderr  # the stack dump shows where it hung: the sleep


def test_a_rank_that_beats_in_time_is_left_alone() -> None:
    done = _child(12, "finish")  # 2.4 s in all: longer than either timeout, beating every 0.2 s
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "finished"


def test_initial_timeout_applies_until_the_first_heartbeat() -> None:
    dog = HangDetection(initial_rank_heartbeat_timeout=10, rank_heartbeat_timeout=1)
    start = dog._last
    assert dog.overdue(now=start + 5) is None  # building the model, loading the checkpoint
    assert dog.overdue(now=start + 11) == (pytest.approx(11), "initial_rank_heartbeat_timeout=10")
    dog.beat()
    assert dog.overdue(now=dog._last + 0.5) is None
    assert dog.overdue(now=dog._last + 2)[1] == "rank_heartbeat_timeout=1"
    assert HangDetection(rank_heartbeat_timeout=1).overdue(now=start + 100) is None  # unwatched start


def test_timeouts_travel_through_the_environment() -> None:
    ft = FaultTolerance(max_restarts=1, initial_rank_heartbeat_timeout=120, rank_heartbeat_timeout=7.5)
    env = ft.worker_env()
    assert env == {"NEMOLITE_FT_INITIAL_RANK_HEARTBEAT_TIMEOUT": "120", "NEMOLITE_FT_RANK_HEARTBEAT_TIMEOUT": "7.5"}
    assert heartbeat_timeouts(env) == {"initial_rank_heartbeat_timeout": 120.0, "rank_heartbeat_timeout": 7.5}
    assert FaultTolerance().worker_env() == {} and heartbeat_timeouts({}) == {}


@pytest.mark.parametrize("value", [0, -5, "soon"])
def test_bad_timeouts_are_one_line_errors(value) -> None:
    with pytest.raises(ConfigError, match=r"^fault_tolerance.rank_heartbeat_timeout=.*must be a number of seconds > 0"):
        FaultTolerance(rank_heartbeat_timeout=value).validate()
    with pytest.raises(ConfigError, match=r"^NEMOLITE_FT_RANK_HEARTBEAT_TIMEOUT="):
        heartbeat_timeouts({"NEMOLITE_FT_RANK_HEARTBEAT_TIMEOUT": str(value)})


def test_every_trainer_built_under_a_fault_tolerant_launch_watches_for_hangs(monkeypatch, tmp_path) -> None:
    """The watchdog comes with the trainer (LLM and ASR runs build theirs the same way)."""
    from nemolite import lightning as nl

    def watchdogs() -> list[HangDetection]:
        trainer = nl.Trainer(accelerator="cpu", devices=1, max_steps=1, logger=False,
                             default_root_dir=str(tmp_path)).build()
        return [cb for cb in trainer.callbacks if isinstance(cb, HangDetection)]

    monkeypatch.delenv("NEMOLITE_FT_RANK_HEARTBEAT_TIMEOUT", raising=False)
    monkeypatch.delenv("NEMOLITE_FT_INITIAL_RANK_HEARTBEAT_TIMEOUT", raising=False)
    assert watchdogs() == []
    monkeypatch.setenv("NEMOLITE_FT_RANK_HEARTBEAT_TIMEOUT", "42")
    (dog,) = watchdogs()
    assert (dog.initial, dog.timeout) == (None, 42.0)
