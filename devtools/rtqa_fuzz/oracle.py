"""The oracle: is the damaged export one that rtqa may pass?

``judge`` compares the content of the damaged export (``content.read_content``: raw
values, read without rtqa) with the pristine sample and classifies the damage:
``unreadable`` (a file cut short or that pydicom cannot parse), ``invalid`` (a value rtqa
uses is missing, malformed, out of range, or the objects no longer fit together: PASS is
never right), ``tolerated`` (contour damage rtqa drops with a warning: PASS only when the
report names it), ``changed`` (a plausible different value) or ``inert`` (nothing
QA-relevant changed: PASS only with the baseline's numbers). The per-object rules are
``_dose_problems``, ``_struct_problems``, ``_plan_problems`` and ``_ct_problems`` (table
``_RULES``); the rules linking the objects are ``_cross_problems``.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .common import FRAME, KIND_OF_CLASS, PATIENT, PLANE_TOL_MM, SOP_CLASS, SOP_UID, T
from .content import Content, _freeze


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


#: The validity rules of each kind of object: (values, checked ROIs) -> (problems that
#: must never pass, checked ROIs with tolerated contour damage).
_RULES = {
    "RTDOSE": lambda v, checked: (_dose_problems(v), set()),
    "RTSTRUCT": _struct_problems,
    "RTPLAN": lambda v, checked: (_plan_problems(v), set()),
    "CT": lambda v, checked: (_ct_problems(v), set()),
}


def _file_problems(c: Content, checked: frozenset) -> tuple[str, list[str], set[str]]:
    """(kind by SOP class, problems, tolerated ROIs) of one readable file; kept on the
    Content (the pristine files are judged once)."""
    memo = c.__dict__.setdefault("_problems", {})
    if checked not in memo:
        kind = KIND_OF_CLASS.get(_text(c.values.get(SOP_CLASS)) or "", "OTHER")
        rule = _RULES.get(kind)
        pr, tol = rule(c.values, set(checked)) if rule else ([], set())
        memo[checked] = (kind, pr, tol)
    return memo[checked]


#: UID links between the objects: (kind, its reference sequence, the kind referenced).
_LINKS = (("RTDOSE", T(0x300C, 0x02), "RTPLAN"), ("RTPLAN", T(0x300C, 0x60), "RTSTRUCT"))


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
    for kind, seq, target in _LINKS:
        uids = {_text(v.get(SOP_UID)) for _, v in by_kind.get(target, [])}
        for _, v in by_kind.get(kind, []):
            for r in v.get(seq, ()):
                if _text(r.get(T(8, 0x1155))) not in uids:
                    p.append(f"{kind} references an {target} not in the export")
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
