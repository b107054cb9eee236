"""Errors a user can act on. Each message names the cause and the fix, and never PHI."""


class NasIndexError(Exception):
    """Base class: an error whose message is meant for the operator, shown without a traceback."""


class ConfigError(NasIndexError):
    """The configuration file is missing, malformed, or has a bad key."""


class NasUnavailable(NasIndexError):
    """A NAS (its share or its database) cannot be reached; nothing was changed."""


class UnsafeSync(NasIndexError):
    """A sync would do something drastic (tombstone a large share of a NAS); nothing changed."""


class RunInProgress(NasIndexError):
    """Another run of the same NAS holds its run lock; this one was not started."""


class IndexStorageError(NasIndexError):
    """The index's storage failed (disk full, read-only, damaged); what was committed
    is kept. The CLI exits 1: the command was right, the run could not be done."""


class IndexNotReady(NasIndexError):
    """The index database is missing or not migrated to the current schema."""


class QueryError(NasIndexError, ValueError):
    """A search that cannot be run as asked (too long, a control character, wildcards
    alone, bad paging): the message says what to type instead. Never holds SQL.
    ``field`` names the :class:`~nasindex.search.SearchQuery` field at fault, if one is
    (front ends name their own parameter for it)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class SearchTimeout(QueryError):
    """A search ran past its time limit and was stopped; nothing else was held up."""


class NotFound(NasIndexError):
    """What was asked for is not in the index, or its file is not on its NAS any more."""


class AccessDenied(NasIndexError):
    """The user's role or NAS scope does not allow this; the refusal is in the audit trail."""


class AuditUnavailable(NasIndexError):
    """The audit record could not be written, so the data is not shown (fail closed)."""


class AuditStorageError(AuditUnavailable, IndexStorageError):
    """The audit record could not be written because the index's storage failed (full,
    read-only, damaged): the message says where the index is and the fix; the CLI exits 1."""
