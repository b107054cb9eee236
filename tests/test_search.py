"""Every matching rule of README "Matching rules", on SQLite and on a real PostgreSQL.

The index is filled through the real write path (``store.write_batch`` with
``InstanceRecord``s), as the sync engine does.
"""

from __future__ import annotations

import pytest
from search_support import fill, nas_pk, records
from sqlalchemy import func, select, text

from nasindex import store
from nasindex.index.db import SEGMENTS_KEPT, alembic_config, get_engine, migrate
from nasindex.index.models import Patient
from nasindex.search import (
    SearchQuery,
    normalize_date,
    patient,
    search,
    series_files,
    study_tree,
)
from nasindex.search.backends import backend
from nasindex.search.candidates import candidate_select
from nasindex.search.limits import Deadline
from nasindex.search.plan import Plan
from nasindex.search.terms import parse_terms


@pytest.fixture
def url(search_url):
    return search_url


@pytest.fixture
def engine(people_index):
    """Shared by the module's tests, which only read it."""
    return people_index


def ids(result) -> list[tuple[str, str]]:
    return [(r.nas, r.patient_id) for r in result.patients]


def find(engine, **kw) -> set[tuple[str, str]]:
    return set(ids(search(engine, SearchQuery(fuzzy=False, **kw), scope=None)))


JANE = {("ct", "PAT001"), ("pacs2", "PAT001"), ("pacs3", "X-77")}
MULLERS = {("ct", "PAT003"), ("pacs2", "PAT004")}


# -- names -----------------------------------------------------------------------------

@pytest.mark.parametrize("typed", ["jane doe", "DOE^JANE", "Doe, Jane", "doe jane", "JANE  DOE"])
def test_name_parts_in_any_order(engine, typed):
    assert find(engine, text=typed) == JANE


@pytest.mark.parametrize("typed", ["muller", "müller", "MÜLLER", "Muller"])
def test_case_and_accent_insensitive(engine, typed):
    assert find(engine, text=typed) == MULLERS


def test_wildcards_stay_within_one_name_part(engine):
    assert find(engine, text="m?ller") == MULLERS
    assert find(engine, text="sch*dt") == {("ct", "PAT100")}
    assert find(engine, text="d*") >= JANE
    assert ("ct", "PAT002") not in find(engine, text="d*")  # MACDOE does not start with d
    assert find(engine, text="*doe") == JANE | {("ct", "PAT002")}
    # 'd*ne' would match across 'doe jane' if * could cross a part boundary
    assert find(engine, text="d*ne") == set()
    assert find(engine, text="d?e jane") == JANE


def test_fragment_inside_a_part_needs_three_letters(engine):
    assert find(engine, text="doe") == JANE | {("ct", "PAT002")}
    assert find(engine, text="oe") == set()  # two letters: only at the start of a part
    assert find(engine, text="li") == {("ct", "PAT011")}  # not OLIVER
    assert find(engine, text="liv") == {("ct", "PAT012")}


@pytest.mark.parametrize("typed",
                         ["山田", "山田 太郎", "山田太郎", "やまだ", "taro yamada", "太郎"])
def test_ideographic_and_phonetic_groups(engine, typed):
    assert find(engine, text=typed) == {("ct", "PAT010")}


def test_exact_part_ranks_before_fragment(engine):
    result = search(engine, SearchQuery(text="doe", fuzzy=False), scope=None)
    assert result.patients[-1].patient_id == "PAT002"  # MACDOE: inside a part
    assert result.persons[0].records[0].patient_id in ("PAT001", "X-77")


# -- the typo-tolerant pass ------------------------------------------------------------

def test_typos_add_similar_results_after_exact_ones(engine):
    result = search(engine, SearchQuery(text="schmitt"), scope=None)
    assert ids(result) == [("ct", "PAT100")]
    assert result.patients[0].match == "similar" and result.similar_total == 1
    assert any("similar" in n for n in result.notes)
    swapped = search(engine, SearchQuery(text="jane deo"), scope=None)
    assert set(ids(swapped)) == JANE and swapped.persons[0].match == "similar"
    jhon = search(engine, SearchQuery(text="jhon smith"), scope=None)
    assert set(ids(jhon)) == {("ct", "PAT013")}
    # exact matches come first, similar ones after; nothing is dropped
    mixed = search(engine, SearchQuery(text="mueller"), scope=None)
    assert set(ids(mixed)) == MULLERS and all(p.match == "similar" for p in mixed.persons)
    exact = search(engine, SearchQuery(text="muller"), scope=None)
    assert exact.similar_total == 0 and all(p.match == "exact" for p in exact.persons)


def test_typo_pass_is_only_a_fallback(engine):
    # exact hits: no similar ones added
    result = search(engine, SearchQuery(text="john"), scope=None)
    assert {p.match for p in result.persons} == {"exact"}
    assert search(engine, SearchQuery(text="zzzzzz"), scope=None).total == 0


def test_no_match_says_what_to_try(engine):
    result = search(engine, SearchQuery(text="qq", modalities=["PT"]), scope=None)
    assert result.total == 0 and "Try" in result.notes[0] and "filters" in result.notes[0]


# -- identifiers and filters -----------------------------------------------------------

def test_patient_id_exact_then_prefix(engine):
    result = search(engine, SearchQuery(text="PAT100"), scope=None)
    assert ids(result) == [("ct", "PAT100"), ("pacs2", "PAT1000")]
    lower = search(engine, SearchQuery(text="pat100"), scope=None)  # typed lower case
    assert ids(lower) == ids(result)
    assert find(engine, patient_id="PAT100") == {("ct", "PAT100"), ("pacs2", "PAT1000")}
    assert find(engine, patient_id="PAT00") == {("ct", "PAT001"), ("pacs2", "PAT001"),
                                                ("ct", "PAT002"), ("ct", "PAT003"),
                                                ("pacs2", "PAT004")}


def test_accession_number(engine):
    assert find(engine, text="ACC-9") == {("ct", "PAT100")}
    assert find(engine, accession="acc-9") == {("ct", "PAT100")}
    result = search(engine, SearchQuery(accession="ACC-9"), scope=None)
    assert [s.accession for s in result.patients[0].studies] == ["ACC-9"]


def test_any_of_several_modalities(engine):
    got = find(engine, modalities=["MR", "us"])
    assert got == {("ct", "PAT003"), ("pacs3", "X-77"), ("ct", "PAT100"), ("pacs2", "PAT1000")}
    result = search(engine, SearchQuery(text="schmidt", modalities=["MR"]), scope=None)
    assert [s.modalities for s in result.patients[0].studies] == [["MR"]]


def test_study_date_ranges_open_ended(engine):
    assert find(engine, date_from="20241201") == {("ct", "PAT100"), ("pacs2", "PAT001")}
    assert find(engine, date_to="2019-01-01") == {("ct", "PAT013"), ("ct", "PAT100")}
    assert find(engine, date_from="20240101", date_to="20240131") == {
        ("ct", "PAT001"), ("ct", "PAT010"), ("ct", "PAT011")}
    # one study must meet every study filter at once
    assert find(engine, modalities=["MR"], date_from="20241201") == set()
    with pytest.raises(ValueError):
        normalize_date("2024-02-30")


def test_birth_date_and_nas(engine):
    assert find(engine, birth_date="1970-01-01") == JANE | {("ct", "PAT013")}
    assert find(engine, text="jane", nas=["pacs2", "pacs3"]) == JANE - {("ct", "PAT001")}


def test_relevance_then_latest_study_and_paging(engine):
    result = search(engine, SearchQuery(modalities=["CT"], limit=3), scope=None)
    latest = [p.latest_study for p in result.persons]
    assert latest == sorted(latest, reverse=True)
    assert result.persons[0].records[0].patient_id == "PAT100"  # 2024-12-01
    everyone = search(engine, SearchQuery(modalities=["CT"], limit=100), scope=None)
    assert result.total == everyone.total == len(everyone.persons)
    pages = [search(engine, SearchQuery(modalities=["CT"], limit=3, offset=o), scope=None).persons
             for o in range(0, everyone.total, 3)]
    flat = [p.records[0].patient_id for page in pages for p in page]
    assert flat == [p.records[0].patient_id for p in everyone.persons]


# -- one person on several NAS devices -------------------------------------------------

def test_same_person_on_several_nas_is_one_result_never_merged(engine):
    result = search(engine, SearchQuery(text="jane doe", fuzzy=False), scope=None)
    assert result.total == 1 and len(result.persons) == 1
    person = result.persons[0]
    assert [(r.nas, r.patient_id) for r in person.records] == sorted(JANE)
    assert "name and birth date" in person.linked_because and "X-77" in person.linked_because
    by_id = search(engine, SearchQuery(patient_id="PAT001", fuzzy=False), scope=None).persons[0]
    assert by_id.linked_because.startswith("Same Patient ID")
    # SMITH^JOHN shares only the birth date: a separate person
    assert search(engine, SearchQuery(birth_date="19700101"), scope=None).total == 2
    with engine.connect() as conn:  # the index keeps three records
        assert conn.scalar(select(func.count()).select_from(Patient)
                           .where(Patient.name_key == " doe jane ")) == 3


def test_patient_page_data(engine):
    person = patient(engine, "pacs3", "X-77", scope=None)
    assert [(r.nas, r.patient_id) for r in person.records] == [
        ("pacs3", "X-77"), ("ct", "PAT001"), ("pacs2", "PAT001")]
    tree = study_tree(engine, "ct", "PAT001", scope=None)
    assert len(tree) == 1 and len(tree[0].series) == 2 and tree[0].instances == 4
    assert tree[0].folder == "\\\\ct\\share\\PAT001\\20240110_A1"
    assert tree[0].series[1].folder.endswith("20240110_A1\\S002")
    files = series_files(engine, "ct", tree[0].series[0].series_uid, scope=None)
    assert [f["instance_number"] for f in files] == [1, 2]
    assert patient(engine, "ct", "NOPE", scope=None) is None


def test_json_shape_is_stable(engine):
    d = search(engine, SearchQuery(text="schmidt"), scope=None).patients[0].as_dict()
    assert {"nas", "patient_id", "patient_name", "birth_date", "sex", "studies"} <= set(d)
    assert {"study_uid", "date", "description", "modalities", "accession", "series_count",
            "instance_count"} <= set(d["studies"][0])


# -- indexes ---------------------------------------------------------------------------

def _explain(engine, typed: str) -> str:
    """The database's plan for the candidates of a search for ``typed``."""
    with engine.connect() as conn, backend(conn).bounded(conn, Deadline.after(30)):
        plan = Plan(backend(conn), SearchQuery(text=typed), parse_terms(typed), None)
        stmt = candidate_select(plan).params(plan.params)
        compiled = stmt.compile(conn, compile_kwargs={"literal_binds": True})
        if conn.dialect.name == "sqlite":
            rows = conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
            return "\n".join(str(r[-1]) for r in rows)
        conn.execute(text("SET enable_seqscan = off"))  # tiny tables: force the question
        return "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {compiled}")))


@pytest.mark.parametrize("typed", ["doe", "li", "sch*dt"])
def test_name_search_uses_the_substring_index(engine, typed):
    plan = _explain(engine, typed)
    if engine.dialect.name == "sqlite":
        assert "VIRTUAL TABLE INDEX" in plan, plan
        assert not any(line.split()[:2] == ["SCAN", "patient"] for line in plan.splitlines())
    else:
        assert "ix_patient_name_key_trgm" in plan, plan


def test_index_follows_renames(search_engine):
    engine = search_engine  # its own index: this test writes
    store.write_batch(engine, nas_pk(engine, "ct"), records(
        "PAT011", "LEE^WEI", "19880808", "M", [("20240120", "CT", "A11", 1)]))
    assert find(engine, text="lee wei") == {("ct", "PAT011")}
    assert find(engine, text="li wei") == set()


def test_a_run_leaves_the_name_index_merged(tmp_path):
    """Each write batch adds a segment to SQLite's name index (and a delete marker per
    changed patient): a search would read them all. The end of a run merges them."""
    eng = get_engine(f"sqlite:///{tmp_path / 'index.db'}")
    migrate(str(eng.url))
    fill(eng)  # a batch per patient

    def segments(index: str = "patient_rank_fts") -> int:
        with eng.connect() as conn:
            return conn.scalar(text(f"SELECT count(DISTINCT segid) FROM {index}_idx"))

    assert segments() > SEGMENTS_KEPT and segments("patient_part_fts") > SEGMENTS_KEPT
    run = store.start_run(eng, nas_pk(eng, "ct"), "full", None)
    store.finish_run(eng, run, "success", None, {})
    assert segments() == 1 and segments("patient_part_fts") == 1
    assert find(eng, text="doe") == {("ct", "PAT001"), ("pacs2", "PAT001"), ("pacs3", "X-77"),
                                     ("ct", "PAT002")}


def test_migration_upgrades_an_existing_index(url):
    from alembic import command

    cfg = alembic_config(url)
    eng = get_engine(url)
    # The store writes today's columns: data is written at the head, then the index is
    # taken down to an old revision and up again (the upgrades meet existing rows).
    migrate(url)
    store.write_batch(eng, nas_pk(eng, "ct"), records(
        "PAT010", "YAMADA^TARO=山田^太郎", "19900909", "M", [("20240115", "CT", "A10", 1)]))
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    with eng.begin() as conn:  # as written by the version before 0002
        conn.execute(text("UPDATE patient SET name_key = ' yamada taro 山田 太郎 '"))
    migrate(url)
    assert find(eng, text="山田太郎") == {("ct", "PAT010")}
    assert find(eng, text="amad") == {("ct", "PAT010")}
    # 0010 fills the similar-names pass's parts from the names already there.
    assert ids(search(eng, SearchQuery(text="yamda"), scope=None)) == [("ct", "PAT010")]
    # 0005 goes down to 0003's name index and triggers, and up again, keeping its data.
    store.write_batch(eng, nas_pk(eng, "pacs2"), records(
        "PAT011", "LI^WEI", "19880808", "M", [("2024.01.20", "CT", "A11", 1)]))
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    migrate(url)
    assert find(eng, text="amad") == {("ct", "PAT010")}
    assert find(eng, text="wei") == {("pacs2", "PAT011")}
    with eng.connect() as conn:  # a malformed study date is no latest study
        assert conn.scalar(select(Patient.latest_study).where(
            Patient.patient_id == "PAT011")) is None


def test_identical_results_on_sqlite_and_postgresql(tmp_path, postgres_url):
    """The same index on both databases answers every kind of query identically: the
    same people, records, order, studies, notes and totals."""
    engines = []
    for url in (f"sqlite:///{tmp_path / 'same.db'}", postgres_url):
        migrate(url)
        engines.append(get_engine(url))
        fill(engines[-1])
    queries = [SearchQuery(text=t) for t in (
        "jane doe", "muller", "m?ller", "d*", "*doe", "doe", "li", "山田太郎", "schmitt",
        "jane deo", "PAT100", "pat00", "ACC-9", "zz")]
    queries += [SearchQuery(modalities=["CT", "MR"], limit=4, offset=o) for o in (0, 4, 8)]
    queries += [SearchQuery(date_from="2024-01-01"), SearchQuery(birth_date="19700101"),
                SearchQuery(text="jane", nas=["pacs2", "pacs3"])]

    def answer(engine, q):
        r = search(engine, q, scope=None)
        return r.total, r.similar_total, r.notes, [p.as_dict() for p in r.patients]

    for q in queries:
        assert answer(engines[0], q) == answer(engines[1], q), q
