"""The NAS scope: which NAS devices a caller may see (issue 8's per-NAS access rule).

Every public read function of this package takes ``scope`` as a keyword with no default:
a set of NAS ids (the ``[nas.<id>]`` names), or None for every NAS. It is applied in the
SQL, so a record on a NAS outside the scope is never returned, never named as a partner
of a linked person, and never counted. An empty set sees nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Set

from sqlalchemy import select
from sqlalchemy.sql import ColumnElement

from nasindex.index.models import Nas

Scope = Set[str] | None


def check_scope(scope: Scope) -> Scope:
    """``scope`` itself, after making sure it is a set (a bare string would be taken
    for a set of one-letter NAS ids)."""
    if scope is not None and not isinstance(scope, Set):
        raise TypeError(f"scope must be a set of NAS ids or None, not {type(scope).__name__}")
    return scope


def visible_nas(scope: Scope, wanted: Iterable[str] = ()) -> Scope:
    """The NAS devices a search may read: those ``wanted`` (all when empty) that the
    scope allows. None means every NAS."""
    wanted = frozenset(wanted)
    check_scope(scope)
    if scope is None:
        return wanted or None
    return (wanted & scope) if wanted else frozenset(scope)


def nas_id_in(scope: Scope, nas_id: ColumnElement[int]) -> list[ColumnElement[bool]]:
    """The WHERE clause (none, or one condition) that keeps rows whose NAS ``nas_id``
    (e.g. ``Patient.nas_id``) is in ``scope``."""
    if check_scope(scope) is None:
        return []
    return [nas_id.in_(select(Nas.id).where(Nas.name.in_(sorted(scope))))]
