"""FastConformer-CTC model configs in NeMo's layout (examples/asr/conf/fastconformer/fast-conformer_ctc_bpe.yaml).

`fastconformer_ctc_config(...)` returns the `model:` section NeMo's YAML holds: preprocessor,
spec_augment, encoder, decoder, optim, train_ds/validation_ds placeholders (NeMo's BPE
`transcribe` reads `validation_ds`), so a model built from it saves a `.nemo` NeMo restores.
`SIZES` are the published variants from that file's table (small 14M, medium 32M, large 120M).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHAR_LABELS = list(" abcdefghijklmnopqrstuvwxyz'")


@dataclass(frozen=True)
class FastConformerSize:
    """The encoder shape and weight decay of one published FastConformer-CTC variant."""

    d_model: int
    n_heads: int
    n_layers: int
    weight_decay: float
    conv_kernel_size: int = 9
    subsampling_conv_channels: int = 256


SIZES = {
    "small": FastConformerSize(d_model=176, n_heads=4, n_layers=16, weight_decay=0.0),
    "medium": FastConformerSize(d_model=256, n_heads=4, n_layers=16, weight_decay=1e-3),
    # The YAML body says 18 layers; its table and the released stt_en_fastconformer_ctc_large: 17.
    "large": FastConformerSize(d_model=512, n_heads=8, n_layers=17, weight_decay=1e-3),
    # Not published: the CPU recipe's model, small enough to train on two cores in minutes.
    "tiny": FastConformerSize(
        d_model=96, n_heads=4, n_layers=4, weight_decay=1e-3, conv_kernel_size=9, subsampling_conv_channels=32
    ),
}


def fastconformer_ctc_config(
    size: FastConformerSize,
    *,
    labels: list[str] | None = None,
    tokenizer_dir: str | None = None,
    sample_rate: int = 16000,
    lr: float = 1e-3,
    warmup_steps: int = 15000,
    min_lr: float = 1e-4,
    max_steps: int | None = None,
    freq_masks: int = 2,
    time_masks: int = 10,
    dropout: float = 0.1,
) -> dict[str, Any]:
    """A FastConformer-CTC `model:` config: characters (`labels`) or BPE (`tokenizer_dir`)."""
    if (labels is None) == (tokenizer_dir is None):
        raise ValueError("give labels (character model) or tokenizer_dir (BPE model), not both")
    data = {"manifest_filepath": None, "sample_rate": sample_rate, "batch_size": 16}
    sched: dict[str, Any] = {"name": "CosineAnnealing", "warmup_steps": warmup_steps, "warmup_ratio": None, "min_lr": min_lr}
    if max_steps is not None:
        sched["max_steps"] = max_steps
    cfg: dict[str, Any] = {
        "sample_rate": sample_rate,
        "log_prediction": True,
        "ctc_reduction": "mean_volume",
        "skip_nan_grad": False,
        "train_ds": {**data, "shuffle": True, "max_duration": 16.7, "min_duration": 0.1},
        "validation_ds": {**data, "shuffle": False, "use_start_end_token": False},
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": sample_rate, "normalize": "per_feature", "window_size": 0.025,
            "window_stride": 0.01, "window": "hann", "features": 80, "n_fft": 512, "log": True,
            "frame_splicing": 1, "dither": 1e-5, "pad_to": 0, "pad_value": 0.0,
        },
        "spec_augment": {
            "_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
            "freq_masks": freq_masks, "time_masks": time_masks, "freq_width": 27, "time_width": 0.05,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": 80, "feat_out": -1, "n_layers": size.n_layers, "d_model": size.d_model,
            "subsampling": "dw_striding", "subsampling_factor": 8,
            "subsampling_conv_channels": size.subsampling_conv_channels,
            "causal_downsampling": False, "ff_expansion_factor": 4, "self_attention_model": "rel_pos",
            "n_heads": size.n_heads, "att_context_size": [-1, -1], "att_context_style": "regular",
            "xscaling": True, "untie_biases": True, "pos_emb_max_len": 5000,
            "conv_kernel_size": size.conv_kernel_size, "conv_norm_type": "batch_norm",
            "conv_context_size": None, "dropout": dropout, "dropout_pre_encoder": dropout,
            "dropout_emb": 0.0, "dropout_att": dropout,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
            "feat_in": None, "num_classes": -1, "vocabulary": list(labels or []),
        },
        "optim": {
            "name": "adamw", "lr": lr, "betas": [0.9, 0.98], "weight_decay": size.weight_decay,
            "sched": sched,
        },
    }  # fmt: skip
    if labels is not None:
        cfg["labels"] = list(labels)
    else:
        cfg["tokenizer"] = {"dir": tokenizer_dir, "type": "bpe"}
    return cfg
