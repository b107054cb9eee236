"""Standard DICOM matching for QIDO-RS (nasindex.search.dicom), on SQLite and PostgreSQL:
every supported key and form of value, the project's fuzzy names, one result per UID
across NAS copies, the NAS scope, tombstones, paging and refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from search_support import nas_pk, records
from sqlalchemy import update

from nasindex import store
from nasindex.errors import QueryError
from nasindex.index.models import Instance
from nasindex.search.dicom import DicomQuery, find


def _find(engine, level="study", scope=None, **kw):
    return find(engine, DicomQuery(level, **kw), scope=scope)


def _patients(result) -> list[str]:
    return sorted(r["PatientID"] for r in result.rows)


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("PatientID", "PAT001", ["PAT001", "PAT001"]),
    ("00100020", "PAT01?", ["PAT010", "PAT011", "PAT012", "PAT013"]),
    ("PatientID", "PAT10*", ["PAT100", "PAT100", "PAT1000"]),
    ("PatientID", "pat001", []),  # LO: case counts
    ("PatientName", "doe*", ["PAT001", "PAT001", "X-77"]),  # PN: case does not
    ("PatientName", "DOE^JANE", ["PAT001", "PAT001", "X-77"]),
    ("PatientName", "*DOE*", ["PAT001", "PAT001", "PAT002", "X-77"]),
    ("PatientName", "JANE^DOE", []),  # the order of components counts
    ("PatientName", "MULLER*", ["PAT004"]),  # accents count: not MÜLLER
    ("PatientName", "MÜLLER^J?RG", ["PAT003"]),
    ("PatientName", "YAMADA^TARO=*", ["PAT010"]),
    ("PatientName", "D*", ["PAT001", "PAT001", "X-77"]),
    ("StudyDate", "20240110", ["PAT001"]),
    ("StudyDate", "20240601-20250101", ["PAT001", "PAT004", "PAT100"]),
    ("StudyDate", "-20200101", ["PAT013", "PAT100", "X-77"]),
    ("StudyDate", "20250101-", ["PAT001"]),
    ("ModalitiesInStudy", "MR", ["PAT003", "PAT100", "PAT1000"]),
    ("ModalitiesInStudy", "US\\CR", ["PAT001", "X-77"]),
    ("AccessionNumber", "ACC-9", ["PAT100"]),
    ("AccessionNumber", "B*", ["PAT001", "PAT004", "PAT1000"]),
    ("PatientBirthDate", "19700101", ["PAT001", "PAT001", "PAT013", "X-77"]),
    ("PatientSex", "F", ["PAT001", "PAT001", "PAT004", "PAT1000", "X-77"]),
    ("StudyDescription", "US*", ["X-77"]),
    ("PatientName", "", ["PAT001", "PAT001", "PAT002", "PAT003", "PAT004", "PAT010",
                         "PAT011", "PAT012", "PAT013", "PAT100", "PAT100", "PAT1000",
                         "X-77"]),
])
def test_study_keys_match_as_the_standard_says(people_index, key, value, expected):
    assert _patients(_find(people_index, keys={key: value})) == expected


def test_fuzzy_names_use_the_projects_rules(people_index):
    fuzzy = {"fuzzy": True}
    assert _patients(_find(people_index, keys={"PatientName": "jane doe"}, **fuzzy)) == \
        ["PAT001", "PAT001", "X-77"]
    assert _patients(_find(people_index, keys={"PatientName": "jorg muller"}, **fuzzy)) \
        == ["PAT003"]
    assert _patients(_find(people_index, keys={"PatientName": "jhon smith"}, **fuzzy)) \
        == ["PAT013"]  # no exact match: the typo-tolerant pass
    assert _patients(_find(people_index, keys={"PatientName": "jhon smith"})) == []


def test_a_result_carries_its_attributes_and_counts(people_index):
    result = _find(people_index, keys={"PatientID": "PAT100"}, includefield=["00081030"])
    newest, older = result.rows
    assert (newest["StudyDate"], newest["ModalitiesInStudy"], older["ModalitiesInStudy"]) \
        == ("20241201", ["CT"], ["MR"])  # newest first
    assert newest["NumberOfStudyRelatedSeries"] == 1
    assert newest["NumberOfStudyRelatedInstances"] == 2
    assert newest["StudyDescription"] == "CT STUDY"
    assert "StudyDescription" in {a.keyword for a in result.attributes}
    plain = _find(people_index, keys={"PatientID": "PAT100"})
    assert "StudyDescription" not in {a.keyword for a in plain.attributes}


def test_series_and_instance_levels(people_index):
    study = _find(people_index, keys={"PatientID": "PAT001", "ModalitiesInStudy": "CT"})
    uid = study.rows[0]["StudyInstanceUID"]
    series = _find(people_index, "series", study_uid=uid)
    assert [s["SeriesNumber"] for s in series.rows] == [1, 2]
    assert all(s["NumberOfSeriesRelatedInstances"] == 2 for s in series.rows)
    assert {s["StudyInstanceUID"] for s in series.rows} == {uid}
    assert _find(people_index, "series", study_uid=uid, keys={"SeriesNumber": "2"}).rows[0][
        "SeriesInstanceUID"] == series.rows[1]["SeriesInstanceUID"]
    files = _find(people_index, "instance", study_uid=uid,
                  series_uid=series.rows[0]["SeriesInstanceUID"])
    assert [i["InstanceNumber"] for i in files.rows] == [1, 2]
    one = _find(people_index, "instance", keys={"SOPInstanceUID": files.rows[1]["SOPInstanceUID"]})
    assert one.rows == [files.rows[1]]
    every_mr = _find(people_index, "series", keys={"Modality": "MR"})
    assert sorted(s["PatientID"] for s in every_mr.rows) == ["PAT003", "PAT100", "PAT1000"]


def test_scope_paging_and_lists(people_index):
    assert _patients(_find(people_index, scope=frozenset({"pacs3"}))) == ["X-77"]
    assert _find(people_index, scope=frozenset()).rows == []
    everything = _find(people_index)
    page = _find(people_index, limit=5, offset=5)
    assert page.rows == everything.rows[5:10] and page.more
    assert not _find(people_index, offset=10).more
    uids = [r["StudyInstanceUID"] for r in everything.rows[:3]]
    listed = _find(people_index, keys={"StudyInstanceUID": ",".join(uids)})
    assert sorted(r["StudyInstanceUID"] for r in listed.rows) == sorted(uids)
    assert _find(people_index, keys={"StudyInstanceUID": "\\".join(uids)}).rows == listed.rows


def test_unsupported_keys_are_named_bad_values_refused(people_index):
    result = _find(people_index, keys={"ReferringPhysicianName": "X*", "PatientID": "X-77"},
                   includefield=["StudyID"])
    assert result.ignored == ["ReferringPhysicianName", "StudyID"]
    assert _patients(result) == ["X-77"]
    for keys in ({"NotAKeyword": "1"}, {"StudyDate": "2024-01-01"},
                 {"StudyDate": "20240101-20230101x"}, {"StudyInstanceUID": "1.2.*"},
                 {"PatientBirthDate": "1970"}):
        with pytest.raises(QueryError):
            _find(people_index, keys=keys)
    with pytest.raises(QueryError, match="SeriesNumber must be a whole number"):
        _find(people_index, "series", keys={"SeriesNumber": "one"})
    assert _find(people_index, keys={"SeriesNumber": "one"}).ignored == ["SeriesNumber"]
    with pytest.raises(QueryError, match="limit"):
        _find(people_index, limit=0)


def test_one_result_per_uid_across_nas_copies_and_tombstones(search_url):
    from nasindex.index.db import get_engine, migrate

    migrate(search_url)
    engine = get_engine(search_url)
    copy = records("PAT7", "COPY^ANN", "19700101", "F", [("20240101", "CT", "K1", 1)])
    for nas in ("b-nas", "a-nas"):
        store.write_batch(engine, nas_pk(engine, nas), copy)
    result = _find(engine, keys={"PatientID": "PAT7"})
    assert len(result.rows) == 1
    assert result.rows[0]["NumberOfStudyRelatedInstances"] == 2  # the same two SOPs
    files = _find(engine, "instance", keys={"PatientID": "PAT7"})
    assert len(files.rows) == 2
    with engine.begin() as conn:  # every file of the study gone on both NAS devices
        conn.execute(update(Instance).values(missing_since=datetime.now(UTC)))
    assert _find(engine, keys={"PatientID": "PAT7"}).rows == []
    assert _find(engine, "instance", keys={"PatientID": "PAT7"}).rows == []
