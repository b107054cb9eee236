"""Admin actions on the health page: per NAS, "sync now", "full index" and "retry
failed", each behind a confirmation, each a Prefect deployment run (so it is queued,
limited to one run per NAS and recorded like a scheduled run, not run in the page).

The page calls :func:`render_actions` once per NAS, for admins. Every action goes through
the access layer (``Access.admin_action``): it checks the admin role and the NAS scope
and records the request and its outcome in the audit trail. :func:`trigger` is the
same action without Streamlit. The Prefect API is ``$PREFECT_API_URL`` (``make run`` sets it for
the dashboard) or ``[prefect] ui_url`` + ``/api`` from the config.
"""

from __future__ import annotations

from dash_text import md

from nasindex.ops import catalog
from nasindex.ops.catalog import NasFlowSpec
from nasindex.ops.runs import StartedRun, prefect_api_url, start_run

ACTIONS: dict[str, tuple[NasFlowSpec, str, str]] = {
    # action: (the flow whose deployment of the NAS runs, button, confirmation)
    "sync": (catalog.INCREMENTAL, "Sync now", "Sync NAS {nas} now (new and changed files)?"),
    "full": (catalog.FULL, "Full index", "Re-read every file of NAS {nas}? On a large NAS "
             "this takes hours; the index stays searchable meanwhile."),
    "retry": (catalog.RETRY, "Retry failed", "Re-read the failed files of NAS {nas} now?"),
}


def trigger(nas: str, action: str, ui_url: str | None) -> StartedRun:
    """Create a run of ``<flow>/<nas>`` now; returns at once (the worker runs it)."""
    return start_run(ACTIONS[action][0], nas, prefect_api_url(ui_url), tags=("dashboard",))


def render_actions(ctx, nas: str) -> None:
    """Three buttons for one NAS; a click asks for confirmation before anything runs."""
    import streamlit as st

    pending_key = f"nasindex-action-{nas}"
    for column, (action, (_flow, label, _ask)) in zip(st.columns(len(ACTIONS)),
                                                      ACTIONS.items(), strict=True):
        if column.button(label, key=f"{pending_key}-{action}"):
            st.session_state[pending_key] = action
    action = st.session_state.get(pending_key)
    if not action:
        return
    st.warning(ACTIONS[action][2].format(nas=nas))
    confirm, cancel = st.columns(2)
    if confirm.button("Confirm", key=f"{pending_key}-confirm", type="primary"):
        del st.session_state[pending_key]
        _run_and_report(st, ctx, nas, action)
    elif cancel.button("Cancel", key=f"{pending_key}-cancel"):
        del st.session_state[pending_key]
        st.rerun()


def _run_and_report(st, ctx, nas: str, action: str) -> None:
    from nasindex.errors import NasIndexError

    runs: list[StartedRun] = []

    def start() -> str:
        runs.append(trigger(nas, action, ctx.settings.prefect.ui_url))
        return f"{runs[0].deployment}: flow run {runs[0].id}"

    try:
        ctx.access.admin_action(ctx.user, nas, action, start)
        run = runs[0]
    except NasIndexError as exc:  # refused, or the audit trail cannot be written
        st.error(md(exc))
        return
    except Exception as exc:  # no server, no deployment: say so, keep the page alive
        st.error(f"Could not start {ACTIONS[action][0].flow} for NAS {nas}: {md(exc)}. Is the "
                 "Prefect server running and were the deployments applied (`nasindex "
                 "deployments --apply`)?")
        return
    link = f"[{run.name}]({run.url})" if run.url else run.name
    st.success(f"Started {run.deployment}: flow run {link}. It shows on this page when done.")
