"""Synthetic, realistic demo patients, shared by every NAS type's demo writer.

The core decides who the patients are (names with non-ASCII letters, several studies
and series each) and which NAS holds which study; each NAS type writes them in its own
format through ``NasType.create_demo``. Deterministic for a given seed.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import tomli_w
from pydicom.uid import generate_uid

FAMILY = ["MÜLLER", "García", "Nguyen", "O'Brien", "Kowalski", "Johansson", "Dubois",
          "Smith", "Okafor", "Rossi", "Novák", "Fernández", "Ivanova", "Schmidt", "Zhang",
          "Lefèvre", "Brown", "Yılmaz", "Andersen", "Costa", "Doe", "Søndergaard", "Weiß",
          "Papadopoulos", "Martín"]
GIVEN_F = ["Jane", "María", "Zoë", "Anna", "Chloé", "Ingrid", "Agnieszka", "Aiko",
           "Fatima", "Léa", "Olga", "Sofía"]
GIVEN_M = ["Jörg", "John", "José", "Lukas", "François", "Piotr", "Ahmet", "Chen",
           "Emeka", "Matteo", "Erik", "Søren"]
PROTOCOLS = [  # (study description, modality, [(series description, slices)])
    ("CT CHEST W/O CONTRAST", "CT", [("AXIAL 5mm", 1.0), ("LUNG 1mm", 1.0)]),
    ("CT ABDOMEN PELVIS W CONTRAST", "CT", [("PORTAL VENOUS", 1.0), ("CORONAL MPR", 0.6)]),
    ("CT HEAD W/O CONTRAST", "CT", [("BRAIN 5mm", 0.8), ("BONE", 0.8)]),
    ("CT ANGIO PULMONARY", "CT", [("CTA ARTERIAL", 1.0)]),
]


@dataclass
class DemoSeries:
    uid: str
    number: int
    description: str
    slices: int


@dataclass
class DemoStudy:
    uid: str
    date: str  # YYYYMMDD
    time: str
    description: str
    modality: str
    accession: str
    series: list[DemoSeries] = field(default_factory=list)


@dataclass
class DemoPatient:
    patient_id: str
    name: str  # DICOM PN, FAMILY^Given
    birth_date: str
    sex: str
    studies: list[DemoStudy] = field(default_factory=list)


def demo_patients(count: int, slices: int = 24, device: int = 0) -> list[DemoPatient]:
    """``count`` patients with 1-3 studies of 1-2 series each. The same ``count`` gives
    the same people on every device; ``device`` varies their studies."""
    people = random.Random(7)
    rng = random.Random(1000 + device)
    patients = []
    for i in range(count):
        sex = people.choice("FM")
        given = people.choice(GIVEN_F if sex == "F" else GIVEN_M)
        family = FAMILY[i % len(FAMILY)] if i < len(FAMILY) else people.choice(FAMILY)
        born = date(1935, 1, 1) + timedelta(days=people.randrange(365 * 70))
        patient = DemoPatient(f"PAT{i + 1:05d}", f"{family.upper()}^{given}",
                              born.strftime("%Y%m%d"), sex)
        for s in range(rng.randint(1, 3)):
            desc, modality, series = rng.choice(PROTOCOLS)
            when = date(2026, 11, 1) - timedelta(days=rng.randrange(3 * 365))
            study = DemoStudy(generate_uid(), when.strftime("%Y%m%d"),
                              f"{rng.randrange(7, 18):02d}{rng.randrange(60):02d}00", desc,
                              modality, f"A{device}{i + 1:05d}{s + 1}")
            for n, (sdesc, share) in enumerate(series[: rng.randint(1, len(series))], 1):
                study.series.append(DemoSeries(generate_uid(), n, sdesc,
                                               max(2, int(slices * share))))
            patient.studies.append(study)
        patients.append(patient)
    return patients


def phantom_slice(size: int, position: float) -> np.ndarray:
    """:func:`make_phantom` at one of 16 positions, cached: demo trees reuse them."""
    return _phantom_cached(size, round(min(max(position, 0.0), 1.0) * 15))


@cache
def _phantom_cached(size: int, step: int) -> np.ndarray:
    return make_phantom(size, step / 15, seed=step)


def make_phantom(size: int, position: float, seed: int = 0) -> np.ndarray:
    """A CT-like axial slice in Hounsfield units (int16): air, a body with fat and soft
    tissue, two lungs, a spine and ribs. ``position`` in [0, 1] moves along the body."""
    y, x = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    hu = np.full((size, size), -1000.0)
    body = (x / 0.85) ** 2 + (y / 0.62) ** 2 <= 1
    hu[body] = -100  # fat
    hu[(x / 0.78) ** 2 + (y / 0.55) ** 2 <= 1] = 40  # soft tissue
    lung_r = 0.28 + 0.08 * np.sin(np.pi * position)
    for cx in (-0.38, 0.38):
        hu[((x - cx) / lung_r) ** 2 + ((y + 0.05) / (lung_r * 1.4)) ** 2 <= 1] = -850
    hu[(x ** 2 + (y - 0.38) ** 2) <= 0.09 ** 2] = 700  # vertebra
    hu[(x ** 2 + (y - 0.38) ** 2) <= 0.05 ** 2] = 250  # marrow
    ring = np.abs((x / 0.8) ** 2 + (y / 0.57) ** 2 - 1) < 0.04
    hu[ring & (np.sin(8 * np.arctan2(y, x) + 6 * position) > 0.6)] = 900  # ribs
    hu[((x + 0.1) ** 2 + (y + 0.1) ** 2) <= (0.12 + 0.05 * position) ** 2] = 55  # heart/liver
    noise = np.random.default_rng(seed).normal(0, 12, hu.shape)
    return np.clip(hu + noise * body, -1024, 3071).astype(np.int16)


def write_demo(config: Path, data_dir: Path, patients: int, slices: int = 24) -> dict[str, int]:
    """Write one demo NAS per demo device of every installed NAS type, and a config for
    them. The first device holds every patient; later ones hold overlapping halves, so
    some patients appear on several NAS devices. Returns patients per NAS id."""
    from nasindex.registry import registry  # here: the registry imports the contract

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
