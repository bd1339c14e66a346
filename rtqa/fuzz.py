"""``python -m rtqa.fuzz``: mutate the sample plans and check that rtqa never crashes and
never passes a plan it did not really check (issue 6).

Each case starts from one of the two bundled samples (``plans_sample/hcc_pass``, verdict
PASS, and ``plans_sample/hcc_fail``, verdict FAIL), applies one to three mutations to its
RTDOSE, RTSTRUCT, RTPLAN or a CT slice (truncation, bit flips, byte runs zeroed, element
deletion, corruption of numeric values such as DoseGridScaling, ContourData,
NumberOfFractionsPlanned, ImagePositionPatient, PixelSpacing, GridFrameOffsetVector,
UID and ROI edits, a duplicated or missing file) and runs ``rtqa.pipeline.run_check``
in-process. Case *i* of seed *s* is fully determined by (*s*, *i*), whatever the number of
worker processes: ``--only i`` reproduces it, ``--keep DIR`` writes the damaged export.

Invariants (a violation makes the run exit 1):

crash
    an exception other than RtqaError escapes ``run_check`` or a report renderer, an
    RtqaError message is empty, or the CLI (run in-process on a sample of cases) exits
    with a code other than 0/1/2 or one that does not match the verdict.

false pass
    verdict PASS where the truth is not PASS. The truth comes from an *oracle* that reads
    the damaged files without rtqa (its own element-stream walk plus pydicom, raw values
    only) and compares what a DVH-based QA depends on with the pristine sample:

    1. base hcc_fail: any PASS. Its three failures (T10 under-dosed, liver and cord
       over-dosed) pull in opposite directions; no single damage can fix all three.
    2. the damaged file is *unreadable* (its element stream runs past the end of the
       file, i.e. it is cut short, which rtqa's policy never checks as complete; or
       pydicom cannot parse it) or *invalid* (a value rtqa uses is missing, non-numeric,
       non-finite, out of range, the wrong count, an oblique or non-axial orientation,
       duplicate ROI numbers, a broken UID link between the objects, two patients, a CT
       series with repeated slice positions, a broken element stream from which other
       QA-relevant values are read ...): PASS is never right. A stream broken only in
       content no check uses (a beam's control points, say) is judged as rule 4.
    3. *tolerated* damage (a closed contour of fewer than 3 points or not in one plane,
       which rtqa's documented policy drops with a warning): PASS is right only when the
       report names every checked ROI so damaged (its warnings or a check note).
    4. *inert* damage (nothing the QA depends on changed, e.g. a flip inside a
       description, or a byte-identical duplicate file): PASS is right only with the
       baseline's numbers; a dose- or contour-derived value (lesion dose and BED, every
       check value, structure volume and min/mean/max dose, uncovered volume) that moved
       by more than 0.5% (+0.01 absolute), or a check, lesion or structure row that
       appeared or vanished, means rtqa read the same data differently (e.g. counted a
       duplicate twice).

    What is *not* a false pass: a PASS on damage that leaves a valid DICOM object with a
    plausible different value (a voxel of the dose, a contour vertex moved, a DS digit
    changed, a whole contour plane removed). No reader can tell such a value from a real
    one (DICOM carries no checksum); those cases are counted as "silent drift" (numbers
    moved > 0.5%) or "immaterial" and listed, not failed. This is why rule 1 matters:
    on the failing sample, every PASS is wrong whatever the damage.

Only PASS verdicts need the oracle (any other verdict is safe); ``--judge-all`` runs it
on every case for statistics. A sample of the cases also goes through the CLI in-process
(exit code against the verdict) and the HTML report.

Speed: rtqa's per-file readers (``rtqa.reading.scan.classify`` with its completeness
check, ``read_dose``, ``read_plan``, ``read_structure_set``, ``read_ct_slice``) are
memoised by (path, content digest) and ``rtqa.dvh.compute_dvh`` by a digest of every
field of its arguments: the damaged file, and every DVH it changes, always go through
the real code; the ~85 untouched files and unchanged DVHs of a case are not recomputed.
``--no-memo`` switches this off; multi-process runs (and ``--verify-memo``) first check
that the memoised baseline reports equal the plain ones. Files are hard-linked, never
copied.

Usage: ``python -m rtqa.fuzz [--cases N] [--seed S] [--time-limit SEC] [--jobs J]
[--only I] [--keep DIR] [--no-memo] [--judge-all]``. The run stops at the time limit
(the summary says so). Exit 0: no crash, no false pass; 1: some; 2: the fuzzer itself
could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import hashlib
import io
import json
import math
import multiprocessing
import os
import random
import shutil
import struct
import sys
import tempfile
import time
import traceback
import warnings
import weakref
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# --- constants ---------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "plans_sample"
BASES = ("hcc_pass", "hcc_fail")
REL_TOL, ABS_TOL = 0.005, 0.01
#: Contour points further apart than this in z are not in one axial plane (DICOM
#: CLOSED_PLANAR; rtqa drops such a contour with a warning).
PLANE_TOL_MM = 0.01
DEFAULT_CASES = 2500
DEFAULT_TIME_LIMIT = 540.0
HTML_EVERY, CLI_EVERY = 20, 25

RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2"
RT_STRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
KIND_OF_CLASS = {RT_DOSE: "RTDOSE", RT_STRUCT: "RTSTRUCT", RT_PLAN: "RTPLAN", CT_IMAGE: "CT"}
IMPLICIT_LE, EXPLICIT_BE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"


def _tag(g: int, e: int) -> int:
    return (g << 16) | e


# =========================================================================================
# The oracle: what the damaged files say, read without rtqa
# =========================================================================================

_LONG_VR = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
            b"UT", b"UV"}
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEF = 0xFFFFFFFF


class _Broken(Exception):
    """The element stream is inconsistent; ``short``: it runs past the end of the file (a
    file cut short, or a length pointing beyond it)."""

    def __init__(self, msg: str, short: bool = False):
        super().__init__(msg)
        self.short = short


class _Stream:
    """A strict walk of a DICOM element stream: every length fits its parent, every
    undefined-length sequence, item and fragment list is closed, sequences are descended
    (defined length too), and the walk ends exactly at the end of the data."""

    def __init__(self, data: bytes, explicit: bool, little: bool):
        self.d, self.explicit = data, explicit
        self.fmt = "<" if little else ">"

    def _u16(self, p):
        return struct.unpack_from(self.fmt + "H", self.d, p)[0]

    def _u32(self, p):
        return struct.unpack_from(self.fmt + "I", self.d, p)[0]

    def _fit(self, p, n, end, what):
        if n < 0 or p + n > end:
            raise _Broken(f"{what} at byte {p}: {n} bytes needed, {end - p} left",
                          short=end == len(self.d))

    def dataset(self, p: int, end: int, delimited: bool) -> int:
        while True:
            if not delimited and p == end:
                return p
            self._fit(p, 8, end, "element header")
            tag = (self._u16(p) << 16) | self._u16(p + 2)
            if delimited and tag == _ITEM_END:
                if self._u32(p + 4) != 0:
                    raise _Broken(f"item delimiter with length at byte {p}")
                return p + 8
            if tag in (_ITEM, _ITEM_END, _SEQ_END):
                raise _Broken(f"stray delimiter {tag:08X} at byte {p}")
            if self.explicit:
                # An unknown (damaged) VR is read with the 2-byte length of the short VRs it
                # replaced; if that is wrong, the walk does not end at the end of the file.
                vr = self.d[p + 4:p + 6]
                if vr in _LONG_VR:
                    self._fit(p, 12, end, "element header")
                    length, p = self._u32(p + 8), p + 12
                else:
                    length, p = self._u16(p + 6), p + 8
            else:
                vr = b"SQ" if tag in _IMPLICIT_SQ else b"??"
                length, p = self._u32(p + 4), p + 8
            if vr == b"SQ":
                p = self.sequence(p, end, length)
            elif length == _UNDEF:
                p = self.fragments(p, end)
            else:
                self._fit(p, length, end, f"value of ({tag >> 16:04X},{tag & 0xFFFF:04X})")
                p += length

    def sequence(self, p: int, end: int, length: int) -> int:
        stop = end if length == _UNDEF else p + length
        if length != _UNDEF:
            self._fit(p, length, end, "sequence")
        while True:
            if length != _UNDEF and p == stop:
                return p
            self._fit(p, 8, stop, "item header")
            tag, ilen = (self._u16(p) << 16) | self._u16(p + 2), self._u32(p + 4)
            p += 8
            if length == _UNDEF and tag == _SEQ_END:
                return p
            if tag != _ITEM:
                raise _Broken(f"expected an item, found {tag:08X} at byte {p - 8}")
            if ilen == _UNDEF:
                p = self.dataset(p, stop, True)
            else:
                self._fit(p, ilen, stop, "item")
                if self.dataset(p, p + ilen, False) != p + ilen:
                    raise _Broken(f"item at byte {p} does not end at its length")
                p += ilen

    def fragments(self, p: int, end: int) -> int:
        while True:
            self._fit(p, 8, end, "fragment header")
            tag, flen = (self._u16(p) << 16) | self._u16(p + 2), self._u32(p + 4)
            p += 8
            if tag == _SEQ_END:
                return p
            if tag != _ITEM or flen == _UNDEF:
                raise _Broken(f"bad fragment {tag:08X} at byte {p - 8}")
            self._fit(p, flen, end, "fragment")
            p += flen


#: Sequences the oracle must descend in implicit-VR data (no VR on the wire).
_IMPLICIT_SQ = {_tag(0x300C, 0x0002), _tag(0x300C, 0x0020), _tag(0x300C, 0x0004),
                _tag(0x3006, 0x0010), _tag(0x3006, 0x0012), _tag(0x3006, 0x0014),
                _tag(0x3006, 0x0016), _tag(0x3006, 0x0020), _tag(0x3006, 0x0039),
                _tag(0x3006, 0x0040), _tag(0x3006, 0x0080), _tag(0x300A, 0x0010),
                _tag(0x300A, 0x0070), _tag(0x300A, 0x00B0), _tag(0x300C, 0x0060)}


def stream_problem(data: bytes) -> str | None:
    """None when the file is a whole DICOM Part 10 stream, else what is wrong; a problem
    starting with "cut short" means the stream runs past the end of the file."""
    if len(data) < 132 or data[128:132] != b"DICM":
        return "no DICM preamble"
    meta = _Stream(data, True, True)
    p, ts = 132, None
    try:
        while p + 8 <= len(data) and struct.unpack_from("<H", data, p)[0] == 0x0002:
            elem = struct.unpack_from("<H", data, p + 2)[0]
            vr = data[p + 4:p + 6]
            if vr in _LONG_VR:
                meta._fit(p, 12, len(data), "meta header")
                length, q = struct.unpack_from("<I", data, p + 8)[0], p + 12
            else:
                length, q = struct.unpack_from("<H", data, p + 6)[0], p + 8
            meta._fit(q, length, len(data), "meta value")
            if elem == 0x0010:
                ts = data[q:q + length].rstrip(b"\x00 ").decode("ascii", "replace")
            p = q + length
        if ts is None:
            return "no TransferSyntaxUID"
        if ts == DEFLATED:
            return None
        body = _Stream(data, ts != IMPLICIT_LE, ts != EXPLICIT_BE)
        if body.dataset(p, len(data), False) != len(data):
            return "stream does not end at the end of the file"
    except _Broken as exc:
        return f"cut short: {exc}" if exc.short else str(exc)
    except struct.error:
        return "cut short: the file ends inside a header"
    return None


# --- the QA-relevant content of each object, as raw bytes ---------------------------------

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


# --- validity of the content (what must never pass) ---------------------------------------

def _text(v: bytes | None) -> str | None:
    if v is None:
        return None
    return v.decode("latin-1").strip("\x00 ")


def _nums(v: bytes | None, n: int | None = None, integer: bool = False) -> list[float] | None:
    """The numbers of a DS/IS value (None: missing, non-numeric, non-finite or the wrong
    count)."""
    t = _text(v)
    if t is None or t == "":
        return None
    try:
        if integer:
            vals = [float(int(s.strip())) for s in t.split("\\")]
        else:
            vals = np.array([s.strip() for s in t.split("\\")], dtype=np.float64).tolist()
    except ValueError:
        return None
    if not all(math.isfinite(x) for x in vals) or (n is not None and len(vals) != n):
        return None
    return vals


def _axial(v: bytes | None) -> bool:
    iop = _nums(v, 6)
    if iop is None:
        return False
    r, c = np.asarray(iop[:3]), np.asarray(iop[3:])
    for vec in (r, c):
        k = int(np.argmax(np.abs(vec)))
        if k == 2 or abs(abs(vec[k]) - 1) > 1e-4 or np.sum(np.abs(vec)) - abs(vec[k]) > 1e-4:
            return False
    return int(np.argmax(np.abs(r))) != int(np.argmax(np.abs(c)))


T = _tag
SOP_CLASS, SOP_UID, PATIENT, FRAME = T(8, 0x16), T(8, 0x18), T(0x10, 0x20), T(0x20, 0x52)


def _dose_problems(v: dict) -> list[str]:
    p = []
    if _text(v.get(T(0x3004, 2))) != "GY":
        p.append("DoseUnits not GY")
    if _text(v.get(T(0x3004, 4))) == "ERROR":
        p.append("DoseType ERROR")
    if _text(v.get(T(0x3004, 0xA))) not in ("PLAN", "MULTI_PLAN", "FRACTION", "BEAM"):
        p.append("DoseSummationType missing or unsupported")
    scale = _nums(v.get(T(0x3004, 0xE)), 1)
    if scale is None or scale[0] <= 0:
        p.append("DoseGridScaling missing, non-numeric, non-finite or <= 0")
    if not _axial(v.get(T(0x20, 0x37))):
        p.append("ImageOrientationPatient oblique, non-axial or malformed")
    ipp = _nums(v.get(T(0x20, 0x32)), 3)
    if ipp is None:
        p.append("ImagePositionPatient malformed")
    ps = _nums(v.get(T(0x28, 0x30)), 2)
    if ps is None or min(ps) <= 0:
        p.append("PixelSpacing malformed or <= 0")

    def us(t):
        raw = v.get(t)
        return struct.unpack("<H", raw[:2])[0] if raw and len(raw) == 2 else None
    rows, cols = us(T(0x28, 0x10)), us(T(0x28, 0x11))
    frames = _nums(v.get(T(0x28, 0x8)), 1, integer=True)
    bits, stored, rep, spp = (us(T(0x28, e)) for e in (0x100, 0x101, 0x103, 2))
    if not rows or not cols or frames is None or frames[0] < 1:
        p.append("Rows/Columns/NumberOfFrames missing or < 1")
    # HighBit is not checked: no reader needs it to decode 16/32-bit integer pixels
    if bits not in (16, 32) or rep not in (0, 1) or spp != 1 or stored is None \
            or not (0 < stored <= bits):
        p.append("pixel description (BitsAllocated/BitsStored/PixelRepresentation/"
                 "SamplesPerPixel) invalid")
    pix = v.get(T(0x7FE0, 0x10))
    if pix is None:
        p.append("PixelData missing")
    elif rows and cols and frames and bits in (16, 32):
        n = int(pix.rsplit(b":", 2)[1])
        if n != rows * cols * int(frames[0]) * bits // 8:
            p.append("PixelData length does not match Rows x Columns x Frames")
        elif stored is not None and stored < bits and \
                int(pix.rsplit(b":", 2)[2]) >= 2 ** stored:
            p.append("stored pixel values exceed BitsStored")
    if frames is not None and frames[0] > 1:
        g = _nums(v.get(T(0x3004, 0xC)))
        if g is None or len(g) != int(frames[0]):
            p.append("GridFrameOffsetVector missing, malformed or the wrong count")
        elif ipp is not None and not (g[0] == 0 or abs(g[0] - ipp[2]) <= 1e-3):
            p.append("GridFrameOffsetVector neither relative nor absolute")
        elif len(set(g)) != len(g):
            # frames may be uneven and in any order (rtqa re-orders them): only a repeated
            # position is invalid
            p.append("GridFrameOffsetVector repeats a position")
    refs = v.get(T(0x300C, 2), ())
    if len(refs) != 1 or not _text(refs[0].get(T(8, 0x1155))):
        p.append("ReferencedRTPlanSequence malformed")
    return p


def _struct_problems(v: dict, checked: set[str]) -> tuple[list[str], set[str]]:
    """(problems that must never pass, checked ROIs with tolerated contour damage)."""
    p, tolerated = [], set()
    for t in (T(0x3006, 0x20), T(0x3006, 0x39), T(0x3006, 0x80), T(0x3006, 0x10)):
        if t not in v:
            p.append(f"sequence ({t >> 16:04X},{t & 0xFFFF:04X}) missing")
    names: dict[int, str] = {}
    for item in v.get(T(0x3006, 0x20), ()):
        num = _nums(item.get(T(0x3006, 0x22)), 1, integer=True)
        if num is None:
            p.append("ROINumber malformed")
            continue
        if int(num[0]) in names:
            p.append(f"ROINumber {int(num[0])} used twice")
        names[int(num[0])] = _text(item.get(T(0x3006, 0x26))) or ""
    seen_contour_refs = set()
    for rc in v.get(T(0x3006, 0x39), ()):
        ref = _nums(rc.get(T(0x3006, 0x84)), 1, integer=True)
        if ref is None:
            p.append("ReferencedROINumber (ROIContour) malformed")
            continue
        ref = int(ref[0])
        name = names.get(ref)
        if name is None:  # contours of no ROI: harmful only when a checked ROI lost them
            continue
        if ref in seen_contour_refs:
            p.append(f"two ROIContour items for ROI {name!r}")
        seen_contour_refs.add(ref)
        for c in rc.get(T(0x3006, 0x40), ()):
            gtype = _text(c.get(T(0x3006, 0x42)))
            raw = c.get(T(0x3006, 0x50))
            # present but empty: a contour of 0 points, dropped like one of 2 points
            data = [] if raw is not None and _text(raw) == "" else _nums(raw)
            if data is None or len(data) % 3:
                p.append(f"ContourData of {name!r} missing, non-numeric, non-finite or not "
                         "triplets")
                continue
            pts = np.asarray(data).reshape(-1, 3)
            if gtype == "CLOSED_PLANAR":
                if len(pts) < 3 or np.ptp(pts[:, 2]) > PLANE_TOL_MM:
                    if name in checked:
                        tolerated.add(name)
            elif gtype not in ("POINT", "OPEN_PLANAR", "OPEN_NONPLANAR"):
                if name in checked:
                    tolerated.add(name)
    for num, name in names.items():
        if name in checked and num not in seen_contour_refs:
            p.append(f"checked ROI {name!r} has no ROIContour item")
    obs = set()
    for o in v.get(T(0x3006, 0x80), ()):
        ref = _nums(o.get(T(0x3006, 0x84)), 1, integer=True)
        if ref is None:
            p.append("ReferencedROINumber (observation) malformed")
        elif int(ref[0]) in obs:
            p.append(f"two observations for ROI number {int(ref[0])}")
        else:
            obs.add(int(ref[0]))
    listed = [n for n in names.values()]
    for n in set(listed):
        if listed.count(n) > 1 and n in checked:
            p.append(f"ROI name {n!r} used twice")
    return p, tolerated


def _plan_problems(v: dict) -> list[str]:
    p = []
    groups = v.get(T(0x300A, 0x70), ())
    if not groups:
        p.append("FractionGroupSequence missing")
    else:
        n = _nums(groups[0].get(T(0x300A, 0x78)), 1, integer=True)
        if n is None or n[0] < 1:
            p.append("NumberOfFractionsPlanned missing, not a whole number or < 1")
    for ref in v.get(T(0x300A, 0x10), ()):
        if _text(ref.get(T(0x300A, 0x20))) == "TARGET" and T(0x300A, 0x26) in ref:
            d = _nums(ref.get(T(0x300A, 0x26)), 1)
            if d is None or d[0] <= 0:
                p.append("TargetPrescriptionDose non-numeric, non-finite or <= 0")
            if T(0x3006, 0x84) in ref and _nums(ref.get(T(0x3006, 0x84)), 1,
                                                integer=True) is None:
                p.append("ReferencedROINumber of a prescription malformed")
    rss = v.get(T(0x300C, 0x60), ())
    if len(rss) != 1 or not _text(rss[0].get(T(8, 0x1155))):
        p.append("ReferencedStructureSetSequence malformed")
    return p


def _ct_problems(v: dict) -> list[str]:
    p = []
    if _nums(v.get(T(0x20, 0x32)), 3) is None:
        p.append("CT ImagePositionPatient malformed")
    if not _axial(v.get(T(0x20, 0x37))):
        p.append("CT ImageOrientationPatient oblique, non-axial or malformed")
    ps = _nums(v.get(T(0x28, 0x30)), 2)
    if ps is None or min(ps) <= 0:
        p.append("CT PixelSpacing malformed or <= 0")
    return p


@dataclass
class Verdict:
    """The oracle's classification of a damaged export."""

    category: str            # "unreadable" | "invalid" | "tolerated" | "changed" | "inert"
    reasons: tuple[str, ...]
    tolerated_rois: tuple[str, ...] = ()
    changed_files: tuple[str, ...] = ()


def judge(contents: dict[str, Content | None], pristine: dict[str, Content],
          checked: set[str]) -> Verdict:
    """``contents``: file name -> content of the damaged export (None: file removed);
    ``pristine``: the same for the untouched sample; ``checked``: ROI names the
    baseline's checks use."""
    pristine_keys = {c.key for c in pristine.values()}
    changed = tuple(sorted(
        n for n in set(contents) | set(pristine)
        if contents.get(n) is None
        or (n in pristine and contents[n].key != pristine[n].key)
        or (n not in pristine and contents[n].key not in pristine_keys)))
    unreadable = [f"{n}: {c.unreadable}" for n, c in contents.items()
                  if c is not None and c.unreadable]
    if unreadable:
        return Verdict("unreadable", tuple(unreadable), changed_files=changed)
    problems: list[str] = []
    tolerated: set[str] = set()
    live = {n: c for n, c in contents.items() if c is not None}
    for n, c in live.items():
        if c.damaged and n in changed:
            problems.append(f"{n}: element stream damaged ({c.damaged}) and the QA-relevant "
                            "values read from it differ from the original")
    by_kind: dict[str, list[tuple[str, dict]]] = {}
    for n, c in live.items():
        kind, pr, tol = _file_problems(c, frozenset(checked))
        if kind != c.kind:
            problems.append(f"{n}: SOPClassUID changed ({c.kind} -> {kind})")
            continue
        by_kind.setdefault(kind, []).append((n, c.values))
        problems += [f"{n}: {x}" for x in pr]
        tolerated |= tol
    problems += _cross_problems(by_kind, pristine)
    if problems:
        return Verdict("invalid", tuple(problems), changed_files=changed)
    if tolerated:
        return Verdict("tolerated", (), tuple(sorted(tolerated)), changed)
    return Verdict("changed" if changed else "inert", (), changed_files=changed)


def _file_problems(c: Content, checked: frozenset) -> tuple[str, list[str], set[str]]:
    """(kind by SOP class, problems, tolerated ROIs) of one readable file; kept on the
    Content (the pristine files are judged once)."""
    memo = c.__dict__.setdefault("_problems", {})
    if checked not in memo:
        kind = KIND_OF_CLASS.get(_text(c.values.get(SOP_CLASS)) or "", "OTHER")
        pr: list[str] = []
        tol: set[str] = set()
        if kind == "RTDOSE":
            pr = _dose_problems(c.values)
        elif kind == "RTSTRUCT":
            pr, tol = _struct_problems(c.values, set(checked))
        elif kind == "RTPLAN":
            pr = _plan_problems(c.values)
        elif kind == "CT":
            pr = _ct_problems(c.values)
        memo[checked] = (kind, pr, tol)
    return memo[checked]


def _cross_problems(by_kind: dict, pristine: dict[str, Content]) -> list[str]:
    p = []
    expected = Counter(c.kind for c in pristine.values())
    for kind in ("RTDOSE", "RTSTRUCT", "RTPLAN"):
        items = by_kind.get(kind, [])
        uids = {_text(v.get(SOP_UID)) for _, v in items}
        # an extra RTPLAN that no dose references is nothing to check; an extra RTDOSE or
        # RTSTRUCT (another dose, another structure set) is
        if len(uids) != expected[kind] and (kind != "RTPLAN" or len(uids) < expected[kind]):
            p.append(f"{expected[kind]} {kind} expected, {len(uids)} distinct found")
        keys = {}
        for n, v in items:
            u = _text(v.get(SOP_UID))
            if u in keys and _freeze(keys[u]) != _freeze(v):
                p.append(f"two different {kind} objects share SOPInstanceUID {u}")
            keys[u] = v
    patients = {_text(v.get(PATIENT)) for items in by_kind.values() for _, v in items}
    if len(patients) != 1:
        p.append(f"several PatientIDs: {sorted(map(str, patients))}")
    # FrameOfReferenceUID is mandatory in RTDOSE and CT, optional in RTPLAN
    frames = {_text(v.get(FRAME)) for k in ("RTDOSE", "CT") for _, v in by_kind.get(k, [])}
    frames |= {_text(v.get(FRAME)) for _, v in by_kind.get("RTPLAN", []) if FRAME in v}
    for _, v in by_kind.get("RTSTRUCT", []):
        for fr in v.get(T(0x3006, 0x10), ()):
            frames.add(_text(fr.get(FRAME)))
        for r in v.get(T(0x3006, 0x20), ()):
            if T(0x3006, 0x24) in r:
                frames.add(_text(r.get(T(0x3006, 0x24))))
    if len(frames) != 1:
        p.append("several FrameOfReferenceUIDs")
    roi_numbers = {int(n[0]) for _, v in by_kind.get("RTSTRUCT", [])
                   for r in v.get(T(0x3006, 0x20), ())
                   if (n := _nums(r.get(T(0x3006, 0x22)), 1, integer=True)) is not None}
    for _, v in by_kind.get("RTPLAN", []):
        for ref in v.get(T(0x300A, 0x10), ()):
            n = _nums(ref.get(T(0x3006, 0x84)), 1, integer=True)
            if T(0x3006, 0x84) in ref and n is not None and int(n[0]) not in roi_numbers:
                p.append(f"a prescription references ROI number {int(n[0])}, which is not "
                         "in the RTSTRUCT")
    plans = {_text(v.get(SOP_UID)) for _, v in by_kind.get("RTPLAN", [])}
    sets = {_text(v.get(SOP_UID)) for _, v in by_kind.get("RTSTRUCT", [])}
    for _, v in by_kind.get("RTDOSE", []):
        for r in v.get(T(0x300C, 2), ()):
            if _text(r.get(T(8, 0x1155))) not in plans:
                p.append("RTDOSE references an RTPLAN not in the export")
    for _, v in by_kind.get("RTPLAN", []):
        for r in v.get(T(0x300C, 0x60), ()):
            if _text(r.get(T(8, 0x1155))) not in sets:
                p.append("RTPLAN references an RTSTRUCT not in the export")
    ct = by_kind.get("CT", [])
    series = {_text(v.get(T(0x20, 0xE))) for _, v in ct}
    if len(series) != 1:
        p.append("CT slices in several series")
    for _, v in by_kind.get("RTSTRUCT", []):
        ref = {_text(se.get(T(0x20, 0xE))) for fr in v.get(T(0x3006, 0x10), ())
               for st in fr.get(T(0x3006, 0x12), ()) for se in st.get(T(0x3006, 0x14), ())}
        if ref and not (ref & series):
            p.append("RTSTRUCT references a CT series not in the export")
    zs = [(_nums(v.get(T(0x20, 0x32)), 3) or [0, 0, math.nan])[2] for _, v in ct]
    if len(set(zs)) != len(zs):
        p.append("CT slices at repeated positions")
    return p


# =========================================================================================
# Mutations
# =========================================================================================

@dataclass
class Mutation:
    file: str
    op: str
    detail: str


@contextlib.contextmanager
def lenient_pydicom():
    """pydicom with value validation off and its warnings silenced, for the fuzzer's own
    reading and writing; the settings rtqa runs with are restored afterwards."""
    from pydicom import config as pdconfig
    st = pdconfig.settings
    old = st.reading_validation_mode, st.writing_validation_mode
    st.reading_validation_mode = st.writing_validation_mode = pdconfig.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        st.reading_validation_mode, st.writing_validation_mode = old


def _read_ds(data: bytes):
    import pydicom
    with lenient_pydicom():
        return pydicom.dcmread(io.BytesIO(data))


def _write_ds(ds) -> bytes:
    buf = io.BytesIO()
    with lenient_pydicom():
        ds.save_as(buf)
    return buf.getvalue()


def _set_raw(ds, tag: int, vr: str, text: str) -> None:
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag
    raw = text.encode("latin-1", "replace")
    if len(raw) % 2:
        raw += b"\x00" if vr == "UI" else b" "
    ds._dict[Tag(tag)] = RawDataElement(Tag(tag), vr, len(raw), raw, 0, False, True)


_BAD_NUMBERS = ["NaN", "Inf", "-Inf", "0", "-1", "1e6", "1e-30", "", "abc", "1\\2", "-0",
                "1e308", "3.0e", "99999999999999999999"]

#: Numeric attributes of each object worth corrupting (tag, VR).
_NUMERIC = {
    "RTDOSE": [(T(0x3004, 0xE), "DS"), (T(0x3004, 0xC), "DS"), (T(0x20, 0x32), "DS"),
               (T(0x28, 0x30), "DS"), (T(0x20, 0x37), "DS"), (T(0x28, 0x8), "IS")],
    "CT": [(T(0x20, 0x32), "DS"), (T(0x28, 0x30), "DS"), (T(0x20, 0x37), "DS"),
           (T(0x18, 0x50), "DS")],
}


def _corrupt_text(rng: random.Random, old: str) -> tuple[str, str]:
    """A corrupted version of a (multi-valued) DS/IS string and its description."""
    parts = old.split("\\")
    mode = rng.random()
    if mode < 0.45:
        i = rng.randrange(len(parts))
        parts[i] = rng.choice(_BAD_NUMBERS)
        return "\\".join(parts), f"value {i} -> {parts[i]!r}"
    if mode < 0.6:
        new = parts[:rng.randrange(1, len(parts))] if len(parts) > 1 else parts + parts
        return "\\".join(new), f"{len(parts)} -> {len(new)} values"
    if mode < 0.85:
        i = rng.randrange(len(parts))
        try:
            x = float(parts[i])
        except ValueError:
            x = 1.0
        f = rng.choice([1.001, 0.999, 1.01, 0.99, 1.1, 0.9, 2.0, 0.5, -1.0, 10.0])
        dx = rng.choice([0.0, 0.5, -3.0, 3.0, 100.0])
        parts[i] = f"{x * f + dx:.6g}"
        return "\\".join(parts), f"value {i} -> {parts[i]} (plausible change)"
    return rng.choice(_BAD_NUMBERS), "whole value replaced"


class Mutator:
    """Applies random damage to the files of a sample export."""

    def __init__(self, files: dict[str, bytes], kinds: dict[str, str]):
        self.files, self.kinds = files, kinds
        self.ct = sorted(n for n, k in kinds.items() if k == "CT")
        self.rt = {k: n for n, k in kinds.items() if k != "CT"}

    def pick_file(self, rng: random.Random) -> str:
        r = rng.random()
        if r < 0.32:
            return self.rt["RTDOSE"]
        if r < 0.64:
            return self.rt["RTSTRUCT"]
        if r < 0.84:
            return self.rt["RTPLAN"]
        return rng.choice(self.ct)

    def mutate(self, rng: random.Random, current: dict[str, bytes | None]) -> Mutation:
        name = self.pick_file(rng)
        data = current[name]
        if data is None:
            name = self.rt["RTSTRUCT"]
            data = current[name]
        kind = self.kinds[name]
        ops = [("truncate", 8), ("flip", 22), ("zero_run", 5), ("delete_element", 14),
               ("corrupt_value", 30), ("edit_ids", 9), ("file_level", 4)]
        if kind == "RTSTRUCT":
            ops += [("contour", 30), ("roi", 12)]
        if kind == "RTPLAN":
            ops += [("plan_value", 25)]
        if kind == "RTDOSE":
            ops += [("pixels", 6)]
        op = rng.choices([o for o, _ in ops], [w for _, w in ops])[0]
        try:
            with lenient_pydicom():
                new, detail = getattr(self, "_" + op)(rng, name, kind, data, current)
        except _Skip as exc:
            new, detail = data, f"no-op ({exc})"
        except Exception as exc:  # noqa: BLE001 - pydicom cannot edit an already damaged file
            new, detail = data, f"no-op (cannot edit: {type(exc).__name__})"
            op = "noop"
        if op != "file_level":
            current[name] = new
        return Mutation(name, op, detail)

    # --- byte-level --------------------------------------------------------------------
    def _truncate(self, rng, name, kind, data, current):
        cut = rng.choice([rng.randrange(len(data)), len(data) - rng.randrange(1, 64),
                          rng.randrange(min(len(data), 4096))])
        return data[:cut], f"cut to {cut} of {len(data)} bytes"

    def _header_end(self, data):
        i = data.rfind(b"\xe0\x7f\x10\x00")
        return i if i > 0 else len(data)

    def _flip(self, rng, name, kind, data, current):
        buf = bytearray(data)
        end = self._header_end(data) if rng.random() < 0.85 else len(data)
        where = []
        for _ in range(rng.choice([1, 1, 1, 2, 4])):
            pos = rng.randrange(128 if end > 256 else 0, end)
            bit = rng.randrange(8)
            buf[pos] ^= 1 << bit
            where.append(f"{pos}.{bit}")
        return bytes(buf), "bit(s) " + ",".join(where)

    def _zero_run(self, rng, name, kind, data, current):
        buf = bytearray(data)
        end = self._header_end(data)
        pos = rng.randrange(132, max(133, end))
        n = rng.choice([2, 4, 8, 64, 512])
        buf[pos:pos + n] = b"\x00" * len(buf[pos:pos + n])
        return bytes(buf), f"{n} bytes zeroed at {pos}"

    def _pixels(self, rng, name, kind, data, current):
        ds = _read_ds(data)
        arr = np.frombuffer(ds.PixelData, dtype="<u2").copy()
        mode = rng.choice(["voxel", "block", "frame_swap"])
        if mode == "voxel":
            i = rng.randrange(arr.size)
            arr[i] ^= 1 << rng.randrange(16)
            detail = f"voxel {i} bit flip"
        elif mode == "block":
            i = rng.randrange(arr.size)
            arr[i:i + 2000] = rng.choice([0, 65535])
            detail = f"2000 voxels from {i} set to a constant"
        else:
            frame = int(ds.Rows) * int(ds.Columns)
            a, b = rng.sample(range(int(ds.NumberOfFrames)), 2)
            fa = arr[a * frame:(a + 1) * frame].copy()
            arr[a * frame:(a + 1) * frame] = arr[b * frame:(b + 1) * frame]
            arr[b * frame:(b + 1) * frame] = fa
            detail = f"frames {a} and {b} swapped"
        ds.PixelData = arr.tobytes()
        return _write_ds(ds), detail

    # --- element-level -----------------------------------------------------------------
    def _delete_element(self, rng, name, kind, data, current):
        """Delete one element (or one sequence item), found by a random descent that
        prefers the QA-relevant elements and the sequences holding them."""
        ds = _read_ds(data)
        parent, where = ds, []
        while True:
            tags = list(parent.keys())
            if not tags:
                raise _Skip("empty item")
            relevant = [t for t in tags if t in _RELEVANT_TAGS or t in _SEQ_TAGS]
            tag = rng.choice(relevant if relevant and rng.random() < 0.8 else tags)
            elem = parent[tag]
            label = elem.keyword or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
            if elem.VR == "SQ" and elem.value and rng.random() < 0.7:
                i = rng.randrange(len(elem.value))
                if rng.random() < 0.25:
                    del elem.value[i]
                    return _write_ds(ds), f"item {i} of {'/'.join(where + [label])} removed"
                where.append(f"{label}[{i}]")
                parent = elem.value[i]
                continue
            del parent[tag]
            return _write_ds(ds), f"{'/'.join(where + [label])} deleted"

    def _corrupt_value(self, rng, name, kind, data, current):
        ds = _read_ds(data)
        if kind in _NUMERIC:
            tag, vr = rng.choice(_NUMERIC[kind])
            parent = ds
        elif kind == "RTSTRUCT":
            return self._contour(rng, name, kind, data, current)
        else:
            return self._plan_value(rng, name, kind, data, current)
        if tag not in parent:
            raise _Skip("attribute absent")
        old = _raw_text(parent, tag)
        new, detail = _corrupt_text(rng, old)
        _set_raw(parent, tag, vr, new)
        return _write_ds(ds), f"{_kw(tag)}: {detail}"

    def _plan_value(self, rng, name, kind, data, current):
        ds = _read_ds(data)
        fg = ds.FractionGroupSequence[0] if "FractionGroupSequence" in ds else None
        targets = []
        if fg is not None:
            targets.append((fg, T(0x300A, 0x78), "IS"))
            for b in fg.get("ReferencedBeamSequence", []) or []:
                targets.append((b, T(0x300A, 0x84), "DS"))
        for ref in ds.get("DoseReferenceSequence", []) or []:
            targets += [(ref, T(0x300A, 0x26), "DS"), (ref, T(0x3006, 0x84), "IS")]
        if not targets:
            raise _Skip("no numeric plan value")
        parent, tag, vr = rng.choice(targets)
        if tag not in parent:
            raise _Skip("attribute absent")
        old = _raw_text(parent, tag)
        if tag == T(0x300A, 0x78) and rng.random() < 0.5:
            new = rng.choice(["1", "3", "4", "6", "8", "10", "30", "0", "-5", "2.5", ""])
            detail = f"'{new}'"
        else:
            new, detail = _corrupt_text(rng, old)
        _set_raw(parent, tag, vr, new)
        return _write_ds(ds), f"{_kw(tag)}: {detail}"

    def _contour(self, rng, name, kind, data, current):
        ds = _read_ds(data)
        rc = rng.choice(list(ds.ROIContourSequence))
        items = list(rc.get("ContourSequence", []) or [])
        if not items:
            raise _Skip("ROI without contours")
        c = rng.choice(items)
        roi = _roi_name(ds, rc)
        old = _raw_text(c, T(0x3006, 0x50))
        parts = old.split("\\")
        mode = rng.random()
        if mode < 0.35:
            new, detail = _corrupt_text(rng, old)
        elif mode < 0.5:  # one coordinate of one vertex moved (z: off the plane)
            i = rng.randrange(len(parts))
            parts[i] = f"{float(parts[i]) + rng.choice([0.5, -2.0, 3.0, 50.0]):.2f}"
            new, detail = "\\".join(parts), f"coordinate {i} ({'xyz'[i % 3]}) moved"
        elif mode < 0.65:  # points dropped
            k = rng.choice([1, 2, 3, 5, 6]) * 1
            new, detail = "\\".join(parts[:k]), f"only the first {k} numbers kept"
        elif mode < 0.8:
            c.ContourGeometricType = rng.choice(["OPEN_PLANAR", "POINT", "CLOSED", "",
                                                 "CLOSEDPLANAR"])
            return _write_ds(ds), f"ROI {roi!r}: ContourGeometricType -> " \
                                  f"{c.ContourGeometricType!r}"
        else:  # the whole contour shifted in plane (a plausible, valid change)
            pts = np.asarray([float(x) for x in parts]).reshape(-1, 3)
            pts[:, rng.randrange(2)] += rng.choice([-5.0, 2.0, 10.0])
            new, detail = "\\".join(f"{x:.2f}" for x in pts.ravel()), "contour shifted"
        _set_raw(c, T(0x3006, 0x50), "DS", new)
        return _write_ds(ds), f"ROI {roi!r} ContourData: {detail}"

    def _roi(self, rng, name, kind, data, current):
        ds = _read_ds(data)
        ssr = list(ds.StructureSetROISequence)
        item = rng.choice(ssr)
        mode = rng.random()
        if mode < 0.35:
            other = rng.choice(ssr)
            old, item.ROIName = item.ROIName, rng.choice(
                [other.ROIName, other.ROIName + " ", str(item.ROIName).lower(),
                 str(item.ROIName)[:-1], "X" + str(item.ROIName), ""])
            return _write_ds(ds), f"ROIName {old!r} -> {item.ROIName!r}"
        if mode < 0.6:
            target = rng.choice(ssr)
            old = item.ROINumber
            _set_raw(item, T(0x3006, 0x22), "IS", str(target.ROINumber))
            return _write_ds(ds), f"ROINumber {old} -> {target.ROINumber}"
        if mode < 0.8:
            rc = rng.choice(list(ds.ROIContourSequence))
            old = rc.ReferencedROINumber
            _set_raw(rc, T(0x3006, 0x84), "IS", rng.choice([str(int(old) + 1), "99", "x"]))
            return _write_ds(ds), f"ROIContour ReferencedROINumber {old} changed"
        obs = rng.choice(list(ds.RTROIObservationsSequence))
        obs.RTROIInterpretedType = rng.choice(["ORGAN", "PTV", "GTV", "CTV", "EXTERNAL",
                                               "AVOIDANCE", ""])
        return _write_ds(ds), f"RTROIInterpretedType -> {obs.RTROIInterpretedType!r}"

    def _edit_ids(self, rng, name, kind, data, current):
        ds = _read_ds(data)
        choices = [T(0x10, 0x20), T(0x20, 0x52), T(8, 0x18), T(8, 0x16)]
        if kind == "RTDOSE":
            choices += ["plan_ref", T(0x3004, 0x2), T(0x3004, 0x4), T(0x3004, 0xA)]
        if kind == "RTPLAN":
            choices += ["ss_ref", T(0x300E, 0x2)]
        if kind == "RTSTRUCT":
            choices += ["ss_frame", "ss_series"]
        if kind == "CT":
            choices += [T(0x20, 0xE)]
        what = rng.choice(choices)
        if what == "plan_ref":
            ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = _uid(rng)
        elif what == "ss_ref":
            ds.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID = _uid(rng)
        elif what == "ss_frame":
            ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = _uid(rng)
        elif what == "ss_series":
            (ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
             .RTReferencedSeriesSequence[0].SeriesInstanceUID) = _uid(rng)
        elif what == T(0x10, 0x20):
            ds.PatientID = rng.choice(["OTHER-1", "", str(ds.PatientID) + " "])
        elif what in (T(0x3004, 0x2), T(0x3004, 0x4), T(0x3004, 0xA), T(0x300E, 0x2)):
            value = rng.choice(["GY", "RELATIVE", "PHYSICAL", "EFFECTIVE", "ERROR", "PLAN",
                                "FRACTION", "BEAM", "MULTI_PLAN", "BRACHY", "UNAPPROVED",
                                "REJECTED", "APPROVED", "", "gy"])
            _set_raw(ds, what, "CS", value)
            return _write_ds(ds), f"{_kw(what)} -> {value!r}"
        elif what == T(8, 0x16):
            _set_raw(ds, what, "UI", rng.choice([RT_DOSE, RT_STRUCT, RT_PLAN, CT_IMAGE,
                                                 "1.2.840.10008.5.1.4.1.1.7"]))
        else:
            _set_raw(ds, what, "UI", _uid(rng))
        return _write_ds(ds), f"{what if isinstance(what, str) else _kw(what)} changed"

    def _file_level(self, rng, name, kind, data, current):
        mode = rng.choice(["remove", "duplicate", "duplicate_other_uid"])
        if mode == "remove":
            current[name] = None
            return data, "file removed"
        new = name.replace(".dcm", "") + ".copy.dcm"
        if mode == "duplicate":
            current[new] = data
            return data, f"byte-identical copy {new} added"
        ds = _read_ds(data)
        _set_raw(ds, T(8, 0x18), "UI", _uid(rng))
        current[new] = _write_ds(ds)
        return data, f"copy {new} with a new SOPInstanceUID added"


class _Skip(Exception):
    pass


_RELEVANT_TAGS = {t for spec in _SPEC.values() for t in spec} | {
    T(0x3006, 0x50), T(0x3006, 0x42), T(0x3006, 0x84), T(0x3006, 0x22), T(0x3006, 0x26),
    T(0x300A, 0x78), T(0x300A, 0x26), T(0x300A, 0x84), T(0x3006, 0xA4), T(8, 0x1155),
    T(0x0020, 0x000E), T(0x3006, 0x40)}


def _spec_sequences(spec: dict) -> set[int]:
    return {t for t, sub in spec.items() if sub is not None} | {
        x for sub in spec.values() if sub is not None for x in _spec_sequences(sub)}


_SEQ_TAGS = {t for spec in _SPEC.values() for t in _spec_sequences(spec)} | {T(0x3006, 0x40)}


def _raw_text(ds, tag: int) -> str:
    raw = ds.get_item(tag)
    value = raw.value if hasattr(raw, "value") else raw
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value)


def _kw(tag: int) -> str:
    from pydicom.datadict import keyword_for_tag
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _uid(rng: random.Random) -> str:
    return "2.25." + str(rng.getrandbits(120))


def _roi_name(ds, rc) -> str:
    ref = str(rc.get("ReferencedROINumber", "?"))
    for r in ds.StructureSetROISequence:
        if str(r.get("ROINumber", "")) == ref:
            return str(r.get("ROIName", ""))
    return f"#{ref}"


# =========================================================================================
# Report values and their drift from the baseline
# =========================================================================================

def report_values(report) -> dict[str, float]:
    """Dose- and contour-derived numbers of a report, by a stable key (plan labels, which
    only name a plan, are replaced by its position)."""
    out: dict[str, float] = {}
    for les in report.lesions:
        for attr in ("dose_gy", "bed_gy"):
            v = getattr(les, attr)
            out[f"lesion:{les.name}:{attr}"] = float("nan") if v is None else float(v)
    labels = sorted({p.label for p in report.plans if p.label}, key=len, reverse=True)
    for c in report.checks:
        if c.id == "oar.absent":
            continue
        cid = c.id
        for i, label in enumerate(labels):
            cid = cid.replace(f".{label}.", f".<plan{i}>.")
            if cid.endswith(f".{label}"):
                cid = cid[:-len(label)] + f"<plan{i}>"
        out[f"check:{cid}"] = float("nan") if c.value is None else float(c.value)
    for s in report.structures:
        for attr in ("volume_cc", "min_gy", "mean_gy", "max_gy", "outside_cc"):
            v = getattr(s, attr)
            out[f"structure:{s.name}:{attr}"] = float("nan") if v is None else float(v)
    return out


def drift(base: dict[str, float], now: dict[str, float]) -> tuple[float, str, int, int]:
    """(largest excess over tolerance as a relative change, its key, rows missing, rows
    added). A change within REL_TOL x |baseline| + ABS_TOL counts as 0."""
    worst, key = 0.0, ""
    for k in base.keys() & now.keys():
        a, b = base[k], now[k]
        if math.isnan(a) and math.isnan(b):
            continue
        if math.isnan(a) != math.isnan(b):
            return math.inf, k, 0, 0
        if abs(b - a) > REL_TOL * abs(a) + ABS_TOL:
            rel = abs(b - a) / max(abs(a), 1e-9)
            if rel > worst:
                worst, key = rel, k
    rows = {k.rsplit(":", 1)[0] if k.startswith(("lesion", "structure")) else k for k in base}
    rows_now = {k.rsplit(":", 1)[0] if k.startswith(("lesion", "structure")) else k
                for k in now}
    return worst, key, len(rows - rows_now), len(rows_now - rows)


def checked_rois(report) -> set[str]:
    return {r for c in report.checks for r in c.rois}


def mentions(report, roi: str) -> bool:
    """Does the report say something about the contours of ``roi``?"""
    if any(roi in w and "contour" in w.lower() for w in report.warnings):
        return True
    if any((roi in c.rois or roi in c.note) and "contour" in c.note.lower()
           for c in report.checks):
        return True
    return any((roi in les.targets or roi in les.note) and "contour" in les.note.lower()
               for les in report.lesions)


# =========================================================================================
# DVH memo
# =========================================================================================

class DvhMemo:
    """Memoise ``compute_dvh`` by a digest of every field of its arguments."""

    MODULES = ("rtqa.dvh", "rtqa.pipeline", "rtqa.oar", "rtqa.lesion_bed")

    def __init__(self, size: int = 800):
        self.size = size
        self.cache: OrderedDict = OrderedDict()
        self.hits = self.misses = 0
        self._digests = weakref.WeakKeyDictionary()
        self.original = None

    def install(self):
        import importlib
        dvh = importlib.import_module("rtqa.dvh")
        self.original = getattr(dvh.compute_dvh, "__wrapped__", dvh.compute_dvh)
        memo = self

        def compute_dvh(structure, grid, **kwargs):
            return memo.call(structure, grid, **kwargs)
        compute_dvh.__wrapped__ = self.original
        for name in self.MODULES:
            mod = importlib.import_module(name)
            if hasattr(mod, "compute_dvh"):
                mod.compute_dvh = compute_dvh
        return self

    def uninstall(self):
        import importlib
        for name in self.MODULES:
            mod = importlib.import_module(name)
            if hasattr(mod, "compute_dvh"):
                mod.compute_dvh = self.original

    def _digest_obj(self, obj) -> bytes:
        try:
            cached = self._digests.get(obj)
        except TypeError:
            cached = None
        if cached is not None:
            return cached
        h = hashlib.blake2b(digest_size=20)
        self._feed(h, obj)
        d = h.digest()
        try:
            self._digests[obj] = d
        except TypeError:
            pass
        return d

    def _feed(self, h, x):
        if isinstance(x, np.ndarray):
            h.update(f"nd{x.dtype}{x.shape}".encode())
            h.update(np.ascontiguousarray(x).tobytes())
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            h.update(type(x).__qualname__.encode())
            for f in dataclasses.fields(x):
                h.update(f.name.encode())
                self._feed(h, getattr(x, f.name))
        elif isinstance(x, (tuple, list)):
            h.update(b"(%d" % len(x))
            for v in x:
                self._feed(h, v)
            h.update(b")")
        elif isinstance(x, (str, int, float, bool, type(None), Path)):
            h.update(repr(x).encode() + b"|")
        else:
            raise TypeError(type(x))

    def call(self, structure, grid, **kwargs):
        try:
            key = (self._digest_obj(structure), self._digest_obj(grid),
                   tuple(sorted((k, self._digest_kw(v)) for k, v in kwargs.items())))
        except TypeError:
            self.misses += 1
            return self.original(structure, grid, **kwargs)
        if key in self.cache:
            self.hits += 1
            self.cache.move_to_end(key)
            kind, value = self.cache[key]
            if kind == "error":
                raise copy.copy(value)
            return copy.deepcopy(value)
        self.misses += 1
        from rtqa.errors import RtqaError
        try:
            value = self.original(structure, grid, **kwargs)
        except RtqaError as exc:
            self._store(key, ("error", _bare(exc)))
            raise
        self._store(key, ("ok", value))
        return copy.deepcopy(value)

    def _digest_kw(self, v) -> bytes:
        h = hashlib.blake2b(digest_size=20)
        self._feed(h, v)
        return h.digest()

    def _store(self, key, entry):
        self.cache[key] = entry
        while len(self.cache) > self.size:
            self.cache.popitem(last=False)


def _bare(exc: BaseException) -> BaseException:
    """A copy of an exception without traceback or chained exceptions (a cached exception
    must not keep the frames, and their arrays, of the call that raised it)."""
    e = copy.copy(exc)
    e.__traceback__ = e.__context__ = e.__cause__ = None
    return e


class ReaderMemo:
    """Memoise rtqa's per-file readers by (path, content digest, arguments): the file
    classification with its completeness check (rtqa.reading.scan.classify) and the four
    DICOM object readers. A damaged file is a new key, so it always goes through the real
    code; the ~85 untouched files of a case are not parsed again."""

    NAMES = (("rtqa.reading.export", "read_dose"), ("rtqa.reading.export", "read_plan"),
             ("rtqa.reading.export", "read_structure_set"),
             ("rtqa.reading.export", "read_ct_slice"), ("rtqa.reading.scan", "classify"))

    def __init__(self, size: int = 1200):
        self.size = size
        self.cache: OrderedDict = OrderedDict()
        self.hits = self.misses = 0
        self.originals: dict = {}

    def install(self):
        import importlib
        for module, name in self.NAMES:
            mod = importlib.import_module(module)
            fn = getattr(mod, name)
            if getattr(fn, "_rtqa_fuzz_memo", False):  # ours, from an earlier install
                fn = fn.__wrapped__                    # (never rtqa's own decorators)
            self.originals[(module, name)] = fn
            setattr(mod, name, self._wrap(name, fn))
        return self

    def uninstall(self):
        import importlib
        for (module, name), fn in self.originals.items():
            setattr(importlib.import_module(module), name, fn)

    def _wrap(self, name, fn):
        memo = self

        def reader(path, *args, **kwargs):
            try:
                data = Path(path).read_bytes()
            except OSError:
                return fn(path, *args, **kwargs)
            key = (name, str(path), hashlib.blake2b(data, digest_size=20).digest(),
                   repr(args), repr(sorted(kwargs.items())))
            if key in memo.cache:
                memo.hits += 1
                memo.cache.move_to_end(key)
                kind, value = memo.cache[key]
                if kind == "error":
                    raise copy.copy(value)
                return copy.deepcopy(value)
            memo.misses += 1
            from rtqa.errors import RtqaError
            try:
                value = fn(path, *args, **kwargs)
            except RtqaError as exc:
                memo._store(key, ("error", _bare(exc)))
                raise
            memo._store(key, ("ok", value))
            return copy.deepcopy(value)
        reader.__wrapped__ = fn
        reader._rtqa_fuzz_memo = True
        return reader

    def _store(self, key, entry):
        self.cache[key] = entry
        while len(self.cache) > self.size:
            self.cache.popitem(last=False)


# =========================================================================================
# Running cases
# =========================================================================================

@dataclass
class CaseResult:
    index: int
    base: str
    mutations: list[tuple[str, str, str]]
    verdict: str                 # the oracle's category
    reasons: list[str]
    outcome: str                 # refused | ERROR | FAIL | PASS | crash
    category: str  # crash | false_pass | ok | warned | inert | immaterial | silent_drift
    message: str = ""
    drift: float = 0.0
    drift_key: str = ""
    rows_missing: int = 0
    rows_added: int = 0
    seconds: float = 0.0
    leaked_warnings: list[str] = field(default_factory=list)
    multiline_message: bool = False
    tolerated_mentioned: dict = field(default_factory=dict)
    site: str = ""               # crash: exception type and innermost rtqa function


class Fuzzer:
    """Builds cases, runs them, classifies the outcome. One per process."""

    def __init__(self, workdir: Path, seed: int, memo: bool = True,
                 always_judge: bool = False):
        self.workdir, self.seed, self.always_judge = workdir, seed, always_judge
        from pydicom import config as pdconfig
        self.pydicom_modes = (pdconfig.settings.reading_validation_mode,
                              pdconfig.settings.writing_validation_mode)
        self.pristine_dirs = {b: workdir / "pristine" / b for b in BASES}
        self.memo = DvhMemo().install() if memo else None
        self.reader_memo = ReaderMemo().install() if memo else None
        self.bases = {}
        for b in BASES:
            d = self.pristine_dirs[b]
            files = {p.name: p.read_bytes() for p in sorted(d.iterdir())}
            kinds = {n: _kind_of_bytes(data) for n, data in files.items()}
            contents = {n: read_content(data, kinds[n]) for n, data in files.items()}
            bad = [n for n, c in contents.items() if c.unreadable]
            if bad:
                raise RuntimeError(f"oracle cannot read the pristine sample {b}: {bad}")
            self.bases[b] = {"files": files, "kinds": kinds, "contents": contents,
                             "mutator": Mutator(files, kinds)}
        self.baseline: dict[str, dict] = {}
        self.case_dirs: dict[str, Path] = {}

    # -- baselines --------------------------------------------------------------------
    def compute_baselines(self) -> dict[str, dict]:
        from rtqa.pipeline import run_check
        out = {}
        for b in BASES:
            rep = run_check([str(self.case_dir(b))])
            out[b] = {"status": rep.status, "values": report_values(rep),
                      "checked": sorted(checked_rois(rep))}
        return out

    def set_baselines(self, baselines: dict[str, dict]):
        self.baseline = baselines

    # -- the case folder ---------------------------------------------------------------
    def case_dir(self, base: str) -> Path:
        if base not in self.case_dirs:
            d = self.workdir / f"w{os.getpid()}" / base
            if d.exists():
                shutil.rmtree(d)
            d.mkdir(parents=True)
            for n in self.bases[base]["files"]:
                os.link(self.pristine_dirs[base] / n, d / n)
            self.case_dirs[base] = d
        return self.case_dirs[base]

    def _apply(self, base: str, current: dict[str, bytes | None]) -> None:
        d = self.case_dir(base)
        pristine = self.bases[base]["files"]
        for n, data in current.items():
            if n in pristine and data is pristine[n]:
                continue
            p = d / n
            if p.exists() or p.is_symlink():
                p.unlink()
            if data is not None:
                p.write_bytes(data)

    def _restore(self, base: str, current: dict[str, bytes | None]) -> None:
        d = self.case_dir(base)
        pristine = self.bases[base]["files"]
        for n, data in current.items():
            if n in pristine and data is pristine[n]:
                continue
            p = d / n
            if p.exists() or p.is_symlink():
                p.unlink()
            if n in pristine:
                os.link(self.pristine_dirs[base] / n, p)

    # -- one case ----------------------------------------------------------------------
    def generate(self, index: int):
        rng = random.Random(f"rtqa-fuzz:{self.seed}:{index}")
        base = BASES[rng.randrange(len(BASES))]
        info = self.bases[base]
        current: dict[str, bytes | None] = dict(info["files"])
        n_mut = rng.choices([1, 2, 3], [85, 11, 4])[0]
        muts = [info["mutator"].mutate(rng, current) for _ in range(n_mut)]
        return base, current, muts

    def oracle(self, base: str, current: dict[str, bytes | None]) -> Verdict:
        info = self.bases[base]
        contents = {n: (None if data is None else
                        info["contents"][n] if data is info["files"].get(n) else
                        read_content(data, info["kinds"].get(n) or
                                     info["kinds"][n.replace(".copy.dcm", ".dcm")]))
                    for n, data in current.items()}
        return judge(contents, info["contents"], set(self.baseline[base]["checked"]))

    def run_case(self, index: int, keep: Path | None = None) -> CaseResult:
        """Generate, apply and run case ``index``. The oracle is consulted when the verdict
        is PASS (the only verdict it can turn into a failure) or when ``always_judge``."""
        t0 = time.perf_counter()
        base, current, muts = self.generate(index)
        self._apply(base, current)
        try:
            res = self._run(index, base, muts)
            if res.outcome == "PASS" or self.always_judge or keep is not None:
                verdict = self.oracle(base, current)
                res.verdict = verdict.category
                res.reasons = list(verdict.reasons or verdict.tolerated_rois)
                if res.category != "crash":
                    res.category = self._classify(res, verdict, self.baseline[base])
            if keep is not None:
                self._keep(keep, index, base, muts, res)
        finally:
            self._restore(base, current)
        res.seconds = time.perf_counter() - t0
        return res

    def _run(self, index, base, muts) -> CaseResult:
        from rtqa.errors import RtqaError
        from rtqa.pipeline import run_check
        bl = self.baseline[base]
        res = CaseResult(index, base, [(m.file, m.op, m.detail) for m in muts],
                         "not judged", [], "", "ok")
        folder = str(self.case_dir(base))
        from pydicom import config as pdconfig
        if (pdconfig.settings.reading_validation_mode,
                pdconfig.settings.writing_validation_mode) != self.pydicom_modes:
            raise RuntimeError("pydicom settings changed under rtqa")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                report = run_check([folder])
            except RtqaError as exc:
                report = None
                msg = str(exc)
                res.outcome, res.message = "refused", msg
                res.multiline_message = "\n" in msg.strip()
                if not msg.strip():
                    res.outcome, res.category = "crash", "crash"
                    res.message = "RtqaError with an empty message"
                    return res
            except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
                res.outcome = res.category = "crash"
                res.site = crash_site(exc)
                res.message = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
                return res
        res.leaked_warnings = [
            ("[pydicom] " if "pydicom" in str(w.filename).replace("\\", "/") else "")
            + f"{w.category.__name__}: {w.message}"[:200] for w in caught]
        if report is not None:
            res.outcome = report.status
            res.drift, res.drift_key, res.rows_missing, res.rows_added = drift(
                bl["values"], report_values(report))
            res.tolerated_mentioned = {r: mentions(report, r) for r in bl["checked"]}
            problem = self._render(report, index, folder)
            if problem:
                res.outcome = res.category = "crash"
                res.message = problem
                return res
        elif index % CLI_EVERY == 0:
            problem = self._cli(folder, None)
            if problem:
                res.outcome = res.category = "crash"
                res.message = problem
                return res
        return res

    def _render(self, report, index: int, folder: str) -> str | None:
        from rtqa.report_json import dumps
        from rtqa.report_text import render_text
        from rtqa.results import EXIT_CODES
        try:
            render_text(report, color=False, width=None)
            json.loads(dumps(report))
            if index % HTML_EVERY == 0:
                from rtqa.report_html import render_html
                render_html(report)
        except Exception as exc:  # noqa: BLE001
            return f"report rendering: {type(exc).__name__}: {exc}\n" \
                   f"{traceback.format_exc(limit=6)}"
        if index % CLI_EVERY == 0:
            return self._cli(folder, EXIT_CODES[report.status])
        return None

    def _cli(self, folder: str, expected: int | None) -> str | None:
        from click.testing import CliRunner
        from rtqa.cli import main
        r = CliRunner().invoke(main, ["check", folder, "-q"])
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            return f"CLI: {type(r.exception).__name__}: {r.exception}"
        if r.exit_code not in (0, 1, 2):
            return f"CLI exit code {r.exit_code}"
        if "Traceback" in r.output:
            return "CLI printed a traceback"
        if expected is not None and r.exit_code != expected:
            return f"CLI exit code {r.exit_code}, verdict says {expected}"
        if expected is None and r.exit_code != 2:
            return f"CLI exit code {r.exit_code} on an input run_check refused"
        return None

    def _classify(self, res: CaseResult, verdict: Verdict, bl: dict) -> str:
        moved = res.drift > 0 or res.rows_missing or res.rows_added
        if res.outcome != "PASS":
            return "ok"
        if bl["status"] != "PASS":
            res.reasons.insert(0, f"PASS on {res.base}, whose verdict is {bl['status']}")
            return "false_pass"
        if verdict.category in ("unreadable", "invalid"):
            return "false_pass"
        if verdict.category == "tolerated":
            silent = [r for r in verdict.tolerated_rois
                      if not res.tolerated_mentioned.get(r, False)]
            if silent:
                res.reasons = [f"contour damage of checked ROI(s) {silent} dropped without "
                               "a word in the report"]
                return "false_pass"
            return "warned"
        if verdict.category == "inert":
            if moved:
                res.reasons = ["nothing QA-relevant changed, yet the report's numbers or "
                               f"rows did (worst: {res.drift_key} {res.drift:.3g}, rows -"
                               f"{res.rows_missing}/+{res.rows_added})"]
                return "false_pass"
            return "inert"
        return "silent_drift" if moved else "immaterial"

    def _keep(self, keep: Path, index, base, muts, res: CaseResult):
        dst = keep / f"case-{index:06d}-{base}"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(self.case_dir(base), dst)
        (dst.parent / f"case-{index:06d}.txt").write_text(
            "\n".join([f"seed {self.seed} case {index} base {base}"]
                      + [f"{m.file}: {m.op}: {m.detail}" for m in muts]
                      + [f"oracle: {res.verdict}"] + list(res.reasons)
                      + [f"rtqa: {res.outcome} ({res.category}) {res.message}"]) + "\n")


def crash_site(exc: BaseException) -> str:
    """'ExceptionType at rtqa/module.py:function' for the innermost frame inside rtqa (not
    the fuzzer)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/rtqa/" in f.filename.replace("\\", "/")
              and not f.filename.endswith("fuzz.py")]
    if not frames:
        return type(exc).__name__
    f = frames[-1]
    rel = f.filename.replace("\\", "/").split("/rtqa/", 1)[1]
    return f"{type(exc).__name__} at rtqa/{rel}:{f.name} (line {f.lineno})"


def _kind_of_bytes(data: bytes) -> str:
    ds = _read_ds(data)
    return KIND_OF_CLASS.get(str(ds.SOPClassUID), "OTHER")


# --- process pool plumbing ---------------------------------------------------------------

_WORKER: Fuzzer | None = None
_WORKER_ERROR: str | None = None


def _worker_init(workdir: str, seed: int, memo: bool, baselines: dict, verify: bool,
                 judge_all: bool):
    """Pool initialiser. A failure is kept and raised by the first case (an exception
    here would make the pool start replacement workers for ever)."""
    global _WORKER, _WORKER_ERROR
    try:
        _WORKER = Fuzzer(Path(workdir), seed, memo, judge_all)
        _WORKER.set_baselines(baselines)
        if verify:
            got = _WORKER.compute_baselines()
            for b in BASES:
                if got[b]["status"] != baselines[b]["status"] or \
                        drift(baselines[b]["values"], got[b]["values"]) != (0.0, "", 0, 0):
                    raise RuntimeError(f"memoised baseline of {b} differs from the plain one")
    except Exception as exc:  # noqa: BLE001
        _WORKER_ERROR = f"worker set-up failed: {type(exc).__name__}: {exc}"


def _worker_run(index: int) -> CaseResult:
    if _WORKER_ERROR or _WORKER is None:
        raise RuntimeError(_WORKER_ERROR or "worker not set up")
    return _WORKER.run_case(index)


# =========================================================================================
# Main
# =========================================================================================

@dataclass
class Summary:
    requested: int
    run: int = 0
    seconds: float = 0.0
    stopped_by_time: bool = False
    results: list[CaseResult] = field(default_factory=list)
    baselines: dict = field(default_factory=dict)

    @property
    def crashes(self) -> list[CaseResult]:
        return [r for r in self.results if r.category == "crash"]

    @property
    def false_passes(self) -> list[CaseResult]:
        return [r for r in self.results if r.category == "false_pass"]

    def counter(self, attr: str) -> Counter:
        return Counter(getattr(r, attr) for r in self.results)


def prepare(workdir: Path) -> None:
    for b in BASES:
        dst = workdir / "pristine" / b
        shutil.copytree(SAMPLES / b, dst)


def run(cases: int = DEFAULT_CASES, seed: int = 1, time_limit: float = DEFAULT_TIME_LIMIT,
        jobs: int | None = None, memo: bool = True, verify_memo: bool | None = None,
        only: list[int] | None = None, keep: Path | None = None,
        progress=None, judge_all: bool = False) -> Summary:
    """Run the fuzzer; ``only``: just these case indices (reproduction)."""
    t0 = time.perf_counter()
    deadline = t0 + time_limit
    jobs = jobs or min(os.cpu_count() or 1, 8)
    indices = list(only) if only else list(range(cases))
    summary = Summary(len(indices))
    with tempfile.TemporaryDirectory(prefix="rtqa-fuzz-") as tmp:
        workdir = Path(tmp)
        prepare(workdir)
        if jobs <= 1 or len(indices) < 4 or keep is not None:
            fz = Fuzzer(workdir, seed, memo, judge_all)
            try:
                summary.baselines = fz.compute_baselines()
                fz.set_baselines(summary.baselines)
                if verify_memo and memo:
                    _check_memo(fz)
                for i in indices:
                    if time.perf_counter() > deadline:
                        summary.stopped_by_time = True
                        break
                    summary.results.append(fz.run_case(i, keep))
                    if progress:
                        progress(summary)
            finally:
                if fz.memo is not None:
                    fz.memo.uninstall()
                    fz.reader_memo.uninstall()
        else:
            plain = Fuzzer(workdir, seed, memo=False)  # the truth: no memo in this process
            baselines = summary.baselines = plain.compute_baselines()
            verify = memo if verify_memo is None else (verify_memo and memo)
            ctx = multiprocessing.get_context("fork")
            pool = ctx.Pool(jobs, _worker_init,
                            (str(workdir), seed, memo, baselines, verify, judge_all))
            try:
                it = pool.imap_unordered(_worker_run, indices, chunksize=1)
                while True:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        summary.stopped_by_time = True
                        break
                    try:
                        summary.results.append(it.next(timeout=remaining))
                    except StopIteration:
                        break
                    except multiprocessing.TimeoutError:
                        summary.stopped_by_time = True
                        break
                    if progress:
                        progress(summary)
            finally:
                pool.terminate()
                pool.join()
        _verify_pristine(workdir)
    summary.results.sort(key=lambda r: r.index)
    summary.run = len(summary.results)
    summary.seconds = time.perf_counter() - t0
    return summary


def _check_memo(fz: Fuzzer) -> None:
    with_memo = fz.baseline
    fz.memo.uninstall()
    fz.reader_memo.uninstall()
    plain = fz.compute_baselines()
    fz.memo.install()
    fz.reader_memo.install()
    for b in BASES:
        if plain[b]["status"] != with_memo[b]["status"] or \
                drift(plain[b]["values"], with_memo[b]["values"]) != (0.0, "", 0, 0):
            raise RuntimeError(f"memoised baseline of {b} differs from the plain one")


def _verify_pristine(workdir: Path) -> None:
    for b in BASES:
        for p in (workdir / "pristine" / b).iterdir():
            if p.read_bytes() != (SAMPLES / b / p.name).read_bytes():
                raise RuntimeError(f"a pristine sample file was modified: {p.name}")


def _reason_key(r: CaseResult) -> str:
    """A short, case-independent description of why a PASS was false."""
    import re
    text = r.reasons[0] if r.reasons else r.verdict
    text = re.sub(r"^[^:]*\.dcm: ", "", text)
    text = re.sub(r"'[^']*'|\[[^]]*\]|\d+(\.\d+)?", "_", text)
    return f"{r.verdict}: {text}"[:110]


def format_summary(s: Summary, seed: int, jobs: int, time_limit: float) -> str:
    lines = [f"rtqa fuzz: seed {seed}, {s.requested} cases requested, {jobs} job(s), "
             f"time limit {time_limit:g} s",
             f"cases run:     {s.run}" + (" (stopped at the time limit)" if s.stopped_by_time
                                          else "") +
             f" in {s.seconds:.1f} s ({s.run / max(s.seconds, 1e-9):.1f} cases/s)",
             f"crashes:       {len(s.crashes)}",
             f"false passes:  {len(s.false_passes)}"]
    out = s.counter("outcome")
    lines.append("outcomes:      " + ", ".join(
        f"{k} {out[k]}" for k in ("refused", "ERROR", "FAIL", "PASS", "crash") if out[k]))
    for b in BASES:
        sub = Counter(r.outcome for r in s.results if r.base == b)
        lines.append(f"  {b:9s}    " + ", ".join(f"{k} {v}" for k, v in sorted(sub.items())))
    cat = s.counter("category")
    lines.append("PASS verdicts: " + ", ".join(
        f"{k} {cat[k]}" for k in ("inert", "immaterial", "warned", "silent_drift",
                                  "false_pass") if cat[k])
        + "   (inert: nothing QA-relevant damaged; immaterial: numbers within 0.5%;"
        " warned: tolerated damage named in the report; silent_drift: valid DICOM with a"
        " plausible different value, see rtqa/fuzz.py)")
    judged = Counter(r.verdict for r in s.results if r.verdict != "not judged")
    lines.append("oracle:        " + (", ".join(f"{k} {v}" for k, v in judged.most_common())
                                      or "-") + "   (cases judged: PASS verdicts, or all "
                 "with --judge-all)")
    fewer = [r for r in s.results if r.outcome == "PASS" and r.rows_missing]
    lines.append(f"PASS with fewer rows than the baseline (a check, lesion or structure gone): "
                 f"{len(fewer)}")
    ops = Counter(op for r in s.results for _, op, _ in r.mutations)
    lines.append("mutations:     " + ", ".join(f"{k} {v}" for k, v in ops.most_common()))
    kinds = Counter(f.split(".")[0] for r in s.results for f, _, _ in r.mutations)
    lines.append("files:         " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    multi = [r for r in s.results if r.multiline_message]
    other = [w for r in s.results for w in r.leaked_warnings
             if not w.startswith("[pydicom]")]
    n_pyd = sum(1 for r in s.results for w in r.leaked_warnings if w.startswith("[pydicom]"))
    lines.append(f"messages:      {len(multi)} multi-line RtqaError message(s); Python "
                 f"warnings during run_check: {n_pyd} from pydicom (the CLI hides them), "
                 f"{len(other)} other (printed on stderr by the CLI)")
    if other:
        lines.append("  e.g. " + other[0])
    sites = Counter(r.site or r.message.splitlines()[0][:120] for r in s.crashes)
    if sites:
        lines.append("crash sites:")
        lines += [f"  {n:4d} x {site}" for site, n in sites.most_common()]
    reasons = Counter(_reason_key(r) for r in s.false_passes)
    if reasons:
        lines.append("false-pass kinds:")
        lines += [f"  {n:4d} x {k}" for k, n in reasons.most_common()]
    for title, items in (("CRASH", s.crashes), ("FALSE PASS", s.false_passes)):
        for r in items[:25]:
            lines.append(f"{title} case {r.index} ({r.base}): " + "; ".join(
                f"{f}: {op}: {d}" for f, op, d in r.mutations))
            lines.append(f"    oracle {r.verdict}: " + "; ".join(r.reasons)[:600])
            if r.message:
                lines.append("    " + r.message.strip().replace("\n", "\n    ")[:1500])
            lines.append(f"    reproduce: python -m rtqa.fuzz --seed {seed} --only {r.index} "
                         "--keep /tmp/rtqa-fuzz-case")
    drifts = [r for r in s.results if r.category == "silent_drift"]
    for r in drifts[:5]:
        lines.append(f"silent drift case {r.index} ({r.base}): " + "; ".join(
            f"{f}: {op}: {d}" for f, op, d in r.mutations)
            + f" -> {r.drift_key} moved {r.drift:.3g}, rows -{r.rows_missing}/+{r.rows_added}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rtqa.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=DEFAULT_CASES,
                    help=f"number of cases (default {DEFAULT_CASES})")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT,
                    help=f"stop after this many seconds (default {DEFAULT_TIME_LIMIT:g})")
    ap.add_argument("--jobs", type=int, default=None,
                    help="worker processes (default: the number of CPUs, at most 8)")
    ap.add_argument("--only", type=int, action="append", metavar="I",
                    help="run only case I (repeatable): reproduce a finding")
    ap.add_argument("--keep", type=Path, metavar="DIR",
                    help="write each case's damaged export to DIR (with --only)")
    ap.add_argument("--no-memo", action="store_true", help="do not memoise file reads and DVHs")
    ap.add_argument("--verify-memo", action="store_true",
                    help="check the memoised baseline against the plain one (always done "
                         "by multi-process runs)")
    ap.add_argument("--results", type=Path, metavar="FILE",
                    help="write every case's result to FILE (JSON lines)")
    ap.add_argument("--judge-all", action="store_true",
                    help="run the oracle on every case (statistics), not only on PASS")
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress line")
    args = ap.parse_args(argv)
    if args.cases < 1 or args.time_limit <= 0:
        ap.error("--cases and --time-limit must be positive")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    jobs = args.jobs or min(os.cpu_count() or 1, 8)
    show = not args.quiet and sys.stderr.isatty()

    def progress(s: Summary):
        if show:
            sys.stderr.write(f"\r{len(s.results)} cases, {len(s.crashes)} crashes, "
                             f"{len(s.false_passes)} false passes")
            sys.stderr.flush()

    try:
        summary = run(args.cases, args.seed, args.time_limit, jobs, not args.no_memo,
                      args.verify_memo or None, args.only, args.keep, progress,
                      args.judge_all)
    except RuntimeError as exc:
        print(f"rtqa fuzz: cannot run: {exc}", file=sys.stderr)
        return 2
    if show:
        sys.stderr.write("\n")
    if args.results:
        with open(args.results, "w", encoding="utf-8") as fh:
            for r in summary.results:
                fh.write(json.dumps(dataclasses.asdict(r), default=str) + "\n")
    print(format_summary(summary, args.seed, jobs, args.time_limit))
    return 1 if summary.crashes or summary.false_passes else 0


if __name__ == "__main__":
    sys.exit(main())
