"""The oracle's strict walk of a DICOM Part 10 element stream, without rtqa or pydicom.

``stream_problem`` says whether a file is a whole element stream and, if not, what is
wrong; a problem starting with "cut short" means the stream runs past the end of the file
(a truncated file, or a length pointing beyond it), which rtqa's policy never checks as
complete.
"""

from __future__ import annotations

import struct

from .common import DEFLATED, EXPLICIT_BE, IMPLICIT_LE, _tag

_LONG_VR = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
            b"UT", b"UV"}
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEF = 0xFFFFFFFF


#: Sequences the oracle must descend in implicit-VR data (no VR on the wire).
_IMPLICIT_SQ = {_tag(0x300C, 0x0002), _tag(0x300C, 0x0020), _tag(0x300C, 0x0004),
                _tag(0x3006, 0x0010), _tag(0x3006, 0x0012), _tag(0x3006, 0x0014),
                _tag(0x3006, 0x0016), _tag(0x3006, 0x0020), _tag(0x3006, 0x0039),
                _tag(0x3006, 0x0040), _tag(0x3006, 0x0080), _tag(0x300A, 0x0010),
                _tag(0x300A, 0x0070), _tag(0x300A, 0x00B0), _tag(0x300C, 0x0060)}


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
