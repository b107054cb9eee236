"""The small index the search tests share, filled through the real write path
(``store.write_batch`` with ``InstanceRecord``s, as the sync engine does), on SQLite and
on a real PostgreSQL (the ``search_url``/``search_engine`` fixtures, registered by
conftest.py, run a test on both)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from nasindex import store
from nasindex.config import NasSettings
from nasindex.contract import InstanceRecord
from nasindex.index.db import get_engine, migrate

_uid = itertools.count(1)

# (nas, patient_id, PN, birth, sex, [(study date, modality, accession, series count)])
PEOPLE = [
    ("ct", "PAT001", "DOE^JANE", "19700101", "F", [("20240110", "CT", "A1", 2)]),
    ("ct", "PAT002", "MACDOE^JOHN", "19650505", "M", [("20230301", "CT", "A2", 1)]),
    ("ct", "PAT003", "MÜLLER^JÖRG", "19500202", "M", [("20220101", "MR", "A3", 1)]),
    ("pacs2", "PAT004", "MULLER^ANNA", "19800303", "F", [("20240601", "CT", "B4", 1)]),
    ("pacs2", "PAT001", "DOE^JANE", "19700101", "F", [("20250101", "CR", "B1", 1)]),
    ("pacs3", "X-77", "Doe^Jane", "19700101", "F", [("20200101", "US", "C7", 1)]),
    ("ct", "PAT010", "YAMADA^TARO=山田^太郎=やまだ^たろう", "19900909", "M",
     [("20240115", "CT", "A10", 1)]),
    ("ct", "PAT011", "LI^WEI", "19880808", "M", [("20240120", "CT", "A11", 1)]),
    ("ct", "PAT012", "OLIVER^TOM", "19770707", "M", [("20210101", "CT", "A12", 1)]),
    ("ct", "PAT013", "SMITH^JOHN", "19700101", "M", [("20190101", "CT", "A13", 1)]),
    ("ct", "PAT100", "SCHMIDT^ERIK", "19600606", "M",
     [("20241201", "CT", "ACC-9", 1), ("20180101", "MR", "A100", 1)]),
    ("pacs2", "PAT1000", "BROWN^ZOË", "19910101", "F", [("20230101", "MR", "B1000", 1)]),
]


def records(pid: str, pn: str, birth: str, sex: str, studies) -> list[InstanceRecord]:
    out = []
    for day, modality, acc, n_series in studies:
        study = f"1.2.{next(_uid)}"
        for s in range(n_series):
            series = f"1.3.{next(_uid)}"
            for i in range(2):
                key = f"{pid}/{day}_{acc}/S{s + 1:03d}/IM_{i + 1:05d}.dcm"
                out.append(InstanceRecord(
                    key=key, rel_path=key, size=1000, mtime_ns=1,
                    sop_instance_uid=f"1.4.{next(_uid)}", study_uid=study, series_uid=series,
                    patient_id=pid, patient_name=pn, birth_date=birth, sex=sex,
                    study_date=day, study_description=f"{modality} STUDY",
                    accession_number=acc, series_number=s + 1, modality=modality,
                    instance_number=i + 1))
    return out


def nas_pk(engine, nas: str) -> int:
    return store.ensure_nas(engine, NasSettings(id=nas, type="dicom-folder",
                                                root=Path(f"/srv/{nas}"),
                                                display_root=f"\\\\{nas}\\share"))


def fill(engine) -> None:
    global _uid
    _uid = itertools.count(1)  # the same UIDs for every index filled
    for nas, pid, pn, birth, sex, studies in PEOPLE:
        store.write_batch(engine, nas_pk(engine, nas), records(pid, pn, birth, sex, studies))


@pytest.fixture(params=["sqlite", "postgresql"])
def search_url(request, tmp_path) -> str:
    """An empty index URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.db'}"
    return request.getfixturevalue("postgres_url")


def module_engine(request, tmp_path_factory):
    """A new, migrated index on the database of a module-scoped fixture parametrized
    with "sqlite" and "postgresql"."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('index') / 'index.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    migrate(url)
    return get_engine(url)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def people_index(request, tmp_path_factory):
    """The index of PEOPLE, filled once per test module and database: for tests that
    only read it."""
    eng = module_engine(request, tmp_path_factory)
    fill(eng)
    return eng


@pytest.fixture
def search_engine(search_url):
    """The index of PEOPLE, on each database."""
    migrate(search_url)
    eng = get_engine(search_url)
    fill(eng)
    return eng
