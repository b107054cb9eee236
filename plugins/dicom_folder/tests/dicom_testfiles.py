"""pydicom's bundled test files: the corpus this plugin's tests read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom.data

PYDICOM_FILES = Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent
CHARSET_FILES = PYDICOM_FILES.parent / "charset_files"


def copy_testfile(name: str, dest: Path, folder: Path = PYDICOM_FILES) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / name, dest)
    return dest
