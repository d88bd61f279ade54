"""One ASR training run through `run_asr_training` (the `nemo asr train` runtime), for the DDP and
resume tests in test_asr_parallel.py; plain python for one process, torchrun for two.

    python asr_harness.py RUN_DIR MAX_STEPS EVERY_N
    (env: MANIFEST, TOKENIZER, ACCUM (batches per optimizer step), AUGMENT=1 (dropout, SpecAugment
     and dither on, as in the recipes), KILL_AT (SIGKILL after these steps, comma-separated, once each per run dir))

Every rank appends each batch's loss to `RUN_DIR/losses_rank<r>.jsonl`. One thread per process,
in every layout: convolutions sum in another order with another thread count (docs/asr.md).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path


def main(run_dir: str, max_steps: int, every_n: int) -> None:
    import lightning.pytorch as pl
    import torch

    from nemolite import asr
    from nemolite import lightning as nl
    from nemolite.asr.training import run_asr_training

    torch.set_num_threads(1)
    kill_at = [int(s) for s in os.environ.get("KILL_AT", "").split(",") if s]

    class Recorder(pl.Callback):
        """Per-batch losses of this rank; SIGKILLs the process after step KILL_AT (once)."""

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            rank = trainer.global_rank
            # Lightning divides the returned loss by the accumulation (a power of two here: exact).
            loss = float(outputs["loss"]) * trainer.accumulate_grad_batches
            record = {"step": trainer.global_step, "epoch": trainer.current_epoch, "batch": batch_idx,
                      "utterances": int(batch[0].shape[0]), "loss": loss}
            with open(Path(run_dir) / f"losses_rank{rank}.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            flag = Path(run_dir) / f"killed_{trainer.global_step}_rank{rank}"
            if trainer.global_step in kill_at and not flag.exists():
                flag.touch()
                os.kill(os.getpid(), signal.SIGKILL)

    augment = bool(os.environ.get("AUGMENT"))
    randomness = {} if augment else dict(freq_masks=0, time_masks=0, dropout=0.0, dither=0.0)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    run_asr_training(
        model=asr.FastConformerCTC(size="tiny", tokenizer_dir=os.environ["TOKENIZER"], lr=3e-3, warmup_steps=2,
                                   **randomness),
        data=asr.AudioToTextDataModule(train_manifest=os.environ["MANIFEST"], max_batch_seconds=3.5, max_duration=3.5),
        trainer=nl.Trainer(accelerator="cpu", devices=world, strategy=nl.DDPStrategy(), max_steps=max_steps,
                           accumulate_grad_batches=int(os.environ.get("ACCUM", "1")), gradient_clip_val=1.0,
                           num_sanity_val_steps=0, log_every_n_steps=1, enable_progress_bar=False,
                           callbacks=[Recorder()]),
        log=nl.NeMoLogger(explicit_log_dir=run_dir,
                          ckpt=nl.ModelCheckpoint(every_n_train_steps=every_n, save_top_k=-1)),
        resume=nl.AutoResume(resume_if_exists=True, resume_ignore_no_checkpoint=True),
    )  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
