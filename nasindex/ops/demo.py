"""``nasindex demo``: one demo NAS per demo device of every installed NAS type, and a
config for them. Walks the registry, so it sits above it; the demo patients themselves
are :mod:`nasindex.demo`, which the NAS types import."""

from __future__ import annotations

import os
import time
from pathlib import Path

import tomli_w

from nasindex.demo import demo_patients
from nasindex.registry import registry


def write_demo(config: Path, data_dir: Path, patients: int, slices: int = 24) -> dict[str, int]:
    """Write one demo NAS per demo device of every installed NAS type, and a config for
    them. The first device holds every patient; later ones hold overlapping halves, so
    some patients appear on several NAS devices. Returns patients per NAS id."""
    data_dir = data_dir.resolve()
    tables: dict[str, dict] = {}
    made: dict[str, int] = {}
    device = 0
    for _name, cls in sorted(registry().types.items()):
        for nas_id in cls.demo_devices:
            people = demo_patients(patients, slices, device)
            if device:
                people = [p for i, p in enumerate(people) if (i + device) % 2 == 0]
            root = data_dir / nas_id
            root.mkdir(parents=True, exist_ok=True)
            extra = cls.create_demo(nas_id, root, people) or {}
            _age_files(root)
            tables[nas_id] = {"type": cls.name, "root": str(root),
                              "display_root": f"\\\\nas{device + 1}\\{nas_id}", **extra}
            made[nas_id] = len(people)
            device += 1
    doc = {"index": {"url": f"sqlite:///{data_dir / 'nasindex.db'}"}, "nas": tables}
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("# Written by `nasindex demo`.\n" + tomli_w.dumps(doc), encoding="utf-8")
    return made


def _age_files(root: Path, seconds: float = 3600) -> None:
    """Date demo files an hour back: fresh files would wait out the settle window."""
    then = time.time() - seconds
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (then, then))
