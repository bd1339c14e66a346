"""The oracle's reader: the QA-relevant content of each DICOM object, as raw bytes.

``_SPEC`` lists, per object kind, the elements (and the sequences holding them) that a
DVH-based plan QA depends on. ``read_content`` reads them with pydicom, validation off,
as the bytes stored in the file (no rtqa code involved), after the strict stream walk of
``stream.stream_problem``: a file cut short is unreadable whatever pydicom makes of it.
"""

from __future__ import annotations

import functools
import hashlib
import io
import struct
from dataclasses import dataclass, field

import numpy as np

from .common import _tag, lenient_pydicom
from .stream import stream_problem

#: tag -> nested spec (None: a value). Only what a DVH-based plan QA depends on.
_COMMON = {_tag(0x0008, 0x0016): None, _tag(0x0008, 0x0018): None,
           _tag(0x0010, 0x0020): None, _tag(0x0020, 0x0052): None,
           _tag(0x0008, 0x0005): None}
_SPEC = {
    "RTDOSE": {**_COMMON, **{t: None for t in (
        _tag(0x3004, 0x0002), _tag(0x3004, 0x0004), _tag(0x3004, 0x000A),
        _tag(0x0028, 0x0010), _tag(0x0028, 0x0011), _tag(0x0028, 0x0008),
        _tag(0x0028, 0x0100), _tag(0x0028, 0x0101), _tag(0x0028, 0x0102),
        _tag(0x0028, 0x0103), _tag(0x0028, 0x0002), _tag(0x0020, 0x0037),
        _tag(0x0020, 0x0032), _tag(0x0028, 0x0030), _tag(0x3004, 0x000C),
        _tag(0x3004, 0x000E), _tag(0x7FE0, 0x0010))},
        _tag(0x300C, 0x0002): {_tag(0x0008, 0x1155): None,
                               _tag(0x300C, 0x0020): {_tag(0x300C, 0x0004): {
                                   _tag(0x300C, 0x0006): None}}}},
    "RTSTRUCT": {**_COMMON,
                 _tag(0x3006, 0x0010): {_tag(0x0020, 0x0052): None, _tag(0x3006, 0x0012): {
                     _tag(0x3006, 0x0014): {_tag(0x0020, 0x000E): None}}},
                 _tag(0x3006, 0x0020): {_tag(0x3006, 0x0022): None, _tag(0x3006, 0x0026): None,
                                        _tag(0x3006, 0x0024): None},
                 _tag(0x3006, 0x0039): {_tag(0x3006, 0x0084): None, _tag(0x3006, 0x0040): {
                     _tag(0x3006, 0x0042): None, _tag(0x3006, 0x0046): None,
                     _tag(0x3006, 0x0050): None}},
                 _tag(0x3006, 0x0080): {_tag(0x3006, 0x0084): None, _tag(0x3006, 0x00A4): None}},
    # RTPlanLabel/RTPlanName only name the plan in the report (report keys ignore them)
    "RTPLAN": {**_COMMON, _tag(0x300E, 0x0002): None,
               _tag(0x300A, 0x0010): {_tag(0x300A, 0x0020): None, _tag(0x300A, 0x0026): None,
                                      _tag(0x3006, 0x0084): None},
               # beams (BeamDose, BeamNumber) matter only for BEAM doses and plans without a
               # TargetPrescriptionDose; the samples have neither
               _tag(0x300A, 0x0070): {_tag(0x300A, 0x0078): None},
               _tag(0x300C, 0x0060): {_tag(0x0008, 0x1155): None}},
    "CT": {**_COMMON, _tag(0x0020, 0x000E): None, _tag(0x0020, 0x0032): None,
           _tag(0x0020, 0x0037): None, _tag(0x0028, 0x0030): None},
}


def _extract(ds, spec: dict) -> dict:
    out = {}
    for tag, sub in spec.items():
        if tag not in ds:
            continue
        if sub is None:
            value = _raw_bytes(ds, tag)
            if tag == _tag(0x7FE0, 0x0010):  # digest:length:largest 16-bit word
                words = np.frombuffer(value[:len(value) // 2 * 2], dtype="<u2")
                value = hashlib.sha1(value).hexdigest().encode() + b":%d:%d" % (
                    len(value), int(words.max()) if words.size else 0)
            out[tag] = value
        else:
            items = ds[tag].value  # parses the sequence (raises on a broken one)
            out[tag] = tuple(_extract(item, sub) for item in (items or []))
    return out


def _raw_bytes(ds, tag: int) -> bytes:
    """The value of an element as stored in the file (pydicom's raw bytes); an element
    pydicom already converted is re-encoded the same way (text joined by backslashes,
    US/UL little-endian)."""
    raw = ds.get_item(tag)
    value = raw.value
    if type(raw).__name__ == "RawDataElement":
        return value or b""
    vr = raw.VR
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if vr in ("US", "UL", "SS", "SL") and isinstance(value, int):
        return struct.pack({"US": "<H", "UL": "<I", "SS": "<h", "SL": "<i"}[vr], value)
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value).encode("utf-8", "surrogateescape")
    return str(value).encode("utf-8", "surrogateescape")


def _freeze(x):
    if isinstance(x, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in x.items()))
    if isinstance(x, tuple):
        return tuple(_freeze(v) for v in x)
    return x


@dataclass
class Content:
    """The QA-relevant content of one file: ``values`` (nested raw bytes) or why the
    file cannot be read. ``damaged``: the element stream is inconsistent although pydicom
    still reads the QA-relevant values (judged by comparing them with the pristine file)."""

    kind: str
    unreadable: str | None = None
    values: dict = field(default_factory=dict)
    damaged: str | None = None

    @functools.cached_property
    def key(self):
        return ("unreadable", self.unreadable) if self.unreadable else _freeze(self.values)


def read_content(data: bytes, kind: str) -> Content:
    """A file cut short is unreadable whatever pydicom makes of it (rtqa's policy: never
    check a truncated export as if complete); other stream damage is judged by what
    pydicom reads of the QA-relevant values."""
    problem = stream_problem(data)
    if problem and problem.startswith(("cut short", "no DICM", "no TransferSyntaxUID")):
        return Content(kind, unreadable=problem)
    import pydicom
    try:
        with lenient_pydicom():
            ds = pydicom.dcmread(io.BytesIO(data))
            values = _extract(ds, _SPEC[kind])
            ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            values[_tag(0x0002, 0x0010)] = str(ts).encode()
    except Exception as exc:  # noqa: BLE001 - anything pydicom cannot parse
        return Content(kind, unreadable=(f"{problem}; " if problem else "")
                       + f"pydicom: {type(exc).__name__}: {exc}"[:200])
    return Content(kind, values=values, damaged=problem)
