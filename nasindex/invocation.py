"""What the running ``nasindex`` command was given that code below the CLI needs: the
``--config`` path. The commands a plugin adds read the settings through
``nasindex.plugin.current_settings``. No imports: the CLI sets it before loading more."""

from __future__ import annotations

from pathlib import Path

_config_path: Path | None = None


def set_config_path(path: Path | None) -> None:
    global _config_path
    _config_path = path


def config_path() -> Path | None:
    """The ``--config`` given on the command line, if any."""
    return _config_path
