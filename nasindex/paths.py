"""Where a file is: on the indexing host, and as a clinician's workstation sees it."""

from __future__ import annotations

from pathlib import Path, PurePosixPath


def host_path(root: str | Path, rel_path: str) -> str:
    return str(Path(root) / PurePosixPath(rel_path))


def display_path(display_root: str | None, root: str | Path, rel_path: str) -> str:
    """``rel_path`` under ``display_root`` in that root's own separator style
    (``Z:\\`` or ``\\\\nas1\\ct`` -> backslashes); the host path when there is none."""
    if not display_root:
        return host_path(root, rel_path)
    if "\\" in display_root or (len(display_root) >= 2 and display_root[1] == ":"):
        return display_root.rstrip("\\/") + "\\" + rel_path.replace("/", "\\")
    return display_root.rstrip("/") + "/" + rel_path
