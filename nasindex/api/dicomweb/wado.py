"""WADO-RS (PS3.18 10.4): studies, series and instances as DICOM, their metadata, frames
and rendered images.

Instances are sent as stored (DICOM files byte for byte; JPEG 2000 files of the PACS
as Part 10 files made around their codestream, :mod:`nasindex.wado.part10`), streamed
one chunk at a time. Which copy of an instance held on several NAS devices is sent is
the search package's rule (:mod:`nasindex.search.dicom.files`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.exceptions import HTTPException

from nasindex.api.caller import Caller, CallerDep
from nasindex.api.dicomweb.dicomjson import DICOM_JSON, boundary, multipart
from nasindex.api.problems import BadParameter
from nasindex.api.rendering import MAX_RENDER, PRESETS, Window
from nasindex.errors import NotFound
from nasindex.preview import VIEW_SIZE
from nasindex.wado.part10 import J2K, J2K_LOSSLESS
from nasindex.wado.serve import JPEG_2000_FILES, Retrieval, StoredInstance

router = APIRouter(tags=["DICOMweb: WADO-RS"])
_SYNTAX = re.compile(r'transfer-syntax\s*=\s*"?([0-9.*]+)"?', re.I)


def _instances(caller: Caller, study: str, series: str | None = None,
               instance: str | None = None) -> Retrieval:
    """What the access layer lets this caller read (checked and recorded)."""
    return caller.access.dicom_retrieve(caller.principal, study, series, instance)


def _retrieve(request: Request, found: Retrieval) -> Response:
    items = found.items
    _check_syntax(request.headers.get("accept", ""), items)
    first = found.part(items[0])  # a missing first file: 404, not a cut answer
    mark = boundary()

    def parts() -> Iterator[tuple[str, Iterator[bytes]]]:
        for n, item in enumerate(items):
            p = first if n == 0 else found.part(item)
            yield f"application/dicom; transfer-syntax={_syntax(item)}", p.chunks()

    return StreamingResponse(multipart(parts(), mark), media_type=(
        f'multipart/related; type="application/dicom"; boundary={mark}'))


def _syntax(item: StoredInstance) -> str:
    if item.file_format in JPEG_2000_FILES:
        return J2K_LOSSLESS if item.lossless else J2K
    return item.transfer_syntax or "1.2.840.10008.1.2.1"


def _check_syntax(accept: str, items: list[StoredInstance]) -> None:
    """Instances go as stored: a transfer syntax asked for must be theirs (or ``*``)."""
    asked = {m.group(1) for m in _SYNTAX.finditer(accept)}
    if asked and "*" not in asked:
        stored = {_syntax(i) for i in items}
        if not stored <= asked:
            raise HTTPException(406, "Instances are sent in the transfer syntax they are stored "
                                f"in ({', '.join(sorted(stored))}); ask for one of them or "
                                "transfer-syntax=*.")


def _metadata(found: Retrieval) -> Response:
    first = json.dumps(found.metadata(found.items[0]))

    def body() -> Iterator[bytes]:
        yield b"[" + first.encode()
        for item in found.items[1:]:
            yield b"," + json.dumps(found.metadata(item)).encode()
        yield b"]"

    return StreamingResponse(body(), media_type=DICOM_JSON)


@router.get("/studies/{study}", summary="Retrieve a study")
def study(study: str, request: Request, caller: CallerDep) -> Response:
    return _retrieve(request, _instances(caller, study))


@router.get("/studies/{study}/series/{series}", summary="Retrieve a series")
def series(study: str, series: str, request: Request, caller: CallerDep) -> Response:
    return _retrieve(request, _instances(caller, study, series))


@router.get("/studies/{study}/series/{series}/instances/{instance}",
            summary="Retrieve an instance")
def instance(study: str, series: str, instance: str, request: Request, caller: CallerDep
             ) -> Response:
    return _retrieve(request, _instances(caller, study, series, instance))


@router.get("/studies/{study}/metadata", summary="A study's metadata (DICOM JSON)")
def study_metadata(study: str, caller: CallerDep) -> Response:
    return _metadata(_instances(caller, study))


@router.get("/studies/{study}/series/{series}/metadata", summary="A series' metadata")
def series_metadata(study: str, series: str, caller: CallerDep) -> Response:
    return _metadata(_instances(caller, study, series))


@router.get("/studies/{study}/series/{series}/instances/{instance}/metadata",
            summary="An instance's metadata")
def instance_metadata(study: str, series: str, instance: str, caller: CallerDep
                      ) -> Response:
    return _metadata(_instances(caller, study, series, instance))


Preset = Annotated[Window, Query(description="window preset (CT)")]
Size = Annotated[int, Query(ge=16, le=MAX_RENDER, description="longest side in pixels")]


@router.get("/studies/{study}/series/{series}/instances/{instance}/rendered",
            summary="An instance rendered as JPEG", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}})
def rendered(study: str, series: str, instance: str, caller: CallerDep,
             window: Preset = "auto", size: Size = VIEW_SIZE) -> Response:
    image = caller.access.dicom_rendered(caller.principal, study, series, instance,
                                         PRESETS[window], size)
    return Response(image, media_type="image/jpeg")


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
            summary="A frame rendered as JPEG", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}})
def frame_rendered(study: str, series: str, instance: str, frames: int, caller: CallerDep,
                   window: Preset = "auto", size: Size = VIEW_SIZE) -> Response:
    if frames != 1:
        raise NotFound("Rendered frames: the images here have one frame each (frame 1).")
    return rendered(study, series, instance, caller, window, size)


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
            summary="Frames as pixel data", response_class=Response)
def frames(study: str, series: str, instance: str, frames: str, request: Request,
           caller: CallerDep) -> Response:
    """Uncompressed little-endian pixel data (`application/octet-stream`), or a JPEG
    2000 image's codestream as stored when the Accept header asks for `image/jp2`."""
    numbers = _frame_numbers(frames)
    found = _instances(caller, study, series, instance)
    item = found.items[0]
    stored = "image/jp2" in request.headers.get("accept", "") and \
        item.file_format in JPEG_2000_FILES
    if stored:
        if numbers != [1]:
            raise NotFound("A JPEG 2000 image has one frame (frame 1).")
        kind, data = "image/jp2", [found.codestream(item)]
    else:
        kind = "application/octet-stream"
        data = found.frames(item, numbers)
    mark = boundary()
    return StreamingResponse(multipart(((kind, [d]) for d in data), mark),
                             media_type=f'multipart/related; type="{kind}"; boundary={mark}')


def _frame_numbers(text: str) -> list[int]:
    parts = text.split(",")
    if not all(p.strip().isdigit() and int(p) > 0 for p in parts) or len(parts) > 64:
        raise BadParameter("frames must be frame numbers from 1, separated by commas.",
                           "frames")
    return [int(p) for p in parts]
