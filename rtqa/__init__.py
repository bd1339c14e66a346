"""rtqa: radiotherapy plan QA from DICOM RT exports.

Units throughout: dose in Gy, volume in cc (cm^3), lengths in mm (DICOM patient
coordinates).
"""

__version__ = "0.1.0"
