"""NeMo's JSON-lines manifests: one utterance per line with `audio_filepath`, `duration`, `text`.

An optional `offset` (seconds) selects a segment of a longer file. Relative audio paths are taken
relative to the manifest's directory, as NeMo does. Every problem is one line naming the manifest
and the line number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from nemolite.errors import DataFileError

REQUIRED = ("audio_filepath", "duration", "text")


@dataclass(frozen=True)
class ManifestEntry:
    """One utterance of a manifest."""

    audio_filepath: Path
    duration: float
    text: str
    offset: float = 0.0
    line: int = 0  # 1-based line in the manifest, for error messages


def read_manifest(
    path: str | Path,
    min_duration: float | None = None,
    max_duration: float | None = None,
    check_audio: bool = True,
) -> list[ManifestEntry]:
    """Reads a manifest; keeps utterances with min_duration <= duration <= max_duration.

    Args:
        path: the JSON-lines manifest.
        min_duration: drop shorter utterances (seconds).
        max_duration: drop longer utterances (seconds).
        check_audio: fail on a missing audio file (named with its line) before any work starts.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(path, "no such manifest", "give a JSON-lines manifest (audio_filepath, duration, text)")
    entries = []
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            entry = _parse(raw, path, number)
            if check_audio and not entry.audio_filepath.is_file():
                raise DataFileError(
                    f"{path}:{number}", f"audio file {entry.audio_filepath} does not exist", "fix the path or remove the line"
                )
            if min_duration is not None and entry.duration < min_duration:
                continue
            if max_duration is not None and entry.duration > max_duration:
                continue
            entries.append(entry)
    return entries


def _parse(raw: str, path: Path, number: int) -> ManifestEntry:
    where = f"{path}:{number}"
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataFileError(where, f"not valid JSON ({exc.msg})", "write one JSON object per line") from None
    if not isinstance(item, dict):
        raise DataFileError(where, "not a JSON object", "write one JSON object per line")
    missing = [k for k in REQUIRED if k not in item]
    if missing:
        raise DataFileError(where, f"missing field {missing[0]!r}", f"every line needs {', '.join(REQUIRED)}")
    try:
        duration, offset = float(item["duration"]), float(item.get("offset", 0.0) or 0.0)
    except (TypeError, ValueError):
        raise DataFileError(where, f"duration={item['duration']!r} is not a number", "give seconds as a number") from None
    audio = Path(item["audio_filepath"])
    if not audio.is_absolute():
        audio = path.parent / audio
    return ManifestEntry(audio, duration, str(item["text"]), offset, number)


def write_manifest(path: str | Path, entries: list[dict]) -> Path:
    """Writes manifest lines atomically (a temporary file renamed into place)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8")
    tmp.replace(path)
    return path
