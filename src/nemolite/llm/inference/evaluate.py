"""Heavy: `llm.evaluate`: lm-evaluation-harness tasks and perplexity on a checkpoint, results on disk.

Writes `<output dir>/results.json` (lm-eval's results, and perplexity when asked) and
`results.md` (a short table), each written aside and renamed into place.
"""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from nemolite.errors import ConfigError, DataFileError
from nemolite.llm.inference.engine import InferenceEngine


@functools.cache
def task_manager(include_path: str | None) -> Any:
    """lm-eval's task index (its bundled tasks plus the YAML files under `include_path`).

    Cached: indexing lm-eval's thousands of task files takes seconds.
    """
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path) if include_path else TaskManager()


def check_tasks(tasks: list[str], manager: Any) -> None:
    """A one-line error with the closest task names for each task lm-eval does not know."""
    import difflib

    known = set(manager.all_tasks)
    for i, name in enumerate(tasks):
        if name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=5, cutoff=0.5)
        hint = f"close names: {', '.join(close)}" if close else "see `lm-eval ls tasks`"
        raise ConfigError(f"tasks[{i}]", name, "unknown lm-eval task", hint)


def run_tasks(engine: InferenceEngine, tasks: list[str], manager: Any, *, limit: float | None,
              num_fewshot: int | None, batch_size: int, log_samples: bool = False) -> dict[str, Any]:
    """lm-eval's `simple_evaluate` with the nemolite backend around `engine`."""
    from lm_eval import simple_evaluate

    from nemolite.llm.inference.lm_eval_backend import NemoliteLM

    lm = NemoliteLM(engine=engine, batch_size=batch_size)
    results = simple_evaluate(model=lm, tasks=tasks, limit=limit, num_fewshot=num_fewshot,
                              task_manager=manager, log_samples=log_samples, bootstrap_iters=0)
    return results or {}


def read_texts(path: Path, tokenizer: Any) -> list[list[int]]:
    """Token ids per document of a JSONL file (its "text" field) or an indexed dataset prefix."""
    if path.suffix == ".jsonl":
        if not path.is_file():
            raise DataFileError(path, "no such file", "give a JSONL file with a \"text\" field per line")
        docs = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    docs.append(tokenizer.text_to_ids(json.loads(line)["text"]))
                except (ValueError, KeyError, TypeError):
                    raise DataFileError(f"{path}:{n}", "not a JSON object with a \"text\" string",
                                        "write one {\"text\": ...} object per line") from None
        return docs
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    if not Path(f"{path}.idx").is_file() or not Path(f"{path}.bin").is_file():
        raise DataFileError(path, "neither a .jsonl file nor an indexed dataset prefix (.bin/.idx)",
                            "give a JSONL file or the prefix `nemo llm preprocess` wrote")
    data = IndexedDataset(str(path))
    return [list(map(int, data[i])) for i in range(len(data))]


@torch.no_grad()
def perplexity(engine: InferenceEngine, docs: list[list[int]], *, limit: int | None = None) -> dict[str, Any]:
    """exp(mean negative log-likelihood per predicted token), each document in context-sized windows."""
    total_nll, tokens = 0.0, 0
    window = engine.seq_length
    for ids in docs[:limit]:
        for start in range(0, max(len(ids) - 1, 0), window):
            chunk = ids[start : start + window + 1]
            if len(chunk) < 2:
                continue
            lp = engine.log_probs(torch.tensor([chunk[:-1]]))[0]
            total_nll -= float(lp.gather(-1, torch.tensor(chunk[1:])[:, None]).sum())
            tokens += len(chunk) - 1
    if tokens == 0:
        raise ConfigError("perplexity_data", None, "holds no document of 2 or more tokens", "give longer texts")
    return {"perplexity": math.exp(total_nll / tokens), "nll_per_token": total_nll / tokens, "tokens": tokens}


def table(results: dict[str, Any]) -> str:
    """A markdown table: task, metric, value."""
    rows = ["| task | metric | value |", "|---|---|---|"]
    for task, metrics in sorted(results.get("results", {}).items()):
        for key, value in sorted(metrics.items()):
            if isinstance(value, (int, float)) and "stderr" not in key and key != "sample_len":
                rows.append(f"| {task} | {key.split(',')[0]} | {value:.4f} |")
    ppl = results.get("perplexity")
    if ppl:
        rows.append(f"| perplexity_data | perplexity | {ppl['perplexity']:.4f} |")
    return "\n".join(rows) + "\n"


def write_results(out_dir: Path, results: dict[str, Any]) -> Path:
    """results.json and results.md under `out_dir`, each published by rename."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("results.json", json.dumps(results, indent=1, default=str)), ("results.md", table(results))):
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, out_dir / name)
    return out_dir
