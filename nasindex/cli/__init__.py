"""The ``nasindex`` command line. Thin: every command calls the engine, search or health
functions that the flows and the dashboard use too.

Start-up is part of the product (``search``, ``images``, ``status`` and ``--help`` in
<= 0.25 s): importing this package costs typer and these small modules only. Each
command imports what it needs when it runs (SQLAlchemy, rich, pydicom...), and plugin
commands load when invoked (:mod:`nasindex.cli.commands`). The sync engine's worker
processes re-run ``__main__`` too, so this matters twice. tests/test_cli_startup.py
keeps it so.

| module | commands |
|---|---|
| :mod:`~nasindex.cli.runs` | init, index, sync, retry |
| :mod:`~nasindex.cli.watching` | watch |
| :mod:`~nasindex.cli.find` | search, images |
| :mod:`~nasindex.cli.ops` | status, plugins, deployments, demo |
| :mod:`~nasindex.cli.audit` | audit |
| :mod:`~nasindex.cli.serve` | serve (the HTTP API) |
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from nasindex.cli import audit, find, ops, runs, serve, usage, watching
from nasindex.cli.commands import CommandGroup
from nasindex.cli.options import set_config_path, settings

__all__ = ["app", "main", "settings"]

app = typer.Typer(help="Index the medical images on several NAS devices; search them.",
                  no_args_is_help=True, pretty_exceptions_enable=False, cls=CommandGroup,
                  rich_markup_mode=None)

for module, names in ((runs, ("init", "index", "sync", "retry")), (watching, ("watch",)),
                      (find, ("search", "images")),
                      (ops, ("status", "plugins", "deployments", "demo")),
                      (audit, ("audit",)), (serve, ("serve",))):
    for name in names:
        app.command(name)(getattr(module, name))


@app.callback()
def _global(config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="Config file (default: $NASINDEX_CONFIG or ./nasindex.toml).")
        ] = None) -> None:
    set_config_path(config)


def main(args: list[str] | None = None) -> None:
    """The ``nasindex`` console script."""
    code = usage.run(app, args)
    deadline = sys.modules.get("nasindex.deadline")  # imported only if a run touched a NAS
    if deadline is not None and deadline.abandoned():
        # A NAS call is still stuck (a frozen database server): a library's exit
        # handlers would wait for it for ever. The run is recorded; leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
