"""The index schema. Integer surrogate keys; natural keys are unique per NAS.

Nothing is ever hard-deleted by a sync: a vanished item gets ``missing_since``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, Column, Index, UniqueConstraint, false, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Nas(SQLModel, table=True):
    __tablename__ = "nas"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    type: str
    root: str
    display_root: str | None = None
    scan_cursor: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Patient(SQLModel, table=True):
    __tablename__ = "patient"
    __table_args__ = (
        UniqueConstraint("nas_id", "patient_id"),
        # The few records that may link: search finds its candidates among them by a probe
        # in this small index instead of a read of each row (migration 0003).
        Index("ix_patient_flagged", "id", sqlite_where=text("may_link = 1"),
              postgresql_where=text("may_link")),
        # Patients latest first, for walks that stop after a page (migration 0005; on
        # PostgreSQL it is "latest_study DESC NULLS LAST", the order search walks).
        Index("ix_patient_latest", "latest_study"),
    )
    id: int | None = Field(default=None, primary_key=True)
    nas_id: int = Field(foreign_key="nas.id", index=True)
    patient_id: str = Field(index=True)
    patient_name: str = ""
    # Folded for search: lower case, no accents, name parts separated by single spaces.
    name_key: str = Field(default="", index=True)
    birth_date: str | None = Field(default=None, index=True)
    sex: str | None = None
    # Kept by triggers (migration 0003) so that search ranks and groups without a lookup
    # per candidate: max(study.study_date) of its studies with a well-formed date
    # (YYYYMMDD, migration 0005), and whether a record on
    # another NAS ever shared its Patient ID or name key and birth date (never reset).
    latest_study: str | None = None
    # Server default only: a writer of the schema before 0003 must not name the column.
    may_link: bool = Field(default=False, sa_column=Column(Boolean, nullable=False,
                                                           server_default=false()))


class Study(SQLModel, table=True):
    __tablename__ = "study"
    __table_args__ = (
        UniqueConstraint("nas_id", "study_uid"),
        # A patient's latest study in one index seek (search ranks by it); migration 0002.
        Index("ix_study_patient_date", "patient_pk", "study_date"),
        # Date-range searches read modalities and the patient from the index alone; 0003.
        Index("ix_study_date_cover", "study_date", "modalities", "patient_pk"),
    )
    id: int | None = Field(default=None, primary_key=True)
    nas_id: int = Field(foreign_key="nas.id", index=True)
    patient_pk: int = Field(foreign_key="patient.id", index=True)
    study_uid: str = Field(index=True)
    study_date: str | None = Field(default=None, index=True)
    study_time: str | None = None
    description: str | None = None
    accession_number: str | None = Field(default=None, index=True)
    modalities: str = ""  # distinct series modalities, "CT\\SR" style


class Series(SQLModel, table=True):
    __tablename__ = "series"
    __table_args__ = (UniqueConstraint("nas_id", "series_uid"),)
    id: int | None = Field(default=None, primary_key=True)
    nas_id: int = Field(foreign_key="nas.id", index=True)
    study_pk: int = Field(foreign_key="study.id", index=True)
    series_uid: str = Field(index=True)
    series_number: int | None = None
    modality: str | None = Field(default=None, index=True)
    description: str | None = None


class Instance(SQLModel, table=True):
    __tablename__ = "instance"
    __table_args__ = (
        UniqueConstraint("nas_id", "item_key"),
        Index("ix_instance_series_present", "series_pk", "missing_since"),
        # The files whose content hash is still to be computed (a later pass than the
        # metadata): empty once every file is hashed, so finding none costs nothing (0007).
        Index("ix_instance_unhashed", "nas_id", "item_key",
              sqlite_where=text("content_hash IS NULL AND missing_since IS NULL"),
              postgresql_where=text("content_hash IS NULL AND missing_since IS NULL")),
    )
    id: int | None = Field(default=None, primary_key=True)
    nas_id: int = Field(foreign_key="nas.id", index=True)
    series_pk: int = Field(foreign_key="series.id")
    item_key: str
    sop_instance_uid: str = Field(index=True)
    instance_number: int | None = None
    rel_path: str
    file_format: str
    transfer_syntax: str | None = None
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    mtime_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    version: str = ""
    content_hash: str | None = None
    rows: int | None = None
    columns: int | None = None
    lossless: bool | None = None
    indexed_at: datetime = Field(default_factory=utcnow)
    missing_since: datetime | None = Field(default=None, index=True)
    # What a DICOMweb instance search returns (migration 0009); None where unknown.
    sop_class_uid: str | None = None
    bits_allocated: int | None = None
    frames: int | None = None  # Number of Frames; None: a single-frame image


class RunCounts(SQLModel):
    """What a run counts, item by item: the engine's ``RunSummary`` adds them up, the
    ``index_run`` table keeps them, the health queries and run reports read them."""

    seen: int = 0
    new: int = 0
    changed: int = 0
    missing: int = 0
    revived: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0  # still being written (inside the settle window)


RUN_COUNTS = tuple(RunCounts.model_fields)


class RunKind(StrEnum):
    """What a run of one NAS does (``index_run.kind``)."""

    FULL = "full"  # re-read every item
    INCREMENTAL = "incremental"  # read only new and changed items
    RETRY = "retry"  # re-read the items that failed, now
    POLL = "poll"  # incremental, listing only what moved (a watch's runs; nasindex.freshness)


class RunStatus(StrEnum):
    """How a run of one NAS ended, or that it has not (``index_run.status``)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # an error, recorded with its message
    INTERRUPTED = "interrupted"  # its process died mid-run; found by the next run of the NAS

    @property
    def unsuccessful(self) -> bool:
        return self in (RunStatus.FAILED, RunStatus.INTERRUPTED)


class IndexRun(RunCounts, table=True):
    __tablename__ = "index_run"
    id: int | None = Field(default=None, primary_key=True)
    nas_id: int = Field(foreign_key="nas.id", index=True)
    kind: str  # a RunKind
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    status: str = RunStatus.RUNNING  # a RunStatus
    message: str | None = None
    flow_run_id: str | None = None
    # Seconds from the newest file this run indexed being written (its mtime) to the
    # commit that made it searchable: the lag the health page shows (0007).
    newest_lag_seconds: float | None = None


class ItemError(SQLModel, table=True):
    """A file or row that could not be indexed, with the reason; retried on later runs."""

    __tablename__ = "item_error"
    __table_args__ = (UniqueConstraint("nas_id", "item_key"),)
    id: int | None = Field(default=None, primary_key=True)
    nas_id: int = Field(foreign_key="nas.id", index=True)
    item_key: str
    rel_path: str
    reason: str
    attempts: int = 1
    skipped: bool = False  # not an image at all: counted, never shown as an error
    # Indexed, with a remark (values cut at DICOM's length limits): shown with the
    # errors, never counted or retried as one (migration 0004).
    note: bool = Field(default=False, sa_column=Column(Boolean, nullable=False,
                                                       server_default=false()))
    first_seen: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)
    # Fingerprint of the failed attempt: a changed file is retried at once.
    size: int | None = Field(default=None, sa_column=Column(BigInteger))
    mtime_ns: int | None = Field(default=None, sa_column=Column(BigInteger))


class AuditEvent(SQLModel, table=True):
    """Who saw or did what, when, from where: one row per search, patient page, preview,
    file listing, admin action, login, logout and refusal. Append-only: the application
    never updates or deletes a row, and triggers (migration 0004) refuse it."""

    __tablename__ = "audit_event"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    username: str = Field(index=True)  # "user" is a reserved word in SQL
    door: str  # dashboard | cli | api
    client: str | None = None  # network address of the user's machine ("local": a shell)
    action: str = Field(index=True)  # search, patient, preview, images, login, admin:sync...
    outcome: str  # success | denied | failed
    nas: str | None = Field(default=None, index=True)
    patient_id: str | None = Field(default=None, index=True)
    study_uid: str | None = None
    series_uid: str | None = None
    query: str | None = None  # the search text and filters (JSON); the one place for it
    results: int | None = None  # rows, records or files returned
    detail: str | None = None  # why refused, the run started, the error met


class Folder(SQLModel, table=True):
    """A folder of a file-tree NAS as the last listing of it saw it: a poll stats the
    known folders and lists again only those whose mtime moved or that were still
    receiving files (not ``settled``). Written only when a run succeeds (0007)."""

    __tablename__ = "folder"
    nas_id: int = Field(foreign_key="nas.id", primary_key=True)
    path: str = Field(primary_key=True)  # under the NAS root, ending in "/"; "" is the root
    mtime_ns: int = Field(sa_column=Column(BigInteger, nullable=False))
    settled: bool = True


class NasWatch(SQLModel, table=True):
    """The heartbeat of the watch that keeps one NAS fresh: one row per NAS, rewritten
    by every poll, whether or not it found changes (0007)."""

    __tablename__ = "nas_watch"
    nas_id: int = Field(foreign_key="nas.id", primary_key=True)
    watcher: str  # who watches: a Prefect flow-run id, or host:pid of a CLI watch
    started_at: datetime = Field(default_factory=utcnow)
    beat_at: datetime = Field(default_factory=utcnow)
    interval_seconds: float
    poll_seconds: float | None = None  # how long the last poll took
    polls: int = 0  # since started_at
    changed_polls: int = 0  # of which found something to index, tombstone or revive
    sweep_next: int = 0  # the share of folders whose files the next poll stats
    message: str | None = None  # what the watch is doing, when it is not polling
