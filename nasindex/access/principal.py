"""The identity a front end hands to the access layer, and how roles and NAS scopes are
derived from an identity provider's groups."""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nasindex.config import AuthSettings

Door = Literal["dashboard", "cli", "api"]
CLINICIAN, ADMIN = "clinician", "admin"
EVERY_ROLE = frozenset({CLINICIAN, ADMIN})


@dataclass(frozen=True)
class Principal:
    """One user at one door. ``scope`` None: every NAS; else only these NAS ids.
    ``session`` identifies one login (a dashboard session), or None (one request)."""

    user: str
    roles: frozenset[str]
    scope: frozenset[str] | None
    client: str | None
    door: Door
    session: str | None = None

    def has(self, role: str) -> bool:
        """An admin may do everything a clinician may."""
        return role in self.roles or (role == CLINICIAN and ADMIN in self.roles)

    def sees(self, nas: str) -> bool:
        return self.scope is None or nas in self.scope


def claim_groups(claims: Mapping[str, Any], claim: str) -> list[str]:
    """The groups an ID token lists: a list, or one string (some providers), or a nested
    claim written with dots (Keycloak's ``realm_access.roles``)."""
    value: Any = claims
    for part in claim.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def roles_and_scope(groups: list[str], auth: AuthSettings
                    ) -> tuple[frozenset[str], frozenset[str] | None]:
    """Roles are the union of what the groups grant. The NAS scope widens with each
    group too: a role-granting group without ``nas_scopes`` gives every NAS (None); else
    the user sees the union of the NAS lists of their groups. No role: empty scope."""
    granting = [g for g in groups if g in auth.groups]
    roles = frozenset(auth.groups[g] for g in granting)
    if not granting:
        return roles, frozenset()
    if any(g not in auth.nas_scopes for g in granting):
        return roles, None
    return roles, frozenset(n for g in granting for n in auth.nas_scopes[g])


def from_claims(claims: Mapping[str, Any], auth: AuthSettings, client: str | None,
                door: Door, session: str | None = None) -> Principal:
    """The principal of a user the identity provider vouched for (ID-token claims)."""
    user = str(claims.get(auth.user_claim) or claims.get("sub") or "unknown")
    roles, scope = roles_and_scope(claim_groups(claims, auth.groups_claim), auth)
    return Principal(user, roles, scope, client, door, session)


def demo_principal(door: Door, client: str | None, session: str | None = None) -> Principal:
    """Who uses a door that runs without ``[auth]`` (the demo, which listens on loopback
    only): the OS user running the server, marked "(no login)", with every role and NAS.
    Anyone who can reach a loopback port is on this host already."""
    return Principal(f"{getpass.getuser()} (no login)", EVERY_ROLE, None, client, door,
                     session)


def local_principal(door: Door = "cli") -> Principal:
    """Whoever runs nasindex in a shell on this host: the OS user, with every role and
    NAS. Whoever can read the config and the index database could read them directly;
    the shell is protected by the OS (file permissions), and every read is still audited."""
    ssh = os.environ.get("SSH_CLIENT", "").split()
    return Principal(getpass.getuser(), EVERY_ROLE, None, ssh[0] if ssh else "local", door)
