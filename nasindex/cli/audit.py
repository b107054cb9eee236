"""``nasindex audit``: the audit trail, as the dashboard's Audit page shows it. Reading
it is recorded too."""

from __future__ import annotations

from typing import Annotated

import typer

from nasindex.cli import output
from nasindex.cli.options import JsonOpt, access, me


def _since(value: str | None):
    if value is None:
        return None
    from nasindex.access.audit import since_date

    try:
        return since_date(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from None


def audit(
    user: Annotated[str | None, typer.Option("--user", help="Only this user.")] = None,
    patient_id: Annotated[str | None, typer.Option("--patient-id", help="Only this patient.")
                          ] = None,
    nas: Annotated[str | None, typer.Option("--nas", help="Only this NAS.")] = None,
    action: Annotated[str | None, typer.Option(
        "--action", help="search, query (DICOMweb), patient, preview, images, retrieve, login, "
                         "logout, audit, "
                         "admin:...")
        ] = None,
    since: Annotated[str | None, typer.Option("--since", metavar="YYYY-MM-DD",
                                              help="From this day on (UTC).",
                                              callback=_since)] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest records shown.")
                     ] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """The audit trail: who searched for whom, opened, previewed or did what, newest first."""
    rows = access().audit_events(me(), user=user, patient_id=patient_id, nas=nas,
                                 action=action, since=since, limit=limit)
    if as_json:
        output.print_json(rows)
        return
    output.table(("Time (UTC)", "User", "Door", "Client", "Action", "Outcome", "NAS",
                  "Patient ID", "Query / detail", "Results"),
                 ([r["at"][:19].replace("T", " "), r["user"], r["door"], r["client"],
                   r["action"], r["outcome"], r["nas"], r["patient_id"],
                   r["query"] or r["detail"], r["results"]] for r in rows))
    output.say(f"{len(rows)} record(s)")
