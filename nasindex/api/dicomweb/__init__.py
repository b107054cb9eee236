"""DICOMweb (PS3.18) over every NAS: QIDO-RS search and WADO-RS retrieve, mounted at
``/dicomweb``. The routes map HTTP onto the access layer; the matching rules live in
:mod:`nasindex.search.dicom` and the serving of files in :mod:`nasindex.wado`."""

from fastapi import APIRouter

from nasindex.api.dicomweb import qido, wado

PREFIX = qido.PREFIX
router = APIRouter()
router.include_router(qido.router)
router.include_router(wado.router)

__all__ = ["PREFIX", "router"]
