"""The configuration file: ``nasindex.toml`` (or ``--config PATH`` / ``NASINDEX_CONFIG``).

Core keys are validated here; each NAS type validates its own keys through its
``Options`` model. Every refusal names the NAS, the key and what is expected.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nasindex.errors import ConfigError

DEFAULT_CONFIG = "nasindex.toml"
CORE_NAS_KEYS = {"type", "root", "display_root", "sync_minutes", "settle_seconds",
                 "max_missing_fraction", "workers", "batch_size", "secret_blocks"}


class IndexSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = "sqlite:///nasindex.db"


class PrefectSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ui_url: str | None = None
    work_pool: str = "nasindex"


class NasSettings(BaseModel):
    """One ``[nas.<id>]`` table: the core keys, plus ``options`` for the NAS type."""

    model_config = ConfigDict(extra="forbid")
    id: str
    type: str
    root: Path
    display_root: str | None = None
    sync_minutes: float = Field(15, gt=0)
    settle_seconds: float = Field(60, ge=0)
    max_missing_fraction: float = Field(0.2, ge=0, le=1)
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    batch_size: int = Field(500, ge=1)
    # Environment variable -> Prefect Secret block: flows export the secret into the
    # variable (e.g. the one `password_env` names) before the NAS is opened.
    secret_blocks: dict[str, str] = {}
    options: dict[str, Any] = {}


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Path
    index: IndexSettings = IndexSettings()
    prefect: PrefectSettings = PrefectSettings()
    nas: dict[str, NasSettings] = {}

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
    except ValidationError as exc:
        raise ConfigError(_explain(exc, f"{path}")) from None
    unknown = set(raw) - {"index", "nas", "prefect"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level table(s) {sorted(unknown)}; "
                          "expected [index], [prefect] and [nas.<id>].")
    index.url = _resolve_sqlite_url(index.url, base)
    return Settings(path=path, index=index, prefect=prefect, nas=nas)


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
