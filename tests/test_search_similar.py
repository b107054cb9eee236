"""The similar-names pass finds near name parts among the distinct parts of all names
(table ``name_part_variant``, migration 0010), kept by triggers: on SQLite and on a real
PostgreSQL. The matching rules themselves are tested in test_search.py."""

from __future__ import annotations

import random

import pytest
from rapidfuzz.distance import OSA
from search_support import nas_pk, records
from sqlalchemy import text

from nasindex import store
from nasindex.names import deletion_variants, name_key, typo_budget
from nasindex.search import SearchQuery, search


def _mutated(rng: random.Random, word: str, edits: int) -> str:
    """``word`` with up to ``edits`` random edits (insert, delete, substitute, swap)."""
    s = list(word)
    for _ in range(rng.randint(0, edits)):
        i, op = rng.randrange(len(s) + 1), rng.choice("idst")
        if op == "i":
            s.insert(i, rng.choice("abcd"))
        elif op == "d" and i < len(s) and len(s) > 1:
            del s[i]
        elif op == "s" and i < len(s):
            s[i] = rng.choice("abcd")
        elif op == "t" and i + 1 < len(s):
            s[i], s[i + 1] = s[i + 1], s[i]
    return "".join(s)


def test_parts_within_the_typo_budget_share_a_deletion_variant():
    """Completeness of the look-up: a part within a word's budget is never missed. Three
    letters make near words common; words up to 11 letters cut at the 7-letter prefix."""
    rng = random.Random(10)
    checked = 0
    for _ in range(20_000):
        word = "".join(rng.choice("abc") for _ in range(rng.randint(3, 11)))
        budget = typo_budget(word)
        part = _mutated(rng, word, budget)
        if OSA.distance(word, part) <= budget:
            checked += 1
            assert deletion_variants(word, budget) & deletion_variants(part, 2), (word, part)
    assert checked > 15_000
    assert deletion_variants("ab", 2) == {"ab"}  # too short to lose a letter
    assert deletion_variants("abc", 1) == {"abc", "bc", "ac", "ab"}


TRICKY = ["O'BRIEN^ANNA", 'QUOTE"D^BACK\\SLASH', "MÜLLER^JÖRG", "YAMADA^TARO=山田^太郎",
          "LI^WEI", "A^BC", "SØNDERGAARD-KOWALCZYKOWSKA^ZOË", "DOE^DOE"]


def _variant_rows(engine) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT variant, part FROM name_part_variant")).all())


def test_triggers_make_the_variants_search_looks_up(search_url):
    """The SQL of migration 0010's triggers and nasindex.names.deletion_variants agree,
    for every part of every written name (quotes, backslashes, other scripts)."""
    from nasindex.index.db import get_engine, migrate

    migrate(search_url)
    engine = get_engine(search_url)
    for n, pn in enumerate(TRICKY):
        store.write_batch(engine, nas_pk(engine, "ct"), records(
            f"T{n}", pn, "19700101", "F", [("20240101", "CT", f"T{n}", 1)]))
    want = {(v, p) for pn in TRICKY for p in name_key(pn).split()
            for v in deletion_variants(p, 2)}
    assert _variant_rows(engine) == want


def _typo(engine, typed: str) -> set[tuple[str, str]]:
    result = search(engine, SearchQuery(text=typed), scope=None)
    assert all(p.match == "similar" for p in result.persons)
    return {(r.nas, r.patient_id) for r in result.patients}


def test_names_written_by_a_sync_are_found_by_the_typo_pass(search_engine):
    engine = search_engine  # its own index: this test writes
    assert _typo(engine, "kowalcyzk piotr") == set()
    store.write_batch(engine, nas_pk(engine, "pacs3"), records(
        "PAT900", "KOWALCZYK^PIOTR", "19610203", "M", [("20250101", "CT", "C900", 1)]))
    assert _typo(engine, "kowalcyzk piotr") == {("pacs3", "PAT900")}
    # Renamed (a corrected record): found by its new name; its old parts find no one.
    store.write_batch(engine, nas_pk(engine, "pacs3"), records(
        "PAT900", "NOWAKOWSKI^PIOTR", "19610203", "M", [("20250101", "CT", "C900", 1)]))
    assert _typo(engine, "nowakowsky") == {("pacs3", "PAT900")}
    assert _typo(engine, "kowalcyzk piotr") == set()
    assert _typo(engine, "kowalcyzk") == set()


@pytest.mark.parametrize("people_index", ["sqlite", "postgresql"], indirect=True)
def test_similar_names_with_a_study_filter(people_index):
    """The pass, driven by the similar names (not by the studies), keeps to a study
    filter: only the studies that meet it are listed."""
    assert _typo(people_index, "schmitt") == {("ct", "PAT100")}
    found = search(people_index, SearchQuery(text="schmitt", modalities=["CT"]), scope=None)
    assert [(r.nas, r.patient_id) for r in found.patients] == [("ct", "PAT100")]
    assert [s.accession for s in found.patients[0].studies] == ["ACC-9"]
    assert search(people_index, SearchQuery(text="schmitt", modalities=["US"]),
                  scope=None).total == 0


def test_sqlite_finds_each_patient_by_its_parts_whole(tmp_path):
    """patient_part_fts (migration 0011) holds every patient under each part of its
    name, kept through renames, as the search's part_token spells them."""
    from nasindex.index.db import get_engine, migrate
    from nasindex.search.backends.sqlite import part_token

    url = f"sqlite:///{tmp_path / 'index.db'}"
    migrate(url)
    engine = get_engine(url)
    pk = nas_pk(engine, "ct")
    for n, pn in enumerate(TRICKY):
        store.write_batch(engine, pk, records(f"T{n}", pn, "19700101", "F",
                                              [("20240101", "CT", f"T{n}", 1)]))
    store.write_batch(engine, pk, records("T0", "NOWAK^ANNA", "19700101", "F",
                                          [("20240101", "CT", "T0", 1)]))  # renamed
    names = {f"T{n}": pn for n, pn in enumerate(TRICKY)} | {"T0": "NOWAK^ANNA"}

    def holders(part: str) -> set[str]:
        with engine.connect() as conn:
            return set(conn.execute(text(
                "SELECT patient_id FROM patient WHERE id IN (SELECT rowid FROM "
                "patient_part_fts WHERE patient_part_fts MATCH :t)"), {"t": part_token(part)}
            ).scalars())

    for part in {p for pn in [*TRICKY, "NOWAK^ANNA"] for p in name_key(pn).split()}:
        assert holders(part) == {pid for pid, pn in names.items()
                                 if part in name_key(pn).split()}, part
    assert holders("o'brien") == set()  # the old name's parts hold it no more
