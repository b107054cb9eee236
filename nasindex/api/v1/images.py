"""One image: the file as it is stored on its NAS (streamed, with HTTP Range), or drawn
as the dashboard's patient page draws it (windowed, JPEG or PNG).

``{key}`` is the SOP Instance UID, as ``/patients/{nas}/{patient_id}/images`` lists it.
Should a NAS hold two files of one SOP instance, the present one first in path order is
served, the same one every time.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from nasindex.api.caller import CallerDep
from nasindex.api.problems import BadParameter, problem
from nasindex.api.rendering import MAX_RENDER, PRESETS, Window
from nasindex.api.v1.params import PREFIX
from nasindex.preview import IMAGE_FORMATS, VIEW_SIZE, FileGone

router = APIRouter(prefix=PREFIX, tags=["images"])

# The index's file formats as media types (DICOM PS3.18; RFC 3745 for JPEG 2000).
MEDIA_TYPES = {"dicom": "application/dicom", "jp2": "image/jp2", "j2k": "image/j2c"}
SUFFIXES = {"dicom": ".dcm", "jp2": ".jp2", "j2k": ".j2k"}


@router.get("/images/{nas}/{key}", response_class=FileResponse, summary="An image as stored",
            responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}},
                       206: {"description": "The byte range(s) asked for (`Range`)."},
                       416: {"description": "No asked range starts inside the file."}})
def image_file(nas: str, key: str, request: Request, caller: CallerDep) -> Response:
    """The file's bytes exactly as stored on the NAS (DICOM Part 10, JP2 or a J2K
    codestream), streamed. `Range: bytes=a-b` answers 206 with that part; several
    ranges answer `multipart/byteranges`; a range past the end answers 416."""
    found, path = caller.access.instance_file(caller.principal, nas, key)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise FileGone(f"{found['rel_path']} is not on NAS {nas!r} any more (moved or "
                       "deleted).") from None
    unsatisfiable = _check_range(request.headers.get("range"), stat.st_size)
    if unsatisfiable is not None:
        return unsatisfiable
    media_type = MEDIA_TYPES.get(found["format"], "application/octet-stream")
    if found["format"] == "dicom" and found["transfer_syntax"]:
        media_type += f'; transfer-syntax={found["transfer_syntax"]}'
    return FileResponse(path, media_type=media_type, stat_result=stat,
                        filename=key + SUFFIXES.get(found["format"], ""),
                        content_disposition_type="inline")


def _check_range(header: str | None, size: int) -> Response | None:
    """A Range header Starlette would refuse, refused here as a problem (416, or 400
    naming the header); None when the file may be served."""
    if not header:
        return None
    try:
        FileResponse._parse_range_header(header, size)  # Starlette's own parser, public in use
    except MalformedRangeHeader as exc:
        raise BadParameter(f"The Range header is malformed ({exc.content}); use "
                           "'bytes=first-last', several separated by commas.", "Range") from None
    except RangeNotSatisfiable:
        return problem(416, f"No asked range starts inside the file ({size} bytes).",
                       {"Content-Range": f"bytes */{size}"})
    return None


@router.get("/images/{nas}/{key}/rendered", summary="An image, rendered",
            response_class=Response,
            responses={200: {"content": {t: {} for t in IMAGE_FORMATS.values()}}})
def image_rendered(
    nas: str, key: str, caller: CallerDep,
    window: Annotated[Window, Query(description="CT window preset (HU), or auto "
                                    "(1st-99th percentile: any modality).")] = "auto",
    size: Annotated[int, Query(ge=16, le=MAX_RENDER, description="Longest side, pixels "
                               "(never enlarged).")] = VIEW_SIZE,
    format: Annotated[Literal["jpeg", "png"], Query()] = "jpeg",
) -> Response:
    """The image drawn as the dashboard's patient page draws it: its pixels in modality
    units (Hounsfield for CT) through the window, at most `size` pixels a side. JPEG
    2000 images of a Firebird PACS are decoded by their NAS type the same way."""
    data = caller.access.render_instance(caller.principal, nas, key, PRESETS[window], size,
                                         format)
    return Response(data, media_type=IMAGE_FORMATS[format])
