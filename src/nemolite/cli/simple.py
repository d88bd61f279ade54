"""Verbs that run in the CLI's own process with no executor, such as `nemo llm preprocess`.

nemo-run's plain commands print errors in red and exit 1 after a traceback-shaped message; these
use the same override parser and one-line errors (exit 2) as the training verbs.
"""

from __future__ import annotations

import inspect
from typing import Any

import fiddle as fdl
import nemo_run as run
import typer
from nemo_run.cli.api import Entrypoint

from nemolite.cli.overrides import apply_override
from nemolite.errors import ConfigError, NemoliteError, one_line


class SimpleEntrypoint(Entrypoint):
    """An entrypoint whose command parses `field=value` arguments and calls the function here."""

    def _add_simple_command(self, typer_instance: typer.Typer, is_main: bool = False) -> None:
        @typer_instance.command(
            self.name,
            help=(self.fn.__doc__ or self.help_str).strip().split("\n\n")[0],
            short_help=(self.fn.__doc__ or self.help_str).strip().splitlines()[0].rstrip("."),
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        )
        def command(
            ctx: typer.Context,
            verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks"),
        ) -> None:
            try:
                call(self.fn, ctx.args)
            except NemoliteError as error:
                if verbose:
                    raise
                typer.echo(f"error: {one_line(error)}", err=True)
                raise typer.Exit(code=error.exit_code) from None


def call(fn: Any, args: list[str]) -> Any:
    """Applies `field=value` arguments to `fn`, checks required ones, and calls it."""
    task = run.Partial(fn)
    for arg in args:
        apply_override(task, arg)
    for name, param in inspect.signature(fn).parameters.items():
        if param.default is inspect.Parameter.empty and name not in task.__arguments__:
            raise ConfigError(name, None, "is required", f"add {name}=<value>")
    return fdl.build(task)()
