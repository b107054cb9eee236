"""The configuration file: ``nasindex.toml`` (or ``--config PATH`` / ``NASINDEX_CONFIG``).

Core keys are validated here; each NAS type validates its own keys through its
``Options`` model. Every refusal names the NAS, the key and what is expected.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nasindex import invocation
from nasindex.errors import ConfigError

DEFAULT_CONFIG = "nasindex.toml"
POLL_MIN_SECONDS = 0.5
CORE_NAS_KEYS = {"type", "root", "display_root", "sync_minutes", "settle_seconds",
                 "max_missing_fraction", "workers", "batch_size", "secret_blocks",
                 "io_timeout_seconds", "freshness_seconds", "sweep_minutes"}


class IndexSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = "sqlite:///nasindex.db"


class PrefectSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ui_url: str | None = None
    work_pool: str = "nasindex"


ROLES = ("clinician", "admin")


class AuthSettings(BaseModel):
    """``[auth]``: login through the clinic's OpenID Connect provider. Secrets are never in
    the file: ``client_secret_env`` and ``cookie_secret_env`` name environment variables."""

    model_config = ConfigDict(extra="forbid")
    server_metadata_url: str  # the issuer's .well-known/openid-configuration
    client_id: str
    redirect_uri: str  # as browsers reach the dashboard, ending in /oauth2callback
    client_secret_env: str = "NASINDEX_OIDC_CLIENT_SECRET"
    cookie_secret_env: str = "NASINDEX_COOKIE_SECRET"
    scopes: str = "openid email profile groups"  # what the login asks the provider for
    groups_claim: str = "groups"  # the ID-token claim listing the user's groups (or roles)
    user_claim: str = "email"  # the claim recorded as the user in the audit trail
    groups: dict[str, Literal["clinician", "admin"]] = {}  # group -> role it grants
    nas_scopes: dict[str, list[str]] = {}  # group -> the only NAS devices it may see
    idle_minutes: float = Field(15, gt=0)
    max_session_hours: float = Field(12, gt=0)  # a login older than this logs in again
    # The HTTP API (`nasindex serve`) accepts only access tokens whose `aud` holds this
    # value: the resource indicator or audience the provider issues tokens for nasindex's
    # API under (never the dashboard's client id: an ID token must not pass as a token).
    api_audience: str | None = None
    clock_skew_seconds: float = Field(30, ge=0)  # tolerated on a token's exp/nbf/iat

    def secret(self, which: Literal["client", "cookie"]) -> str:
        """The secret from its environment variable; ConfigError naming it if unset."""
        name = self.client_secret_env if which == "client" else self.cookie_secret_env
        value = os.environ.get(name, "")
        if not value:
            raise ConfigError(f"[auth] needs the {which} secret in the environment variable "
                              f"{name} (named by [auth] {which}_secret_env); set it where the "
                              "dashboard starts.")
        if which == "cookie" and len(value) < 32:
            raise ConfigError(f"The cookie secret in {name} is too short: use 32 or more "
                              "random characters (e.g. `openssl rand -hex 32`).")
        return value


class AuditSettings(BaseModel):
    """``[audit]``: the audit trail is always kept in the index; optionally forwarded."""

    model_config = ConfigDict(extra="forbid")
    # tcp://host:port, udp://host:port or tls://host:port: DICOM audit messages (IHE ATNA)
    # as RFC 5424 syslog to the clinic's audit record repository.
    syslog: str | None = Field(None, pattern=r"^(tcp|udp|tls)://[^:/]+:\d+$")
    syslog_ca_file: Path | None = None  # tls://: the repository's CA (default: system CAs)
    queue_size: int = Field(1000, ge=1)  # messages held while the repository is away
    source_id: str = "nasindex"  # AuditSourceID in every message


class ApiSettings(BaseModel):
    """``[api]``: the HTTP API of `nasindex serve` (its login rules are ``[auth]``'s)."""

    model_config = ConfigDict(extra="forbid")
    # Requests per caller (a token's subject; without [auth], an address) and period.
    rate_limit: str = Field("600/minute", pattern=r"^[1-9]\d*/(second|minute|hour|day)$")


class NasSettings(BaseModel):
    """One ``[nas.<id>]`` table: the core keys, plus ``options`` for the NAS type."""

    model_config = ConfigDict(extra="forbid")
    id: str
    type: str
    root: Path
    display_root: str | None = None
    sync_minutes: float = Field(15, gt=0)
    # A file is ready when its size and mtime did not change between two looks this far
    # apart (nasindex.settling).
    settle_seconds: float = Field(5, ge=0)
    # How soon a new file is searchable: a watch polls the NAS often enough for that
    # (nasindex.freshness); 0: no watch, the incremental sync every sync_minutes instead.
    freshness_seconds: float = Field(60, ge=0)
    # Every file is stat-ed at least once in this period by a watch's polls (a rolling
    # sweep), which catches a file rewritten in place.
    sweep_minutes: float = Field(60, gt=0)
    max_missing_fraction: float = Field(0.2, ge=0, le=1)
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    batch_size: int = Field(500, ge=1)
    # A NAS call (listing, reading, the database) that shows no progress for this long
    # fails the run, naming the NAS, instead of hanging on a stalled share or server.
    io_timeout_seconds: float = Field(120, gt=0)
    # Environment variable -> Prefect Secret block: flows export the secret into the
    # variable (e.g. the one `password_env` names) before the NAS is opened.
    secret_blocks: dict[str, str] = {}
    options: dict[str, Any] = {}

    @property
    def poll_seconds(self) -> float:
        """From the start of one poll of its watch to the next: the freshness promise
        less the second look and a sixth of it for reading (nasindex.freshness)."""
        fresh = self.freshness_seconds
        return max(POLL_MIN_SECONDS, fresh - self.settle_seconds - fresh / 6)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Path
    index: IndexSettings = IndexSettings()
    prefect: PrefectSettings = PrefectSettings()
    nas: dict[str, NasSettings] = {}
    auth: AuthSettings | None = None  # None: no login (the demo, on 127.0.0.1 only)
    audit: AuditSettings = AuditSettings()
    api: ApiSettings = ApiSettings()

    def get_nas(self, nas_id: str) -> NasSettings:
        try:
            return self.nas[nas_id]
        except KeyError:
            known = ", ".join(sorted(self.nas)) or "none"
            raise ConfigError(
                f"No NAS {nas_id!r} in {self.path}; configured NAS devices: {known}."
            ) from None


def config_path(explicit: str | Path | None = None) -> Path:
    """Where the config is: the explicit path, else $NASINDEX_CONFIG, else ./nasindex.toml."""
    return Path(explicit or os.environ.get("NASINDEX_CONFIG") or DEFAULT_CONFIG)


def current_settings() -> Settings:
    """The settings of the running command: its ``--config``, else ``$NASINDEX_CONFIG``,
    else ``./nasindex.toml``."""
    return load_settings(invocation.config_path())


def load_settings(explicit: str | Path | None = None) -> Settings:
    path = config_path(explicit)
    if not path.is_file():
        raise ConfigError(
            f"No config file at {path}. Create one (see README, 'Configuration'), "
            "run `nasindex demo` for a demo setup, or pass --config PATH."
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}. Fix the syntax there.") from None
    return parse_settings(raw, path)


def parse_settings(raw: dict[str, Any], path: Path) -> Settings:
    base = path.parent.resolve()
    nas_tables = raw.get("nas", {})
    if not isinstance(nas_tables, dict):
        raise ConfigError(f"{path}: 'nas' must be tables like [nas.ct1], "
                          f"not a {type(nas_tables).__name__}.")
    nas: dict[str, NasSettings] = {}
    for nas_id, table in nas_tables.items():
        nas[nas_id] = _parse_nas(nas_id, table, path, base)
    try:
        index = IndexSettings(**raw.get("index", {}))
        prefect = PrefectSettings(**raw.get("prefect", {}))
        audit = AuditSettings(**raw.get("audit", {}))
        api = ApiSettings(**raw.get("api", {}))
    except ValidationError as exc:
        raise ConfigError(_explain(exc, f"{path}")) from None
    unknown = set(raw) - {"index", "nas", "prefect", "auth", "audit", "api"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level table(s) {sorted(unknown)}; "
                          "expected [index], [prefect], [auth], [audit], [api] and "
                          "[nas.<id>].")
    index.url = _resolve_sqlite_url(index.url, base)
    if audit.syslog_ca_file and not audit.syslog_ca_file.is_absolute():
        audit.syslog_ca_file = (base / audit.syslog_ca_file).resolve()
    auth = _parse_auth(raw["auth"], path, nas) if "auth" in raw else None
    return Settings(path=path, index=index, prefect=prefect, nas=nas, auth=auth, audit=audit,
                    api=api)


def _parse_auth(table: Any, path: Path, nas: dict[str, NasSettings]) -> AuthSettings:
    where = f"{path} [auth]"
    try:
        auth = AuthSettings(**table)
    except (ValidationError, TypeError) as exc:
        if isinstance(exc, TypeError):
            raise ConfigError(f"{where}: expected a table of keys.") from None
        raise ConfigError(_explain(exc, where)) from None
    if not auth.groups:
        raise ConfigError(f"{where}: no group grants a role; add [auth.groups] with "
                          '"<group>" = "clinician" or "admin".')
    for group, nas_ids in auth.nas_scopes.items():
        if group not in auth.groups:
            raise ConfigError(f"{where}: nas_scopes names group {group!r}, which grants no "
                              "role in [auth.groups]; add it there or remove the scope.")
        unknown = sorted(set(nas_ids) - set(nas))
        if unknown or not nas_ids:
            raise ConfigError(f"{where}: nas_scopes of group {group!r} names "
                              f"{unknown or 'no NAS'}; use NAS ids of this config "
                              f"({', '.join(sorted(nas)) or 'none'}).")
    if not auth.redirect_uri.rstrip("/").endswith("/oauth2callback"):
        raise ConfigError(f"{where}: redirect_uri must be the dashboard's address followed "
                          "by /oauth2callback (and registered with the provider).")
    return auth


def _parse_nas(nas_id: str, table: Any, path: Path, base: Path) -> NasSettings:
    where = f"{path} [nas.{nas_id}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table of keys (type, root, ...).")
    for key in ("type", "root"):
        if key not in table:
            raise ConfigError(f"{where}: missing key {key!r} (required for every NAS).")
    core = {k: v for k, v in table.items() if k in CORE_NAS_KEYS}
    options = {k: v for k, v in table.items() if k not in CORE_NAS_KEYS}
    try:
        settings = NasSettings(id=nas_id, options=options, **core)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, where)) from None
    if not settings.root.is_absolute():
        settings.root = (base / settings.root).resolve()
    return settings


def _explain(exc: ValidationError, where: str) -> str:
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(table)"
        problems.append(f"key {key!r}: {err['msg']}")
    return f"{where}: " + "; ".join(problems) + "."


def _resolve_sqlite_url(url: str, base: Path) -> str:
    """Relative SQLite paths are relative to the config file, not to the caller's cwd."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str((base / url[len(prefix):]).resolve())
    return url
