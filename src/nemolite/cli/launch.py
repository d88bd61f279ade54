"""What `nemo llm <verb>` does with a resolved task: check, export, dry-run or launch it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fiddle as fdl
import nemo_run
from rich.console import Console
from rich.syntax import Syntax

from nemolite.cli import plugins
from nemolite.errors import ConfigError, NemoliteError
from nemolite.llm.checks import check_task
from nemolite.llm.memory import DEFAULT_GPU_MEMORY_GIB, check_fit, fits
from nemolite.llm.recipe_io import to_yaml

if TYPE_CHECKING:
    from nemolite.cli.context import NemoliteRunContext


def execute(ctx: NemoliteRunContext, task: nemo_run.Partial, console: Console) -> None:
    """Checks the task (and its executor), then exports, dry-runs or launches it."""
    built = fdl.build(task)
    describe = getattr(task.__fn_or_cls__, "describe", None)
    if describe is not None:  # a verb that trains nothing (import, export): its own dry run
        _execute_plain(ctx, built, describe, console)
        return
    executor_module = plugins.executor_module(ctx.executor_name) if ctx.executor_name else None
    # Remote executors run on other hardware: skip this machine's GPU and device-count checks.
    here = executor_module is None or not getattr(executor_module, "REMOTE", True)
    specs = {k: v for k, v in built.keywords.items() if k in _CHECKED}
    # A dry run inspects a task that may be meant for other hardware: hardware problems are a note.
    check_task(**specs, on_this_machine=here and not ctx.dryrun)
    hardware_note = _hardware_problem(specs) if here and ctx.dryrun else None
    memory = _memory(built.keywords)
    gpu_memory = getattr(ctx, "gpu_memory", None) or DEFAULT_GPU_MEMORY_GIB
    on_gpus = built.keywords["trainer"].accelerator in ("gpu", "cuda")
    if memory is not None and on_gpus and not ctx.dryrun:
        check_fit(memory, gpu_memory)  # one line with the numbers, before anything is launched
    if executor_module is not None:
        check_executor(executor_module, ctx.executor, built.keywords["trainer"], ctx.executor_name)
    if ctx.to_yaml:
        _write_atomically(Path(ctx.to_yaml), to_yaml(task))
        console.print(f"Wrote the resolved task to {ctx.to_yaml}")
        return
    if ctx.dryrun:
        print_dryrun(ctx, task, executor_module, console)
        if memory is not None:
            console.print(f"memory: {memory.line()}", markup=False, highlight=False)
            if on_gpus and not fits(memory, gpu_memory):
                console.print(f"[yellow]note: does not fit --gpu-memory={gpu_memory:g} GiB; launching would fail")
        if hardware_note:
            console.print(f"[yellow]note: launching this here would fail: {hardware_note}")
        return
    if not ctx.confirm():
        console.print("Not launched.")
        return
    _launch(ctx, task, console)


def _execute_plain(ctx: NemoliteRunContext, built: Any, describe: Any, console: Console) -> None:
    plan = describe(**built.keywords)  # checks the arguments too: errors before anything is written
    if ctx.dryrun:
        console.print(plan, markup=False, highlight=False)
        console.print("[bold cyan]Dry run: nothing was read or written.")
        return
    if not ctx.confirm():
        console.print("Not run.")
        return
    result = built()
    console.print(f"done: {result}", markup=False, highlight=False)


_CHECKED = ("model", "data", "trainer", "log", "resume", "optim")


def _memory(keywords: dict[str, Any]) -> Any:
    """The per-GPU memory estimate of the task (None when it has no model config to count)."""
    from nemolite.llm.memory import task_estimate

    names = ("model", "data", "trainer", "optim", "peft")
    return task_estimate(**{k: keywords.get(k) for k in names})


def _hardware_problem(specs: dict[str, Any]) -> str | None:
    try:
        check_task(**specs, on_this_machine=True)
    except ConfigError as error:
        return str(error)
    return None


def check_executor(module: Any, executor: Any, trainer: Any, name: str) -> None:
    """The executor's own checks, then its shape against the trainer's nodes and devices."""
    module.validate(executor)
    nodes, per_node = module.launch_shape(executor)
    if nodes != trainer.num_nodes:
        raise ConfigError(
            "trainer.num_nodes", trainer.num_nodes, f"but executor={name} runs on {nodes} node(s)",
            f"make them agree, e.g. trainer.num_nodes={nodes}",
        )
    if per_node != trainer.devices:
        raise ConfigError(
            "trainer.devices", trainer.devices,
            f"but executor={name} starts {per_node} process(es) per node",
            f"make them agree, e.g. trainer.devices={per_node}",
        )


def print_dryrun(ctx: NemoliteRunContext, task: nemo_run.Partial, module: Any, console: Console) -> None:
    """Prints the resolved task as YAML and what the executor would launch; writes nothing."""
    console.rule(f"[bold]{ctx.name}: resolved task")
    console.print(Syntax(to_yaml(task), "yaml", theme="ansi_dark", word_wrap=True))
    console.rule("[bold]launch")
    if module is None:
        console.print(f"In this process: {task.__fn_or_cls__.__module__}.{task.__fn_or_cls__.__name__}(...)")
    else:
        console.print(module.render(ctx.executor, task, ctx.name), markup=False, highlight=False, soft_wrap=True)
    console.print("[bold cyan]Dry run: nothing was launched or written.")


def _launch(ctx: NemoliteRunContext, task: nemo_run.Partial, console: Console) -> None:
    console.print(f"[bold cyan]Launching {ctx.name}...")
    if ctx.executor is None:
        fdl.build(task)()  # in this process: what `nemo llm pretrain --factory llama_tiny -y` does
        return
    experiment, states = submit(task, ctx.executor, ctx.name, detach=ctx.detach, tail_logs=ctx.tail_logs)
    failed = [(index, state) for index, state in enumerate(states) if state != "SUCCEEDED"]
    if failed and not ctx.detach:
        index, state = failed[0]
        raise JobFailedError(
            f"job {index} of {experiment} finished {state}; its logs: `nemo experiment logs {experiment} {index}`"
        )


class JobFailedError(NemoliteError):
    """A launched job ended in a state other than SUCCEEDED."""

    exit_code = 1


def submit(
    task: nemo_run.Partial, executor: Any, name: str, *, detach: bool, tail_logs: bool
) -> tuple[str, list[str]]:
    """Runs `task` as a nemo-run experiment; returns its id and each job's final state."""
    with nemo_run.Experiment(title=name, executor=executor) as experiment:
        experiment.add(task, name=name, tail_logs=tail_logs)
        experiment.run(detach=detach, tail_logs=tail_logs)
    # Leaving the block waits for the jobs of an attached run and records their terminal state.
    return experiment._id, [job.state.name for job in experiment.jobs]


def _write_atomically(path: Path, text: str) -> None:
    if not path.parent.exists():
        raise NemoliteError(f"--to-yaml={path}: directory {path.parent} does not exist; fix: create it first")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
