"""Serving indexed SOP instances as DICOM (WADO-RS): which copy, its bytes, the
Part 10 files made around JPEG 2000 codestreams, metadata and frames."""
