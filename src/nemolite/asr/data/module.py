"""`AudioToTextDataModule`: the light data spec ASR recipes bind (manifests, batch size in seconds).

Building it (inside the job) imports torch and Lightning (`nemolite.asr.data.dataset`). Without
manifests it uses the English speech set made by eSpeak NG (`nemolite.asr.data.speech_set`),
generated at first use into `speech_set_dir`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemolite.errors import ConfigError


@dataclass(kw_only=True)
class AudioToTextDataModule:
    """Speech and transcripts from NeMo JSON-lines manifests.

    Attributes:
        train_manifest: training manifest (None: the generated English speech set's train split).
        validation_manifest: validation manifest (None: the speech set's held-out split when
            train_manifest is None, else no validation).
        max_batch_seconds: total audio per batch, in seconds (batches vary in utterance count).
        min_duration: drop training utterances shorter than this (seconds).
        max_duration: drop training utterances longer than this (seconds).
        resample: resample audio at another rate to the model's (else such audio is an error).
        seed: seed of the per-epoch shuffle.
        num_workers: DataLoader worker processes.
        speech_set_dir: where the generated speech set lives (None: ~/.cache/nemolite/speech_set_v<VERSION>).
    """

    train_manifest: str | None = None
    validation_manifest: str | None = None
    max_batch_seconds: float = 60.0
    min_duration: float | None = 0.1
    max_duration: float | None = 16.7
    resample: bool = True
    seed: int = 1234
    num_workers: int = 0
    speech_set_dir: str | None = None

    def validate(self, prefix: str = "data") -> None:
        if not self.max_batch_seconds > 0:
            raise ConfigError(f"{prefix}.max_batch_seconds", self.max_batch_seconds, "must be positive", f"set {prefix}.max_batch_seconds=60")
        if self.max_duration is not None and self.max_duration > self.max_batch_seconds:
            raise ConfigError(
                f"{prefix}.max_duration", self.max_duration, f"longer than a whole batch ({self.max_batch_seconds}s)",
                f"lower {prefix}.max_duration or raise {prefix}.max_batch_seconds",
            )
        for name in ("train_manifest", "validation_manifest"):
            value = getattr(self, name)
            if value is not None and not Path(value).expanduser().is_file():
                raise ConfigError(f"{prefix}.{name}", value, "no such file", "give a JSON-lines manifest path")

    def manifests(self) -> tuple[str, str | None]:
        """(train, validation) manifest paths, making the speech set first if it is needed."""
        if self.train_manifest is not None:
            return str(Path(self.train_manifest).expanduser()), self.validation_manifest
        from nemolite.asr.data.speech_set import ensure_speech_set

        root = ensure_speech_set(self.speech_set_dir)
        return str(root / "train.json"), self.validation_manifest or str(root / "test.json")

    def build(self, tokenizer: Any, sample_rate: int) -> Any:
        """The Lightning data module (heavy)."""
        from nemolite.asr.data.dataset import AudioToTextDataModuleImpl

        self.validate()
        train, validation = self.manifests()
        return AudioToTextDataModuleImpl(self, tokenizer, sample_rate, train, validation)
