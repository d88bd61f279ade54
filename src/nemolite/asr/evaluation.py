"""What `nemo asr transcribe / evaluate / tokenizer` do (heavy: loads torch and the model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nemolite.errors import ConfigError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


def load_model(model: str) -> Any:
    """A `.nemo` file, or a Hugging Face repository name."""
    from nemolite.asr.models.base import ASRModel

    path = Path(model).expanduser()
    if path.suffix == ".nemo" or path.exists():
        return ASRModel.restore_from(path)
    return ASRModel.from_pretrained(model)


def audio_files(audio: str) -> list[str]:
    """The files `audio` names: one file, a directory's audio files (sorted), or a comma list."""
    paths = []
    for part in [p.strip() for p in str(audio).split(",") if p.strip()]:
        path = Path(part).expanduser()
        if path.is_dir():
            paths += sorted(str(p) for p in path.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        elif path.is_file():
            paths.append(str(path))
        else:
            raise ConfigError("audio", part, "no such file or directory", "give audio files, a directory, or a comma-separated list")
    if not paths:
        raise ConfigError("audio", audio, f"no audio files ({', '.join(AUDIO_SUFFIXES)})", "point at audio files")
    return paths


def run_transcribe(model: str, audio: str, batch_size: int = 8, output: str | None = None) -> list[str]:
    from rich.console import Console
    from rich.table import Table

    files = audio_files(audio)
    asr_model = load_model(model)
    texts = asr_model.transcribe(files, batch_size=batch_size)
    table = Table("audio", "transcript")
    for path, text in zip(files, texts):
        table.add_row(Path(path).name, text)
    Console().print(table)
    if output:
        from nemolite.asr.data.manifest import write_manifest

        write_manifest(output, [{"audio_filepath": p, "pred_text": t} for p, t in zip(files, texts)])
    return texts


def run_evaluate(model: str, manifest: str, batch_size: int = 8, output: str | None = None) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    from nemolite.asr.data.manifest import read_manifest, write_manifest
    from nemolite.asr.metrics import ErrorCounts

    entries = read_manifest(manifest)
    if not entries:
        raise ConfigError("manifest", manifest, "has no utterances", "give a manifest with at least one line")
    asr_model = load_model(model)
    hyps = asr_model.transcribe([str(e.audio_filepath) for e in entries], batch_size=batch_size)
    words, chars = ErrorCounts(), ErrorCounts()
    table = Table("audio", "reference", "hypothesis", "WER", "CER", title=f"{Path(manifest).name}: per utterance")
    rows = []
    for entry, hyp in zip(entries, hyps):
        w = words.add(entry.text.split(), hyp.split())
        c = chars.add(list(entry.text), list(hyp))
        wer_i, cer_i = w / max(1, len(entry.text.split())), c / max(1, len(entry.text))
        table.add_row(entry.audio_filepath.name, entry.text, hyp, f"{100 * wer_i:.1f}%", f"{100 * cer_i:.1f}%")
        rows.append({"audio_filepath": str(entry.audio_filepath), "text": entry.text, "pred_text": hyp,
                     "wer": round(wer_i, 4), "cer": round(cer_i, 4)})  # fmt: skip
    console = Console()
    console.print(table)
    console.print(f"[bold]WER {100 * words.rate:.2f}%  CER {100 * chars.rate:.2f}%  ({len(entries)} utterances)")
    if output:
        write_manifest(output, rows)
    return {"wer": words.rate, "cer": chars.rate, "utterances": len(entries)}


def run_tokenizer(manifest: str, vocab_size: int = 128, output_dir: str = "tokenizer") -> str:
    from nemolite.asr.data.manifest import read_manifest
    from nemolite.asr.tokenizers import train_sentencepiece

    if vocab_size < 2:
        raise ConfigError("vocab_size", vocab_size, "too small", "use e.g. vocab_size=128")
    texts = [e.text for e in read_manifest(manifest, check_audio=False)]
    if not texts:
        raise ConfigError("manifest", manifest, "has no texts", "give a manifest with `text` fields")
    out = train_sentencepiece(texts, output_dir, vocab_size=vocab_size)
    print(f"Wrote the tokenizer to {out}")
    return str(out)
