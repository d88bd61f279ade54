"""Rebuilds `english.jsonl.gz` from the Debian packages named in README.md (maintainers only).

Usage: `apt-get download dict-devil miscfiles`, extract both with `dpkg-deb -x PKG.deb root`,
then `python _build_corpus.py root english.jsonl.gz`. Not imported by nemolite.
"""

import gzip
import json
import re
import sys
from pathlib import Path

_HEADWORD = re.compile(r"^[A-Z][A-Z'-]*(?: [A-Z'-]+)*, [a-z]{1,6}\.")


def devil_entries(text: str) -> list[str]:
    """Splits The Devil's Dictionary into its preface and one document per headword."""
    start = text.index("                              PREFACE")
    body = text[start:].split("\n abcdefghijklmnopqrstuvwxyz")[0]
    docs: list[list[str]] = [[]]
    for line in body.splitlines():
        if _HEADWORD.match(line) and docs[-1]:
            docs.append([])
        docs[-1].append(line)
    return ["\n".join(d).strip() for d in docs if "".join(d).strip()]


def main(root: str, out: str) -> None:
    base = Path(root)
    devil = gzip.open(base / "usr/share/dictd/devil.dict.dz", "rt", encoding="latin-1").read()
    records = [{"text": t, "source": "The Devil's Dictionary (Ambrose Bierce, 1911)"}
               for t in devil_entries(devil)]
    for name, title in (("us-declaration", "Declaration of Independence (1776)"),
                        ("us-constitution", "Constitution of the United States")):
        text = gzip.open(base / f"usr/share/state/{name}.gz", "rt", encoding="latin-1").read()
        records += [{"text": p.strip(), "source": title}
                    for p in re.split(r"\n\s*\n\s*\n", text) if p.strip()]
    # mtime=0 keeps the archive byte-identical between rebuilds.
    with gzip.GzipFile(out, "wb", mtime=0) as f:
        for record in records:
            f.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
