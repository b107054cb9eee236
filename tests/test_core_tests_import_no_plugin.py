"""The core's tests reach the built-in NAS types as the core does, through the registry
(support.write_tree, open_nas): none imports a plugin package, so each plugin's own
tests live in plugins/<type>/tests/ and the core's would run with any NAS type."""

from __future__ import annotations

import ast
from pathlib import Path

PLUGIN_PACKAGES = ("nasindex_dicom_folder", "nasindex_firebird_jp2")


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_core_test_imports_a_plugin() -> None:
    offenders = {
        path.name: sorted(m for m in _imported(path) if m.split(".")[0] in PLUGIN_PACKAGES)
        for path in sorted(Path(__file__).parent.glob("*.py"))
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}
