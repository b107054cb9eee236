"""Registers the fixtures of fb_support (real Firebird engines, real files)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # fb_support: a name no other test dir uses

from fb_support import embedded_nas, firebird_server, server_password  # noqa: E402, F401
