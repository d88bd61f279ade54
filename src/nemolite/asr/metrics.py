"""Word and character error rates (edit distance over words / characters), as NeMo's WER metric."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences (substitutions, insertions, deletions)."""
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i]
        for j, h in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


@dataclass
class ErrorCounts:
    """Accumulated errors and reference lengths; `rate` is errors / reference tokens."""

    errors: int = 0
    tokens: int = 0

    def add(self, reference: Sequence[str], hypothesis: Sequence[str]) -> int:
        distance = edit_distance(reference, hypothesis)
        self.errors += distance
        self.tokens += len(reference)
        return distance

    @property
    def rate(self) -> float:
        return self.errors / self.tokens if self.tokens else float(self.errors > 0)


def word_error_rate(hypotheses: Sequence[str], references: Sequence[str], use_cer: bool = False) -> float:
    """Corpus WER (or CER): total edit distance over total reference words (characters)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    counts = ErrorCounts()
    for hyp, ref in zip(hypotheses, references):
        if use_cer:
            counts.add(list(ref), list(hyp))
        else:
            counts.add(ref.split(), hyp.split())
    return counts.rate
