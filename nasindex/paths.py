"""Where a file is: on the indexing host, and as a clinician's workstation sees it.

Paths in the index are text relative to the NAS root. A POSIX file name is bytes, not
text, so names are written in the index with a reversible escape (:func:`escape_path`):

* a byte that is not part of valid UTF-8 (``\\xff``), a control character (newline,
  tab, ESC, DEL, the C1 range) and a character that reorders or hides text (bidi
  controls such as U+202E) are written as ``\\xNN``, one per byte of the name;
* a backslash is written ``\\\\`` (so an escape can never be confused with a name);
* everything else, i.e. every ordinary name, is stored exactly as it is.

The escaped form is what the index keys, stores and shows (one printable line, safe
for any database, terminal or log); :func:`unescape_path` gives back the exact bytes
of the real file. Only names holding a backslash change form compared to the raw name,
which on shares served to Windows (SMB) cannot occur.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

# Characters written as the \xNN escapes of their UTF-8 bytes: C0 and C1 controls,
# DEL, and the bidirectional formatting characters (they can make a path read as
# another one). Lone surrogates are the bytes os.fsdecode could not decode.
_ESCAPED = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                      "\udc80-\udcff\\\\]")
_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2})")


def _escape_char(match: re.Match[str]) -> str:
    char = match[0]
    if char == "\\":
        return "\\\\"
    raw = os.fsencode(char)  # a lone surrogate gives back the byte it stands for
    return "".join(f"\\x{b:02x}" for b in raw)


def escape_path(name: str | bytes) -> str:
    """A file name or relative path (str from ``os.fsdecode``/``os.scandir``, or raw
    bytes) as the index writes it. Idempotent only for names without escapes: escape
    each name once, where it is read from the file system."""
    text = os.fsdecode(name) if isinstance(name, bytes) else name
    if text.isascii() and "\\" not in text and text.isprintable():
        return text  # the common case, at the cost of three C calls
    return _ESCAPED.sub(_escape_char, text)


def unescape_path(text: str) -> str:
    """The file-system name (as ``os.fsdecode`` gives it) of an escaped path."""
    if "\\" not in text:
        return text
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(text):
        out += text[pos:m.start()].encode("utf-8", "surrogateescape")
        out += b"\\" if m[1] == "\\" else bytes([int(m[1][1:], 16)])
        pos = m.end()
    out += text[pos:].encode("utf-8", "surrogateescape")
    return os.fsdecode(bytes(out))


def storable(text: str) -> str:
    """``text`` made safe for any database text column: lone surrogates (undecodable
    bytes) and NUL (PostgreSQL refuses it) become ``\\xNN`` escapes."""
    if text.isascii() and "\x00" not in text:
        return text
    return re.sub("[\x00\udc80-\udcff]", _escape_char, text)


def host_path(root: str | Path, rel_path: str) -> str:
    """Where an indexed file is on the indexing host, as text (escaped like the index)."""
    return str(Path(root) / PurePosixPath(rel_path))


def real_path(root: str | Path, rel_path: str) -> Path:
    """The real file of an indexed (escaped) path, to open it."""
    return Path(root) / unescape_path(rel_path)


def display_path(display_root: str | None, root: str | Path, rel_path: str) -> str:
    """``rel_path`` under ``display_root`` in that root's own separator style
    (``Z:\\`` or ``\\\\nas1\\ct`` -> backslashes); the host path when there is none."""
    if not display_root:
        return host_path(root, rel_path)
    if "\\" in display_root or (len(display_root) >= 2 and display_root[1] == ":"):
        return display_root.rstrip("\\/") + "\\" + rel_path.replace("/", "\\")
    return display_root.rstrip("/") + "/" + rel_path
