"""Builds the bundled instruction set from the bundled corpus (maintainers; deterministic).

Usage: `python _build_instructions.py` (in this directory). Reads `../corpus/english.jsonl.gz`
(public domain, see ../corpus/README.md) and writes `training.jsonl`, `validation.jsonl` and
`test.jsonl` here. Not imported by nemolite.
"""

import gzip
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "corpus" / "english.jsonl.gz"
_ENTRY = re.compile(r"^([A-Z][A-Z'-]*(?: [A-Z'-]+)*), ([a-z]{1,6})\.\s+(.*)$", re.S)
MAX_ANSWER = 180  # characters: the first sentence(s) of a definition; with the prompt < 256 bytes


def definition(text: str) -> tuple[str, str, str] | None:
    """(headword, part of speech, first sentences of the definition) of a dictionary entry."""
    match = _ENTRY.match(text.strip())
    if match is None:
        return None
    word, pos, body = match.groups()
    body = " ".join(body.split("\n\n")[0].split())  # the prose definition, before any verse
    sentences = re.split(r"(?<=[.!?])\s+", body)
    answer = ""
    for sentence in sentences:
        if answer and len(answer) + 1 + len(sentence) > MAX_ANSWER:
            break
        answer = f"{answer} {sentence}".strip()
    if not answer or len(answer) > MAX_ANSWER:
        return None
    return word, pos, answer


def main() -> None:
    records = []
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            if not doc["source"].startswith("The Devil's Dictionary"):
                continue
            parsed = definition(doc["text"])
            if parsed is not None:
                word, pos, answer = parsed
                records.append({"input": f"Define {word.lower()} ({pos}.), as The Devil's Dictionary does.\n",
                                "output": answer})
    # Every 25th record is held out for validation and the next one for test: a fixed, even split.
    splits: dict[str, list[dict[str, str]]] = {"training": [], "validation": [], "test": []}
    for i, record in enumerate(records):
        name = "validation" if i % 25 == 0 else "test" if i % 25 == 1 else "training"
        splits[name].append(record)
    for name, rows in splits.items():
        with open(HERE / f"{name}.jsonl", "w", encoding="utf-8") as out:
            out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


if __name__ == "__main__":
    main()
