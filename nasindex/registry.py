"""Finds NAS types through the ``nasindex.nas_types`` entry points.

Built-in types register through the same door as a third party's. A type that fails
to load is remembered with its error; the others keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from pydantic import ValidationError

from nasindex.config import NasSettings
from nasindex.contract import NasType
from nasindex.errors import ConfigError

GROUP = "nasindex.nas_types"


@dataclass(frozen=True)
class Registry:
    types: dict[str, type[NasType]]
    failures: dict[str, str]  # entry-point name -> error message


@cache
def registry() -> Registry:
    types: dict[str, type[NasType]] = {}
    failures: dict[str, str] = {}
    for ep in entry_points(group=GROUP):
        try:
            types[ep.name] = _load(ep)
        except Exception as exc:  # a broken plugin must not take the others down
            failures[ep.name] = f"{type(exc).__name__}: {exc}"
    return Registry(types, failures)


def _load(ep: EntryPoint) -> type[NasType]:
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, NasType)):
        raise TypeError(f"{ep.value} is not a nasindex.contract.NasType subclass")
    return cls


def nas_type(name: str) -> type[NasType]:
    # A run needs one NAS type: load only its entry point, not every plugin (another
    # plugin's imports, e.g. a database driver, cost each CLI run ~0.25 s). The whole
    # registry is built only to explain a type that does not load.
    for ep in entry_points(group=GROUP, name=name):
        try:
            return _load(ep)
        except Exception:
            break
    reg = registry()
    if name in reg.types:
        return reg.types[name]
    if name in reg.failures:
        raise ConfigError(f"NAS type {name!r} is installed but failed to load: "
                          f"{reg.failures[name]}. Run `nasindex plugins` for details.")
    known = ", ".join(sorted(reg.types)) or "none"
    raise ConfigError(f"Unknown NAS type {name!r}; installed types: {known}. "
                      "Install the plugin package that provides it.")


def open_nas(settings: NasSettings) -> NasType:
    """Build the NAS-type object for one configured NAS, validating its own keys."""
    cls = nas_type(settings.type)
    try:
        options = cls.Options(**settings.options)
    except ValidationError as exc:
        problems = "; ".join(
            f"key {'.'.join(str(p) for p in e['loc'])!r}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"[nas.{settings.id}] (type {settings.type}): {problems}.") from None
    return cls(settings.id, settings.root, options)
