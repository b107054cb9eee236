"""``nasindex firebird inspect NAS`` and ``nasindex firebird check NAS``: help an admin
write a mapping for a vendor's schema (entry point ``nasindex.commands``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nasindex.plugin import ConfigError, current_settings, open_nas

app = typer.Typer(name="firebird", no_args_is_help=True,
                  help="Firebird + JPEG 2000 NAS devices: inspect a database, check a mapping.")
out = Console()

NasArg = Annotated[str, typer.Argument(help="NAS id from the config (type firebird-jp2).")]


def _nas(nas_id: str):
    from nasindex_firebird_jp2 import FirebirdJp2

    nas = open_nas(current_settings().get_nas(nas_id))
    if not isinstance(nas, FirebirdJp2):
        raise ConfigError(f"NAS {nas_id!r} is of type {nas.name!r}, not firebird-jp2.")
    return nas


@app.command()
def inspect(nas: NasArg,
            counts: Annotated[bool, typer.Option("--counts/--no-counts",
                                                 help="Count the rows of every table.")] = True,
            ) -> None:
    """List the database's tables and views, their columns, types and row counts."""
    from nasindex_firebird_jp2.schema import inspect_database

    con = _nas(nas).connect()
    try:
        tables = inspect_database(con, count_rows=counts)
    finally:
        con.close()
    for t in tables:
        kind = "view" if t.view else "table"
        rows = f", {t.rows} rows" if t.rows is not None else ""
        grid = Table(title=f"{t.name} ({kind}{rows})", title_justify="left")
        grid.add_column("column")
        grid.add_column("type")
        grid.add_column("null")
        for c in t.columns:
            grid.add_row(c.name, c.type, "yes" if c.nullable else "no")
        out.print(grid)
    out.print(f"{len(tables)} table(s)/view(s). Write names in the mapping exactly as shown.")


@app.command()
def check(nas: NasArg) -> None:
    """Validate the NAS's mapping against the live database; name what does not exist."""
    from nasindex_firebird_jp2.schema import validate

    target = _nas(nas)
    con = target.connect()
    try:
        problems = validate(con, target.mapping)
    finally:
        con.close()
    if problems:
        for p in problems:
            out.print(f"[red]problem[/red] {escape(p)}")
        out.print(f"{len(problems)} problem(s) in the mapping of NAS {nas!r}.")
        raise typer.Exit(1)
    out.print(f"[green]ok[/green] the mapping of NAS {nas!r} fits its database.")
