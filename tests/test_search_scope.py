"""The NAS scope (issue 8's per-NAS access rule) in the query layer, on SQLite and
PostgreSQL: a record on a NAS outside the scope is never returned, never named as a
linked partner, never counted; the patient page, its studies, files and images and the
filters' choices stay inside the scope too."""

from __future__ import annotations

import pytest
from search_support import nas_pk, records

from nasindex import store
from nasindex.search import (
    SearchQuery,
    facets,
    images,
    nas_roots,
    patient,
    search,
    series_files,
    study_tree,
)

JANE = {("ct", "PAT001"), ("pacs2", "PAT001"), ("pacs3", "X-77")}


def _find(engine, scope, **kw):
    return search(engine, SearchQuery(**kw), scope=scope)


def _records(result) -> set[tuple[str, str]]:
    return {(r.nas, r.patient_id) for r in result.patients}


def test_search_never_returns_names_or_counts_outside_the_scope(people_index):
    engine = people_index
    assert _records(_find(engine, None, text="jane doe")) == JANE
    two = _find(engine, frozenset({"pacs2", "pacs3"}), text="jane doe")
    assert _records(two) == JANE - {("ct", "PAT001")} and two.total == 1
    assert "ct" not in two.persons[0].linked_because
    alone = _find(engine, frozenset({"pacs3"}), text="jane doe")
    assert _records(alone) == {("pacs3", "X-77")} and alone.persons[0].linked_because is None
    by_id = _find(engine, frozenset({"ct"}), text="PAT001")
    assert _records(by_id) == {("ct", "PAT001")} and by_id.persons[0].linked_because is None
    # The similar-names pass keeps to the scope as well.
    typo = _find(engine, frozenset({"pacs3"}), text="jane deo")
    assert _records(typo) == {("pacs3", "X-77")} and typo.similar_total == 1
    # Counts: every CT study, then only those the scope may see.
    everyone = _find(engine, None, modalities=["CT"], limit=100)
    ct_only = _find(engine, frozenset({"ct"}), modalities=["CT"], limit=100)
    assert ct_only.total == len(ct_only.persons) < everyone.total
    assert {r.nas for r in ct_only.patients} == {"ct"}
    # A NAS filter outside the scope, or an empty scope, sees nothing.
    assert _find(engine, frozenset({"pacs2"}), text="jane", nas=["ct"]).total == 0
    assert _find(engine, frozenset(), text="jane").total == 0


def test_many_candidates_are_ranked_and_counted_inside_the_scope(search_url):
    """Past the small-result path (more than 300 candidates), where the database ranks
    and counts: the scope must hold there too."""
    from nasindex.index.db import get_engine, migrate

    migrate(search_url)
    engine = get_engine(search_url)
    for nas, n, born in (("ct", 320, "19900101"), ("pacs2", 330, "19910101")):
        batch = []
        for i in range(n):
            batch += records(f"{nas}{i:04d}", f"ROE^ANN{i:04d}", born, "F",
                             [(f"2024{1 + i % 12:02d}01", "CT", f"{nas}A{i}", 1)])
        store.write_batch(engine, nas_pk(engine, nas), batch)
    for q in (SearchQuery(text="roe"), SearchQuery(text="ann*"), SearchQuery(text="ro")):
        result = search(engine, q, scope=frozenset({"pacs2"}))
        assert result.total == 330 and {r.nas for r in result.patients} == {"pacs2"}, q
        assert search(engine, q, scope=None).total == 650


def test_patient_page_keeps_to_the_scope(people_index):
    engine = people_index
    whole = patient(engine, "pacs3", "X-77", scope=None)
    assert {(r.nas, r.patient_id) for r in whole.records} == JANE
    part = patient(engine, "pacs3", "X-77", scope=frozenset({"pacs2", "pacs3"}))
    assert [(r.nas, r.patient_id) for r in part.records] == [("pacs3", "X-77"),
                                                             ("pacs2", "PAT001")]
    assert "ct" not in part.linked_because
    # A record outside the scope does not exist for the caller, nor do its studies,
    # series files, images or root.
    outside = frozenset({"pacs2"})
    assert patient(engine, "ct", "PAT001", scope=outside) is None
    assert study_tree(engine, "ct", "PAT001", scope=outside) == []
    series = study_tree(engine, "ct", "PAT001", scope=None)[0].series[0].series_uid
    assert series_files(engine, "ct", series, scope=None)
    assert series_files(engine, "ct", series, scope=outside) == []
    assert images(engine, "ct", "PAT001", scope=None)
    assert images(engine, "ct", "PAT001", scope=outside) == []
    assert set(nas_roots(engine, scope=outside)) == {"pacs2"}
    assert facets(engine, scope=frozenset({"pacs3"})) == {
        "modalities": ["US"], "nas": ["pacs3"], "patients": 1}
    assert facets(engine, scope=None)["patients"] == 12


def test_scope_is_required_and_must_be_a_set(people_index):
    with pytest.raises(TypeError):
        search(people_index, SearchQuery(text="jane"))  # no default: callers must decide
    with pytest.raises(TypeError):
        search(people_index, SearchQuery(text="jane"), scope="ct")
    with pytest.raises(TypeError):
        patient(people_index, "ct", "PAT001", scope=["ct"])
