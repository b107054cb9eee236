"""What several commands share: the ``--config`` given to the main command, and the
options that look the same everywhere."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from nasindex.access.guard import Access
    from nasindex.access.principal import Principal
    from nasindex.config import Settings

from nasindex.invocation import config_path, set_config_path  # noqa: F401  (re-exported)


def settings() -> Settings:
    """The settings of ``--config``, else ``$NASINDEX_CONFIG``, else ./nasindex.toml."""
    from nasindex.config import current_settings  # pydantic: only for commands that read it

    return current_settings()


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
    except ValueError as exc:  # its message does not repeat the value (a birth date)
        raise typer.BadParameter(str(exc)) from None


NasArg = Annotated[str | None, typer.Argument(help="NAS id from the config.",
                                              show_default=False)]
AllOpt = Annotated[bool, typer.Option("--all", help="Every configured NAS.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
NoHashOpt = Annotated[bool, typer.Option(
    "--no-hash", help="Leave the content hashes to a later run or a watch (metadata only).")]
