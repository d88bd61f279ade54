"""`ASRModel`: what every nemolite ASR model shares: its NeMo-format config, `.nemo` I/O, hub loading.

A model is built from the `model:` section of a NeMo config (a plain dict), so the config of a
`.nemo` file written by NeMo builds the model as is, and the config a nemolite model writes is
one NeMo accepts. The config is kept verbatim apart from what the model fills in (decoder size,
tokenizer paths), so sections nemolite does not use (train_ds, optim, decoding, ...) survive a
round trip.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, TypeVar

import lightning.pytorch as pl
import torch

from nemolite.asr import nemo_file
from nemolite.asr.models import targets
from nemolite.errors import ConfigError, DataFileError

M = TypeVar("M", bound="ASRModel")


class ASRModel(pl.LightningModule):
    """Base of the ASR models: config, `.nemo` save/restore and `from_pretrained`.

    Args:
        cfg: the `model:` section of a NeMo ASR config.
        artifacts: files the config refers to as `nemo:<name>` (e.g. the tokenizer), by name.
    """

    def __init__(self, cfg: dict[str, Any], artifacts: dict[str, bytes] | None = None) -> None:
        super().__init__()
        self._cfg: dict[str, Any] = copy.deepcopy(dict(cfg))
        self._artifacts: dict[str, bytes] = dict(artifacts or {})
        self._source: Any = "model config"
        self._pending_rng: dict[str, Any] | None = None

    @property
    def cfg(self) -> dict[str, Any]:
        """The model's config, in NeMo's layout."""
        return self._cfg

    # ------------------------------------------------------------------ exact resume
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Adds every rank's RNG states (dropout, SpecAugment, dither continue exactly on resume)."""
        from nemolite.lightning import rng_state

        checkpoint[rng_state.KEY] = rng_state.gather()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from nemolite.lightning import rng_state

        self._pending_rng = rng_state.mine(checkpoint.get(rng_state.KEY))

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Restored at the first batch rather than at load, after whatever Lightning draws while it
        # sets the loop up, as the megatron strategy does (megatron_strategy.py, training_step).
        if self._pending_rng is not None:
            from nemolite.lightning import rng_state

            rng_state.restore(self._pending_rng)
            self._pending_rng = None

    # ------------------------------------------------------------------ .nemo files
    @classmethod
    def restore_from(
        cls: type[M],
        restore_path: str | Path,
        map_location: str | torch.device | None = None,
        strict: bool = True,
    ) -> M:
        """Loads a `.nemo` file written by NeMo or nemolite (any supported model type).

        Args:
            restore_path: the `.nemo` file.
            map_location: device to put the weights on (default: CPU).
            strict: require the checkpoint's keys to match the model's exactly.
        """
        archive = nemo_file.read_nemo(restore_path)
        model_cls = targets.model_class(archive.config.get("target"), restore_path)
        if not issubclass(model_cls, cls):
            raise DataFileError(
                restore_path,
                f"holds a {model_cls.__name__}, not a {cls.__name__}",
                f"load it with {model_cls.__name__}.restore_from or ASRModel.restore_from",
            )
        model = model_cls._from_archive(archive, restore_path)
        missing, unexpected = model.load_state_dict(archive.state_dict, strict=False)
        if strict and (missing or unexpected):
            detail = f"missing keys {missing[:3]}" if missing else f"unexpected keys {unexpected[:3]}"
            raise DataFileError(
                restore_path,
                f"weights do not match the {model_cls.__name__} its config describes ({detail})",
                "pass strict=False to load what matches, or re-export the checkpoint",
            )
        model.eval()
        return model.to(map_location) if map_location is not None else model

    @classmethod
    def _from_archive(cls: type[M], archive: nemo_file.NemoArchive, source: Any) -> M:
        model = cls(archive.config, artifacts=archive.artifacts, source=source)  # type: ignore[call-arg]
        return model

    def save_to(self, save_path: str | Path) -> Path:
        """Writes the model as a `.nemo` file that NeMo (and nemolite) can restore."""
        config = copy.deepcopy(self._cfg)
        config["target"] = targets.nemo_name(f"{type(self).__module__}.{type(self).__name__}", targets.MODELS)
        config.setdefault("nemo_version", "3.0.0")
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        archive = nemo_file.NemoArchive(config=config, state_dict=state, artifacts=dict(self._artifacts))
        return nemo_file.write_nemo(save_path, archive)

    @classmethod
    def from_pretrained(cls: type[M], model_name: str, map_location: str | None = None) -> M:
        """Downloads `model_name` (a Hugging Face repo such as `nvidia/stt_en_fastconformer_ctc_large`)
        through huggingface-hub, or uses its cached copy (`HF_HUB_OFFLINE=1`), and restores its `.nemo`.

        `snapshot_download` rather than `list_repo_files` + `hf_hub_download`: listing a repository is
        an API call that offline mode refuses, while a snapshot resolves from the cache's refs.
        """
        from huggingface_hub import snapshot_download

        if "/" not in model_name:
            model_name = f"nvidia/{model_name}"
        try:
            folder = Path(snapshot_download(model_name, allow_patterns=["*.nemo"]))
        except Exception as exc:  # noqa: BLE001 - offline and not cached, unknown repo, auth: one line
            raise ConfigError("model_name", model_name, f"cannot fetch the repository ({type(exc).__name__})",
                              "check the name and your network, or the HF_HUB_OFFLINE cache (HF_HOME)") from None
        files = sorted(folder.rglob("*.nemo"))
        if not files:
            raise ConfigError("model_name", model_name, "the repository holds no .nemo file", "pick a NeMo ASR model repository")
        return cls.restore_from(files[0], map_location=map_location)
