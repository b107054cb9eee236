"""What every page needs: the settings and the index, or a clear message instead.

The dashboard runs no SQL of its own; it calls nasindex.search, nasindex.health and the
registry. Errors a user can act on are shown as messages, never as stack traces.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from nasindex.config import Settings, load_settings
from nasindex.errors import ConfigError, IndexNotReady, NasIndexError
from nasindex.index.db import require_current


@dataclass(frozen=True)
class Context:
    settings: Settings
    engine: Engine


@st.cache_resource(ttl=30, show_spinner=False)
def _checked_engine(url: str) -> Engine:
    # Checking the schema parses the migration scripts: once per 30 s is enough. A
    # failure is not cached, so a fixed index is picked up on the next rerun.
    return require_current(url)


def context() -> Context:
    """The settings and a migrated index; otherwise shows why not and stops the page."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        st.error(f"**The configuration cannot be used.** {exc}")
        st.stop()
    try:
        engine = _checked_engine(settings.index.url)
    except IndexNotReady as exc:
        st.warning(f"**The index is not ready.** {exc}")
        st.stop()
    except (SQLAlchemyError, OSError) as exc:
        st.error("**The index cannot be opened.** "
                 f"{type(exc).__name__}: {str(exc).splitlines()[0]}. "
                 "Check `[index] url` in the config and that the database is running.")
        st.stop()
    return Context(settings, engine)


def show_error(exc: Exception, what: str) -> None:
    """An error in one part of a page, without a traceback."""
    if isinstance(exc, NasIndexError | ValueError):
        st.warning(f"{what}: {exc}")
    else:
        st.error(f"{what}: {type(exc).__name__}: {exc}")


def fmt_date(value: str | None) -> str:
    """DICOM YYYYMMDD as YYYY-MM-DD (unknown stays empty)."""
    if not value or len(value) != 8 or not value.isdigit():
        return value or ""
    return f"{value[:4]}-{value[4:6]}-{value[6:]}"


def fmt_name(pn: str) -> str:
    """DICOM PN for reading: 'DOE^JANE=...' -> 'DOE, JANE' (+ other groups in brackets)."""
    groups = [g for g in pn.split("=")]
    readable = [", ".join(p for p in g.split("^") if p) for g in groups]
    first, rest = readable[0], [r for r in readable[1:] if r]
    return first + (f"  ({' / '.join(rest)})" if rest else "")
