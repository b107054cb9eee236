"""Health page: per NAS whether it is reachable, indexed and current; runs over time;
the files that could not be indexed; NAS types that failed to load.

Admin actions (sync now, full index, retry failed) come from ``dashboard/actions.py``
(``render_actions(ctx, nas)``), drawn inside each NAS's expander for admins only. Everyone
sees only the NAS devices of their scope; admins also see the audit forwarding status.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st
from dash_context import context, show_error
from dash_text import md

from nasindex.access.principal import ADMIN
from nasindex.config import NasSettings
from nasindex.health import MEANINGFUL_RUN_FILES, reachable
from nasindex.ops.catalog import flow_run_url
from nasindex.registry import registry


@st.cache_data(ttl=30, show_spinner=False)
def _reachable(nas_id: str, _cfg: NasSettings) -> tuple[bool, str]:
    # One check per NAS per 30 s: a check may touch a slow network share. (Parameters
    # named with "_" are not part of Streamlit's cache key: only the NAS id is.)
    return reachable(_cfg)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _watch(r: dict[str, Any]) -> str:
    """The watch's state in a few words, from its heartbeat."""
    w = r["watch"]
    if not r["freshness_seconds"]:
        return f"none (sync every {r['sync_minutes']:g} min)" if r["sync_minutes"] else "none"
    if w is None:
        return "not started"
    if not w["watching"]:
        return f"NOT POLLING (last beat {_age(w['beat_age_seconds'])})"
    polled = f"polls every {w['interval_seconds']:.0f} s, last {_age(w['beat_age_seconds'])}"
    return f"{polled} — {w['message']}" if w["message"] else polled


def _lag(r: dict[str, Any]) -> str:
    if r["newest_lag_seconds"] is None:
        return "—"
    return f"{r['newest_lag_seconds']:.0f} s"


def _overview(rows: list[dict[str, Any]]) -> None:
    table = []
    for r in rows:
        ok, why = (_reachable(r["nas"], ctx.settings.nas[r["nas"]]) if r["in_config"]
                   else (False, "not in the config"))
        last = r["last_run"] or {}
        table.append({
            "NAS": r["nas"], "Type": r["type"], "Reachable": "yes" if ok else f"no — {why}",
            "Last successful sync": _age(r["last_success_age_seconds"]),
            "Current": "STALE" if r["stale"] else "ok", "Watch": _watch(r),
            "Newest study searchable after": _lag(r),
            "Last run": f"{last.get('kind', '')} {last.get('status', 'never')}".strip(),
            "Patients": r["patients"], "Studies": r["studies"], "Images": r["instances"],
            "Missing": r["missing"], "Errors": r["errors"],
            "Files/s": r["files_per_second"],
        })
    stale = [r["nas"] for r in rows if r["stale"]]
    if stale:
        st.warning(f"Not current: **{md(', '.join(stale))}** — its watch is not polling, or "
                   "(no watch) no successful sync within twice the sync interval. Check the "
                   "runs and errors below, and the watch/<nas> runs in Prefect.",
                   icon=":material/schedule:")
    st.caption("*Newest study searchable after*: seconds from the last file of the newest "
               "study the watch (or a sync) indexed being written to its being searchable.")
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch",
                 column_config={"Files/s": st.column_config.NumberColumn(format="%.0f")})
    st.caption(f"Files/s: of the latest successful run that read at least "
               f"{MEANINGFUL_RUN_FILES} files (a smaller run measures its start-up more than "
               "reading); empty until a run has.")


def _actions() -> Callable[..., None] | None:
    """``render_actions`` from dashboard/actions.py, if that module is installed."""
    if importlib.util.find_spec("actions") is None:
        return None
    try:
        return getattr(importlib.import_module("actions"), "render_actions", None)
    except Exception as exc:  # a broken actions module must not hide the health page
        show_error(exc, "Admin actions are unavailable")
        return None


def _details(rows: list[dict[str, Any]]) -> None:
    render_actions = _actions() if ctx.user.has(ADMIN) else None
    for r in rows:
        flag = " — STALE" if r["stale"] else ""
        with st.expander(md(f"{r['nas']} ({r['type']})") + flag):
            c1, c2 = st.columns(2)
            c1.markdown(f"**Root on this host:** {md(r['root'])}  \n"
                        f"**As workstations see it:** {md(r['display_root']) or '—'}  \n"
                        f"**Sync interval:** {r['sync_minutes'] or '—'} min")
            last = r["last_run"]
            if last:
                url = flow_run_url(ctx.settings.prefect.ui_url, last.get("flow_run_id"))
                link = f" · [open in Prefect]({url})" if url else ""
                c2.markdown(f"**Last run:** {md(last['kind'])} {md(last['status'])}, started "
                            f"{last['started_at'][:19].replace('T', ' ')} UTC{link}  \n"
                            f"{md(last['message'])}")
            else:
                c2.markdown(f"**Never indexed.** Run {md('nasindex index ' + r['nas'])}.")
            w = r["watch"]
            if w:  # plain text: the message may quote a path
                st.text(f"Watch {w['watcher']}, since {w['started_at'][:19]} UTC: {w['polls']} "
                        f"polls, {w['changed_polls']} with changes; the last took "
                        f"{w['poll_seconds'] or 0:.2f} s. {w['message'] or ''}".strip())
            if render_actions is not None and r["in_config"]:
                render_actions(ctx, r["nas"])


def _runs_chart(runs: list[dict[str, Any]]) -> None:
    st.subheader("Runs over time")
    if not runs:
        st.caption("No runs yet.")
        return
    df = pd.DataFrame(runs)
    df["started"] = pd.to_datetime(df["started_at"], utc=True, format="ISO8601")
    nas = st.selectbox("NAS", ["all", *sorted(df["nas"].unique())], key="runs_nas")
    if nas != "all":
        df = df[df["nas"] == nas]
    # One bar per run, labelled by its start; ISO-like labels sort in time order.
    df["run"] = df["started"].dt.strftime("%m-%d %H:%M:%S") + " " + df["nas"]
    st.bar_chart(df.sort_values("started"), x="run", y=["new", "changed", "missing"],
                 height=320, x_label="run (start, UTC)", y_label="files")
    ui = ctx.settings.prefect.ui_url
    df["prefect"] = [flow_run_url(ui, f) for f in df["flow_run_id"]]
    cols = ["nas", "kind", "status", "started_at", "seconds", "seen", "new", "changed",
            "missing", "failed", "files_per_second", "message"]
    config = {"seconds": st.column_config.NumberColumn(format="%.1f")}
    if ui:
        cols.append("prefect")
        config["prefect"] = st.column_config.LinkColumn("Prefect", display_text="open")
    st.dataframe(df[cols], hide_index=True, width="stretch", column_config=config)


def _errors() -> None:
    errors = ctx.access.errors(ctx.user)
    st.subheader(f"Files that could not be indexed ({len(errors)})")
    if not errors:
        st.caption("None.")
        return
    st.dataframe(pd.DataFrame(errors)[["nas", "path", "reason", "attempts", "last_seen"]],
                 hide_index=True, width="stretch")


def _plugins() -> None:
    failures = registry().failures
    if failures:
        st.subheader("NAS types that failed to load")
        for name, error in sorted(failures.items()):
            st.error(f"**{md(name)}**: {md(error)}", icon=":material/extension_off:")
    else:
        st.caption(f"NAS types loaded: {', '.join(sorted(registry().types)) or 'none'}.")


def _audit_forwarding() -> None:
    """Whether the copies of the audit trail reach the syslog repository ([audit])."""
    forwarder = ctx.access.forwarder
    if forwarder is None or not ctx.user.has(ADMIN):
        return
    s = forwarder.status()
    if s["ok"]:
        st.caption(f"Audit forwarding to {s['target']}: ok ({s['sent']} sent).")
    else:
        st.error(f"**Audit forwarding to {s['target']} is failing** since "
                 f"{s['failing_since'] or '—'}: {md(s['last_error'])}. {s['queued']} waiting, "
                 f"{s['dropped']} dropped. The index's audit trail has every record.",
                 icon=":material/report:")


ctx = context()
st.title("Indexing health")
_audit_forwarding()
rows = ctx.access.health(ctx.user, datetime.now(UTC))
if not rows:
    st.info("No NAS is configured or indexed yet. Add `[nas.<id>]` tables to the config, "
            "then run `nasindex index --all`.")
else:
    _overview(rows)
    _details(rows)
_runs_chart(ctx.access.runs(ctx.user, limit=500))
_errors()
_plugins()
