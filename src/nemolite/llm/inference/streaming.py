"""Shows generated text on the console as tokens arrive (rich), one panel per prompt."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.text import Text


class TokenStream:
    """Accumulates each prompt's generated ids and re-renders the decoded text live."""

    def __init__(self, tokenizer: Any, prompts: list[Any], console: Console | None = None) -> None:
        self.tokenizer = tokenizer
        self.prompts = prompts
        self.ids: list[list[int]] = [[] for _ in prompts]
        self.console = console or Console()
        self.live: Live | None = None

    def __call__(self, row: int, token: int) -> None:
        # Only recorded here: the display decodes on its own refreshes (12 a second), not once per
        # token and row, which would decode every row's whole text at each step of a batch.
        self.ids[row].append(token)

    def render(self) -> Group:
        panels = []
        for i, prompt in enumerate(self.prompts):
            title = prompt if isinstance(prompt, str) else prompt[-1].get("content", "")
            body = Text(str(title), style="bold") + Text(self.tokenizer.ids_to_text(list(self.ids[i])))
            panels.append(Panel(body, title=f"prompt {i}", title_align="left"))
        return Group(*panels)

    @contextmanager
    def showing(self) -> Iterator[TokenStream]:
        """Live display while generating; the final text stays on the console afterwards."""
        with Live(console=self.console, refresh_per_second=12, transient=False, get_renderable=self.render) as live:
            self.live = live
            try:
                yield self
            finally:
                live.refresh()
                self.live = None
