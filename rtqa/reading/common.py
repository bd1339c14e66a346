"""Small helpers shared by the DICOM readers."""

from __future__ import annotations

import math
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from rtqa.errors import DicomInputError


def read_dataset(path: Path, stop_before_pixels: bool = False) -> pydicom.Dataset:
    """Read a whole DICOM file, turning every failure into a one-line DicomInputError."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        raise DicomInputError("not a DICOM file", path) from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on broken files
        raise DicomInputError(f"unreadable or truncated DICOM ({type(exc).__name__}: {exc})",
                              path) from None


def text(ds, keyword: str, default: str = "") -> str:
    """A string attribute, '' when absent or empty."""
    value = ds.get(keyword, None)
    return default if value is None else str(value).strip()


def required(ds, keyword: str, path: Path, what: str = ""):
    """An attribute that must be present and non-empty."""
    value = ds.get(keyword, None)
    if value is None or (hasattr(value, "__len__") and len(value) == 0):
        raise DicomInputError(f"missing required {keyword}{' (' + what + ')' if what else ''}",
                              path)
    return value


def floats(value, n: int | None, keyword: str, path: Path) -> list[float]:
    """A (multi-)valued numeric attribute as finite floats, with an optional length check."""
    seq = [value] if isinstance(value, (int, float, str, bytes)) else list(value)
    try:
        vals = [float(v) for v in seq]
    except (TypeError, ValueError):
        raise DicomInputError(f"{keyword} is not numeric: {value!r}", path) from None
    if n is not None and len(vals) != n:
        raise DicomInputError(f"{keyword} must have {n} values, has {len(vals)}", path)
    if not all(math.isfinite(v) for v in vals):
        raise DicomInputError(f"{keyword} has non-finite values", path)
    return vals
