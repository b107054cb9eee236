"""Where a door may serve patient data: without ``[auth]`` (the demo, no login) only on a
loopback address. The dashboard and the HTTP API both start by asking this."""

from __future__ import annotations

import ipaddress

from nasindex.config import Settings

LOOPBACK_NAMES = {"localhost"}


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.1, ::1, localhost. Unset means every interface: not loopback."""
    if not address:
        return False
    if address in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def exposure_problem(settings: Settings | None, address: str | None, local_option: str
                     ) -> str | None:
    """Why a door must not listen on ``address`` (None: it may). ``local_option`` is the
    door's own way of listening on 127.0.0.1 only, named in the fix."""
    if settings is not None and settings.auth is not None or is_loopback(address):
        return None
    where = f"on {address}" if address else "on every interface (no address given)"
    return (f"refusing to serve patient data {where} without login; add an [auth] table to "
            f"{settings.path if settings else 'nasindex.toml'} (see docs/access.md), or "
            f"listen on 127.0.0.1 only ({local_option}).")
