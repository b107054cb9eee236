"""The core test helpers' fixtures this plugin's tests use (a generated CT tree, its config),
and this folder on the path for dicom_testfiles (a name no other test folder uses)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from support import ct_root, settings  # noqa: E402, F401  (fixtures)
