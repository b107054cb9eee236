"""The public plugin API: everything a NAS-type plugin imports from nasindex, and
nothing else (an import-linter contract holds the built-in plugins to it).

A NAS type is a :class:`NasType` subclass registered under the entry-point group
``nasindex.nas_types``; the contract's docstrings (:mod:`nasindex.contract`) are its
specification. It may also register a ``typer.Typer`` under ``nasindex.commands``:
its commands read the config the running ``nasindex`` command was given with
:func:`current_settings` and open a configured NAS with :func:`open_nas`.

The names below are stable: a plugin declares ``nasindex>=0.1`` and builds on them.
"""

from nasindex.config import NasSettings, Settings, current_settings
from nasindex.contract import (
    Fingerprint,
    FolderMark,
    InstanceRecord,
    ItemFailure,
    NasOptions,
    NasType,
    PollState,
    ScanResult,
    progress,
)
from nasindex.demo import DemoPatient, DemoSeries, DemoStudy, make_phantom, phantom_slice
from nasindex.errors import ConfigError, NasIndexError, NasUnavailable
from nasindex.paths import escape_path, real_path, unescape_path
from nasindex.registry import open_nas

__all__ = [
    # the contract
    "NasType", "NasOptions", "Fingerprint", "ScanResult", "InstanceRecord", "ItemFailure",
    # tell the engine a long call (a large file, many database rows) is still working
    "progress",
    # errors a NAS type raises: messages name the cause and the fix, never PHI
    "NasUnavailable", "ConfigError", "NasIndexError",
    # a plugin's own commands: the config of the running command, a configured NAS
    "current_settings", "open_nas", "Settings", "NasSettings",
    # paths of a file-based NAS type: a listed name as the index keys it, and back
    "escape_path", "real_path", "unescape_path",
    # a file tree that polls only the folders that moved (NasType.polls_folders)
    "FolderMark", "PollState",
    # the demo patients a NAS type writes in its format (NasType.create_demo)
    "DemoPatient", "DemoStudy", "DemoSeries", "phantom_slice", "make_phantom",
]
