"""The search benchmark's workload: a generated index (names with a long tail, three NAS
devices, 1-2 studies per patient over ten years) and the kinds of query a clinician
types, each with the same filter as an unindexed scan to compare with."""

from __future__ import annotations

import random
from datetime import date, timedelta

from sqlalchemy.engine import Engine

from nasindex.index.db import compact_name_index
from nasindex.names import name_key
from nasindex.search import SearchQuery

FAMILIES = ["Müller", "García", "Nguyen", "O'Brien", "Kowalski", "Johansson", "Dubois",
            "Smith", "Okafor", "Rossi", "Novák", "Fernández", "Ivanova", "Schmidt", "Zhang",
            "Lefèvre", "Brown", "Yılmaz", "Andersen", "Costa", "Doe", "Søndergaard", "Weiß",
            "Papadopoulos", "Martín", "Wagner", "Becker", "Hoffmann", "Schulz", "Koch"]
SYLLABLES = ["ka", "ber", "lin", "mo", "ran", "sch", "tel", "vi", "dor", "ne", "gu", "hal",
             "stra", "wen", "zo", "pel", "mar", "qui", "fre", "lo", "nik", "sa", "tor", "ul",
             "ben", "dal", "ros", "che", "iv", "ley"]
GIVEN = ["Jane", "María", "Zoë", "Anna", "Chloé", "Ingrid", "Agnieszka", "Aiko", "Fatima",
         "Léa", "Olga", "Sofía", "Jörg", "John", "José", "Lukas", "François", "Piotr",
         "Ahmet", "Chen", "Emeka", "Matteo", "Erik", "Søren", "Hannah", "Mehmet", "Nora",
         "Pavel", "Rita", "Tomás", "Ulla", "Wei", "Yusuf", "Elena", "Kai", "Mila"]
MODALITIES = ["CT", "CT", "CT", "MR", "MR", "CR", "US", "DX"]
DAY0 = date(2016, 1, 1)
DAYS = 10 * 365


def family(rng: random.Random) -> str:
    """A third from a common list, the rest made of syllables: a long-tailed surname mix."""
    if rng.random() < 0.33:
        return rng.choice(FAMILIES)
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()


def generate(engine: Engine | None, patients: int, instances: int, seed: int = 1) -> dict:
    """Fill an empty, migrated index (none: only make the rows); returns sample values
    to query for. The same arguments make the same index."""
    rng = random.Random(seed)
    nas = [(1, "ct", "dicom-folder", "/srv/ct"), (2, "pacs2", "firebird-jp2", "/srv/p2"),
           (3, "pacs3", "firebird-jp2", "/srv/p3")]
    pat, stu, ser, ins = [], [], [], []
    series_per_patient = max(1, instances // patients // 4)
    for p in range(1, patients + 1):
        name = f"{family(rng).upper()}^{rng.choice(GIVEN)}"
        birth = (date(1930, 1, 1) + timedelta(days=rng.randrange(80 * 365))).strftime("%Y%m%d")
        pat.append((p, rng.choice((1, 1, 2, 3)), f"P{p:07d}", name, name_key(name), birth,
                    rng.choice("FM")))
        for _ in range(rng.choice((1, 1, 2))):
            st = len(stu) + 1
            day = (DAY0 + timedelta(days=rng.randrange(DAYS))).strftime("%Y%m%d")
            mod = rng.choice(MODALITIES)
            stu.append((st, pat[-1][1], p, f"1.2.{st}", day, f"{mod} STUDY", f"A{st:08d}", mod))
            for _ in range(series_per_patient):
                ser.append((len(ser) + 1, pat[-1][1], st, f"1.3.{len(ser) + 1}", mod))
    if engine is None:
        return {"patients": pat, "studies": stu}
    per_series, extra = divmod(instances, len(ser))
    for s_pk, nas_pk, st_pk, _uid, _mod in ser:
        for i in range(per_series + (1 if s_pk <= extra else 0)):
            k = len(ins) + 1
            ins.append((k, nas_pk, s_pk, f"{st_pk}/{s_pk}/IM{i:04d}.dcm", f"1.4.{k}", i + 1))
    _bulk_insert(engine, nas, pat, stu, ser, ins)
    return {"patients": pat, "studies": stu}


def _bulk_insert(engine: Engine, nas, pat, stu, ser, ins) -> None:
    cols = {
        "nas": ("id, name, type, root, created_at", [(*n, "2026-01-01 00:00:00") for n in nas]),
        "patient": ("id, nas_id, patient_id, patient_name, name_key, birth_date, sex", pat),
        "study": ("id, nas_id, patient_pk, study_uid, study_date, description, "
                  "accession_number, modalities", stu),
        "series": ("id, nas_id, study_pk, series_uid, modality", ser),
        "instance": ("id, nas_id, series_pk, item_key, rel_path, sop_instance_uid, "
                     "instance_number, file_format, size, mtime_ns, version, indexed_at",
                     [(k, n, s, rel, rel, uid, num, "dicom", 500_000, 1, "",
                       "2026-01-01 00:00:00") for k, n, s, rel, uid, num in ins]),
    }
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for table, (names, rows) in cols.items():
            if engine.dialect.name == "postgresql":
                with cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(names.split(",")))
                cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
        raw.commit()
        if engine.dialect.name == "postgresql":
            # As autovacuum would after a load: hint bits set, GIN pending list merged,
            # statistics current (else the first queries pay for all three).
            raw.driver_connection.autocommit = True
            cur.execute("VACUUM ANALYZE")
        else:
            cur.execute("ANALYZE")
            raw.commit()
    finally:
        raw.close()
    compact_name_index(engine)  # as the sync engine does after a run


# -- queries ---------------------------------------------------------------------------

def queries(sample: dict, n: int, seed: int = 2) -> dict[str, list[SearchQuery]]:
    rng = random.Random(seed)
    pats = rng.sample(sample["patients"], n)
    studies = rng.sample(sample["studies"], n)

    def words(p) -> list[str]:
        return p[4].split()  # folded family, given

    def fragment(p) -> str:
        fam = words(p)[0]
        start = rng.randrange(max(1, len(fam) - 3))
        return fam[start:start + 4]

    def family_wildcard(p, where: str) -> str:
        fam = words(p)[0]
        if where == "end":  # mul*
            return f"{fam[:3]}*"
        if where == "start":  # *ller
            return f"*{fam[-4:]}"
        # inside: sch*dt or m?ller, in turn
        return f"{fam[:3]}*{fam[-2:]}" if len(fam) % 2 else f"{fam[0]}?{fam[2:]}"

    def window(s) -> SearchQuery:
        end = date(int(s[4][:4]), int(s[4][4:6]), int(s[4][6:]))
        return SearchQuery(modalities=["CT"], date_from=(end - timedelta(days=29)).isoformat(),
                           date_to=end.isoformat())

    nas_names = {1: "ct", 2: "pacs2", 3: "pacs3"}
    return {
        "exact ID": [SearchQuery(text=p[2]) for p in pats],
        "ID prefix": [SearchQuery(text=p[2][:6]) for p in pats],  # ~100 IDs each
        "accession": [SearchQuery(text=s[6]) for s in studies],
        "name (given family)": [SearchQuery(text=f"{words(p)[1]} {words(p)[0]}") for p in pats],
        "name fragment": [SearchQuery(text=fragment(p)) for p in pats],
        "wildcard mul*": [SearchQuery(text=family_wildcard(p, "end")) for p in pats],
        "wildcard *ller": [SearchQuery(text=family_wildcard(p, "start")) for p in pats],
        "wildcard m*er m?ller": [SearchQuery(text=family_wildcard(p, "inside")) for p in pats],
        "modality + 30 days": [window(s) for s in studies],
        "birth date": [SearchQuery(birth_date=p[5]) for p in pats],
        "fragment + NAS": [SearchQuery(text=fragment(p), nas=[nas_names[p[1]]]) for p in pats],
        "typo (similar pass)": [SearchQuery(text=f"{words(p)[1]} {_typo(rng, words(p)[0])}")
                                for p in pats],
    }


def _typo(rng: random.Random, word: str) -> str:
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]  # swap two letters




def scan_sql(kind: str, q: SearchQuery) -> tuple[str, dict] | None:
    """The filter of ``q`` alone as a scan of the whole table: ``|| ''`` hides a column
    from every index (B-tree, FTS5, pg_trgm) on both databases. Wildcards become LIKE
    patterns (a LIKE may run across name parts: a baseline, not the rule)."""
    if kind.startswith("typo"):
        return None
    if kind == "modality + 30 days":
        return ("SELECT DISTINCT patient_pk FROM study WHERE study_date || '' BETWEEN :a AND :b "
                "AND '/' || replace(modalities, '\\', '/') || '/' LIKE '%/CT/%'",
                {"a": q.date_from.replace("-", ""), "b": q.date_to.replace("-", "")})
    if kind == "birth date":
        return "SELECT id FROM patient WHERE birth_date || '' = :v", {"v": q.birth_date}
    if kind == "accession":
        return "SELECT patient_pk FROM study WHERE accession_number || '' = :v", {"v": q.text}
    if kind == "exact ID":
        return "SELECT id FROM patient WHERE patient_id || '' = :v", {"v": q.text}
    if kind == "ID prefix":
        return "SELECT id FROM patient WHERE patient_id || '' LIKE :v", {"v": q.text + "%"}
    params = {f"w{i}": "%" + w.replace("*", "%").replace("?", "_") + "%"
              for i, w in enumerate(q.text.split())}
    where = " AND ".join(f"name_key || '' LIKE :{name}" for name in params)
    if q.nas:
        where += " AND nas_id + 0 = (SELECT id FROM nas WHERE name = :nas)"
        params["nas"] = q.nas[0]
    return f"SELECT id FROM patient WHERE {where}", params
