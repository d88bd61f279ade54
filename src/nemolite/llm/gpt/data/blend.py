"""NeMo's `paths` argument -> megatron-core's blend / blend_per_split (pure Python, light).

`paths` is one prefix (`"data/text_document"`), a list of prefixes, a weighted list
(`["30", "data/a", "70", "data/b"]`), or a dict of such per split (`{"train": ..., "validation":
..., "test": ...}`), as in NeMo's `PreTrainingDataModule`.
"""

from typing import Any

from nemolite.errors import ConfigError

Blend = tuple[list[str], list[float] | None]
SPLITS = ("train", "validation", "test")


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def parse_blend(paths: Any, field: str = "data.paths") -> Blend:
    """One prefix or a (weighted) list -> (prefixes, weights or None)."""
    if isinstance(paths, str):
        return [paths], None
    if not isinstance(paths, (list, tuple)) or not paths:
        raise ConfigError(field, paths, "must be a prefix, a list of prefixes or a weighted list",
                          'e.g. data.paths=data/a_text_document or ["30", "a", "70", "b"]')
    numeric = [_is_number(p) for p in paths]
    if not any(numeric):
        return [str(p) for p in paths], None
    pairs_ok = len(paths) % 2 == 0 and all(numeric[0::2]) and not any(numeric[1::2])
    if not pairs_ok:
        raise ConfigError(field, list(paths), "blend weights do not match the paths",
                          'alternate weight and prefix: ["30", "data/a", "70", "data/b"]')
    weights = [float(w) for w in paths[0::2]]
    if any(w <= 0 for w in weights):
        raise ConfigError(field, list(paths), "blend weights must be positive",
                          "drop prefixes you do not want instead of giving them weight 0")
    return [str(p) for p in paths[1::2]], weights


def parse_paths(paths: Any) -> tuple[Blend | None, list[Blend | None] | None]:
    """-> (blend, None) for one distribution split by `split`, or (None, blend_per_split)."""
    if not isinstance(paths, dict):
        return parse_blend(paths), None
    unknown = sorted(set(paths) - set(SPLITS))
    if unknown:
        raise ConfigError(f"data.paths.{unknown[0]}", paths[unknown[0]], "is not a split name",
                          f"use the keys {', '.join(SPLITS)}")
    if "train" not in paths:
        raise ConfigError("data.paths", paths, "a per-split dict needs a 'train' entry",
                          "add data.paths.train=<prefix or weighted list>")
    return None, [parse_blend(paths[s], f"data.paths.{s}") if s in paths else None
                  for s in SPLITS]


def parse_split(split: str) -> list[float]:
    """'900,50,50' -> normalised [0.9, 0.05, 0.05] (missing trailing entries are 0)."""
    try:
        parts = [float(p) for p in str(split).replace("/", ",").split(",") if p.strip()]
    except ValueError:
        parts = []
    if not parts or len(parts) > 3 or any(p < 0 for p in parts) or sum(parts) <= 0:
        raise ConfigError("data.split", split, "must be up to three non-negative weights",
                          'e.g. data.split="900,50,50" (train, validation, test)')
    parts += [0.0] * (3 - len(parts))
    return [p / sum(parts) for p in parts]


def split_document_counts(num_documents: int, split: list[float]) -> list[int]:
    """Documents per split, rounded as megatron-core's builder does (`_build_megatron_dataset_splits`)."""
    bounds = [0.0, split[0], split[0] + split[1], 1.0]
    return [int(round(bounds[i + 1] * num_documents)) - int(round(bounds[i] * num_documents))
            for i in range(3)]
