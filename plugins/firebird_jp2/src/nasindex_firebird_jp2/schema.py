"""What a live database holds (from the ``RDB$`` system tables) and whether a mapping
fits it. Used by ``nasindex firebird inspect`` / ``check`` and by every run's check."""

from __future__ import annotations

from dataclasses import dataclass, field

import fdb

from nasindex_firebird_jp2.connection import snapshot
from nasindex_firebird_jp2.mapping import LEVELS, Mapping, build_query

FIELD_TYPES = {7: "SMALLINT", 8: "INTEGER", 10: "FLOAT", 12: "DATE", 13: "TIME",
               14: "CHAR", 16: "BIGINT", 23: "BOOLEAN", 27: "DOUBLE PRECISION",
               35: "TIMESTAMP", 37: "VARCHAR", 261: "BLOB"}

COLUMNS_SQL = """
SELECT TRIM(rf.RDB$RELATION_NAME), TRIM(rf.RDB$FIELD_NAME), f.RDB$FIELD_TYPE,
       f.RDB$FIELD_SUB_TYPE, f.RDB$CHARACTER_LENGTH, TRIM(cs.RDB$CHARACTER_SET_NAME),
       rf.RDB$NULL_FLAG, r.RDB$VIEW_BLR IS NOT NULL
FROM RDB$RELATION_FIELDS rf
JOIN RDB$RELATIONS r ON r.RDB$RELATION_NAME = rf.RDB$RELATION_NAME
JOIN RDB$FIELDS f ON f.RDB$FIELD_NAME = rf.RDB$FIELD_SOURCE
LEFT JOIN RDB$CHARACTER_SETS cs ON cs.RDB$CHARACTER_SET_ID = f.RDB$CHARACTER_SET_ID
WHERE COALESCE(r.RDB$SYSTEM_FLAG, 0) = 0
ORDER BY 1, rf.RDB$FIELD_POSITION
"""


@dataclass
class Column:
    name: str
    type: str
    nullable: bool


@dataclass
class Table:
    name: str
    view: bool
    rows: int | None = None
    columns: list[Column] = field(default_factory=list)


def type_name(code: int, sub: int | None, length: int | None, charset: str | None) -> str:
    name = FIELD_TYPES.get(code, f"type {code}")
    if code == 16 and sub in (1, 2):
        name = "NUMERIC" if sub == 1 else "DECIMAL"
    if code in (14, 37) and length:
        name += f"({length})"
    if code == 261:
        name += " TEXT" if sub == 1 else " BINARY"
    if charset and (code in (14, 37) or code == 261 and sub == 1):
        name += f" CHARACTER SET {charset}"
    return name


def inspect_database(con: fdb.Connection, count_rows: bool = True) -> list[Table]:
    """Every user table and view, its columns and types, and (optionally) its row count."""
    tables: dict[str, Table] = {}
    with snapshot(con) as cur:
        cur.execute(COLUMNS_SQL)
        for tname, cname, code, sub, length, charset, notnull, view in cur.fetchall():
            table = tables.setdefault(tname, Table(tname, bool(view)))
            table.columns.append(Column(cname, type_name(code, sub, length, charset),
                                        not notnull))
        if count_rows:
            for table in tables.values():
                cur.execute(f'SELECT COUNT(*) FROM "{table.name}"')
                table.rows = cur.fetchone()[0]
    return list(tables.values())


def source_columns(cur: fdb.Cursor, source: str) -> list[str]:
    """The column names a table or derived table yields (no rows are read)."""
    cur.execute(f"SELECT FIRST 0 * FROM {source} X")
    return [d[0].strip() for d in cur.description]


def validate(con: fdb.Connection, mapping: Mapping) -> list[str]:
    """Every mismatch between ``mapping`` and the live database, named; [] if it fits."""
    problems: list[str] = []
    used = mapping.columns_by_level()
    with snapshot(con) as cur:
        for lvl in LEVELS:
            level = mapping.level(lvl)
            label = f"table {level.table}" if level.table else "its sql"
            try:
                have = source_columns(cur, level.source())
            except fdb.DatabaseError as exc:
                problems.append(f"{lvl} level: {label}: {_reason(exc)}")
                continue
            for column in sorted(used[lvl] | {level.key}):
                if column not in have:
                    near = [h for h in have if h.lower() == column.lower()]
                    hint = f" (did you mean {near[0]!r}?)" if near else ""
                    problems.append(f"{lvl} level: column {column!r} does not exist in "
                                    f"{label}{hint}")
        if not problems:
            try:
                cur.prep(build_query(mapping).sql)
            except fdb.DatabaseError as exc:
                problems.append(f"the joined query fails: {_reason(exc)}")
    return problems


def _reason(exc: fdb.DatabaseError) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    lines = [ln.lstrip("- ").strip() for ln in text.splitlines() if ln.strip()]
    detail = [ln for ln in lines if not ln.startswith(("Error while", "SQLCODE"))]
    if any("Table unknown" in ln for ln in detail):
        return "does not exist"
    return "; ".join(detail[:3]) or type(exc).__name__
