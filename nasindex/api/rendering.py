"""What a rendered image takes, the same on the JSON and the DICOMweb routes: the
dashboard's window presets spelt for a URL (``soft-tissue``), and the longest side."""

from __future__ import annotations

from typing import Literal

from nasindex.preview import WINDOWS

PRESETS = {name.replace(" ", "-"): name for name in WINDOWS}  # URL spelling -> preset
Window = Literal[tuple(PRESETS)]  # type: ignore[valid-type]
MAX_RENDER = 1024  # pixels, the longest side of a rendered image
