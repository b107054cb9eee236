"""Synthetic, realistic demo patients, shared by every NAS type's demo writer (part of
the public plugin API, :mod:`nasindex.plugin`).

The core decides who the patients are (names with non-ASCII letters, several studies
and series each, the size of their images); each NAS type writes them in its own format
through ``NasType.create_demo``. Deterministic for a given seed. numpy and pydicom are
imported where they are used: every CLI run imports this module through the plugins.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

IMAGE_SIZE = 512  # rows = columns of a demo image, as a CT slice

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
    size: int = IMAGE_SIZE  # rows = columns of each image


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


def demo_patients(count: int, slices: int = 24, device: int = 0,
                  size: int = IMAGE_SIZE) -> list[DemoPatient]:
    """``count`` patients with 1-3 studies of 1-2 series each of ``size`` x ``size``
    images. The same ``count`` gives the same people on every device; ``device`` varies
    their studies."""
    from pydicom.uid import generate_uid

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
                                               max(2, int(slices * share)), size))
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
    import numpy as np

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
