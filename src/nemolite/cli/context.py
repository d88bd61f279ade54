"""`nemo llm <verb>`: nemo-run's run context with an unambiguous grammar and checks before launch.

nemo-run 0.11's own context binds `-y` to both `--yes` and `--yaml` (the later option silently
wins), prints "Configuring global options" on every call, and turns every error into a traceback
or an "Unexpected error" line. Here `-y` means `--yes` only (`--yaml` has no short form), user errors
print one line and exit 2, and every task is checked (layout, batch sizes, files, executor shape)
before anything is written, submitted or launched.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Literal

import fiddle as fdl
import typer
from nemo_run.cli.api import RunContext
from nemo_run.cli.cli_parser import parse_cli_args
from rich.console import Console

from nemolite.cli import plugins
from nemolite.cli.overrides import parse_task, split_executor_args
from nemolite.errors import NemoliteError, one_line

# `nemo experiment cancel ID N` deserializes the job's task (`nemolite.llm.api.pretrain`), which
# imports this module: the executors' fixes of nemo-run's experiment commands must be in place by
# then (executors/_local_cancel.py: cancelling a local job started by another process).
plugins.load_all_executors()

_CHECKED = ("model", "data", "trainer", "log", "resume", "optim")
_FACTORY_HELP = "Recipe to start from (`--factory llama3_8b` or `--factory 'llama3_8b(num_nodes=2)'`): "


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=code)


def summary(fn: Callable) -> str:
    """The first line of `fn`'s docstring (what `nemo llm --help` lists beside the verb)."""
    return (fn.__doc__ or fn.__name__).strip().splitlines()[0].rstrip(".")


def command_help(fn: Callable) -> dict[str, str]:
    """Typer's help for a verb: its summary, then the recipes and executors it can use."""
    executors = ", ".join(plugins.executor_names())
    recipes = ", ".join(plugins.recipe_names())
    text = (f"{summary(fn)}.\n\n"
            f"Recipes (--factory NAME): {recipes}.\n\n"
            f"Executors (executor=NAME, then executor.FIELD=VALUE; default: this process): {executors}. "
            "Overrides: dotted.field=value, e.g. trainer.max_steps=100.")
    return {"help": text, "short_help": summary(fn)}


class NemoliteRunContext(RunContext):
    """Parses `nemo llm <verb> [--factory F] [overrides...] [executor=E executor.x=y]` and launches it."""

    executor_name: str | None = None
    verbose: bool = False
    # Where `--factory` names come from; `nemo asr`'s context (nemolite.asr.cli) reads the ASR group.
    recipe_group: str = plugins.RECIPE_GROUP
    cpu_twin: bool = False
    gpu_memory: float | None = None

    def check_specs(self, specs: dict[str, Any], on_this_machine: bool, paths_here: bool | None = None) -> None:
        """The verb's checks of its built arguments before launch (LLM: layout, batches, files).

        `paths_here`: the task's paths are on this machine's filesystem (default: on_this_machine).
        """
        from nemolite.llm.checks import check_task

        check_task(**{k: v for k, v in specs.items() if k in _CHECKED}, on_this_machine=on_this_machine,
                   paths_here=paths_here)

    @classmethod
    def cli_command(  # noqa: PLR0913 - mirrors nemo-run's signature, which calls it
        cls,
        parent: typer.Typer,
        name: str,
        fn: Callable,
        default_factory: Callable | None = None,
        default_executor: Any = None,
        default_plugins: Any = None,
        type: Literal["task", "experiment"] = "task",
        command_kwargs: dict[str, Any] | None = None,
        is_main: bool = False,
        cmd_defaults: dict[str, Any] | None = None,
    ) -> Callable:
        factory_help = _FACTORY_HELP + ", ".join(plugins.recipe_names(cls.recipe_group))
        plugins.load_all_recipes(cls.recipe_group)  # registers `--factory X`, `model=X`

        @parent.command(
            name,
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
            **(command_kwargs or {}) | command_help(fn),
        )
        def command(
            ctx: typer.Context,
            factory: str | None = typer.Option(None, "--factory", "-f", help=factory_help),
            run_name: str | None = typer.Option(None, "--name", "-n", help="Name of the run"),
            dryrun: bool = typer.Option(
                False, "--dryrun", help="Print the resolved task and what would be launched, then stop"
            ),
            yes: bool = typer.Option(False, "--yes", "-y", help="Launch without asking to confirm"),
            yaml: str | None = typer.Option(
                None, "--yaml", help="Start from a task saved as YAML (no short form: -y is --yes)"
            ),
            to_yaml: str | None = typer.Option(
                None, "--to-yaml", help="Write the resolved task to this YAML file and stop"
            ),
            detach: bool = typer.Option(False, "--detach", help="Submit and return without waiting"),
            tail_logs: bool = typer.Option(
                False, "--tail-logs/--no-tail-logs", help="Follow the job's logs after launching"
            ),
            verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks"),
            gpu_memory: float | None = typer.Option(
                None, "--gpu-memory",
                help="GiB per GPU to check the memory estimate against (default 80: the recipes' H100/A100)",
            ),
            cpu_twin: bool = typer.Option(
                False, "--cpu-twin",
                help="Run the recipe's CPU twin: same features, shrunk to 1-2 CPU processes and 10 steps",
            ),
        ) -> None:
            self = cls(
                name=run_name or name,
                dryrun=dryrun,
                factory=factory,
                yaml=yaml,
                skip_confirmation=yes,
                detach=detach,
                tail_logs=tail_logs,
                to_yaml=to_yaml,
            )
            self.verbose = verbose
            self.cpu_twin = cpu_twin
            self.gpu_memory = gpu_memory
            self.executor_name = None
            self.plugins = []
            try:
                self.cli_execute(fn, ctx.args, type)
            except NemoliteError as error:
                if verbose:
                    raise
                raise _fail(one_line(error), error.exit_code) from None

        return command

    def cli_execute(
        self, fn: Callable, args: list[str], entrypoint_type: Literal["task", "experiment"] = "task"
    ) -> None:
        """Resolves the task and the executor from the arguments, checks them, then launches."""
        from nemolite.cli import launch

        executor_name, executor_args, task_args = split_executor_args(args)
        self.executor = None
        module = None
        if executor_name:
            self.executor_name = executor_name
            module = plugins.executor_module(executor_name)
            config = parse_cli_args(module.factory(), executor_args)
            self.executor = fdl.build(config)
        console = Console()
        if self.cpu_twin:
            task = self._twin_task(fn, task_args, module, console)
        else:
            task = parse_task(self, fn, task_args)
        launch.execute(self, task, console=console)

    def _twin_task(self, fn: Callable, task_args: list[str], module: Any, console: Console) -> Any:
        """The recipe's CPU twin (on as many processes as the executor starts), then the overrides."""
        from nemolite.cli.overrides import apply_override
        from nemolite.llm.twin import cpu_twin, retime

        processes = module.launch_shape(self.executor)[1] if module is not None else 1
        twin, plan = cpu_twin(parse_task(self, fn, []), processes=processes)
        for line in plan.lines():
            console.print(line, markup=False, highlight=False)
        for arg in task_args:
            apply_override(twin, arg)
        retime(twin, overridden={arg.split("=", 1)[0] for arg in task_args})
        return twin

    def confirm(self) -> bool:
        """True when `-y` was given or the user answers yes; never prompts without a terminal."""
        if self.skip_confirmation:
            return True
        if not sys.stdin.isatty():
            raise NemoliteError("no terminal to confirm the launch; add -y (--yes) to launch")
        return typer.confirm("Launch?")
