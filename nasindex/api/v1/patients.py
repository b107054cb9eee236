"""Patients: search across every NAS the caller may see, one patient record, its files.

The bodies are the CLI's: ``search --json`` (a list of per-NAS records, person by
person) and ``images --json``, built by the same code (``PatientHit.as_dict`` and
``nasindex.search.images``). Paging information travels in headers, so the body keeps
that shape: ``X-Total-Count`` (people matching) and a ``Link`` header (RFC 8288) with
``next``/``prev``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from nasindex.api.caller import CallerDep
from nasindex.api.v1.params import PREFIX, parameters_of
from nasindex.errors import NotFound
from nasindex.search import PatientHit, SearchQuery, StudyNode
from nasindex.search.limits import MAX_LIMIT, MAX_OFFSET

router = APIRouter(prefix=PREFIX, tags=["patients"])

# SearchQuery field -> this endpoint's parameter, to name it in a 400.
PARAMETERS = {"text": "q", "patient_id": "patient_id", "accession": "accession",
              "modalities": "modality", "date_from": "from", "date_to": "to",
              "birth_date": "born", "nas": "nas", "limit": "limit", "offset": "offset"}
Dates = "YYYYMMDD or YYYY-MM-DD"


def _listed(values: list[str] | None) -> list[str]:
    """Repeated (``modality=CT&modality=MR``) or comma-separated (``modality=CT,MR``)."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


@router.get("/patients", response_model=list[PatientHit], summary="Find patients")
def find_patients(
    request: Request, caller: CallerDep,
    q: Annotated[str | None, Query(description="A name ('jane doe', 'm?ller', 'doe*'), or "
                                   "one word with a digit: a Patient ID or accession "
                                   "number (README, Matching rules).")] = None,
    patient_id: Annotated[str | None, Query(description="Exact, else prefix.")] = None,
    accession: Annotated[str | None, Query(description="Exact.")] = None,
    modality: Annotated[list[str] | None, Query(description="Any of several.")] = None,
    date_from: Annotated[str | None, Query(alias="from", description=f"Study date from ({Dates}).")
                         ] = None,
    date_to: Annotated[str | None, Query(alias="to", description=f"Study date to ({Dates}).")
                       ] = None,
    born: Annotated[str | None, Query(description=f"Birth date ({Dates}).")] = None,
    nas: Annotated[list[str] | None, Query(description="Only these NAS devices.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="People per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="People to skip.")] = 0,
) -> Response:
    """People matching on every NAS the caller may see, best first; one record per NAS,
    records of one person together (`person`, `linked_because`). As `nasindex search
    --json`. `X-Total-Count`: people matching; `Link`: the next and previous pages."""
    query = SearchQuery(text=q, patient_id=patient_id, accession=accession,
                        modalities=_listed(modality), date_from=date_from, date_to=date_to,
                        birth_date=born, nas=_listed(nas), limit=limit, offset=offset)
    with parameters_of(PARAMETERS):
        result = caller.access.search(caller.principal, query)
    headers = {"X-Total-Count": str(result.total)}
    links = _page_links(request, result.total, limit, offset)
    if links:
        headers["Link"] = links
    return JSONResponse([p.as_dict() for p in result.patients], headers=headers)


def _page_links(request: Request, total: int, limit: int, offset: int) -> str:
    pages = []
    if offset + limit < total:
        pages.append(("next", offset + limit))
    if offset > 0:
        pages.append(("prev", max(offset - limit, 0)))
    return ", ".join(f'<{request.url.include_query_params(offset=at)}>; rel="{rel}"'
                     for rel, at in pages)


@router.get("/patients/{nas}/{patient_id}", summary="One patient record")
def patient(nas: str, patient_id: str, caller: CallerDep) -> dict[str, Any]:
    """The record of `patient_id` on `nas` as `search --json` shows it, each study with
    its series and folders (as the workstation sees them: `folder`; on the indexing
    host: `host_folder`), and the same person's records on the other NAS devices the
    caller may see (`linked_records`, with the reason in `linked_because`)."""
    person = caller.access.patient(caller.principal, nas, patient_id)
    if person is None:
        raise NotFound(f"No patient with that Patient ID is indexed on NAS {nas}.")
    tree = {node.study_uid: node
            for node in caller.access.study_tree(caller.principal, nas, patient_id)}
    record, *linked = person.records
    body = record.as_dict()
    for study in body["studies"]:
        study.update(_folders(tree.get(study["study_uid"])))
    body["linked_records"] = [r.as_dict() for r in linked]
    return body


def _folders(node: StudyNode | None) -> dict[str, Any]:
    if node is None:
        return {"folder": None, "host_folder": None, "series": []}
    return {"folder": node.folder, "host_folder": node.host_folder,
            "series": [asdict(s) for s in node.series]}


@router.get("/patients/{nas}/{patient_id}/images", summary="A patient's files")
def patient_images(nas: str, patient_id: str, caller: CallerDep) -> list[dict[str, Any]]:
    """Every indexed file of the patient on `nas`, present and tombstoned
    (`missing_since`), with the exact path on the indexing host and as the workstation
    sees it. As `nasindex images --json`. An image's bytes: `/images/{nas}/{sop_instance_uid}`."""
    rows = caller.access.images(caller.principal, nas, patient_id)
    if not rows:
        raise NotFound(f"No patient with that Patient ID is indexed on NAS {nas}.")
    return rows
