"""Exact resume of a tiny Llama through `llm.pretrain`, killed and restarted with the same command.

Run as a script (plain python, or under torchrun for TP/PP) it trains one run; the tests below
start it as a subprocess, SIGKILL it at chosen steps (fault injection through the environment, see
`FaultInjector` in tests/lightning/test_checkpoint_toy.py for the idea), run the same command again
until it finishes, and compare the per-step losses in `train_metrics.jsonl` with an uninterrupted
run's.

    python test_resume_llama.py RUN_DIR MAX_STEPS EVERY_N
    (env: TP, PP, ASYNC, HIDDEN, KILL_AT, KILL_BEFORE_PUBLISH_AT, KILL_IN_ASYNC_WRITE_AT,
     SIGTERM_AT, RESTORE_FROM, RAMPUP=start,increment,samples)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()
SEQ, GBS = 32, 4


def llama_kwargs() -> dict:
    """4 layers, 4 heads / 2 groups: TP=2 and PP=2 both divide it.

    The vocabulary is fixed at 512 (a multiple of 64 x TP for TP 1 and 2): megatron pads it to a
    multiple of `make_vocab_size_divisible_by x TP`, and differently padded models compute different
    softmaxes, so a TP=2 checkpoint resumed as TP=1 would not continue the same loss curve.
    """
    hidden = int(os.environ.get("HIDDEN", "64"))  # another value makes a checkpoint not fit
    return dict(num_layers=4, hidden_size=hidden, ffn_hidden_size=2 * hidden, num_attention_heads=4,
                num_query_groups=2, seq_length=SEQ, vocab_size=512, make_vocab_size_divisible_by=64)


def main(run_dir: str, max_steps: int, every_n: int) -> None:
    import fiddle as fdl
    import lightning.pytorch as pl
    import nemo_run as run

    from nemolite import lightning as nl
    from nemolite import llm

    class FaultInjector(pl.Callback):
        """SIGKILLs this process at KILL_AT steps (once each per run dir), or inside a save."""

        def __init__(self) -> None:
            self.steps = [int(s) for s in os.environ.get("KILL_AT", "").split(",") if s]

        def _once(self, trainer: pl.Trainer, tag: str) -> bool:
            flag = Path(run_dir) / f"killed_{tag}_{trainer.global_step}_rank{trainer.global_rank}"
            if flag.exists():
                return False
            flag.touch()
            return True

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            if trainer.global_step in self.steps and self._once(trainer, "at"):
                os.kill(os.getpid(), signal.SIGKILL)
            # Only rank 0 is told: the ranks must agree to save and stop together.
            if (trainer.global_step == int(os.environ.get("SIGTERM_AT", "0")) and trainer.global_rank == 0
                    and self._once(trainer, "sigterm")):
                os.kill(os.getpid(), signal.SIGTERM)


    if os.environ.get("KILL_BEFORE_PUBLISH_AT"):
        kill_before_publish(Path(run_dir), int(os.environ["KILL_BEFORE_PUBLISH_AT"]))
    if os.environ.get("KILL_IN_ASYNC_WRITE_AT"):
        kill_in_async_write(Path(run_dir), int(os.environ["KILL_IN_ASYNC_WRITE_AT"]))
    tp, pp = int(os.environ.get("TP", "1")), int(os.environ.get("PP", "1"))
    recipe = run.Partial(
        llm.pretrain,
        model=run.Config(llm.GPTModel, config=run.Config(llm.LlamaConfig, **llama_kwargs())),
        data=run.Config(llm.MockDataModule, seq_length=SEQ, micro_batch_size=1, global_batch_size=GBS,
                        num_train_samples=10_000,
                        rampup_batch_size=[int(v) for v in os.environ["RAMPUP"].split(",")]
                        if os.environ.get("RAMPUP") else None),
        trainer=run.Config(
            nl.Trainer, accelerator="cpu", devices=tp * pp, max_steps=max_steps, log_every_n_steps=1,
            limit_val_batches=0, num_sanity_val_steps=0, callbacks=[FaultInjector()],
            strategy=run.Config(nl.MegatronStrategy, tensor_model_parallel_size=tp,
                                pipeline_model_parallel_size=pp,
                                ckpt_async_save=bool(os.environ.get("ASYNC"))),
        ),
        optim=run.Config(nl.MegatronOptimizerModule,
                         config=run.Config(nl.OptimizerConfig, lr=3e-3, clip_grad=1.0, bf16=False,
                                           use_distributed_optimizer=False),
                         lr_scheduler=run.Config(nl.CosineAnnealingScheduler, warmup_steps=2, min_lr=3e-4)),
        log=run.Config(nl.NeMoLogger, explicit_log_dir=run_dir,
                       ckpt=run.Config(nl.ModelCheckpoint, every_n_train_steps=every_n, save_top_k=-1)),
        resume=run.Config(nl.AutoResume, resume_if_exists=True, resume_ignore_no_checkpoint=True,
                          restore_config=run.Config(nl.RestoreConfig, path=os.environ["RESTORE_FROM"])
                          if os.environ.get("RESTORE_FROM") else None),
    )
    fdl.build(recipe)()


def kill_before_publish(run_dir: Path, step: int) -> None:
    """SIGKILLs global rank 0 (once) when every rank has written checkpoint `step`'s shards, just
    before it would publish them (nemolite.lightning.exp_ckpt_dir.publish): a torn checkpoint.

    What was on disk is recorded in `torn_<step>.json` (file name -> bytes) for the test.
    """
    from nemolite.lightning import exp_ckpt_dir as ckdir

    real = ckdir.publish

    def publish(tmp: Path, final: Path, meta: dict) -> Path:
        record = run_dir / f"torn_{step}.json"
        if f"step={step}-" in final.name and not record.exists():
            record.write_text(json.dumps({f.name: f.stat().st_size for f in tmp.iterdir()}))
            os.kill(os.getpid(), signal.SIGKILL)
        return real(tmp, final, meta)

    ckdir.publish = publish


def kill_in_async_write(run_dir: Path, step: int) -> None:
    """SIGKILLs every rank (once) right after it handed checkpoint `step` to the async writer.

    `in_async_write_<step>_rank<r>.json` records how many writes were still unfinished then.
    """
    from nemolite.lightning.megatron_strategy import MegatronLightningStrategy

    real = MegatronLightningStrategy.save_checkpoint

    def save_checkpoint(self, checkpoint: dict, filepath: str, storage_options: object = None) -> None:  # noqa: ANN001
        real(self, checkpoint, filepath, storage_options)
        record = run_dir / f"in_async_write_{step}_rank{self.global_rank}.json"
        if f"step={step}-" in Path(filepath).name and not record.exists():
            pending = self._async_queue.get_num_unfinalized_calls() if self._async_queue else 0
            record.write_text(json.dumps({"unfinished_writes": pending}))
            os.kill(os.getpid(), signal.SIGKILL)

    MegatronLightningStrategy.save_checkpoint = save_checkpoint


def losses(run_dir: Path) -> dict[int, float]:
    """Per-step `reduced_train_loss` of a run (the last record of a re-run step wins)."""
    out: dict[int, float] = {}
    path = run_dir / "train_metrics.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        rec = json.loads(line)
        if "reduced_train_loss" in rec:
            out[rec["step"]] = rec["reduced_train_loss"]
    return dict(sorted(out.items()))


def global_batches(run_dir: Path) -> dict[int, float]:
    """Per-step `global_batch_size` of a run (the last record of a re-run step wins)."""
    path = run_dir / "train_metrics.jsonl"
    return dict(sorted({rec["step"]: rec["global_batch_size"] for rec in map(json.loads, path.read_text().splitlines())
                        if "global_batch_size" in rec}.items()))


def launch(run_dir: Path, steps: int, every: int, nproc: int = 1, timeout: float = 600,
           **env: str) -> subprocess.CompletedProcess:
    """Runs the script once (under torchrun when `nproc` > 1); returns the finished process.

    The run gets its own process group, killed afterwards: a SIGKILLed trainer leaves megatron's
    checkpoint-writer Manager process (multiprocessing "spawn", see megatron/core/
    dist_checkpointing/strategies/filesystem_async.py `_get_write_results_queue`) orphaned,
    holding our output pipe open. Output goes to a file for the same reason.
    """
    args = [str(HERE), str(run_dir), str(steps), str(every)]
    if nproc > 1:
        args = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    return run_in_own_group([sys.executable, *args], {**os.environ, "PYTHONUNBUFFERED": "1", **env}, timeout)


def run_in_own_group(cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Runs `cmd`; afterwards kills every process it left behind (found by an environment tag).

    torchrun starts each worker in its own session, so killing our process group is not enough:
    the orphaned Manager processes of SIGKILLed workers are found by the tag they inherited.
    """
    import tempfile
    import uuid

    tag = uuid.uuid4().hex
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, env={**env, "NEMOLITE_TEST_TAG": tag}, stdout=out,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        leftovers: list[int] = []
        try:
            code = proc.wait(timeout=timeout)
            time.sleep(0.5)  # let the kernel deliver death signals to what the run started
            leftovers = tagged(tag)
        finally:
            for pid in tagged(tag):
                os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.wait()
        out.seek(0)
        text = out.read()
    done = subprocess.CompletedProcess(cmd, code, text, text)
    done.leftovers = leftovers  # type: ignore[attr-defined]
    return done


def tagged(tag: str) -> list[int]:
    """Processes whose environment carries NEMOLITE_TEST_TAG=`tag` (Linux /proc)."""
    needle = f"NEMOLITE_TEST_TAG={tag}".encode()
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes().split(b"\0"):
                pids.append(int(environ.parent.name))
        except (OSError, ValueError):
            continue
    return pids


def run_until_done(run_dir: Path, steps: int, every: int, nproc: int = 1, tries: int = 5,
                   **env: str) -> list[subprocess.CompletedProcess]:
    """The same command again and again until it exits 0; returns every attempt."""
    procs = []
    for _ in range(tries):
        proc = launch(run_dir, steps, every, nproc, **env)
        procs.append(proc)
        if proc.returncode == 0:
            return procs
        if proc.returncode not in (-9, 1, 137):  # anything but our SIGKILL is a real failure
            raise AssertionError(proc.stdout[-6000:])
    raise AssertionError(f"no success after {tries} tries: {[p.returncode for p in procs]}")


def resumed_from(proc: subprocess.CompletedProcess) -> str:
    """The checkpoint an attempt resumed from, as its log names it."""
    return [ln for ln in proc.stdout.splitlines() if "INFO] resuming from" in ln][0]


def assert_torn_and_skipped(run_dir: Path, step: int, resumed: subprocess.CompletedProcess) -> None:
    """Checkpoint `step` had its shards on disk when the kill struck, and the restart skipped it."""
    torn = json.loads((run_dir / f"torn_{step}.json").read_text())
    shards = [n for n, size in torn.items() if n.endswith(".distcp") and size > 0]
    assert shards and "metadata.json" in torn, torn  # written, just not published
    assert f"step={step}-" not in resumed_from(resumed), resumed_from(resumed)


@pytest.mark.slow  # ~1-2 min on 2 cores; the default run keeps tests/lightning/test_checkpoint.py's kills
def test_resume_exact_after_kills_and_shape_mismatch_is_one_line(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    assert launch(ref, 6, 2).returncode == 0
    killed = tmp_path / "killed"
    first = launch(killed, 6, 2, KILL_AT="3")
    assert first.returncode == -9  # killed at step 3: step 2 is saved
    assert first.leftovers == []  # megatron's checkpoint writer died with it (resil_writer_queue)
    # The same run dir with a wider model: one line naming the checkpoint, before any training.
    proc = launch(killed, 6, 2, HIDDEN="32")
    assert proc.returncode != 0
    last = [line for line in proc.stdout.splitlines() if "DataFileError" in line][-1]
    assert "different model shape" in last and "hidden_size 64 vs 32" in last
    assert str(killed / "checkpoints") in last
    # Killed after step 4's shards were written, before they were published: the restart skips
    # the torn checkpoint, resumes from step 2 again, and runs to the end on the same curve.
    procs = run_until_done(killed, 6, 2, KILL_AT="3", KILL_BEFORE_PUBLISH_AT="4")
    assert [p.returncode for p in procs] == [-9, 0]
    assert_torn_and_skipped(killed, 4, procs[1])
    assert "step=2-" in resumed_from(procs[1])
    assert losses(killed) == losses(ref)
    assert len(losses(ref)) == 6
    ckpts = sorted(p.name for p in (killed / "checkpoints").iterdir())
    assert all(".tmp" not in name for name in ckpts) and len(ckpts) == 3, ckpts


@pytest.mark.slow  # three launches: ~1 min on 2 quiet cores (3 min measured on a loaded machine)
def test_resume_mid_rampup_continues_the_ramp_and_the_losses(tmp_path: Path) -> None:
    """Killed inside a batch-size ramp-up: the restored consumed-sample count gives the resumed
    steps the batches (and so the losses) of the uninterrupted run."""
    ramp = {"RAMPUP": "1,1,6"}  # to GBS=4: 0 -> 1, 1 -> 1, 2 -> 2, 4 -> 3, 7 -> 4, 11 -> 4
    ref = tmp_path / "ref"
    assert launch(ref, 6, 2, **ramp).returncode == 0
    assert global_batches(ref) == {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4}
    killed = tmp_path / "killed"
    procs = run_until_done(killed, 6, 2, KILL_AT="3", **ramp)
    assert [p.returncode for p in procs] == [-9, 0]
    assert "step=2-consumed_samples=2" in resumed_from(procs[1])  # mid-ramp
    assert global_batches(killed) == global_batches(ref)
    assert losses(killed) == losses(ref)


@pytest.mark.multiproc
@pytest.mark.nightly  # ~2 min per layout on 2 cores: `pytest -m nightly`
@pytest.mark.parametrize("layout", [{"TP": "2"}, {"PP": "2"}, {"TP": "2", "ASYNC": "1"}],
                         ids=["tp2", "pp2", "tp2_async"])
def test_resume_exact_after_kills_parallel(tmp_path: Path, layout: dict[str, str]) -> None:
    ref = tmp_path / "ref"
    assert launch(ref, 6, 2, nproc=2, **layout).returncode == 0
    killed = tmp_path / "killed"
    if "ASYNC" in layout:
        # Killed while the async writer still writes step 4 (resume from 2), then before step 6
        # is published (resume from 4).
        kills = {"KILL_IN_ASYNC_WRITE_AT": "4", "KILL_BEFORE_PUBLISH_AT": "6"}
    else:
        kills = {"KILL_BEFORE_PUBLISH_AT": "4"}
    procs = run_until_done(killed, 6, 2, nproc=2, KILL_AT="3", **kills, **layout)
    assert procs[-1].returncode == 0 and len(procs) == (4 if "ASYNC" in layout else 3)
    if "ASYNC" in layout:
        for rank in (0, 1):
            record = json.loads((killed / f"in_async_write_4_rank{rank}.json").read_text())
            assert record["unfinished_writes"] >= 1, record
        assert "step=2-" in resumed_from(procs[2])
        assert_torn_and_skipped(killed, 6, procs[3])
        assert "step=4-" in resumed_from(procs[3])
    else:
        assert_torn_and_skipped(killed, 4, procs[2])
        assert "step=2-" in resumed_from(procs[2])
    assert losses(killed) == losses(ref)
    assert len(losses(ref)) == 6


@pytest.mark.multiproc
@pytest.mark.nightly  # ~3 min on 2 cores; one process: tests/lightning/test_callbacks.py (default run)
def test_sigterm_on_one_rank_saves_on_all_and_the_same_command_resumes(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    assert launch(ref, 6, 100, nproc=2, TP="2").returncode == 0
    run_dir = tmp_path / "preempted"
    first = launch(run_dir, 6, 100, nproc=2, TP="2", SIGTERM_AT="3")  # no scheduled save before 100
    assert first.returncode == 0, first.stdout[-3000:]
    assert "preemption (SIGTERM) at step 3" in first.stdout and "preemption (a peer's signal)" in first.stdout
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == [
        f"default--reduced_train_loss={losses(ref)[3]:.2f}-step=3-consumed_samples=12-last"]
    assert launch(run_dir, 6, 100, nproc=2, TP="2", SIGTERM_AT="3").returncode == 0
    assert losses(run_dir) == losses(ref)


@pytest.mark.multiproc
@pytest.mark.nightly  # ~2 min on 2 cores
def test_tp2_checkpoint_resumes_as_tp1_on_the_same_curve(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    assert launch(ref, 6, 2, nproc=2, TP="2").returncode == 0
    run_dir = tmp_path / "resharded"
    assert launch(run_dir, 6, 2, nproc=2, TP="2", KILL_AT="5").returncode != 0  # step 4 saved
    proc = launch(run_dir, 6, 2, nproc=1)  # TP=1 now: megatron reshards the torch_dist checkpoint
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "step=4" in [ln for ln in proc.stdout.splitlines() if "INFO] resuming from" in ln][0]
    got, want = losses(run_dir), losses(ref)
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    assert got[5] == pytest.approx(want[5], rel=1e-5)  # weights resharded
    assert got[6] == pytest.approx(want[6], rel=1e-4)  # optimizer state resharded too


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
