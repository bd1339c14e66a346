"""Is a DICOM file complete? A walk of its element stream, independent of pydicom.

pydicom reads a file cut short (e.g. inside a sequence or a value) without complaint, so a
truncated export on a network share would be checked as if whole. This walk reads tags and
lengths only: every defined length must fit inside its parent, every undefined-length
sequence or item must be closed by its delimiter, the elements of every item must fill it
exactly (sequences are walked inside, whatever their length encoding), and the stream must
end exactly at the end of the file. Deflated transfer syntax is not walked (reported as not verifiable).
"""

from __future__ import annotations

import struct

from pydicom.datadict import dictionary_VR

from rtqa import _native

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
             b"UT", b"UV"}
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"


class Incomplete(Exception):
    """The stream ends before an element, value, item or sequence does."""


class _Walker:
    def __init__(self, data: bytes, explicit: bool, little: bool):
        self.d = data
        self.explicit = explicit
        self.e = "<" if little else ">"
        self._s16 = struct.Struct(self.e + "H").unpack_from
        self._s32 = struct.Struct(self.e + "I").unpack_from
        self._s2x16 = struct.Struct(self.e + "HH").unpack_from
        #: (value offset, value length) of the top-level PixelData when it has a defined
        #: length (native pixel data), else None
        self.pixel_data: tuple[int, int] | None = None

    def _u16(self, pos):
        return self._s16(self.d, pos)[0]

    def _u32(self, pos):
        return self._s32(self.d, pos)[0]

    def _tag(self, pos):
        group, element = self._s2x16(self.d, pos)
        return (group << 16) | element

    def _need(self, pos, n, end, what):
        if pos + n > end:
            raise Incomplete(f"{what} at byte {pos} needs {n} bytes, only {end - pos} remain")

    def elements(self, pos: int, end: int, until: int | None, top: bool = False) -> int:
        """Walk elements from ``pos``; stop at ``end`` (defined length) or after the
        delimiter tag ``until``. Returns the position after the last element. ``top``:
        the data set itself (not an item), where the PixelData position is recorded."""
        # the hot loop of the scan: helpers inlined (the checks and messages are those of
        # _need, _tag, _u16 and _u32, in the same order)
        d, explicit, need = self.d, self.explicit, self._need
        tag_of, u16, u32 = self._s2x16, self._s16, self._s32
        while pos < end or until is not None:
            if pos + 8 > end:
                need(pos, 8, end, "element header")
            group, element = tag_of(d, pos)
            tag = (group << 16) | element
            if until is not None and tag == until:
                return pos + 8
            if tag in (_ITEM_END, _SEQ_END, _ITEM):
                raise Incomplete(f"unexpected delimiter {tag:08X} at byte {pos}")
            if explicit:
                vr = d[pos + 4:pos + 6]
                if vr in _LONG_VRS:
                    if pos + 12 > end:
                        need(pos, 12, end, "element header")
                    length, pos = u32(d, pos + 8)[0], pos + 12
                else:
                    length, pos = u16(d, pos + 6)[0], pos + 8
            else:
                length, pos = u32(d, pos + 4)[0], pos + 8
            if length == _UNDEFINED:
                pos = self.items(pos, end, nested=tag != _PIXEL_DATA)
            else:
                if pos + length > end:
                    need(pos, length, end, f"value of ({tag >> 16:04X},{tag & 0xFFFF:04X})")
                if top and tag == _PIXEL_DATA:
                    self.pixel_data = (pos, length)
                elif (vr == b"SQ") if explicit else self._is_sequence(tag, None):
                    self.sequence(pos, pos + length)
                pos += length
        return pos

    @staticmethod
    def _is_sequence(tag: int, vr: bytes | None) -> bool:
        if vr is not None:
            return vr == b"SQ"
        try:  # implicit VR: the data dictionary says which tags are sequences
            return dictionary_VR(tag) == "SQ"
        except KeyError:
            return False

    def _item(self, pos: int, length: int, end: int) -> int:
        """One item's elements: up to its delimiter, or exactly filling its length."""
        if length == _UNDEFINED:
            return self.elements(pos, end, _ITEM_END)
        self._need(pos, length, end, "item value")
        stop = self.elements(pos, pos + length, None)
        if stop != pos + length:
            raise Incomplete(f"item at byte {pos - 8} ends at byte {stop}, not {pos + length}")
        return stop

    def sequence(self, pos: int, end: int) -> None:
        """The items of a defined-length sequence filling [pos, end) exactly: an element
        whose length runs past the end of its item is damage, even when the file's own
        stream happens to end in the right place."""
        while pos < end:
            self._need(pos, 8, end, "item header")
            tag = self._tag(pos)
            if tag != _ITEM:
                raise Incomplete(f"expected an item at byte {pos}, found {tag:08X}")
            pos = self._item(pos + 8, self._u32(pos + 4), end)

    def items(self, pos: int, end: int, nested: bool = True) -> int:
        """Items of an undefined-length sequence, walked inside (``nested``), or the
        fragments of encapsulated pixel data (raw bytes)."""
        while True:
            self._need(pos, 8, end, "item header")
            tag = self._tag(pos)
            length = self._u32(pos + 4)
            pos += 8
            if tag == _SEQ_END:
                return pos
            if tag != _ITEM:
                raise Incomplete(f"expected an item at byte {pos - 8}, found {tag:08X}")
            if nested:
                pos = self._item(pos, length, end)
            elif length == _UNDEFINED:
                raise Incomplete(f"pixel data fragment of undefined length at byte {pos - 8}")
            else:
                self._need(pos, length, end, "pixel data fragment")
                pos += length


def check_complete(data: bytes) -> str | None:
    """None when the file is complete, else the reason it is not."""
    return walk(data)[0]


def walk(data: bytes) -> tuple[str | None, tuple[int, int] | None]:
    """(None when the file is complete, else the reason it is not; (offset, length) of
    the data set's native PixelData value, None when it has none or it is encapsulated
    or the file is not walked)."""
    pos = 0
    part10 = len(data) >= 132 and data[128:132] == b"DICM"
    if part10:
        pos = 132
    try:
        # File meta information: always explicit VR little endian, group 0002.
        ts = ""
        meta = _Walker(data, True, True)
        while pos + 8 <= len(data) and struct.unpack_from("<H", data, pos)[0] == 0x0002:
            start = pos
            pos = _one(meta, pos, len(data))
            if struct.unpack_from("<H", data, start + 2)[0] == 0x0010:
                vlen = pos - start - 8
                ts = data[pos - vlen:pos].rstrip(b"\x00 ").decode("ascii", "replace")
        if part10 and not ts:  # Part 10 file: TransferSyntaxUID is Type 1
            return "file meta information without TransferSyntaxUID (damaged header)", None
        if ts == DEFLATED:
            return None, None
        if not ts:  # a bare data set: its first element shows the encoding (little endian)
            explicit = pos + 6 <= len(data) and data[pos + 4:pos + 6].isalpha() \
                and data[pos + 4:pos + 6].isupper()
            ts = EXPLICIT_LE if explicit else IMPLICIT_LE
        body = _Walker(data, ts != IMPLICIT_LE, ts != EXPLICIT_BE)
        c = _native.load("rtqa.reading._cdecimal") if body.explicit else None
        done = c.walk_body(data, pos, ts != EXPLICIT_BE) if c is not None else None
        if done is not None:  # (compiled: the same walk; None: this one gives the reason)
            end, pixel_data = done
        else:
            end = body.elements(pos, len(data), None, top=True)
            pixel_data = body.pixel_data
        if end != len(data):
            return f"stream ends at byte {end} of {len(data)}", None
        return None, pixel_data
    except Incomplete as exc:
        return f"truncated or damaged: {exc}", None
    except struct.error:
        return "truncated: the file ends inside an element header", None


def _one(w: _Walker, pos: int, end: int) -> int:
    """Walk exactly one explicit-VR element (file meta)."""
    w._need(pos, 8, end, "element header")
    vr = w.d[pos + 4:pos + 6]
    if vr in _LONG_VRS:
        w._need(pos, 12, end, "element header")
        length, pos = w._u32(pos + 8), pos + 12
    else:
        length, pos = w._u16(pos + 6), pos + 8
    w._need(pos, length, end, "file meta value")
    return pos + length
