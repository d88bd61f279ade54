"""What `nemo llm <verb>` does with a resolved task: check, export, dry-run or launch it."""

from __future__ import annotations

import inspect
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
from nemolite.llm.memory import DEFAULT_GPU_MEMORY_GIB, check_fit, fits
from nemolite.llm.recipe_io import to_yaml

if TYPE_CHECKING:
    from nemolite.cli.context import NemoliteRunContext


def execute(ctx: NemoliteRunContext, task: nemo_run.Partial, console: Console) -> None:
    """Checks the task (and its executor), then exports, dry-runs or launches it."""
    check_required(task)
    built = fdl.build(task)
    describe = getattr(task.__fn_or_cls__, "describe", None)
    if describe is not None:  # a verb that trains nothing (import, export): its own dry run
        _execute_plain(ctx, built, describe, console)
        return
    executor_module = plugins.executor_module(ctx.executor_name) if ctx.executor_name else None
    # Remote executors run on other hardware: skip this machine's GPU and device-count checks.
    here = executor_module is None or not getattr(executor_module, "REMOTE", True)
    specs = dict(built.keywords)
    own_check = getattr(task.__fn_or_cls__, "nemolite_check", None)  # verbs without a model spec
    if own_check is not None:
        own_check(**built.keywords)
    else:
        # A dry run inspects a task that may be meant for other hardware: hardware problems are a note.
        ctx.check_specs(specs, on_this_machine=here and not ctx.dryrun, paths_here=here)
    hardware_note = _hardware_problem(ctx, specs) if here and ctx.dryrun and own_check is None else None
    trainer = built.keywords.get("trainer")  # verbs such as generate have none
    llm_training = own_check is None and trainer is not None and ctx.recipe_group == plugins.RECIPE_GROUP
    memory = _memory(built.keywords) if llm_training else None
    gpu_memory = getattr(ctx, "gpu_memory", None) or DEFAULT_GPU_MEMORY_GIB
    on_gpus = trainer is not None and trainer.accelerator in ("gpu", "cuda")
    if memory is not None and on_gpus and not ctx.dryrun:
        check_fit(memory, gpu_memory)  # one line with the numbers, before anything is launched
    if executor_module is not None and ctx.executor_name is not None and trainer is not None:
        check_executor(executor_module, ctx.executor, trainer, ctx.executor_name,
                       offline=bool(ctx.dryrun or ctx.to_yaml))
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


def check_required(task: nemo_run.Partial) -> None:
    """Every argument the verb needs is given (`validate model=llama_tiny data=bundled` has no trainer)."""
    fn = task.__fn_or_cls__
    missing = [name for name, p in inspect.signature(fn).parameters.items()
               if p.default is inspect.Parameter.empty and name not in task.__arguments__]
    if missing:
        recipes = ", ".join(plugins.recipe_names())
        raise ConfigError(
            missing[0], None, f"`nemo llm {fn.__name__}` needs {', '.join(missing)}",
            f"start from a recipe (--factory llama_tiny; recipes: {recipes}) and override fields, "
            f"or give {missing[0]}=<factory>",
        )


def _memory(keywords: dict[str, Any]) -> Any:
    """The per-GPU memory estimate of the task (None when it has no model config to count)."""
    from nemolite.llm.memory import task_estimate

    names = ("model", "data", "trainer", "optim", "peft")
    return task_estimate(**{k: keywords.get(k) for k in names})


def _hardware_problem(ctx: NemoliteRunContext, specs: dict[str, Any]) -> str | None:
    try:
        ctx.check_specs(specs, on_this_machine=True)
    except ConfigError as error:
        return str(error)
    return None


def check_executor(module: Any, executor: Any, trainer: Any, name: str, *, offline: bool = False) -> None:
    """The executor's own checks, then its shape against the trainer's nodes and devices.

    `offline` (dry runs, `--to-yaml`): only the checks that contact nothing, for executors that
    tell the two apart (`validate(executor, offline=...)`).
    """
    if offline and "offline" in inspect.signature(module.validate).parameters:
        module.validate(executor, offline=True)
    else:
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
    describe = getattr(task.__fn_or_cls__, "nemolite_describe", None)
    if describe is not None:
        console.rule("[bold]would load")
        console.print(describe(**fdl.build(task).keywords), markup=False, highlight=False)
    console.rule("[bold]launch")
    if module is None:
        console.print(f"In this process: {task.__fn_or_cls__.__module__}.{task.__fn_or_cls__.__name__}(...)")
    else:
        console.print(module.render(ctx.executor, task, ctx.name), markup=False, highlight=False, soft_wrap=True)
    console.print("[bold cyan]Dry run: nothing was launched or written.")
    unchecked = getattr(module, "OFFLINE_UNCHECKED", None) if module is not None else None
    if unchecked:
        console.print(f"Not checked without contacting the cluster: {unchecked}; a launch checks them first.",
                      markup=False, highlight=False)


def _launch(ctx: NemoliteRunContext, task: nemo_run.Partial, console: Console) -> None:
    console.print(f"[bold cyan]Launching {ctx.name}...")
    if ctx.executor is None:
        fdl.build(task)()  # in this process: what `nemo llm pretrain --factory llama_tiny -y` does
        return
    experiment, states, dirs = submit_jobs(task, ctx.executor, ctx.name, detach=ctx.detach,
                                           tail_logs=ctx.tail_logs)
    failed = [(index, state) for index, state in enumerate(states) if state != "SUCCEEDED"]
    if failed and not ctx.detach:
        index, state = failed[0]
        tail = job_error_tail(dirs[index]) if index < len(dirs) else ""
        if tail:
            console.print(f"[bold red]job {index} of {experiment}: the end of its log", highlight=False)
            console.print(tail, markup=False, highlight=False, soft_wrap=True)
        raise JobFailedError(
            f"job {index} of {experiment} finished {state}; its logs: `nemo experiment logs {experiment} {index}`"
        )


#: Log files nemo-run's executors write in a job directory, most telling first.
_LOG_NAMES = ("stderr.log", "combined.log", "*.err", "*.out", "*.log")


def job_error_tail(job_dir: str | Path | None, lines: int = 15) -> str:
    """The last lines of a finished job's own log (from its last traceback, if it has one)."""
    if not job_dir or not Path(job_dir).is_dir():
        return ""
    for pattern in _LOG_NAMES:
        files = sorted(Path(job_dir).rglob(pattern), key=lambda f: f.stat().st_mtime)
        texts = [f.read_text(errors="replace") for f in files if f.is_file() and f.stat().st_size]
        if texts:
            kept = [line for line in texts[-1].splitlines() if line.strip()]
            start = max((i for i, line in enumerate(kept) if line.startswith("Traceback")), default=0)
            tail = kept[start:] if len(kept) - start <= 3 * lines else kept[-lines:]
            return "\n".join(tail[-3 * lines:])
    return ""


class JobFailedError(NemoliteError):
    """A launched job ended in a state other than SUCCEEDED."""

    exit_code = 1


def submit(
    task: nemo_run.Partial, executor: Any, name: str, *, detach: bool, tail_logs: bool
) -> tuple[str, list[str]]:
    """Runs `task` as a nemo-run experiment; returns its id and each job's final state."""
    experiment, states, _ = submit_jobs(task, executor, name, detach=detach, tail_logs=tail_logs)
    return experiment, states


def submit_jobs(
    task: nemo_run.Partial, executor: Any, name: str, *, detach: bool, tail_logs: bool
) -> tuple[str, list[str], list[str]]:
    """`submit`, plus each job's directory (where its logs are)."""
    with nemo_run.Experiment(title=name, executor=executor) as experiment:
        experiment.add(task, name=name, tail_logs=tail_logs)
        experiment.run(detach=detach, tail_logs=tail_logs)
    # Leaving the block waits for the jobs of an attached run and records their terminal state.
    jobs = experiment.jobs
    return (experiment._id, [job.state.name for job in jobs],
            [getattr(job.executor, "job_dir", "") for job in jobs])


def check_to_yaml(target: str) -> None:
    """`--to-yaml` must name a file in an existing directory (checked before anything else runs)."""
    path = Path(target)
    if path.is_dir():
        raise ConfigError("--to-yaml", target, "is a directory", f"give a file name, e.g. {path / 'task.yaml'}")
    if not path.parent.is_dir():
        raise ConfigError("--to-yaml", target, f"directory {path.parent} does not exist", "create it first")


def _write_atomically(path: Path, text: str) -> None:
    check_to_yaml(str(path))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    # mkstemp creates the file 0600; a saved task is an ordinary file (0666 less the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
