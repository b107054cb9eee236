"""The rule that links one person's records across NAS devices is written once
(``nasindex.search.people.LINK_KEYS``). The index's ``may_link`` flag, kept by migration
0003's triggers, must agree with it on both databases, or search would leave a linked
record alone (the flag is how search finds the records it must group)."""

from __future__ import annotations

import random

from search_support import nas_pk, records
from sqlalchemy import select

from nasindex import store
from nasindex.index.models import Nas, Patient
from nasindex.search import SearchQuery, patient, search
from nasindex.search.people import Candidate, group

# Small pools, so that IDs, names and birth dates collide often and in every mix; empty
# names and unknown birth dates must link nothing by themselves.
IDS = ["P1", "P2", "P3", "P4", "", "P5"]
NAMES = ["DOE^JANE", "Doe^Jane", "ROE^RICHARD", "", "MÜLLER^JÖRG", "MULLER^JORG"]
BIRTHS = ["19700101", "19800202", None, ""]


def _people(rng: random.Random) -> list[tuple[str, str, str, str | None]]:
    out, seen = [], set()
    for _ in range(40):
        nas, pid = rng.choice(["ct", "pacs2", "pacs3"]), rng.choice(IDS)
        if (nas, pid) not in seen:  # a Patient ID is unique per NAS
            seen.add((nas, pid))
            out.append((nas, pid, rng.choice(NAMES), rng.choice(BIRTHS)))
    return out


def _write(engine, people) -> None:
    for nas, pid, name, birth in people:
        store.write_batch(engine, nas_pk(engine, nas), records(
            pid, name, birth, "F", [("20240101", "CT", f"A{pid}", 1)]))


def _flags_and_rule(engine) -> tuple[set[int], set[int]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Patient.id, Nas.name, Patient.patient_id,
                                   Patient.name_key, Patient.birth_date, Patient.may_link)
                            .join(Nas, Nas.id == Patient.nas_id)).all()
    flagged = {r[0] for r in rows if r[-1]}
    linked = {c.pk for g in group([Candidate(*r[:5], None) for r in rows]) if len(g) > 1
              for c in g}
    return flagged, linked


def test_index_link_flags_follow_the_one_rule(search_url):
    from nasindex.index.db import get_engine, migrate

    migrate(search_url)
    engine = get_engine(search_url)
    rng = random.Random(7)
    people = _people(rng)
    _write(engine, people)
    flagged, linked = _flags_and_rule(engine)
    assert linked and flagged == linked
    # Renames and new birth dates: the flag is never reset (a superset is safe), but every
    # record the rule now links must carry it.
    _write(engine, [(nas, pid, rng.choice(NAMES), rng.choice(BIRTHS))
                    for nas, pid, *_ in people[::3]])
    flagged, linked = _flags_and_rule(engine)
    assert linked <= flagged
    # And search and the patient page group by the same rule.
    everyone = search(engine, SearchQuery(modalities=["CT"], limit=200, fuzzy=False), scope=None)
    grouped = {(r.nas, r.patient_id) for p in everyone.persons if len(p.records) > 1
               for r in p.records}
    with engine.connect() as conn:
        by_pk = dict(((pk), (nas, pid)) for pk, nas, pid in conn.execute(
            select(Patient.id, Nas.name, Patient.patient_id).join(Nas)))
    assert grouped == {by_pk[pk] for pk in linked}
    for nas, pid in sorted(grouped)[:5]:
        person = patient(engine, nas, pid, scope=None)
        assert len(person.records) > 1 and person.linked_because
