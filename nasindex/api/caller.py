"""Who is calling: the seam every route (JSON and DICOMweb) takes its user from.

A route declares ``caller: CallerDep`` and reads patient data only through
``caller.access`` with ``caller.principal`` (role, NAS scope and the audit record are the
access layer's business). :func:`caller` resolves it once per request:

* with ``[auth]``: the bearer access token, checked (:mod:`.tokens`), mapped onto a
  principal by the same claim rules as the dashboard's login (``user_claim``,
  ``groups_claim``, ``[auth.groups]``, ``[auth.nas_scopes]``); a service client's token
  (client-credentials grant) is its client id as the user;
* without ``[auth]`` (the demo, on loopback only): the demo user of
  :func:`~nasindex.access.principal.demo_principal`;

then counts the request against the caller's rate limit. A missing or bad token is a
401, and a bad one is recorded in the audit trail as a refused login.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from nasindex.access.audit import Target
from nasindex.access.guard import Access
from nasindex.access.principal import Principal, demo_principal, from_claims
from nasindex.api.ratelimit import RateLimiter
from nasindex.api.tokens import InvalidToken, MissingToken, TokenVerifier
from nasindex.config import Settings
from nasindex.errors import AuditUnavailable

_bearer = HTTPBearer(auto_error=False, description="An OIDC access token for the API's "
                     "audience ([auth] api_audience). Not needed without [auth] (the demo).")


@dataclass
class Service:
    """What one running API holds: one per process (``app.state.nasindex``)."""

    settings: Settings
    access: Access
    verifier: TokenVerifier | None  # None: no [auth], the demo user
    limiter: RateLimiter


@dataclass(frozen=True)
class Caller:
    principal: Principal
    access: Access


def service(request: Request) -> Service:
    return request.app.state.nasindex


def caller(request: Request,
           credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
           ) -> Caller:
    """The principal of this request and the access layer to read through."""
    svc = service(request)
    client = request.client.host if request.client else None
    # One request is one "session" for the trail: the looks one answer needs (a patient
    # and their study tree) are one record.
    session = f"api:{request.state.request_id}"
    if svc.verifier is None:
        svc.limiter.hit(f"address:{client}")
        return Caller(demo_principal("api", client, session), svc.access)
    if credentials is None:
        svc.limiter.hit(f"address:{client}")
        raise MissingToken("This API needs a bearer access token (Authorization: Bearer "
                           "<token>) from the clinic's identity provider.")
    try:
        claims = svc.verifier.claims(credentials.credentials)
    except InvalidToken as exc:
        svc.limiter.hit(f"address:{client}")
        _record_refusal(svc.access, client, str(exc))
        raise
    assert svc.settings.auth is not None
    principal = from_claims(claims, svc.settings.auth, client, "api", session)
    svc.limiter.hit(f"user:{principal.user}")
    return Caller(principal, svc.access)


def _record_refusal(access: Access, client: str | None, why: str) -> None:
    """A token that does not pass is a refused login; the refusal stands without it."""
    nobody = Principal("(invalid token)", frozenset(), frozenset(), client, "api")
    with contextlib.suppress(AuditUnavailable):
        access.record(nobody, "login", Target(detail=why[:300]), "denied")


CallerDep = Annotated[Caller, Depends(caller)]
