"""The mapping from a vendor's Firebird schema to nasindex fields: configuration, not code.

A mapping names, for each level (patient, study, series, image), a table or a SQL select,
its key and the key of its parent, the columns that feed our fields, a path template
for the image file, and optionally the column that drives incremental sync. From it
this module builds the one SELECT that lists every image with everything we index.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nasindex.plugin import ConfigError

LEVELS = ("patient", "study", "series", "image")
ALIAS = {"patient": "P", "study": "T", "series": "S", "image": "I"}
PARENT = {"study": "patient", "series": "study", "image": "series"}
PLACEHOLDER = re.compile(r"\{(?:(patient|study|series|image)\.)?([^{}.]+)\}")
_IDENT = re.compile(r'^[^"\x00]+$')


class _Level(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    table: str | None = None
    sql: str | None = None  # a SELECT used as a derived table, for odd schemas
    key: str

    @model_validator(mode="after")
    def _one_source(self) -> _Level:
        if (self.table is None) == (self.sql is None):
            raise ValueError("give exactly one of 'table' or 'sql'")
        return self

    def source(self) -> str:
        return quote(self.table) if self.table else f"({self.sql})"

    def fields(self) -> dict[str, str]:
        """Our field name -> vendor column, for every mapped field of this level."""
        skip = {"table", "sql", "parent_key", "path", "path_strip_prefix"}
        return {k: v for k, v in self.model_dump().items() if v is not None and k not in skip}


class PatientLevel(_Level):
    """The vendor's patients: one row each."""

    patient_id: str
    name: str | None = None
    birth_date: str | None = None
    sex: str | None = None


class _ChildLevel(_Level):
    parent_key: str  # the column holding the key of the row one level up


class StudyLevel(_ChildLevel):
    """Studies, each under a patient row."""

    study_uid: str | None = None  # absent: a UID is derived from (NAS, study key)
    date: str | None = None
    time: str | None = None
    description: str | None = None
    accession: str | None = None
    modality: str | None = None


class SeriesLevel(_ChildLevel):
    """Series, each under a study row."""

    series_uid: str | None = None  # absent: derived as for studies
    number: str | None = None
    modality: str | None = None
    description: str | None = None


class ImageLevel(_ChildLevel):
    """Images, each under a series row, and where its file is."""

    path: str = Field(description="template, e.g. '{series.STORAGE_DIR}/{FILE_NAME}'")
    path_strip_prefix: str | None = None  # e.g. 'D:\\PACS\\IMAGES\\' stored in the rows
    sop_instance_uid: str | None = None
    instance_number: str | None = None
    file_size: str | None = None  # checked against the file
    rows: str | None = None  # checked against the JPEG 2000 header
    columns: str | None = None


class CursorSpec(BaseModel):
    """The column that rises with every new or changed row, and how far to look back."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str  # 'level.COLUMN' or 'COLUMN' (image level)
    kind: Literal["timestamp", "key"] = "timestamp"
    overlap: float = Field(600, ge=0)  # seconds (timestamp) or key values (key)


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    patient: PatientLevel
    study: StudyLevel
    series: SeriesLevel
    image: ImageLevel
    cursor: CursorSpec | None = None

    def level(self, name: str) -> _Level:
        return getattr(self, name)

    def cursor_ref(self) -> tuple[str, str] | None:
        if self.cursor is None:
            return None
        return split_ref(self.cursor.column, "image")

    def path_refs(self) -> list[tuple[str, str]]:
        refs = [(lvl or "image", col) for lvl, col in PLACEHOLDER.findall(self.image.path)]
        if not refs:
            raise ConfigError("mapping: [image] path has no {COLUMN} placeholder.")
        return refs

    def columns_by_level(self) -> dict[str, set[str]]:
        """Every vendor column the mapping uses, per level (what `check` validates)."""
        used: dict[str, set[str]] = {lvl: set() for lvl in LEVELS}
        for lvl in LEVELS:
            used[lvl].update(self.level(lvl).fields().values())
            if lvl in PARENT:
                used[lvl].add(self.level(lvl).parent_key)  # type: ignore[attr-defined]
        for lvl, col in self.path_refs():
            used[lvl].add(col)
        if (ref := self.cursor_ref()) is not None:
            used[ref[0]].add(ref[1])
        return used


def split_ref(ref: str, default_level: str) -> tuple[str, str]:
    level, dot, column = ref.partition(".")
    if dot and level in LEVELS:
        return level, column
    return default_level, ref


def quote(identifier: str) -> str:
    """A Firebird quoted identifier: exact case, as `nasindex firebird inspect` shows it."""
    if not _IDENT.match(identifier):
        raise ConfigError(f"mapping: {identifier!r} is not a valid column or table name.")
    return f'"{identifier}"'


@dataclass(frozen=True)
class Query:
    """The listing SELECT and where each field sits in its result rows."""

    sql: str
    positions: dict[str, int]  # 'level.field' / 'path:level.COLUMN' / 'cursor' -> index
    cursor_filter: str | None  # the WHERE clause added for a cursor window


def build_query(mapping: Mapping) -> Query:
    """One SELECT joining image -> series -> study -> patient (LEFT JOINs, so an image
    whose parent row is missing still appears, with NULLs we can report)."""
    select: list[str] = []
    positions: dict[str, int] = {}

    def add(name: str, level: str, column: str) -> None:
        positions[name] = len(select)
        select.append(f"{ALIAS[level]}.{quote(column)}")

    for lvl in LEVELS:
        for field, column in mapping.level(lvl).fields().items():
            add(f"{lvl}.{field}", lvl, column)
    for lvl, column in mapping.path_refs():
        add(f"path:{lvl}.{column}", lvl, column)
    ref = mapping.cursor_ref()
    if ref is not None:
        add("cursor", *ref)
    joins = [f"FROM {mapping.image.source()} I"]
    for child, alias in (("image", "S"), ("series", "T"), ("study", "P")):
        parent = PARENT[child]
        joins.append(
            f"LEFT JOIN {mapping.level(parent).source()} {alias} ON "
            f"{ALIAS[child]}.{quote(mapping.level(child).parent_key)} = "  # type: ignore[attr-defined]
            f"{alias}.{quote(mapping.level(parent).key)}")
    sql = "SELECT " + ", ".join(select) + "\n" + "\n".join(joins)
    cursor_filter = f"{ALIAS[ref[0]]}.{quote(ref[1])} >= ?" if ref else None
    return Query(sql, positions, cursor_filter)


REFERENCE = "reference"


def load_mapping(spec: str | dict[str, Any]) -> Mapping:
    """``spec`` is 'reference' (the shipped mapping), a TOML file path, or an inline table."""
    if isinstance(spec, dict):
        raw, where = spec, "inline mapping"
    else:
        if spec == REFERENCE:
            text, where = reference_file("mapping.toml").read_text(encoding="utf-8"), spec
        else:
            path = Path(spec).expanduser()
            if not path.is_file():
                raise ConfigError(f"mapping file {path} does not exist; fix 'mapping' "
                                  "(a TOML file path, 'reference', or an inline table).")
            text, where = path.read_text(encoding="utf-8"), str(path)
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"mapping {where} is not valid TOML: {exc}") from None
    try:
        mapping = Mapping(**raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(f"mapping {where}: {problems}.") from None
    mapping.path_refs()
    return mapping


def reference_file(name: str):
    """A file shipped with the plugin: the reference schema DDL and mapping."""
    return resources.files("nasindex_firebird_jp2") / "reference" / name
