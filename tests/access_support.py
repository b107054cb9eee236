"""An index of two DICOM NAS devices for the access tests: ``ct`` holds PAT00001-4 and
``ct2`` PAT00003-6, so PAT00003/4 are one person on both, PAT00001/2 only on ct and
PAT00005/6 only on ct2. Real files, indexed by the real engine."""

from __future__ import annotations

from pathlib import Path

from nasindex.access.principal import CLINICIAN, Principal
from nasindex.config import Settings
from nasindex.demo import DemoPatient, demo_patients
from nasindex.index.db import migrate
from support import age, run_nas, write_config, write_tree

PEOPLE: list[DemoPatient] = demo_patients(6, 3)
ONLY_CT = PEOPLE[0:2]
SHARED = PEOPLE[2:4]
ONLY_CT2 = PEOPLE[4:6]
PHI_NAMES = [part for p in PEOPLE for part in p.name.split("^")]  # must never reach a log


def two_nas_index(base: Path, extra_toml: str = "") -> Settings:
    """Write, index and return the two-NAS setup under ``base`` (config: nasindex.toml)."""
    write_tree(base / "ct", PEOPLE[0:4], size=32)
    write_tree(base / "ct2", PEOPLE[2:6], size=32)
    for root in (base / "ct", base / "ct2"):
        age(root)
    config = base / "nasindex.toml"
    settings = write_config(config, {"ct": {"type": "dicom-folder", "root": str(base / "ct")},
                                     "ct2": {"type": "dicom-folder",
                                             "root": str(base / "ct2")}})
    migrate(settings.index.url)
    for nas in ("ct", "ct2"):
        run_nas(settings, nas, "full")
    if extra_toml:
        with config.open("a", encoding="utf-8") as f:
            f.write(extra_toml)
    return settings


def clinician(user: str = "alice", scope: frozenset[str] | None = None,
              session: str | None = None) -> Principal:
    return Principal(user, frozenset({CLINICIAN}), scope, "192.0.2.10", "api", session)
