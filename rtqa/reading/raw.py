"""The items of a DICOM sequence as raw element values, without pydicom's data sets.

pydicom turns every item of a sequence into a ``Dataset`` and every value it is asked for
into a Python object (``convert_raw_data_element``, ~0.1 ms each); an RTSTRUCT has
thousands of contour items, of which the readers need two raw values each. :func:`items`
walks a sequence's encoded items itself and returns, per item, ``{tag: (VR, value
bytes)}``; the caller converts the few values it needs, for the plain cases only.

Strict by design: anything this walk is not sure pydicom would read the same way (big
endian, an unknown VR, a VR switch inside an item, a tag twice in one item, an
undefined-length value that is not a sequence, a length running past its item, a stray
delimiter) gives None, and the caller reads the sequence through pydicom as before, with
its results, warnings and errors. The walk never decides what a file means.
"""

from __future__ import annotations

import re
import struct

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.sequence import Sequence

from rtqa import _native

_TAG = struct.Struct("<HH").unpack_from
_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_UNDEFINED = 0xFFFFFFFF
#: VRs with a 4-byte length in explicit VR (PS3.5 7.1.2); pydicom's EXPLICIT_VR_LENGTH_32
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                       b"UR", b"UT", b"UV"})
#: VRs with a 2-byte length; together with _LONG_VRS every VR pydicom reads as explicit
_SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS",
                        b"LO", b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL",
                        b"US"})
_VR_NAMES = {vr: vr.decode() for vr in _LONG_VRS | _SHORT_VRS}
#: per VR code: (name, 4-byte length), for the compiled walk (rtqa.reading._cdecimal)
_VR_TABLE = {vr: (name, vr in _LONG_VRS) for vr, name in _VR_NAMES.items()}


class _Unusual(Exception):
    """Not a plain encoding: pydicom reads it."""


def _is_sequence(tag: int) -> bool:
    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        return False


def _elements(d: bytes, pos: int, end: int | None, limit: int, implicit: bool):
    """The elements of one item from ``pos``: filling [pos, end) exactly (defined length)
    or up to its Item Delimitation Item (``end`` None), within ``limit``. Returns
    ({tag: (VR or None, value bytes or None for a nested sequence)}, position after)."""
    out: dict[int, tuple[str | None, bytes | None]] = {}
    stop = limit if end is None else end
    while True:
        if end is not None and pos == end:
            return out, pos
        if pos + 8 > stop:
            raise _Unusual
        group, element = _TAG(d, pos)
        if group == 0xFFFE:
            if end is None and element == 0xE00D:
                return out, pos + 8
            raise _Unusual
        tag = group << 16 | element
        if implicit:
            vr = None
            length = _U32(d, pos + 4)[0]
            pos += 8
        else:
            code = d[pos + 4:pos + 6]
            if code in _LONG_VRS:
                if pos + 12 > stop:
                    raise _Unusual
                length = _U32(d, pos + 8)[0]
                pos += 12
            elif code in _SHORT_VRS:
                length = _U16(d, pos + 6)[0]
                pos += 8
            else:
                raise _Unusual
            vr = _VR_NAMES[code]
        if tag in out:
            raise _Unusual
        if length == _UNDEFINED:
            if not (vr == "SQ" or (vr is None and _is_sequence(tag))):
                raise _Unusual
            pos = _items(d, pos, None, stop, implicit)[1]
            out[tag] = (vr, None)
            continue
        if pos + length > stop:
            raise _Unusual
        out[tag] = (vr, d[pos:pos + length])
        pos += length


def _items(d: bytes, pos: int, end: int | None, limit: int, implicit: bool):
    """The items of a sequence value from ``pos``: filling [pos, end) exactly or up to its
    Sequence Delimitation Item (``end`` None), within ``limit``. Returns (items, position
    after)."""
    out = []
    stop = limit if end is None else end
    while True:
        if end is not None and pos == end:
            return out, pos
        if pos + 8 > stop:
            raise _Unusual
        group, element = _TAG(d, pos)
        length = _U32(d, pos + 4)[0]
        pos += 8
        if group != 0xFFFE:
            raise _Unusual
        if element == 0xE0DD and end is None:
            return out, pos
        if element != 0xE000:
            raise _Unusual
        if length == _UNDEFINED:
            item, pos = _elements(d, pos, None, stop, implicit)
        else:
            if pos + length > stop:
                raise _Unusual
            item, pos = _elements(d, pos, pos + length, stop, implicit)
        out.append(item)


def items(elem, tags) -> list[dict[int, tuple[str | None, bytes | None]]] | None:
    """The items of the sequence element ``elem`` (``Dataset.get_item``: a RawDataElement
    not converted yet, or a DataElement holding a pydicom Sequence read at parse time) as
    ``{tag: (VR or None when implicit, raw value bytes)}`` per item, with at least the
    elements ``tags`` that the item has; None when the encoding is not plain (see the
    module docstring) or one of ``tags`` was converted already."""
    if elem is None:
        return []
    if isinstance(elem, RawDataElement):
        if not elem.is_little_endian or elem.VR not in ("SQ", None if elem.is_implicit_VR
                                                         else "SQ"):
            return None
        value = elem.value
        if value is None or value == b"":
            return []
        if not isinstance(value, bytes):
            return None
        implicit = bool(elem.is_implicit_VR)
        c = _native.load("rtqa.reading._cdecimal")
        if c is not None:  # (compiled: the same walk; False: it leaves the call to this one)
            found = c.raw_items(value, implicit, _VR_TABLE)
            if found is not False:
                return found
        try:
            return _items(value, 0, len(value), len(value), implicit)[0]
        except (_Unusual, struct.error):
            return None
    seq = getattr(elem, "value", None)
    if getattr(elem, "VR", None) != "SQ" or not isinstance(seq, Sequence):
        return None
    out = []
    for ds in seq:
        item = {}
        for tag in tags:
            e = ds.get_item(tag, keep_deferred=True)
            if e is None:
                continue
            if not isinstance(e, RawDataElement):
                return None
            if not e.is_little_endian or not (e.value is None or isinstance(e.value, bytes)):
                return None
            item[tag] = (e.VR, e.value)
        out.append(item)
    return out


_PLAIN_CS = re.compile(rb" *[A-Z0-9_]+(?: [A-Z0-9_]+)* *")


def plain_cs(entry) -> str | None:
    """The text of a raw CS value as ``rtqa.reading.common.text`` gives it through pydicom
    (one value, stripped): "" when absent; None (read it through pydicom) unless it is one
    non-empty value of at most 16 characters [A-Z0-9_ ] (what pydicom converts without a
    validation warning, and without splitting on a backslash)."""
    if entry is None:
        return ""
    vr, value = entry
    if vr not in ("CS", None) or not value or len(value) > 16 \
            or not _PLAIN_CS.fullmatch(value):
        return None
    return value.strip(b" ").decode("ascii")


#: The raw value of an element that pydicom has converted already (or deferred)
NOT_RAW = object()


def value(ds, tag: int):
    """(VR or None, value bytes) of the element ``tag`` of a pydicom data set as read
    (not converted); None when absent; NOT_RAW when it cannot be had raw (converted
    already, big endian, no bytes)."""
    e = ds.get_item(tag, keep_deferred=True)
    if e is None:
        return None
    if not isinstance(e, RawDataElement) or not e.is_little_endian \
            or not isinstance(e.value, bytes):
        return NOT_RAW
    return e.VR, e.value


_DS_TOKEN = re.compile(rb" *[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *")


def plain_ds(entry, vr: str = "DS") -> list[float] | None:
    """The values of a raw DS element as ``rtqa.reading.common.floats`` gives them through
    pydicom (``float(DSfloat(token))``, i.e. ``float(token)``), when every value is a
    plain decimal of at most 16 characters with a finite value; else None (read it
    through pydicom)."""
    if entry is None or entry is NOT_RAW or entry[0] not in (vr, None) or not entry[1]:
        return None
    tokens = entry[1].rstrip(b" \x00").split(b"\\")
    out = []
    for t in tokens:
        if len(t) > 16 or not _DS_TOKEN.fullmatch(t):
            return None
        v = float(t)
        if v - v != 0.0:  # inf
            return None
        out.append(v)
    return out


_UI = re.compile(rb"[0-9.]{1,64}[\x00 ]?")
_TEXT = re.compile(rb"[\x20-\x5b\x5d-\x7e]{1,64}")


def plain_text(entry, vr: str) -> str | None:
    """``rtqa.reading.common.text`` of a raw UI or LO/SH/CS element: "" when absent or
    empty; None (read it through pydicom) unless it is one value of printable ASCII
    (UI: digits and dots), which every character set decodes alike."""
    if entry is None:
        return ""
    if entry is NOT_RAW or entry[0] not in (vr, None):
        return None
    raw = entry[1]
    if raw == b"":
        return ""
    if not (_UI if vr == "UI" else _TEXT).fullmatch(raw):
        return None
    return raw.decode("ascii").strip(" \x00")


def plain_us(entry) -> int | None | object:
    """A raw one-valued US element as pydicom gives it (an int); None when absent;
    NOT_RAW when it is anything else."""
    if entry is None:
        return None
    if entry is NOT_RAW or entry[0] not in ("US", None) or len(entry[1]) != 2:
        return NOT_RAW
    return int.from_bytes(entry[1], "little")
