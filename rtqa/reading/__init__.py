"""Reading DICOM RT exports: classify files, parse RTDOSE/RTSTRUCT/RTPLAN/CT, link by UID.

Public entry point: :func:`rtqa.reading.export.load_export`.
"""

from rtqa.reading.export import Export, load_export

__all__ = ["Export", "load_export"]
