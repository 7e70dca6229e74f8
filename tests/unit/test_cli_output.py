"""What departments write reaches other departments' terminals through the CLI: as text, never as
terminal codes or rich markup."""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

from cityshare.cli import DataTable, printable

HOSTILE = "Air\x1b]0;owned\x07 [link=https://evil.example]click[/link] \x9b31mquality"


def rendered(*renderables: object) -> str:
    out = io.StringIO()
    terminal = Console(file=out, force_terminal=True, width=200)
    for renderable in renderables:
        terminal.print(renderable)
    return out.getvalue()


def test_table_cells_are_text_without_codes_or_markup() -> None:
    table = DataTable("dataset", "title")
    table.add_row("air-quality", HOSTILE)
    shown = rendered(table)
    assert "\x1b]" not in shown and "\x9b" not in shown and "\x07" not in shown  # no OSC (title, hyperlink), no CSI
    assert "[link=https://evil.example]click[/link]" in Text.from_ansi(shown).plain  # shown as the text it is


def test_values_in_printed_lines_are_escaped() -> None:
    shown = rendered(f"[bold]rule[/bold] {printable(HOSTILE)}")
    assert "\x1b]" not in shown and "\x9b" not in shown and "\x07" not in shown
    assert "[link=https://evil.example]click[/link]" in Text.from_ansi(shown).plain
