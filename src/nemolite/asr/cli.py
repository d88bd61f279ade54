"""`nemo asr <verb>`: the LLM CLI's run context (grammar, one-line errors, executors) on ASR recipes."""

from __future__ import annotations

from typing import Any

from nemolite.cli import plugins
from nemolite.cli.context import NemoliteRunContext


class AsrRunContext(NemoliteRunContext):
    """Reads `--factory` names from the ASR recipe group and checks ASR specs before launch."""

    recipe_group: str = plugins.ASR_RECIPE_GROUP

    def check_specs(self, specs: dict[str, Any], on_this_machine: bool, paths_here: bool | None = None) -> None:
        from nemolite.asr.checks import check_asr_task

        check_asr_task(specs, on_this_machine=on_this_machine)
