"""What several commands share: the ``--config`` given to the main command, and the
options that look the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from nasindex.access.guard import Access
    from nasindex.access.principal import Principal
    from nasindex.config import Settings

_config_path: Path | None = None


def set_config_path(path: Path | None) -> None:
    global _config_path
    _config_path = path


def config_path() -> Path | None:
    """The ``--config`` given on the command line, if any."""
    return _config_path


def settings() -> Settings:
    """The settings of ``--config``, else ``$NASINDEX_CONFIG``, else ./nasindex.toml."""
    from nasindex.config import load_settings  # pydantic: only for commands that read it

    return load_settings(_config_path)


def access() -> Access:
    """The access layer over the configured index: every read of patient data through
    it is checked and recorded in the audit trail."""
    from nasindex.access.guard import Access
    from nasindex.index.db import require_current

    s = settings()
    return Access(s, require_current(s.index.url))


def me() -> Principal:
    """Who runs this command: the OS user, from this host (or the SSH client's address)."""
    from nasindex.access.principal import local_principal

    return local_principal("cli")


def date_option(value: str | None) -> str | None:
    """A date option as YYYYMMDD; a clear usage error for anything else."""
    if value is None:
        return None
    from nasindex.search import normalize_date

    try:
        return normalize_date(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; use YYYYMMDD or YYYY-MM-DD"
                                 ) from None


NasArg = Annotated[str | None, typer.Argument(help="NAS id from the config.",
                                              show_default=False)]
AllOpt = Annotated[bool, typer.Option("--all", help="Every configured NAS.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
