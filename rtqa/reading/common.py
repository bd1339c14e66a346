"""Small helpers shared by the DICOM readers."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from rtqa.errors import DicomInputError, RtqaError

#: Patient coordinates beyond this (mm, i.e. 100 m) are corrupt values, not anatomy.
MAX_COORDINATE_MM = 1.0e5


def reader(what: str):
    """Decorate a per-file reader ``f(path, ...)``: any exception other than RtqaError
    raised while reading or converting a value (pydicom converts values lazily, so a
    corrupt IS/DS/UI value surfaces as ValueError, OverflowError, NotImplementedError ...
    long after the file was opened) becomes a one-line DicomInputError naming the file.
    The input is refused, never half-read."""

    def wrap(func):
        @functools.wraps(func)
        def wrapper(path, *args, **kwargs):
            try:
                return func(path, *args, **kwargs)
            except (RtqaError, MemoryError, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001 - corrupt values raise many types
                detail = str(exc).splitlines()[0][:200] if str(exc) else ""
                raise DicomInputError(
                    f"malformed {what} ({type(exc).__name__}{': ' + detail if detail else ''})",
                    Path(path)) from exc
        return wrapper

    return wrap


#: Transfer syntaxes of a bare data set (no Part 10 header), by encoding.
BARE_TRANSFER_SYNTAX = _BARE_TS = {"implicit": "1.2.840.10008.1.2", "explicit": "1.2.840.10008.1.2.1"}
_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
        b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST",
        b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV"}


def bare_encoding(head: bytes) -> str | None:
    """'implicit' or 'explicit' when ``head`` (the first bytes of a file) starts like a DICOM
    data set written without the PS3.10 preamble and 'DICM' prefix (as Elekta Monaco
    writes its RT objects): a little-endian first element in group 0002 (File Meta) or
    0008 (Identifying), with a plausible element number. None otherwise: such files
    are never read on a guess."""
    if len(head) < 8 or head[128:132] == b"DICM":
        return None
    group, elem = int.from_bytes(head[0:2], "little"), int.from_bytes(head[2:4], "little")
    if group not in (0x0002, 0x0008) or elem > 0x00FF:
        return None
    if head[4:6] in _VRS:
        return "explicit"
    length = int.from_bytes(head[4:8], "little")
    return "implicit" if length < 0x10000 else None


def bare_note(head: bytes) -> str:
    """What a bare data set lacks, in words (for the warning naming the file)."""
    enc = bare_encoding(head)
    meta = int.from_bytes(head[0:2], "little") == 0x0002
    missing = ("the 128-byte preamble and 'DICM' prefix" if meta else
               "the 128-byte preamble, 'DICM' prefix and File Meta Information")
    how = ("with its File Meta transfer syntax" if meta else
           f"as {enc} VR little endian (the encoding its first element shows)")
    return f"not a DICOM Part 10 file: {missing} missing (PS3.10 7.1); read {how}"


def read_dataset(path: Path, stop_before_pixels: bool = False) -> pydicom.Dataset:
    """Read a whole DICOM file, turning every failure into a one-line DicomInputError.

    A bare data set (no Part 10 header, see :func:`bare_encoding`) is read with its
    encoding set explicitly, so that its pixel data can be decoded; the scan has already
    warned about it (``rtqa.reading.scan``)."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        pass
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on broken files
        raise DicomInputError(f"unreadable or truncated DICOM ({type(exc).__name__}: {exc})",
                              path) from None
    try:  # not Part 10: a bare data set?
        with open(path, "rb") as fh:
            enc = bare_encoding(fh.read(132))
    except OSError:
        enc = None
    if enc is None:
        raise DicomInputError("not a DICOM file", path)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on broken files
        raise DicomInputError(f"unreadable or truncated DICOM ({type(exc).__name__}: {exc})",
                              path) from None
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = _BARE_TS[enc]
    return ds


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


def present(ds, keyword: str, path: Path, empty_ok: bool = False):
    """The value of an optional attribute: None when absent (or present but empty, for a
    Type 2 attribute: ``empty_ok``). An empty Type 1 value, or one pydicom cannot convert
    (it converts IS/DS lazily: 'Inf', 'x'), is refused."""
    if keyword not in ds:
        return None
    try:
        value = ds.get(keyword, None)
    except Exception as exc:  # noqa: BLE001 - pydicom's conversion errors vary
        raise DicomInputError(f"{keyword} cannot be read ({type(exc).__name__})",
                              path) from None
    if value is None or value == "":
        if empty_ok:
            return None
        raise DicomInputError(f"{keyword} is present but empty", path)
    return value


def whole(ds, keyword: str, path: Path, default: int | None = None,
          empty_ok: bool = False) -> int | None:
    """An integer attribute (IS/US/UL): ``default`` when absent (see :func:`present`);
    anything that is not a whole number is refused."""
    value = present(ds, keyword, path, empty_ok)
    if value is None:
        return default
    try:
        f = float(value)
        if not math.isfinite(f) or f != int(f):
            raise ValueError
        return int(f)
    except (TypeError, ValueError, OverflowError):
        raise DicomInputError(f"{keyword} is not a whole number: {str(value)[:40]!r}",
                              path) from None


def floats(value, n: int | None, keyword: str, path: Path) -> list[float]:
    """A (multi-)valued numeric attribute as finite floats, with an optional length check."""
    if value is None:
        raise DicomInputError(f"{keyword} is empty", path)
    seq = [value] if isinstance(value, (int, float, str, bytes)) else list(value)
    try:
        vals = [float(v) for v in seq]
    except (TypeError, ValueError, OverflowError):
        raise DicomInputError(f"{keyword} is not numeric: {value!r}", path) from None
    if n is not None and len(vals) != n:
        raise DicomInputError(f"{keyword} must have {n} values, has {len(vals)}", path)
    if not all(math.isfinite(v) for v in vals):
        raise DicomInputError(f"{keyword} has non-finite values", path)
    return vals
