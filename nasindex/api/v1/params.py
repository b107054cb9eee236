"""What the JSON routes share about their parameters: an unknown query parameter is a
mistake (a misspelt ``patientid=`` must not silently widen a search), and the search's
own refusals name the parameter they are about."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import Request

from nasindex.api.problems import BadParameter
from nasindex.errors import QueryError

PREFIX = "/api/v1"


def known_parameters_only(request: Request) -> None:
    """400 for a query parameter the route does not declare."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    known = {field.alias for field in dependant.query_params} if dependant else set()
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        offered = ", ".join(sorted(known)) or "none"
        raise BadParameter(f"Unknown query parameter '{unknown[0]}'; this endpoint takes: "
                           f"{offered}.", unknown[0])


@contextmanager
def parameters_of(names: dict[str, str]) -> Iterator[None]:
    """Re-raise a QueryError as a BadParameter naming the route's parameter for the
    query field at fault (``names``: SearchQuery field -> parameter)."""
    try:
        yield
    except QueryError as exc:
        name = names.get(exc.field or "")
        detail = f"Query parameter '{name}': {exc}" if name else str(exc)
        raise BadParameter(detail, name) from None
