"""A real Orthanc with its DICOMweb plugin (Debian's ``orthanc``, ``orthanc-dicomweb``):
the reference DICOMweb server the QIDO-RS answers are compared with.

:class:`Orthanc` runs one in the foreground on free ports with its own storage folder;
files are loaded with ``POST /instances`` (Orthanc copies them). The ``orthanc`` session
fixture (registered by conftest.py) starts it once and stops it at the end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest

from support import free_port, stop_process, wait_http

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


class Orthanc:
    def __init__(self) -> None:
        for needed in (ORTHANC, DICOMWEB_PLUGIN):
            if not needed.exists():
                raise RuntimeError(f"{needed} not found: install Debian's orthanc and "
                                   "orthanc-dicomweb (scripts/install-system-deps.sh).")
        self.dir = Path(tempfile.mkdtemp(prefix="nasindex-orthanc-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dicomweb = f"{self.url}/dicom-web"
        config = {"Name": "reference", "StorageDirectory": str(self.dir / "storage"),
                  "IndexDirectory": str(self.dir / "storage"), "HttpPort": self.port,
                  "DicomPort": free_port(), "DicomServerEnabled": False,
                  "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
                  "Plugins": [str(DICOMWEB_PLUGIN)],
                  "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
                  "CaseSensitivePN": False, "LimitFindResults": 0, "LimitFindInstances": 0}
        (self.dir / "orthanc.json").write_text(json.dumps(config))
        self.proc: subprocess.Popen | None = None
        self.loaded = False  # set by whoever loads the session's instances

    def start(self, timeout: float = 30) -> Orthanc:
        log = self.dir / "orthanc.log"
        with log.open("wb") as out:  # the process keeps its own handle
            self.proc = subprocess.Popen([str(ORTHANC), str(self.dir / "orthanc.json")],
                                         stdout=out, stderr=subprocess.STDOUT)
        wait_http(f"{self.url}/system", self.proc, "Orthanc", timeout, log)
        return self

    def load(self, files: Iterable[bytes]) -> int:
        """POST each Part 10 file; the number stored."""
        n = 0
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for data in files:
                client.post("/instances", content=data).raise_for_status()
                n += 1
        return n

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def orthanc() -> Iterator[Orthanc]:
    server = Orthanc().start()
    try:
        yield server
    finally:
        server.stop()
