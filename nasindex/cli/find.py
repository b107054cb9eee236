"""``nasindex search`` and ``nasindex images``: find patients, list a patient's files.

They import the search module (SQLAlchemy) when they run, and read through the access
layer: each search and listing is recorded in the audit trail with the OS user. Names
and descriptions from the index are printed through :mod:`nasindex.cli.output`, as data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from nasindex.cli import output
from nasindex.cli.options import JsonOpt, access, date_option, me

if TYPE_CHECKING:
    from nasindex.search import PatientHit, SearchResult

DateOpt = {"callback": date_option, "metavar": "YYYYMMDD"}


def search(
    query: Annotated[str | None, typer.Argument(
        help="A patient name ('jane doe', 'doe*'), or an ID / accession number.",
        show_default=False)] = None,
    patient_id: Annotated[str | None, typer.Option("--patient-id",
                                                   help="Exact, else prefix.")] = None,
    accession: Annotated[str | None, typer.Option("--accession")] = None,
    modality: Annotated[list[str] | None, typer.Option("--modality", "-m",
                                                       help="Repeat for any of several.")
                        ] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="Study date from.",
                                                  **DateOpt)] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Study date to.", **DateOpt)
                       ] = None,
    born: Annotated[str | None, typer.Option("--born", help="Birth date.", **DateOpt)] = None,
    nas: Annotated[list[str] | None, typer.Option("--nas", help="Repeat for several.")
                   ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Patients per page.")] = 50,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Patients to skip.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Find patients across every NAS."""
    from nasindex.search import SearchQuery

    query_ = SearchQuery(text=query, patient_id=patient_id, accession=accession,
                         modalities=modality or [], date_from=date_from, date_to=date_to,
                         birth_date=born, nas=nas or [], limit=limit, offset=offset)
    result = access().search(me(), query_)  # a refused query: QueryError, exit 2
    if as_json:
        output.print_json([p.as_dict() for p in result.patients])
    else:
        _show_result(result, offset)


def _show_result(result: SearchResult, offset: int) -> None:
    if not result.patients:
        output.say("No patient matches. Try fewer words, a '*' wildcard, or no filters.")
        return
    output.table(("NAS", "Patient ID", "Name", "Born", "Sex", "Studies", "Match"),
                 (_row(p) for p in result.patients))
    for note in result.notes:
        output.say((note, "yellow"))
    shown = f"{offset + 1}-{offset + len({p.person for p in result.patients})}"
    total = f"{result.total}{'' if result.total_exact else '+'}"
    output.say(f"{total} patient(s); showing {shown} (--limit/--offset to page)")


def _row(p: PatientHit) -> list:
    studies = [f"{s.date or '?'} {', '.join(s.modalities)} {s.description or ''} "
               f"({s.series_count} series, {s.instance_count} images)" for s in p.studies]
    match = p.match if not p.linked_because else f"{p.match}; {p.linked_because}"
    return [p.nas, p.patient_id, p.patient_name, p.birth_date, p.sex, studies, match]


def images(nas: Annotated[str, typer.Option("--nas", help="NAS id from the config.",
                                            show_default=False)],
           patient_id: Annotated[str, typer.Option("--patient-id", help="Exact Patient ID.",
                                                   show_default=False)],
           as_json: JsonOpt = False) -> None:
    """Every indexed file of one patient on one NAS, with its exact paths."""
    rows = access().images(me(), nas, patient_id)
    if as_json:
        output.print_json(rows)
        return
    output.table(("Modality", "Display path", "Format", "Size", "Missing since"),
                 ([r["modality"], r["display_path"], r["format"], r["size"],
                   r["missing_since"]] for r in rows))
    output.say(f"{len(rows)} file(s)")
