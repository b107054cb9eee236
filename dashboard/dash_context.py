"""What every page needs: the settings, the index, the access layer and the user (after
the login gate), or a clear message instead.

The dashboard runs no SQL of its own: it reads patient data only through
``nasindex.access`` (role, NAS scope and audit record first). Errors a user can act on
are shown as messages, never as stack traces.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from dash_text import md
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from nasindex.access.guard import Access
from nasindex.access.principal import Principal
from nasindex.config import Settings, config_path, load_settings
from nasindex.errors import (
    AccessDenied,
    AuditUnavailable,
    ConfigError,
    IndexNotReady,
    NasIndexError,
)
from nasindex.index.db import require_current

_CONTEXT = "nasindex-context"


@dataclass(frozen=True)
class Context:
    settings: Settings
    engine: Engine
    access: Access
    user: Principal


@st.cache_resource(show_spinner=False)
def _access(settings_json: str, _settings: Settings, _engine: Engine) -> Access:
    # One per process and config: it holds the audit forwarder and the repeat window.
    return Access(_settings, _engine)


@st.cache_resource(max_entries=4, show_spinner=False)
def _parsed_settings(path: str, version: tuple[int, int]) -> Settings:
    # Parsing (TOML, pydantic, the NAS types' entry points) is once per version of the
    # file, not once per click. A config that cannot be used is not cached.
    return load_settings(path)


def _settings() -> Settings:
    """The config as it is on disk now: an edited file is read again on the next run."""
    path = config_path()
    try:
        stat = path.stat()
    except OSError:
        return load_settings(path)  # the clear ConfigError of a missing file
    return _parsed_settings(str(path), (stat.st_mtime_ns, stat.st_size))


@st.cache_resource(ttl=30, show_spinner=False)
def _checked_engine(url: str) -> Engine:
    # Checking the schema parses the migration scripts: once per 30 s is enough. A
    # failure is not cached, so a fixed index is picked up on the next rerun.
    return require_current(url)


def context() -> Context:
    """This page run's context: the entry script (main.py) computes it once, before any
    page; a page run on its own (tests) computes it here."""
    ctx = st.session_state.get(_CONTEXT)
    return ctx if ctx is not None else open_context()


def open_context() -> Context:
    """The settings, a migrated index and the logged-in user; otherwise shows why not
    (or the login page) and stops the page."""
    import gate

    st.session_state.pop(_CONTEXT, None)
    try:
        settings = _settings()
    except ConfigError as exc:
        st.error(f"**The configuration cannot be used.** {md(exc)}")
        st.stop()
    try:
        engine = _checked_engine(settings.index.url)
    except IndexNotReady as exc:
        st.warning(f"**The index is not ready.** {md(exc)}")
        st.stop()
    except (SQLAlchemyError, OSError) as exc:
        st.error("**The index cannot be opened.** "
                 f"{md(type(exc).__name__)}: {md(str(exc).splitlines()[0])}. "
                 "Check `[index] url` in the config and that the database is running.")
        st.stop()
    access = _access(settings.model_dump_json(), settings, engine)
    ctx = Context(settings, engine, access, gate.principal(settings, access))
    st.session_state[_CONTEXT] = ctx
    return ctx


def show_error(exc: Exception, what: str) -> None:
    """An error in one part of a page, without a traceback (its text is data)."""
    if isinstance(exc, AccessDenied | AuditUnavailable):
        st.error(md(exc), icon=":material/lock:")
    elif isinstance(exc, NasIndexError | ValueError):
        st.warning(f"{what}: {md(exc)}")
    else:
        st.error(f"{what}: {md(type(exc).__name__)}: {md(exc)}")


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
