"""DICOM Part 10 files made on the fly around a stored JPEG 2000 codestream.

The Firebird PACS keeps plain JPEG 2000 files; a DICOM viewer wants DICOM. The file made
here holds the index's patient, study, series and instance attributes, the pixel module
read from the codestream's own header, and the codestream itself, encapsulated as it is
stored (PS3.5 A.4): a Basic Offset Table with the one frame's offset, one fragment (the
codestream, padded to even length with one zero byte after its EOC marker), and the
sequence delimiter. The pixels are never decoded or encoded again.

It is a Secondary Capture image (PS3.3 A.8.1): the PACS database has no acquisition
geometry (position, orientation, spacing), which a CT Image object requires.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from nasindex.search.dicom.files import WRAPPED_SOP_CLASS, StoredInstance
from nasindex.wado.codestream import Codestream

SECONDARY_CAPTURE = UID(WRAPPED_SOP_CLASS)
J2K_LOSSLESS = UID("1.2.840.10008.1.2.4.90")
J2K = UID("1.2.840.10008.1.2.4.91")
_ITEM, _SEQ_END = b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_PIXEL_DATA = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"  # OB, undefined length


@dataclass(frozen=True)
class Wrapped:
    """A Part 10 file: ``prefix``, then the codestream's bytes, then ``suffix``."""

    prefix: bytes
    suffix: bytes
    codestream: Codestream

    @property
    def size(self) -> int:
        return len(self.prefix) + self.codestream.length + len(self.suffix)


def dataset(item: StoredInstance, cs: Codestream,
            rescale: tuple[float, float] | None) -> Dataset:
    """The attributes of the file made for ``item`` (everything but the pixel data)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = SECONDARY_CAPTURE, item.sop_instance_uid
    ds.StudyDate, ds.StudyTime = item.study_date or "", item.study_time or ""
    ds.AccessionNumber, ds.Modality = item.accession_number or "", item.modality or "OT"
    ds.ConversionType = "WSD"  # SC Equipment: made by a workstation from stored images
    ds.StudyDescription = item.study_description or ""
    ds.SeriesDescription = item.series_description or ""
    ds.ReferringPhysicianName = ""
    ds.PatientName, ds.PatientID = item.patient_name, item.patient_id
    ds.PatientBirthDate, ds.PatientSex = item.birth_date or "", item.sex or ""
    ds.StudyInstanceUID, ds.SeriesInstanceUID = item.study_uid, item.series_uid
    ds.StudyID = ""
    ds.SeriesNumber = item.series_number
    ds.InstanceNumber = item.instance_number
    ds.PatientOrientation = ""
    ds.SamplesPerPixel = cs.samples
    ds.PhotometricInterpretation = _photometric(cs)
    if cs.samples > 1:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = cs.rows, cs.columns
    ds.BitsAllocated = 8 if cs.bits <= 8 else 16
    ds.BitsStored, ds.HighBit = cs.bits, cs.bits - 1
    ds.PixelRepresentation = int(cs.signed)
    if rescale is not None:
        ds.RescaleIntercept, ds.RescaleSlope = f"{rescale[1]:g}", f"{rescale[0]:g}"
        ds.RescaleType = "HU" if item.modality == "CT" else "US"
    ds.LossyImageCompression = "00" if cs.reversible else "01"
    return ds


def _photometric(cs: Codestream) -> str:
    if cs.samples == 1:
        return "MONOCHROME2"
    if cs.colour_transform:
        return "YBR_RCT" if cs.reversible else "YBR_ICT"
    return "RGB"


def transfer_syntax(cs: Codestream) -> UID:
    return J2K_LOSSLESS if cs.reversible else J2K


def wrap(ds: Dataset, cs: Codestream) -> Wrapped:
    """The bytes around the codestream that make ``ds`` and it one Part 10 file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax(cs)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    pad = cs.length % 2
    fragment = cs.length + pad
    offsets = _ITEM + struct.pack("<I", 4) + struct.pack("<I", 0)  # one frame, at 0
    prefix = buf.getvalue() + _PIXEL_DATA + offsets + _ITEM + struct.pack("<I", fragment)
    return Wrapped(prefix, b"\x00" * pad + _SEQ_END, cs)
