"""FastConformer-CTC large (120M), NeMo's published configuration, for GPUs.

NeMo's examples/asr/conf/fastconformer/fast-conformer_ctc_bpe.yaml with the large row of its size
table: AdamW (lr 1e-3, betas 0.9/0.98), cosine annealing with 15k warmup steps to 1e-4, SpecAugment
(2 frequency, 10 time masks), bf16 mixed precision, plain DDP on one node of 8 GPUs (the model
fits on one GPU; data parallelism is all it needs). Batches hold 16.7 s x 32 = 534 s of audio
per GPU. Pass your manifests (data.train_manifest, data.validation_manifest) and a tokenizer
(model.tokenizer_dir, from `nemo asr tokenizer`).
"""


from typing import Optional

import nemo_run as run

from nemolite import asr
from nemolite.recipes import fastconformer_ctc as fc

NAME = "fastconformer_ctc_large"


@run.cli.factory(target=asr.train, name=NAME)
def train_recipe(dir: Optional[str] = None, name: str = "default", num_nodes: int = 1, num_gpus_per_node: int = 8) -> run.Partial:
    """Train FastConformer-CTC large from scratch on GPUs (bf16, DDP), 200k steps."""
    return fc.train_recipe(
        model=fc.model("large", lr=1e-3, warmup_steps=15000, min_lr=1e-4),
        data=run.Config(asr.AudioToTextDataModule, max_batch_seconds=round(16.7 * 32), num_workers=8),
        trainer=fc.trainer(accelerator="gpu", devices=num_gpus_per_node, num_nodes=num_nodes, max_steps=200_000,
                           val_check_interval=2000, precision="bf16-mixed", log_every_n_steps=100),
        log=fc.logger(dir, name, every_n_train_steps=2000, save_top_k=5),
    )  # fmt: skip
