"""Discovery: the plans under a folder tree, found from DICOM headers only.

Walk ROOT (symbolic links are never followed, at most ``MAX_DEPTH`` levels; the output
folder is skipped) and read the *header* of every file (pydicom ``stop_before_pixels``
with only the tags needed to link objects); files that are not DICOM are ignored.
Plainly encoded images (CT, MR: most files of an export) are read from their bytes
without pydicom, with the same result (:func:`_plain_header`, which leaves every file it
is not sure of to pydicom); the worker parses every file fully anyway. Data
sets written without the Part 10 header (no preamble, 'DICM' or File Meta: Elekta
Monaco) are read as ``rtqa check`` reads them, whatever their names
(:func:`read_link_dataset`; unless named ``.dcm`` they must be whole, else they only
resembled a data set).
Objects are linked by UID, never by folder, so any layout works (one folder per plan, per
patient, per modality, all in one folder, nested at any depth).

Grouping rule (what one "plan" of the batch is)
-----------------------------------------------
Objects are indexed by (PatientID, SOPInstanceUID); references are only followed
within one PatientID.

* An **anchor** is an RTPLAN, or an RTDOSE whose referenced RTPLAN is not under ROOT
  (a dose without plan). An RTDOSE whose RTPLAN is present belongs to that plan.
* Every anchor has a structure set: an RTPLAN the RTSTRUCT of its
  ReferencedStructureSetSequence; a dose without plan the RTSTRUCT of the same patient
  and FrameOfReferenceUID (when several, the one in the dose's folder; when still
  ambiguous, all of them, and the check reports the ambiguity).
* Default (``per_plan=False``): anchors of one patient that use the **same RTSTRUCT**
  are checked together as one export (one treatment course: the plans' doses are summed
  voxel-wise as BED, each with its own fractionation, as ``rtqa check`` does for a
  folder holding those plans). With ``per_plan=True`` (``--per-plan``) every RTPLAN is
  checked on its own with its doses, and doses without plan referencing the same
  (missing) RTPLAN together.
* Anchors without a structure set are checked on their own (the check then reports
  the missing RTSTRUCT).
* Each unit gets its RTSTRUCT, the RTDOSEs referencing its RTPLANs and the CT series the
  RTSTRUCT references (else the only CT series of the patient in that frame of reference).
* Copies of one object (same PatientID and SOPInstanceUID) in several files: identical
  copies are used once (the first path in sorted order; noted on the plan); copies that
  differ make every plan using them ERROR ("conflicting files"), never a guess.
* A file that claims to be DICOM (``.dcm`` name or ``DICM`` magic) but whose header
  cannot be read joins every plan with a file in the same folder (so that plan is
  ERROR with the reader's reason, as ``rtqa check`` of that folder would be); alone in
  its folder it becomes an ERROR entry of its own, because it may hide a plan.
* A folder the walk does not search is never dropped silently: a folder that cannot be
  listed (permission, I/O error), a folder deeper than ``MAX_DEPTH`` levels under ROOT,
  and the output folder (``--out``) when it holds DICOM files (``--out`` pointed at a
  plan folder) each become an ERROR entry of their own ("not searched: it may hide a
  plan"), so the exit code counts them.
* RTSTRUCTs and CT series that no plan or dose uses are listed as ``unassigned`` in
  ``summary.json`` (not errors).
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from rtqa.batch.model import (MAX_DEPTH, Discovery, Header, PlanUnit, _hash, _relpath,
                              _safe, sha256_file)
from rtqa.errors import RtqaError
from rtqa.reading.raw import (_LONG_VRS, _SHORT_VRS, _VR_NAMES, _is_sequence, _items,
                              _Unusual, plain_text)
from rtqa.reading.scan import looks_like_dicom
from rtqa.reading.sopclass import KIND

__all__ = ["discover", "link_fields", "read_header", "read_link_dataset", "LINK_TAGS"]

#: The tags that link the objects of an export (read with ``specific_tags``).
LINK_TAGS = [
    "SOPClassUID", "SOPInstanceUID", "Modality", "PatientID", "StudyInstanceUID",
    "SeriesInstanceUID", "FrameOfReferenceUID", "RTPlanLabel", "RTPlanName",
    "StructureSetLabel", "ReferencedStructureSetSequence", "ReferencedRTPlanSequence",
    "ReferencedFrameOfReferenceSequence",
]
_HEADER_TAGS = LINK_TAGS     # the former name (rtqa.batch re-exports it)


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword, None)
    return "" if value is None else str(value).strip()


def read_link_dataset(source: str | bytes):
    """The linking tags (:data:`LINK_TAGS`, no pixel data) of a DICOM file (path) or of
    its encoded bytes: ``(dataset, bare)``. A PS3.10 file is read as such; a data set
    written without the Part 10 header (preamble, 'DICM', File Meta: Elekta Monaco) is
    read when its first element shows the encoding
    (:func:`rtqa.reading.common.bare_encoding`, as ``rtqa check`` reads it), and then
    ``bare`` is True. Raises pydicom's ``InvalidDicomError`` when it is neither, and
    other exceptions when the header cannot be read."""
    import io

    import pydicom
    from pydicom.errors import InvalidDicomError

    from rtqa.reading.common import bare_encoding

    def read(force: bool):
        fh = io.BytesIO(source) if isinstance(source, bytes) else source
        return pydicom.dcmread(fh, stop_before_pixels=True, specific_tags=LINK_TAGS,
                               force=force)

    try:
        return read(False), False
    except InvalidDicomError:
        if isinstance(source, bytes):
            head = source[:132]
        else:
            with open(source, "rb") as fh:
                head = fh.read(132)
        if bare_encoding(head) is None:
            raise
    return read(True), True


def link_fields(ds) -> dict:
    """What links one object to the others of its export, from its header:
    ``kind`` (RTPLAN, RTDOSE, RTSTRUCT, CT, MR, OTHER), ``sop_class``, ``sop_uid``,
    ``patient_id``, ``study_uid``, ``series_uid``, ``frame_uid``, ``label``
    (RTPlanLabel or RTPlanName / StructureSetLabel), ``refs`` (RTPLAN -> RTSTRUCT,
    RTDOSE -> RTPLAN, RTSTRUCT -> CT series) and ``images`` (an RTSTRUCT's contour
    images). Shared by ``rtqa batch`` discovery and ``rtqa serve`` grouping. Raises
    ValueError when a reference sequence is malformed."""
    try:
        return _link_fields(ds)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. pydicom's NotImplementedError for an
        # unknown VR: the file is unreadable, not the whole batch
        raise ValueError(f"unreadable DICOM header ({type(exc).__name__}: {exc})") \
            from None


def _link_fields(ds) -> dict:
    """:func:`link_fields` (which turns any other error into ValueError)."""
    from rtqa.reading.sopclass import KIND
    sop_class = _text(ds, "SOPClassUID")
    kind = KIND.get(sop_class, "OTHER")
    frame, label = _text(ds, "FrameOfReferenceUID"), ""
    refs: list[str] = []
    images: list[str] = []
    try:
        if kind == "RTPLAN":
            label = _text(ds, "RTPlanLabel") or _text(ds, "RTPlanName")
            refs = [_text(i, "ReferencedSOPInstanceUID")
                    for i in ds.get("ReferencedStructureSetSequence", None) or []]
        elif kind == "RTDOSE":
            refs = [_text(i, "ReferencedSOPInstanceUID")
                    for i in ds.get("ReferencedRTPlanSequence", None) or []]
        elif kind == "RTSTRUCT":
            label = _text(ds, "StructureSetLabel")
            for fr in ds.get("ReferencedFrameOfReferenceSequence", None) or []:
                frame = frame or _text(fr, "FrameOfReferenceUID")
                for st in fr.get("RTReferencedStudySequence", None) or []:
                    for se in st.get("RTReferencedSeriesSequence", None) or []:
                        refs.append(_text(se, "SeriesInstanceUID"))
                        images += [_text(im, "ReferencedSOPInstanceUID")
                                   for im in se.get("ContourImageSequence", None) or []]
    except Exception as exc:  # noqa: BLE001 - a malformed sequence
        raise ValueError(f"unreadable DICOM references ({type(exc).__name__}: {exc})") \
            from None
    return {"kind": kind, "sop_class": sop_class, "sop_uid": _text(ds, "SOPInstanceUID"),
            "patient_id": _text(ds, "PatientID"), "study_uid": _text(ds, "StudyInstanceUID"),
            "series_uid": _text(ds, "SeriesInstanceUID"), "frame_uid": frame, "label": label,
            "refs": tuple(dict.fromkeys(r for r in refs if r)),
            "images": tuple(dict.fromkeys(i for i in images if i))}


#: Top-level tags the plain reader takes from an image (CT, MR, ...) and their VRs.
_PLAIN_TAGS = {0x00080016: "UI", 0x00080018: "UI", 0x00100020: "LO", 0x0020000D: "UI",
               0x0020000E: "UI", 0x00200052: "UI"}
#: Where pydicom's ``stop_before_pixels`` stops (``pydicom.filereader._at_pixel_data``).
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
#: Kinds whose links sit in sequences, and those sequences (read with their items).
_NESTED_KINDS = frozenset({"RTPLAN", "RTDOSE", "RTSTRUCT"})
_REF_SEQUENCES = frozenset({0x300C0060, 0x300C0002, 0x30060010})
#: Labels (RTPlanLabel, RTPlanName, StructureSetLabel) and their VRs.
_LABEL_TAGS = {0x300A0002: "SH", 0x300A0003: "LO", 0x30060002: "SH"}
#: Bytes read first; the rest of the file only when the header runs past them.
_PLAIN_HEAD = 1 << 16
_TAG = struct.Struct("<HH").unpack_from
_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from


class _More(Exception):
    """The header runs past the bytes read so far."""


@functools.cache
def _plain_syntaxes() -> tuple[str, frozenset[str]]:
    """(implicit VR little endian, the explicit VR little endian syntaxes pydicom reads
    as such: explicit LE and the encapsulated ones; not deflated, not big endian)."""
    from pydicom import uid
    explicit = frozenset(str(t) for t in uid.AllTransferSyntaxes
                         if t.is_little_endian and not t.is_implicit_VR
                         and not t.is_deflated)
    return str(uid.ImplicitVRLittleEndian), explicit


def _plain_charset(vr: str | None, value: bytes) -> bool:
    """A SpecificCharacterSet value pydicom takes without a correction or an error: CS,
    each value (trailing spaces aside) a DICOM defined term or empty."""
    from pydicom.charset import python_encoding
    if vr not in ("CS", None):
        return False
    try:
        terms = value.rstrip(b" ").decode("ascii").split("\\")
    except UnicodeDecodeError:
        return False
    return all(t == "" or t in python_encoding for t in terms)


def _plain_walk(d: bytes, full: bool) -> dict[int, tuple[str | None, bytes]] | None:
    """The :data:`_PLAIN_TAGS` elements ``{tag: (VR or None, value bytes)}`` of a PS3.10
    file's data set up to its pixel data, when it is plainly encoded; None when it is
    not (see :func:`_plain_header`). ``full``: ``d`` is the whole file, else its head
    (raises :class:`_More` when the walk runs past it)."""
    tag_of, u16, u32 = _TAG, _U16, _U32
    n = len(d)

    def short() -> None:
        if not full:
            raise _More
        return None

    if n < 132 or d[128:132] != b"DICM":
        return short() if n < 132 else None
    pos, syntax = 132, None
    while True:                       # File Meta Information: explicit VR little endian
        if pos + 8 > n:
            return short()
        group, element = tag_of(d, pos)
        if group != 2:
            break
        code = d[pos + 4:pos + 6]
        if code in _LONG_VRS:
            if pos + 12 > n:
                return short()
            length, pos = u32(d, pos + 8)[0], pos + 12
        elif code in _SHORT_VRS:
            length, pos = u16(d, pos + 6)[0], pos + 8
        else:
            return None
        if length == 0xFFFFFFFF:
            return None
        if pos + length > n:
            return short()
        if element == 0x0010:
            if code != b"UI":
                return None
            syntax = plain_text(("UI", d[pos:pos + length]), "UI")
        pos += length
    implicit_syntax, explicit_syntaxes = _plain_syntaxes()
    implicit = syntax == implicit_syntax
    if not implicit and syntax not in explicit_syntaxes:
        return None                   # absent, big endian, deflated, private or unknown
    if group == 0:                    # a command set: read by pydicom
        return None
    if implicit and 0x40 < d[pos + 4] < 0x5B and 0x40 < d[pos + 5] < 0x5B:
        return None                   # looks explicit: pydicom would switch
    found: dict[int, tuple] = {}
    last, nested = -1, False
    while True:
        if pos == n:
            if not full:
                raise _More
            break
        if pos + 8 > n:
            return short()
        group, element = tag_of(d, pos)
        tag = group << 16 | element
        if tag in _PIXEL_TAGS:
            break
        if group == 0xFFFE or tag <= last:
            return None               # a stray delimiter, elements out of order or twice
        last = tag
        if implicit:
            vr, length, pos = None, u32(d, pos + 4)[0], pos + 8
        else:
            code = d[pos + 4:pos + 6]
            if code in _LONG_VRS:
                if pos + 12 > n:
                    return short()
                length, pos = u32(d, pos + 8)[0], pos + 12
            elif code in _SHORT_VRS:
                length, pos = u16(d, pos + 6)[0], pos + 8
            else:
                return None
            vr = _VR_NAMES[code]
        sequence = vr == "SQ" or (vr is None and _is_sequence(tag))
        wanted = nested and tag in _REF_SEQUENCES
        if length == 0xFFFFFFFF:
            if tag in _PLAIN_TAGS or not sequence:
                return None
            try:
                if wanted:
                    items, pos = _tree(d, pos, None, n, implicit)
                    found[tag] = ("SQ", items)
                else:
                    pos = _items(d, pos, None, n, implicit)[1]
            except (_Unusual, struct.error):
                return short()        # past the head, or not plain
            continue
        if length & 1:
            return None
        if pos + length > n:
            return short()
        if tag == 0x00080005 and not _plain_charset(vr, d[pos:pos + length]):
            return None               # pydicom reads it (and may warn or raise)
        if tag in _PLAIN_TAGS or (nested and tag in _LABEL_TAGS):
            found[tag] = (vr, d[pos:pos + length])
            if tag == 0x00080016:
                sop_class = plain_text(found[tag], "UI")
                if not sop_class:
                    return None
                nested = KIND.get(sop_class) in _NESTED_KINDS
        elif wanted:
            if not sequence:
                return None
            try:
                found[tag] = ("SQ", _tree(d, pos, pos + length, pos + length, implicit)[0])
            except (_Unusual, struct.error):
                return None
        pos += length
    return found


def _tree(d: bytes, pos: int, end: int | None, limit: int, implicit: bool):
    """The items of a sequence value from ``pos`` (to ``end``, or to its delimiter when
    ``end`` is None) as ``[{tag: (VR or None, value bytes) or ("SQ", items)}]``, nested
    sequences included, and the position after it; raises ``_Unusual`` on anything
    :mod:`rtqa.reading.raw` would leave to pydicom (same rules as its ``_items``)."""
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
        if length == 0xFFFFFFFF:
            item, pos = _tree_item(d, pos, None, stop, implicit)
        else:
            if pos + length > stop:
                raise _Unusual
            item, pos = _tree_item(d, pos, pos + length, stop, implicit)
        out.append(item)


def _tree_item(d: bytes, pos: int, end: int | None, limit: int, implicit: bool):
    """The elements of one item for :func:`_tree` and the position after it."""
    out: dict = {}
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
            vr, length, pos = None, _U32(d, pos + 4)[0], pos + 8
        else:
            code = d[pos + 4:pos + 6]
            if code in _LONG_VRS:
                if pos + 12 > stop:
                    raise _Unusual
                length, pos = _U32(d, pos + 8)[0], pos + 12
            elif code in _SHORT_VRS:
                length, pos = _U16(d, pos + 6)[0], pos + 8
            else:
                raise _Unusual
            vr = _VR_NAMES[code]
        if tag in out:
            raise _Unusual
        sequence = vr == "SQ" or (vr is None and _is_sequence(tag))
        if length == 0xFFFFFFFF:
            if not sequence:
                raise _Unusual
            items, pos = _tree(d, pos, None, stop, implicit)
            out[tag] = ("SQ", items)
            continue
        if pos + length > stop:
            raise _Unusual
        if sequence:
            out[tag] = ("SQ", _tree(d, pos, pos + length, pos + length, implicit)[0])
        else:
            out[tag] = (vr, d[pos:pos + length])
        pos += length


class _NotPlain(Exception):
    """A value of a reference sequence that pydicom should read."""


def _plain_refs(kind: str, found: dict, frame: str) -> tuple[str, str, tuple[str, ...]]:
    """(frame, label, refs) of an RTPLAN, RTDOSE or RTSTRUCT from its plain elements, as
    :func:`link_fields` gives them; raises :class:`_NotPlain` for a value it cannot
    vouch for."""

    def text(item: dict, tag: int, vr: str = "UI") -> str:
        value = plain_text(item.get(tag), vr)
        if value is None:
            raise _NotPlain
        return value

    def seq(item: dict, tag: int) -> list:
        entry = item.get(tag)
        if entry is None:
            return []
        if entry[0] != "SQ":
            raise _NotPlain
        return entry[1]

    label, refs, images = "", [], []
    if kind == "RTPLAN":
        label = text(found, 0x300A0002, "SH") or text(found, 0x300A0003, "LO")
        refs = [text(i, 0x00081155) for i in seq(found, 0x300C0060)]
    elif kind == "RTDOSE":
        refs = [text(i, 0x00081155) for i in seq(found, 0x300C0002)]
    else:
        label = text(found, 0x30060002, "SH")
        for fr in seq(found, 0x30060010):
            frame = frame or text(fr, 0x00200052)
            for st in seq(fr, 0x30060012):
                for se in seq(st, 0x30060014):
                    refs.append(text(se, 0x0020000E))
                    images += [text(im, 0x00081155) for im in seq(se, 0x30060016)]
    return frame, label, tuple(dict.fromkeys(r for r in refs if r))


def _plain_header(path: str, rel: str) -> Header | None:
    """The :class:`Header` of a plainly encoded file read from its bytes, without
    pydicom; None (read it through pydicom, with its results and errors) unless it is a
    PS3.10 file (preamble, 'DICM', File Meta Information) in implicit or explicit VR
    little endian whose top-level elements up to the pixel data are in ascending order
    with even, in-file lengths, known VRs and undefined lengths only for plainly encoded
    sequences, with a SpecificCharacterSet pydicom takes as it is, and whose linking
    values (:data:`_PLAIN_TAGS`; for an RTPLAN, RTDOSE or RTSTRUCT also its label and
    the items of its reference sequence, read as :mod:`rtqa.reading.raw` reads items)
    are each one value of printable ASCII (:func:`rtqa.reading.raw.plain_text`). Those
    values are then what pydicom gives (:func:`link_fields`); every other file,
    including every file pydicom reports an error for, goes through pydicom."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_PLAIN_HEAD)
            try:
                found = _plain_walk(head, len(head) < _PLAIN_HEAD)
            except _More:
                found = _plain_walk(head + fh.read(), True)
    except (OSError, MemoryError, struct.error, _More):
        return None
    if found is None:
        return None
    values = {tag: plain_text(found.get(tag), vr) for tag, vr in _PLAIN_TAGS.items()}
    if None in values.values() or not values[0x00080016]:
        return None
    kind = KIND.get(values[0x00080016], "OTHER")
    frame, label, refs = values[0x00200052], "", ()
    if kind in _NESTED_KINDS:
        try:
            frame, label, refs = _plain_refs(kind, found, frame)
        except _NotPlain:
            return None
    return Header(path=path, rel=rel or path, kind=kind,
                  sop_instance_uid=values[0x00080018], patient_id=values[0x00100020],
                  frame_uid=frame, series_uid=values[0x0020000E], label=label, refs=refs)


def read_header(path: str, rel: str = "") -> Header | None:
    """The linking header of one file; None when it is not DICOM. Raises ``RtqaError``
    when the file claims to be DICOM (``.dcm`` name or ``DICM`` magic) but its header
    cannot be read. A data set without the Part 10 header is read as ``rtqa check``
    reads it (:func:`read_link_dataset`); when nothing claims it is DICOM it must also
    be whole (:func:`rtqa.reading.completeness.check_complete`), else it only resembled
    a data set and is not DICOM."""
    plain = _plain_header(path, rel)
    if plain is not None:
        return plain
    from pydicom.errors import InvalidDicomError

    try:
        ds, bare = read_link_dataset(path)
        sop_class = _text(ds, "SOPClassUID")
    except InvalidDicomError:
        if looks_like_dicom(path):
            raise RtqaError("not a DICOM file (no DICOM header)", rel or path) from None
        return None
    except (OSError, MemoryError) as exc:
        raise RtqaError(f"cannot be read ({exc})", rel or path) from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on broken files
        if not looks_like_dicom(path):
            return None          # resembled a data set without header, but is none
        raise RtqaError(f"unreadable DICOM header ({type(exc).__name__}: {exc})",
                        rel or path) from None
    if bare and not looks_like_dicom(path):
        from rtqa.reading.completeness import check_complete
        try:
            with open(path, "rb") as fh:
                if check_complete(fh.read()):
                    return None
        except OSError as exc:
            raise RtqaError(f"cannot be read ({exc})", rel or path) from None
    if not sop_class:
        if looks_like_dicom(path):
            raise RtqaError("DICOM file without SOPClassUID", rel or path)
        return None
    try:
        f = link_fields(ds)
    except ValueError as exc:
        raise RtqaError(str(exc), rel or path) from None
    return Header(path=path, rel=rel or path, kind=f["kind"],
                  sop_instance_uid=f["sop_uid"], patient_id=f["patient_id"],
                  frame_uid=f["frame_uid"], series_uid=f["series_uid"], label=f["label"],
                  refs=f["refs"])


def _walk(root: str, exclude: Iterable[str] = (),
          skipped: Callable[[str, str], None] | None = None) -> Iterator[str]:
    """Regular files under ``root`` in a stable order; links and ``exclude`` folders
    (resolved paths) are skipped. ``skipped(folder, why)`` is told of every folder not
    searched: ``"unreadable: REASON"``, ``"depth"`` (below ``MAX_DEPTH`` levels) and
    ``"excluded"``."""
    skip = {os.path.realpath(e) for e in exclude}
    tell = skipped or (lambda _f, _w: None)
    depth0 = root.rstrip(os.sep).count(os.sep)

    def onerror(exc: OSError) -> None:
        where = exc.filename or root
        tell(os.fspath(where), f"unreadable: {exc.strerror or exc}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        kept = []
        for d in sorted(dirnames):
            full = os.path.join(dirpath, d)
            if os.path.realpath(full) in skip:
                tell(full, "excluded")
            elif not os.path.islink(full):
                kept.append(d)
        if dirpath.count(os.sep) - depth0 >= MAX_DEPTH:
            for d in kept:
                tell(os.path.join(dirpath, d), "depth")
            kept = []
        dirnames[:] = kept
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            if not os.path.islink(p) and os.path.isfile(p):
                yield p


def _dicom_files_under(folder: str) -> int:
    """How many files under ``folder`` look like DICOM (name or magic)."""
    n = 0
    for dirpath, _dirs, files in os.walk(folder, followlinks=False):
        n += sum(looks_like_dicom(os.path.join(dirpath, f)) for f in files)
    return n


def _skipped_reason(why: str, folder_abs: str) -> str | None:
    """The ERROR reason of a folder the walk did not search, or None when nothing can
    hide there (an output folder without DICOM files)."""
    if why.startswith("unreadable: "):
        return (f"folder cannot be read ({why.removeprefix('unreadable: ')}): not "
                "searched, it may hide a plan")
    if why == "depth":
        return (f"folder deeper than the scan limit ({MAX_DEPTH} folder levels under "
                "ROOT): not searched, it may hide a plan")
    n = _dicom_files_under(folder_abs)
    if not n:
        return None
    return (f"folder is the output folder (--out) or inside it, so it is not searched, "
            f"but it holds {n} DICOM file(s) that may be a plan: choose an --out "
            "folder outside the plan exports")


def discover(root: str | os.PathLike, *, per_plan: bool = False,
             exclude: Iterable[str] = (),
             progress: Callable[[int], None] | None = None) -> Discovery:
    """Find every plan under ``root`` (see the module docstring for the grouping rule)."""
    root_abs = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root_abs):
        raise RtqaError("is not a folder", root)
    headers: list[Header] = []
    unreadable: list[tuple[str, str, str]] = []   # (abs, rel, reason)
    skipped: list[tuple[str, str]] = []            # (abs folder, why)
    n_files = 0
    for p in _walk(root_abs, exclude, lambda f, why: skipped.append((f, why))):
        n_files += 1
        rel = os.path.relpath(p, root_abs).replace(os.sep, "/")
        try:
            h = read_header(p, rel)
        except RtqaError as exc:
            unreadable.append((p, rel, exc.reason))
            continue
        if h is not None:
            headers.append(h)
        if progress and n_files % 200 == 0:
            progress(n_files)

    # (patient, uid) -> copies; identical copies collapse, differing ones conflict
    copies: dict[tuple[str, str], list[Header]] = {}
    for h in headers:
        copies.setdefault((h.patient_id, h.sop_instance_uid), []).append(h)
    obj: dict[tuple[str, str], Header] = {}
    dup_notes: dict[tuple[str, str], str] = {}
    conflicts: dict[tuple[str, str], str] = {}
    for k, hs in copies.items():
        obj[k] = hs[0]
        if len(hs) > 1:
            digests = {sha256_file(h.path) for h in hs}
            names = ", ".join(h.rel for h in hs)
            if len(digests) == 1:
                dup_notes[k] = (f"identical copies of one {hs[0].kind} ({names}): "
                                f"{hs[0].rel} used")
            else:
                conflicts[k] = (f"different files with the same SOPInstanceUID "
                                f"{k[1]} ({hs[0].kind}): {names}")
    by_kind: dict[str, list[Header]] = {}
    for h in obj.values():
        by_kind.setdefault(h.kind, []).append(h)
    for hs in by_kind.values():
        hs.sort(key=lambda h: h.rel)
    ct_series: dict[tuple[str, str], list[Header]] = {}
    for h in by_kind.get("CT", []):
        ct_series.setdefault((h.patient_id, h.series_uid), []).append(h)
    structs = by_kind.get("RTSTRUCT", [])
    plans = by_kind.get("RTPLAN", [])
    doses = by_kind.get("RTDOSE", [])

    def get(pid: str, uid: str, kind: str) -> Header | None:
        h = obj.get((pid, uid))
        return h if h is not None and h.kind == kind else None

    def struct_for_frame(pid: str, frame: str, folder: str) -> list[Header]:
        cands = [s for s in structs if s.patient_id == pid and s.frame_uid == frame and frame]
        if len(cands) > 1:
            local = [s for s in cands if s.folder == folder]
            if len(local) == 1:
                return local
        return cands

    # anchors: (group key, plan header or None, dose headers, structure sets)
    groups: dict[tuple, dict] = {}
    doses_of_plan: dict[tuple[str, str], list[Header]] = {}
    orphans: list[Header] = []
    for d in doses:
        plan = next((get(d.patient_id, r, "RTPLAN") for r in d.refs
                     if get(d.patient_id, r, "RTPLAN")), None)
        if plan is not None:
            doses_of_plan.setdefault((plan.patient_id, plan.sop_instance_uid), []).append(d)
        else:
            orphans.append(d)

    def group(key: tuple) -> dict:
        return groups.setdefault(key, {"plans": [], "doses": [], "structs": [],
                                       "pid": key[0], "notes": []})

    for p in plans:
        rs = next((get(p.patient_id, r, "RTSTRUCT") for r in p.refs
                   if get(p.patient_id, r, "RTSTRUCT")), None)
        if rs is not None and not per_plan:
            g = group((p.patient_id, "rs", rs.sop_instance_uid))
        else:
            g = group((p.patient_id, "plan", p.sop_instance_uid))
        g["plans"].append(p)
        g["doses"] += doses_of_plan.get((p.patient_id, p.sop_instance_uid), [])
        if rs is not None and rs not in g["structs"]:
            g["structs"].append(rs)
    plans_by_uid: dict[str, list[Header]] = {}
    for p in plans:
        plans_by_uid.setdefault(p.sop_instance_uid, []).append(p)
    for d in orphans:
        cands = struct_for_frame(d.patient_id, d.frame_uid, d.folder)
        elsewhere = [p for r in d.refs for p in plans_by_uid.get(r, [])]
        if len(cands) == 1 and not per_plan:
            g = group((d.patient_id, "rs", cands[0].sop_instance_uid))
        elif d.refs:
            g = group((d.patient_id, "missing-plan", d.refs[0]))
        else:
            g = group((d.patient_id, "dose", d.sop_instance_uid))
        g["doses"].append(d)
        for s in cands:
            if s not in g["structs"]:
                g["structs"].append(s)
        if len(cands) > 1:
            g["notes"].append(f"{d.rel}: no RTPLAN and {len(cands)} RTSTRUCTs in its frame "
                              "of reference: all included (the check reports which to use)")
        for p in elsewhere:
            g["notes"].append(f"{d.rel}: its RTPLAN {p.rel} has another PatientID "
                              f"({p.patient_id!r}, dose {d.patient_id!r}): not linked")

    used: set[str] = set()
    units: list[PlanUnit] = []
    for g in groups.values():
        pid = g["pid"]
        members: list[Header] = list(g["plans"]) + list(g["doses"]) + list(g["structs"])
        series: list[str] = []
        for s in g["structs"]:
            found = [uid for uid in s.refs if (pid, uid) in ct_series]
            if not found:
                same = sorted({k[1] for k, v in ct_series.items()
                               if k[0] == pid and v[0].frame_uid == s.frame_uid and s.frame_uid})
                found = same if len(same) == 1 else []
            series += [u for u in found if u not in series]
        if not g["structs"] and not series and g["doses"]:
            frame = g["doses"][0].frame_uid
            same = sorted({k[1] for k, v in ct_series.items()
                           if k[0] == pid and v[0].frame_uid == frame and frame})
            series = same if len(same) == 1 else []
        for uid in series:
            members += ct_series[(pid, uid)]
        members = sorted(dict.fromkeys(members), key=lambda h: h.rel)
        notes = list(g["notes"])
        problems = []
        for h in members:
            k = (h.patient_id, h.sop_instance_uid)
            if k in dup_notes:
                notes.append(dup_notes[k])
            if k in conflicts:
                problems.append(conflicts[k])
        used.update(h.path for h in members)
        anchors = ([f"plan:{p.sop_instance_uid}" for p in g["plans"]]
                   or [f"dose:{d.sop_instance_uid}" for d in g["doses"]])
        plan_labels = tuple(p.label or "RTPLAN" for p in g["plans"])
        if plan_labels:
            label = "+".join(plan_labels)
        else:
            label = "+".join(os.path.splitext(os.path.basename(d.rel))[0] for d in g["doses"])
        folders = sorted({h.folder or "." for h in (g["plans"] or g["doses"])})
        if len(g["plans"]) > 1:
            notes.append(f"{len(g['plans'])} plans on one RTSTRUCT checked together as one "
                         "course (doses summed as BED); use --per-plan to check them apart")
            if len(folders) > 1:
                notes.append("the plans of this course come from several folders: "
                             + ", ".join(folders))
        key = _hash(pid, *sorted(anchors))
        units.append(PlanUnit(
            key=key, name=f"{_safe(pid, 40)}_{_safe(label, 48)}_{key}", patient_id=pid,
            label=label, plan_labels=plan_labels,
            plan_uids=tuple(p.sop_instance_uid for p in g["plans"]),
            dose_uids=tuple(d.sop_instance_uid for d in g["doses"]),
            rtstruct_uids=tuple(s.sop_instance_uid for s in g["structs"]),
            frame_uid=(g["structs"][0].frame_uid if g["structs"]
                       else (g["plans"] or g["doses"])[0].frame_uid),
            ct_series_uids=tuple(series),
            files=tuple(h.path for h in members), kinds=tuple(h.kind for h in members),
            uids=tuple(h.sop_instance_uid for h in members), folders=tuple(folders),
            notes=tuple(dict.fromkeys(notes)), problem="; ".join(dict.fromkeys(problems))))

    # unreadable DICOM files join the plans of their folder, or stand alone as ERROR
    unassigned: list[dict] = []
    by_folder: dict[str, list[tuple[str, str, str]]] = {}
    for item in unreadable:
        by_folder.setdefault(os.path.dirname(item[1]), []).append(item)
    unit_folders = [{os.path.dirname(_relpath(f, root_abs)) for f in u.files}
                    for u in units] if by_folder else []
    for folder, items in sorted(by_folder.items()):
        idx = [i for i, folders in enumerate(unit_folders) if folder in folders]
        notes = [f"unreadable DICOM file in the plan's folder: {rel} ({why})"
                 for _, rel, why in items]
        if idx:
            for i in idx:
                u = units[i]
                units[i] = replace(u, files=u.files + tuple(a for a, _, _ in items),
                                   kinds=u.kinds + ("unreadable",) * len(items),
                                   uids=u.uids + ("",) * len(items),
                                   notes=u.notes + tuple(notes))
        else:
            key = _hash("unreadable", folder)
            label = "unreadable"
            units.append(PlanUnit(
                key=key, name=f"unreadable_{_safe(folder, 48)}_{key}", patient_id="",
                label=label, files=tuple(a for a, _, _ in items),
                kinds=("unreadable",) * len(items), uids=("",) * len(items),
                folders=(folder or ".",), notes=tuple(notes),
                problem=("DICOM file(s) whose header cannot be read, in a folder with no "
                         "readable plan: they may hide a plan — " + "; ".join(
                             f"{rel}: {why}" for _, rel, why in items))))
    # folders not searched: an ERROR entry each (never a plan lost without notice)
    for folder_abs, why in skipped:
        reason = _skipped_reason(why, folder_abs)
        if reason is None:
            continue
        folder = _relpath(folder_abs, root_abs)
        key = _hash("skipped", folder)
        units.append(PlanUnit(
            key=key, name=f"skipped_{_safe(folder, 48)}_{key}", patient_id="",
            label="folder not searched", folders=(folder or ".",),
            problem=f"{folder}: {reason}"))
    for h in sorted(obj.values(), key=lambda h: h.rel):
        if h.path not in used and h.kind in ("RTSTRUCT", "RTPLAN", "RTDOSE"):
            unassigned.append({"path": h.rel, "kind": h.kind,
                               "reason": "no RTPLAN or RTDOSE of its patient uses it"})
    seen_series = set()
    for (pid, uid), hs in sorted(ct_series.items(), key=lambda kv: kv[1][0].rel):
        if any(h.path not in used for h in hs) and (pid, uid) not in seen_series:
            seen_series.add((pid, uid))
            unassigned.append({"path": hs[0].rel, "kind": "CT",
                               "reason": f"CT series of {len(hs)} slices that no plan uses"})
    units.sort(key=lambda u: (u.patient_id, u.label, u.key))
    return Discovery(root_abs, units, unassigned, n_files, len(headers))
