"""A real OpenID Connect provider for the login tests: the certified `oidc-provider`
package (npm, pinned in tests/oidc/package-lock.json) on the machine's Node.js, with its
own login form. Installed into tests/oidc/node_modules (git-ignored) on first use, started
once per test session, stopped by its pid.

Accounts (the login is the account id; the development form takes any password):
alice (clinician), bob (admin), carol (no role), dave (clinician limited to NAS ct2).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from browser import NO_SPINNER, click_button, free_port
from support import stop_process, wait_http

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
DOMAIN = "example.test"
ACCOUNTS = {
    "alice": {"name": "Alice Clinician", "groups": ["radiology-clinicians"]},
    "bob": {"name": "Bob Admin", "groups": ["nasindex-admins"]},
    "carol": {"name": "Carol Visitor", "groups": ["visitors"]},
    "dave": {"name": "Dave Cardiology", "groups": ["cardiology"]},
}
# Service clients of the HTTP API (client-credentials grant), their groups as for people.
API_AUDIENCE = "https://nasindex.example.test/api"
SERVICES = {
    "viewer-all": ["radiology-clinicians"],  # a PACS viewer: every NAS
    "viewer-pacs2": ["pacs2-readers"],  # a clinic application limited to NAS pacs2
    "sync-robot": ["nasindex-admins"],
    "stranger": ["visitors"],  # no nasindex role
}
# The groups above that grant a role on every NAS ("visitors" grants none). A config
# adds its clinician groups limited to some of its NAS ids: groups_toml.
GROUP_ROLES = {"radiology-clinicians": "clinician", "nasindex-admins": "admin"}


def groups_toml(scoped: dict[str, list[str]]) -> str:
    """[auth.groups] and [auth.nas_scopes] of a test config: GROUP_ROLES, and each group
    of ``scoped`` a clinician on those NAS ids only (they must be the config's)."""
    roles = {**GROUP_ROLES, **dict.fromkeys(scoped, "clinician")}
    return ("\n[auth.groups]\n" + "".join(f'"{g}" = "{r}"\n' for g, r in roles.items())
            + "\n[auth.nas_scopes]\n"
            + "".join(f'"{g}" = {json.dumps(nas)}\n' for g, nas in scoped.items()))


# The login dashboard's: dave's group sees NAS ct2 only.
AUTH_GROUPS = groups_toml({"cardiology": ["ct2"]})


def email(account: str) -> str:
    return f"{account}@{DOMAIN}"


@dataclass(frozen=True)
class OidcProvider:
    issuer: str
    client_id: str
    client_secret: str
    log: Path
    service_secrets: dict[str, str] = field(default_factory=dict)

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def auth_toml(self, redirect_uri: str, secret_env: str, cookie_env: str,
                  idle_minutes: float = 15) -> str:
        """An [auth] table for a dashboard that logs in here."""
        return (f'\n[auth]\nserver_metadata_url = "{self.metadata_url}"\n'
                f'client_id = "{self.client_id}"\nredirect_uri = "{redirect_uri}"\n'
                f'client_secret_env = "{secret_env}"\ncookie_secret_env = "{cookie_env}"\n'
                f"idle_minutes = {idle_minutes}\n" + AUTH_GROUPS)


    def service_token(self, client_id: str) -> str:
        """A JWT access token for the API's audience, by the client-credentials grant."""
        answer = httpx.post(f"{self.issuer}/token", data={"grant_type": "client_credentials",
                                                           "scope": "api"},
                            auth=(client_id, self.service_secrets[client_id]), timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()["access_token"]


def npm_install() -> None:
    """`npm ci` of the pinned provider, once (a lock keeps parallel sessions apart)."""
    if shutil.which("npm") is None:
        raise RuntimeError("npm not found: install Node.js 20 and npm (Debian: nodejs npm).")
    with (OIDC_DIR / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = OIDC_DIR / "node_modules" / ".package-lock.json"
        if stamp.exists() and stamp.stat().st_mtime >= (
                OIDC_DIR / "package-lock.json").stat().st_mtime:
            return
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=OIDC_DIR, check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="session")
def dashboard_port() -> int:
    """The port of the session's login dashboard (the provider must know its callback)."""
    return free_port()


@contextmanager
def running_provider(redirect_uri: str) -> Iterator[OidcProvider]:
    """Start the provider for a dashboard whose callback is ``redirect_uri``; stop it after."""
    npm_install()
    port = free_port()
    provider = OidcProvider(f"http://127.0.0.1:{port}", "nasindex-test",
                            secrets.token_urlsafe(24),
                            Path(tempfile.mkdtemp(prefix="nasindex-oidc-")) / "provider.log",
                            {client: secrets.token_urlsafe(24) for client in SERVICES})
    accounts = {k: {**v, "email": email(k)} for k, v in ACCOUNTS.items()}
    env = {**os.environ, "OIDC_PORT": str(port), "OIDC_CLIENT_ID": provider.client_id,
           "OIDC_CLIENT_SECRET": provider.client_secret,
           "OIDC_COOKIE_KEY": secrets.token_urlsafe(24), "OIDC_ACCOUNTS": json.dumps(accounts),
           "OIDC_REDIRECT_URIS": redirect_uri, "OIDC_API_AUDIENCE": API_AUDIENCE,
           "OIDC_SERVICES": json.dumps({c: {"secret": provider.service_secrets[c],
                                            "groups": g} for c, g in SERVICES.items()})}
    with provider.log.open("wb") as log:
        proc = subprocess.Popen(["node", "provider.mjs"], cwd=OIDC_DIR, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        wait_http(provider.metadata_url, proc, "the OpenID Connect provider")
        yield provider
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def oidc_provider(dashboard_port: int) -> Iterator[OidcProvider]:
    with running_provider(f"http://127.0.0.1:{dashboard_port}/oauth2callback") as provider:
        yield provider


# -- driving the login in a real browser --------------------------------------------------
def log_in(browser, base: str, account: str, *lands_on: str) -> None:
    """Open the dashboard, press "Log in", fill in the provider's own form, and wait for
    one of the texts ``lands_on`` (default: the search page, where a clinician lands)."""
    lands_on = lands_on or ("Find a patient",)
    browser.goto(base + "/")
    try:
        browser.wait_for(click_button("Log in"), 60, "the login page's button")
    except TimeoutError as exc:  # say what the page showed instead (demo data only)
        page = browser.eval("document.body.innerText")[:500]
        raise AssertionError(f"{exc}; the page shows: {page}") from None
    browser.wait_for("!!document.querySelector('input[name=login]')", 60,
                     "the provider's login form")
    browser.eval(f"document.querySelector('input[name=login]').value = {json.dumps(account)};"
                 "document.querySelector('input[name=password]').value = 'any';"
                 "document.querySelector('form').submit()")
    landed = " || ".join(f"document.body.innerText.includes({json.dumps(t)})"
                         for t in lands_on)
    browser.wait_for(f"({landed}) && {NO_SPINNER}", 60, f"{account} logged in")


def log_out(browser) -> None:
    """The sidebar's "Log out", then the provider's confirmation; back on the login page."""
    browser.wait_for(click_button("Log out"), 60, "the Log out button")
    browser.wait_for("(() => { const b = document.querySelector('button[name=logout]');"
                     " if (b) { b.click(); return true; } })()", 60, "the provider's sign-out")
    browser.wait_for("document.body.innerText.includes('Log in with your clinic account')",
                     60, "the login page again")
