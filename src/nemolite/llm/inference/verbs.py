"""`llm.generate` and `llm.evaluate`: the inference verbs (`nemo llm generate ...`, `nemo llm evaluate ...`).

Light module: the arguments are checked here (a one-line error, before anything loads); the model is
loaded by `nemolite.llm.inference.generate` / `.evaluate` (torch, megatron-core). No
`from __future__ import annotations`: nemo-run reads these signatures' annotations as objects.
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

import nemo_run as run

from nemolite.cli.context import NemoliteRunContext
from nemolite.errors import ConfigError
from nemolite.lightning.strategy import MegatronStrategy
from nemolite.lightning.trainer import Trainer
from nemolite.llm.inference.params import CommonInferenceParams, check_prompts

_ENTRYPOINT = dict(namespace="llm", run_ctx_cls=NemoliteRunContext)


@run.cli.entrypoint(**_ENTRYPOINT)
def generate(
    path: str,
    prompts: list[Any] | None = None,
    trainer: Trainer | None = None,
    inference_params: CommonInferenceParams | None = None,
    text_only: bool = False,
    chat: bool = False,
    max_batch_size: int = 8,
    output_path: str | None = None,
    stream: bool | None = None,
) -> list[str | Any]:
    """Generate text from a checkpoint for a list of prompts (KV cache, batched, TP-aware).

    Args:
        path: a checkpoint directory, a run directory (its newest checkpoint) or `nemo://<id>`.
        prompts: the prompts: strings, or chat conversations (lists of {"role", "content"}).
        trainer: only its strategy's tensor_model_parallel_size is used (None = 1 process).
        inference_params: sampling and stopping (None = CommonInferenceParams()).
        text_only: return the generated strings instead of InferenceRequest objects.
        chat: wrap each string prompt as a user turn of the tokenizer's chat template.
        max_batch_size: prompts generated together in one batch.
        output_path: also write one JSON line per prompt here.
        stream: show tokens on the console as they come (None = when run as `nemo llm generate` or
            as a launched job, e.g. `executor=torchrun` for tensor parallelism: then in its log).

    Returns:
        One InferenceRequest (or string, with text_only) per prompt, in order.
    """
    params = inference_params or CommonInferenceParams()
    prompt_list = check_generate(path, prompts, trainer, params, max_batch_size, chat)
    from nemolite.llm.inference import generate as gen  # heavy: torch, megatron-core

    engine = gen.load_engine(path, _tp_size(trainer))
    show = _from_cli() if stream is None else stream
    if show and _is_rank_zero():
        from nemolite.llm.inference.streaming import TokenStream

        streamer = TokenStream(engine.tokenizer, prompt_list)
        with streamer.showing():
            results = gen.generate_with_engine(engine, prompt_list, params, chat=chat,
                                               max_batch_size=max_batch_size, on_token=streamer)
    else:
        results = gen.generate_with_engine(engine, prompt_list, params, chat=chat, max_batch_size=max_batch_size)
    if output_path is not None and _is_rank_zero():
        _write_jsonl(Path(output_path), results)
    return [r.generated_text for r in results] if text_only else list(results)


@run.cli.entrypoint(**_ENTRYPOINT)
def evaluate(
    path: str,
    tasks: list[str] | None = None,
    limit: float | None = None,
    num_fewshot: int | None = None,
    batch_size: int = 8,
    include_path: str | None = None,
    perplexity_data: str | None = None,
    output_dir: str | None = None,
    trainer: Trainer | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint on lm-evaluation-harness tasks and/or perplexity; results into the run dir.

    Args:
        path: a checkpoint directory, a run directory (its newest checkpoint) or `nemo://<id>`.
        tasks: lm-eval task names (`lm-eval ls tasks`), or the names of tasks under include_path.
        limit: examples per task (an int), or a fraction of each task (a float < 1).
        num_fewshot: few-shot examples in each prompt (None = the task's default).
        batch_size: sequences scored per forward pass.
        include_path: a directory of your own lm-eval task YAML files (e.g. on local JSONL data).
        perplexity_data: a JSONL file ("text" per line) or an indexed dataset prefix to compute
            token perplexity on (in windows of the model's context).
        output_dir: where results.json and results.md go (None = <run dir>/evaluations/<time>).
        trainer: only its strategy's tensor_model_parallel_size is used (None = 1 process).

    Returns:
        lm-eval's results dictionary (with a "perplexity" entry when perplexity_data is given).
    """
    task_list, manager = check_evaluate(path, tasks, limit, include_path, perplexity_data, trainer)
    from nemolite.llm.inference import evaluate as ev  # heavy: torch, megatron-core, lm-eval
    from nemolite.llm.inference.generate import load_engine

    engine = load_engine(path, _tp_size(trainer))
    results: dict[str, Any] = {}
    if task_list:
        results = ev.run_tasks(engine, task_list, manager, limit=limit, num_fewshot=num_fewshot,
                               batch_size=batch_size)
    if perplexity_data is not None:
        docs = ev.read_texts(Path(perplexity_data), engine.tokenizer)
        results["perplexity"] = ev.perplexity(engine, docs, limit=int(limit) if limit and limit >= 1 else None)
    if _is_rank_zero():
        out = ev.write_results(_output_dir(path, output_dir), results)
        from rich.console import Console

        Console().print(f"{ev.table(results)}\nwrote {out / 'results.json'}", markup=False, highlight=False)
    return results


def check_evaluate(path: Any, tasks: Any, limit: Any, include_path: Any, perplexity_data: Any,
                   trainer: Any) -> tuple[list[str], Any]:
    """One-line errors for evaluate's arguments (unknown tasks list close names); returns the tasks."""
    from nemolite.llm.inference.checkpoint import resolve_path

    if tasks is None and perplexity_data is None:
        raise ConfigError("tasks", None, "nothing to evaluate", "give tasks='[\"lambada_openai\"]' and/or perplexity_data=...")
    if tasks is not None and (isinstance(tasks, str) or not isinstance(tasks, (list, tuple))
                              or not all(isinstance(t, str) and t for t in tasks)):
        raise ConfigError("tasks", tasks, "must be a list of task names", "write tasks='[\"hellaswag\"]'")
    task_list = list(tasks or [])
    if limit is not None and limit <= 0:
        raise ConfigError("limit", limit, "must be > 0", "give a number of examples, or a fraction below 1")
    if include_path is not None and not Path(include_path).is_dir():
        raise ConfigError("include_path", include_path, "no such directory", "give a directory of task YAML files")
    _tp_size(trainer)
    resolve_path(path)
    manager = None
    if task_list:
        try:
            from nemolite.llm.inference import evaluate as ev
        except ImportError:
            raise ConfigError("tasks", task_list, "lm-evaluation-harness is not installed",
                              "pip install 'nemolite[eval]'") from None
        manager = ev.task_manager(include_path)
        ev.check_tasks(task_list, manager)
    return task_list, manager


def _output_dir(path: Any, output_dir: str | None) -> Path:
    import time

    from nemolite.llm.inference.checkpoint import resolve_path

    if output_dir is not None:
        return Path(output_dir)
    ckpt = resolve_path(path)
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt
    return run_dir / "evaluations" / time.strftime("%Y-%m-%d_%H-%M-%S")


def check_generate(path: Any, prompts: Any, trainer: Any, params: Any, max_batch_size: int = 8,
                   chat: bool = False) -> list[Any]:
    """Raises a one-line ConfigError for any argument generation cannot use; returns the prompts.

    Loads the checkpoint's tokenizer (not its weights) to check that every prompt fits the context.
    """
    from nemolite.llm.inference.checkpoint import load_spec
    from nemolite.llm.inference.prompting import encode_all

    prompt_list = check_prompts(prompts)
    if not isinstance(params, CommonInferenceParams):
        raise ConfigError("inference_params", params, "is not a CommonInferenceParams",
                          "pass llm.CommonInferenceParams(...)")
    params.validate()
    if max_batch_size < 1:
        raise ConfigError("max_batch_size", max_batch_size, "must be >= 1", "set max_batch_size=8")
    _tp_size(trainer)
    spec = load_spec(path)
    tokenizer = spec.tokenizer.build() if hasattr(spec.tokenizer, "build") else spec.tokenizer
    encode_all(tokenizer, prompt_list, chat=chat, add_bos=params.add_BOS, seq_length=spec.model.config.seq_length)
    return prompt_list


def describe_generate(path: Any, **_: Any) -> str:
    """What `--dryrun` loads: the checkpoint, its architecture, tokenizer and adapters."""
    from nemolite.llm.inference.checkpoint import load_spec

    spec = load_spec(path)
    cfg = spec.model.config
    lines = [
        f"checkpoint: {spec.path} (step {spec.step})",
        f"model: {type(cfg).__name__}(num_layers={cfg.num_layers}, hidden_size={cfg.hidden_size}, "
        f"num_attention_heads={cfg.num_attention_heads}, seq_length={cfg.seq_length})",
        f"tokenizer: {spec.tokenizer!r}",
        f"adapters: {spec.peft!r}" if spec.peft is not None else "adapters: none",
    ]
    return "\n".join(lines)


def _tp_size(trainer: Any) -> int:
    strategy = getattr(trainer, "strategy", None) or MegatronStrategy()
    if strategy.pipeline_model_parallel_size != 1:
        raise ConfigError(
            "trainer.strategy.pipeline_model_parallel_size", strategy.pipeline_model_parallel_size,
            "generation runs without pipeline parallelism",
            "set it to 1: any checkpoint (PP or not) is resharded on load; use "
            "tensor_model_parallel_size to split a large model instead")
    return int(strategy.tensor_model_parallel_size)


def _from_cli() -> bool:
    """Run as `nemo llm generate`, or as a job a launcher started (the text then goes to its log)."""
    return Path(sys.argv[0]).name == "nemo" or "TORCHELASTIC_RUN_ID" in os.environ


def _is_rank_zero() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _write_jsonl(path: Path, results: list[Any]) -> None:
    import dataclasses

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        for result in results:
            row = {k: v for k, v in dataclasses.asdict(result).items() if k != "inference_parameters"}
            handle.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


generate.nemolite_check = lambda **kw: check_generate(  # type: ignore[attr-defined]
    kw.get("path"), kw.get("prompts"), kw.get("trainer"),
    kw.get("inference_params") or CommonInferenceParams(), kw.get("max_batch_size", 8), kw.get("chat", False))
generate.nemolite_describe = describe_generate  # type: ignore[attr-defined]
evaluate.nemolite_check = lambda **kw: check_evaluate(  # type: ignore[attr-defined]
    kw.get("path"), kw.get("tasks"), kw.get("limit"), kw.get("include_path"), kw.get("perplexity_data"),
    kw.get("trainer"))
evaluate.nemolite_describe = describe_generate  # type: ignore[attr-defined]
