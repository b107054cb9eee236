"""The JSON API, version 1 (``/api/v1``): the shapes of the CLI's ``--json`` output.

| module | endpoints |
|---|---|
| :mod:`.patients` | ``GET /patients``, ``/patients/{nas}/{patient_id}``, ``.../images`` |
| :mod:`.images` | ``GET /images/{nas}/{key}`` (the file as stored), ``.../rendered`` |
| :mod:`.runs` | ``POST /nas/{nas}/sync`` |
| :mod:`.status` | ``GET /status``, ``GET /health`` |
"""

from fastapi import APIRouter, Depends

from nasindex.api.v1 import images, patients, runs, status
from nasindex.api.v1.params import known_parameters_only

router = APIRouter(dependencies=[Depends(known_parameters_only)])
for module in (patients, images, runs, status):
    router.include_router(module.router)

__all__ = ["router"]
