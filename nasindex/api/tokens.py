"""Bearer access tokens from the ``[auth]`` provider: JWTs whose signature, issuer,
audience and lifetime are checked against the provider's published metadata and keys.

The keys (JWKS) are fetched once and kept for :data:`KEYS_MAX_AGE`; a token signed with
a key id the set does not hold makes one fetch at once (the provider rotated its keys),
and further unknown ids wait :data:`UNKNOWN_KID_PAUSE` (a flood of made-up ids must not
turn into a flood of fetches). Only asymmetric algorithms are accepted: a token "signed"
with the public key as an HMAC secret, or with ``none``, never passes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from threading import Lock
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from nasindex.config import AuthSettings
from nasindex.errors import NasIndexError

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA")
KEYS_MAX_AGE = 3600.0  # seconds a fetched key set is used before it is fetched again
UNKNOWN_KID_PAUSE = 10.0  # seconds between fetches caused by unknown key ids
FETCH_TIMEOUT = 5.0


class InvalidToken(NasIndexError):
    """The bearer token is missing, malformed, expired, or not issued for this API (401).
    The message says which, never the token."""


class MissingToken(InvalidToken):
    """No bearer token was sent (401, and no error code: RFC 6750 section 3.1)."""


class ProviderUnavailable(NasIndexError):
    """The identity provider's metadata or keys cannot be fetched: no token can be
    checked now (503)."""


@dataclass
class _Keys:
    issuer: str
    jwks_uri: str
    keys: KeySet
    fetched: float
    kids: frozenset[str | None]


class TokenVerifier:
    """Checks access tokens for one ``[auth]`` table; thread-safe, one per process."""

    def __init__(self, auth: AuthSettings) -> None:
        if not auth.api_audience:
            raise ValueError("[auth] api_audience is required to check access tokens")
        self.auth, self.audience = auth, auth.api_audience
        self._keys: _Keys | None = None
        self._unknown_fetch = float("-inf")
        self._lock = Lock()

    def claims(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; InvalidToken (or ProviderUnavailable) otherwise."""
        known = self._current()
        try:
            decoded = jwt.decode(token, lambda obj: self._key_set(obj.headers()),
                                 algorithms=ALGORITHMS)
        except (JoseError, ValueError) as exc:
            raise InvalidToken(_why(exc)) from None
        self._check_claims(decoded.claims, known.issuer)
        return decoded.claims

    def _check_claims(self, claims: Mapping[str, Any], issuer: str) -> None:
        registry = jwt.JWTClaimsRegistry(
            leeway=int(self.auth.clock_skew_seconds),
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True})
        try:
            registry.validate(dict(claims))
        except JoseError as exc:
            raise InvalidToken(_why(exc)) from None

    def _key_set(self, header: Mapping[str, Any]) -> KeySet:
        """The keys to check a token with ``header`` against: fetched again at once when
        its key id is new (a rotation), at most every UNKNOWN_KID_PAUSE seconds."""
        kid = header.get("kid")
        keys = self._current()
        if kid in keys.kids:
            return keys.keys
        with self._lock:
            now = time.monotonic()
            if now - self._unknown_fetch >= UNKNOWN_KID_PAUSE:
                self._unknown_fetch = now
                self._keys = self._fetch()
            return self._keys.keys if self._keys else keys.keys

    def _current(self) -> _Keys:
        keys = self._keys
        if keys is not None and time.monotonic() - keys.fetched < KEYS_MAX_AGE:
            return keys
        with self._lock:
            if self._keys is None or time.monotonic() - self._keys.fetched >= KEYS_MAX_AGE:
                self._keys = self._fetch()
            return self._keys

    def _fetch(self) -> _Keys:
        """The provider's metadata (issuer, jwks_uri), then its key set."""
        url = self.auth.server_metadata_url
        metadata = _get_json(url, "metadata")
        issuer, jwks_uri = metadata.get("issuer"), metadata.get("jwks_uri")
        if not isinstance(issuer, str) or not isinstance(jwks_uri, str):
            raise ProviderUnavailable(f"The identity provider's metadata at {url} names no "
                                      "issuer or jwks_uri; check [auth] server_metadata_url.")
        try:
            keys = KeySet.import_key_set(_get_json(jwks_uri, "keys"))
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise ProviderUnavailable(f"The identity provider's keys at {jwks_uri} cannot be "
                                      f"read ({type(exc).__name__}).") from None
        return _Keys(issuer, jwks_uri, keys, time.monotonic(),
                     frozenset(k.kid for k in keys.keys))


def _get_json(url: str, what: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=FETCH_TIMEOUT, follow_redirects=True)
        response.raise_for_status()
        data = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ProviderUnavailable(f"The identity provider's {what} at {url} cannot be "
                                  f"fetched ({type(exc).__name__}); access tokens cannot be "
                                  "checked until it answers.") from None
    if not isinstance(data, dict):
        raise ProviderUnavailable(f"The identity provider's {what} at {url} is not a JSON "
                                  "object.")
    return data


def _why(exc: Exception) -> str:
    """What is wrong with a token, in words a client developer can act on."""
    text = getattr(exc, "description", "") or str(exc)
    name = getattr(exc, "error", "") or type(exc).__name__
    if name == "expired_token":
        return "The access token has expired; get a new one from the identity provider."
    if name in ("invalid_claim", "missing_claim"):
        return (f"The access token is not for this API ({text}); request it for the "
                "audience (resource) nasindex's [auth] api_audience names.")
    if name == "invalid_key_id":
        return "The access token is signed with a key the identity provider does not publish."
    return f"The access token is not valid ({name}: {text})."[:300]
