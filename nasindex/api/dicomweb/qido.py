"""QIDO-RS (PS3.18 10.6): search studies, series and instances by DICOM attributes.

Query keys are DICOM keywords or tags; the matching is the search package's
(:mod:`nasindex.search.dicom`): standard DICOM matching, or the project's name rules with
``fuzzymatching=true``. Keys and fields the index does not hold are ignored and named in
a ``Warning`` header, as PS3.18 asks; so is a result cut at the page size.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from nasindex.api.caller import CallerDep
from nasindex.api.dicomweb.dicomjson import DICOM_JSON, dataset
from nasindex.api.problems import BadParameter
from nasindex.search.dicom import MAX_RESULTS, DicomQuery, Level

router = APIRouter(tags=["DICOMweb: QIDO-RS"])
PREFIX = "/dicomweb"
CONTROLS = {"limit", "offset", "includefield", "fuzzymatching"}
_ANSWERS = (DICOM_JSON, "application/json", "*/*", "application/*")
_DESCRIPTION = ("Query keys: DICOM keyword or tag = value (`PatientName=DOE*`, "
                "`StudyDate=20240101-20241231`, `ModalitiesInStudy=CT\\MR`); `limit` (at most "
                f"{MAX_RESULTS}), `offset`, `includefield` (`all`, keywords or tags), "
                "`fuzzymatching=true` (names: any order, case and accents ignored, typos "
                "tolerated). Answer: `application/dicom+json`.")


def _search(request: Request, caller: CallerDep, level: Level, study: str | None = None,
            series: str | None = None) -> Response:
    _accepts(request)
    q = _query(request, level, study, series)
    result = caller.access.dicom_query(caller.principal, q)
    base = dicomweb_url(request)
    body = [dataset(row, result.attributes, base) for row in result.rows]
    warnings = []
    if result.ignored:
        warnings.append("The following query keys or fields are not supported and were "
                        "ignored: " + ", ".join(k[:64] for k in result.ignored))
    if result.more and q.limit == MAX_RESULTS:
        warnings.append("The number of results exceeded the maximum supported by the "
                        "server. Additional results can be requested.")
    headers = {"Warning": ", ".join(f'299 nasindex "{w}"' for w in warnings)} \
        if warnings else None
    return JSONResponse(body, media_type=DICOM_JSON, headers=headers)


def dicomweb_url(request: Request) -> str:
    """The service's DICOMweb root as the client reached it (for Retrieve URLs)."""
    path = request.url.path
    root = path[:path.index(PREFIX) + len(PREFIX)] if PREFIX in path else PREFIX
    return f"{request.url.scheme}://{request.url.netloc}{root}"


def _accepts(request: Request) -> None:
    accept = request.headers.get("accept", "")
    if accept and not any(kind in accept for kind in _ANSWERS):
        raise BadParameter(f"QIDO-RS answers {DICOM_JSON} only; the Accept header asks "
                           "for something else.", "Accept")


def _query(request: Request, level: Level, study: str | None, series: str | None
           ) -> DicomQuery:
    params = request.query_params
    keys = {k: v for k, v in params.multi_items() if k not in CONTROLS}
    fuzzy = params.get("fuzzymatching", "false").lower()
    if fuzzy not in ("true", "false"):
        raise BadParameter("fuzzymatching must be true or false.", "fuzzymatching")
    return DicomQuery(level, keys, study, series, params.getlist("includefield"),
                      fuzzy == "true", _whole(params, "limit", MAX_RESULTS),
                      _whole(params, "offset", 0))


def _whole(params, name: str, default: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise BadParameter(f"{name} must be a whole number.", name)
    return int(value)


@router.get("/studies", summary="Search for studies", description=_DESCRIPTION)
def studies(request: Request, caller: CallerDep) -> Response:
    return _search(request, caller, "study")


@router.get("/studies/{study}/series", summary="Search for series of a study",
            description=_DESCRIPTION)
def study_series(study: str, request: Request, caller: CallerDep) -> Response:
    return _search(request, caller, "series", study)


@router.get("/series", summary="Search for series", description=_DESCRIPTION)
def series(request: Request, caller: CallerDep) -> Response:
    return _search(request, caller, "series")


@router.get("/studies/{study}/instances", summary="Search for instances of a study",
            description=_DESCRIPTION)
def study_instances(study: str, request: Request, caller: CallerDep) -> Response:
    return _search(request, caller, "instance", study)


@router.get("/studies/{study}/series/{series}/instances",
            summary="Search for instances of a series", description=_DESCRIPTION)
def series_instances(study: str, series: str, request: Request, caller: CallerDep
                     ) -> Response:
    return _search(request, caller, "instance", study, series)


@router.get("/instances", summary="Search for instances", description=_DESCRIPTION)
def instances(request: Request, caller: CallerDep) -> Response:
    return _search(request, caller, "instance")
