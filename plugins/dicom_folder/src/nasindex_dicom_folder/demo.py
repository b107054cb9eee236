"""Writes demo patients as a CT folder tree: PatientID/StudyDate_Accession/Series/IM_n.dcm."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from nasindex.plugin import DemoPatient, DemoSeries, DemoStudy, phantom_slice


def write_tree(root: Path, patients: Sequence[DemoPatient]) -> int:
    """Write every series of every patient (images of the series' size); returns the
    number of files written."""
    written = 0
    for patient in patients:
        for study in patient.studies:
            study_dir = root / patient.patient_id / f"{study.date}_{study.accession}"
            for series in study.series:
                folder = study_dir / f"S{series.number:03d}"
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(series.slices):
                    pixels = phantom_slice(series.size, i / max(series.slices - 1, 1))
                    write_ct_file(folder / f"IM_{i + 1:05d}.dcm", patient, study, series,
                                  i + 1, pixels)
                    written += 1
    return written


def write_ct_file(path: Path, patient: DemoPatient, study: DemoStudy, series: DemoSeries,
                  number: int, hu: np.ndarray) -> None:
    """One CT image: 16-bit unsigned pixels with a rescale to Hounsfield units."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = _charset(patient.name)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.StudyInstanceUID = study.uid
    ds.StudyDate = study.date
    ds.StudyTime = study.time
    ds.StudyDescription = study.description
    ds.AccessionNumber = study.accession
    ds.StudyID = study.accession[-4:]
    ds.SeriesInstanceUID = series.uid
    ds.SeriesNumber = series.number
    ds.SeriesDescription = series.description
    ds.Modality = study.modality
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [-250.0, -250.0, -5.0 * number]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceThickness = 5.0
    ds.PixelSpacing = [0.9765625, 0.9765625]
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelData = (hu.astype(np.int32) + 1024).astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def _charset(name: str) -> str:
    """Latin-1 where it suffices (as most PACS write), else UTF-8."""
    try:
        name.encode("latin-1")
        return "ISO_IR 100"
    except UnicodeEncodeError:
        return "ISO_IR 192"
