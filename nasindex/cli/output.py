"""Everything the CLI prints goes through here, and text is data, never markup.

Names, descriptions, paths and error messages come from DICOM files, PACS databases and
exceptions. Printed through rich's defaults, ``MARKUP^[/bold]ZED`` crashes the command,
``[link=...]`` changes what is shown, ``:smile:`` becomes an emoji and an escape
sequence in a name drives the terminal. So the consoles here parse no markup, emoji or
highlighting, styles travel beside the text (never inside it), and control characters
are shown as ``\\x1b``-style escapes. JSON goes out as plain ``json.dumps``.

rich is imported on the first print that needs it: ``--help`` and ``--json`` never pay
for it.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

# C0 and C1 control characters and DEL: shown escaped, so that data cannot move the
# cursor, clear the screen, open a terminal hyperlink or break a line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

Cell = str | int | float | None | Sequence[str]
Piece = str | tuple[str, str]  # text, or (text, rich style)


def clean(value: object) -> str:
    """``value`` as one line of literal text: control characters escaped."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", "" if value is None
                        else str(value))


@cache
def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, markup=False, emoji=False, highlight=False)


def _text(*pieces: Piece) -> Text:
    from rich.text import Text

    return Text.assemble(*((clean(p[0]), p[1]) if isinstance(p, tuple) else clean(p)
                           for p in pieces))


def say(*pieces: Piece, err: bool = False) -> None:
    """Print one line made of ``pieces``: plain text, or ``(text, style)`` pairs. Never
    hard-wrapped: a message stays one line (greppable in logs)."""
    console(err).print(_text(*pieces), soft_wrap=True)


def error(message: str) -> None:
    """One line on stderr: ``error: <message>`` (newlines in ``message`` become spaces)."""
    say(("error: ", "bold red"), " ".join(message.splitlines()), err=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell]]) -> None:
    """A table on stdout. A cell is a value, or a list of values shown one per line."""
    from rich.table import Table

    grid = Table(*headers)
    for row in rows:
        grid.add_row(*(_cell(c) for c in row))
    console().print(grid)


def _cell(value: Cell) -> Text:
    from rich.text import Text

    lines = value if isinstance(value, list | tuple) else [value]
    return Text("\n".join(clean(v) for v in lines))


def print_json(data: Any) -> None:
    """Machine-readable output: stable, indented, UTF-8; no styling, no rich."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
