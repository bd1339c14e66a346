"""Element-level mutations: edits of decoded DICOM objects (via pydicom, validation off).

Each edit is a function ``(rng, name, kind, data, current) -> (new bytes, detail)``; it
raises ``_Skip`` when the chosen element is not there. What each one may change is in
the tables below (numeric attributes, replacement values, UID links), so that adding a
value or an attribute does not mean another branch. The order in which an edit draws
from ``rng`` is part of the definition of a case (case *i* of seed *s* must stay the
same case): keep it when editing.
"""

from __future__ import annotations

import random

import numpy as np

from .common import (CT_IMAGE, RT_DOSE, RT_PLAN, RT_STRUCT, SOP_CLASS, T, _kw, _raw_text,
                     _read_ds, _set_raw, _write_ds)
from .content import _SPEC


class _Skip(Exception):
    """The edit does not apply to this file (the case records a no-op)."""


_BAD_NUMBERS = ["NaN", "Inf", "-Inf", "0", "-1", "1e6", "1e-30", "", "abc", "1\\2", "-0",
                "1e308", "3.0e", "99999999999999999999"]

#: Numeric attributes of each object worth corrupting (tag, VR).
_NUMERIC = {
    "RTDOSE": [(T(0x3004, 0xE), "DS"), (T(0x3004, 0xC), "DS"), (T(0x20, 0x32), "DS"),
               (T(0x28, 0x30), "DS"), (T(0x20, 0x37), "DS"), (T(0x28, 0x8), "IS")],
    "CT": [(T(0x20, 0x32), "DS"), (T(0x28, 0x30), "DS"), (T(0x20, 0x37), "DS"),
           (T(0x18, 0x50), "DS")],
}

#: Plan values replaced outright, half of the time, by one of these (otherwise corrupted
#: by ``_corrupt_text``): NumberOfFractionsPlanned.
_WHOLE_VALUES = {T(0x300A, 0x78): ["1", "3", "4", "6", "8", "10", "30", "0", "-5", "2.5", ""]}

#: Multipliers and offsets of a plausible change of a number.
_FACTORS = [1.001, 0.999, 1.01, 0.99, 1.1, 0.9, 2.0, 0.5, -1.0, 10.0]
_OFFSETS = [0.0, 0.5, -3.0, 3.0, 100.0]


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
        f = rng.choice(_FACTORS)
        dx = rng.choice(_OFFSETS)
        parts[i] = f"{x * f + dx:.6g}"
        return "\\".join(parts), f"value {i} -> {parts[i]} (plausible change)"
    return rng.choice(_BAD_NUMBERS), "whole value replaced"


def _corrupt_element(rng, ds, parent, tag: int, vr: str):
    """Corrupt the DS/IS element ``tag`` of ``parent`` (an item of ``ds``, or ``ds``)."""
    if tag not in parent:
        raise _Skip("attribute absent")
    old = _raw_text(parent, tag)
    whole = _WHOLE_VALUES.get(tag)
    if whole is not None and rng.random() < 0.5:
        new = rng.choice(whole)
        detail = f"'{new}'"
    else:
        new, detail = _corrupt_text(rng, old)
    _set_raw(parent, tag, vr, new)
    return _write_ds(ds), f"{_kw(tag)}: {detail}"


# --- deletion --------------------------------------------------------------------------

_RELEVANT_TAGS = {t for spec in _SPEC.values() for t in spec} | {
    T(0x3006, 0x50), T(0x3006, 0x42), T(0x3006, 0x84), T(0x3006, 0x22), T(0x3006, 0x26),
    T(0x300A, 0x78), T(0x300A, 0x26), T(0x300A, 0x84), T(0x3006, 0xA4), T(8, 0x1155),
    T(0x0020, 0x000E), T(0x3006, 0x40)}


def _spec_sequences(spec: dict) -> set[int]:
    return {t for t, sub in spec.items() if sub is not None} | {
        x for sub in spec.values() if sub is not None for x in _spec_sequences(sub)}


_SEQ_TAGS = {t for spec in _SPEC.values() for t in _spec_sequences(spec)} | {T(0x3006, 0x40)}


def delete_element(rng, name, kind, data, current):
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


# --- numeric values --------------------------------------------------------------------

def corrupt_value(rng, name, kind, data, current):
    """A numeric attribute of RTDOSE or CT (``_NUMERIC``); for RTSTRUCT a contour, for
    RTPLAN a plan value."""
    ds = _read_ds(data)
    if kind in _NUMERIC:
        tag, vr = rng.choice(_NUMERIC[kind])
        return _corrupt_element(rng, ds, ds, tag, vr)
    if kind == "RTSTRUCT":
        return contour(rng, name, kind, data, current)
    return plan_value(rng, name, kind, data, current)


def plan_value(rng, name, kind, data, current):
    """NumberOfFractionsPlanned, a BeamDose, a TargetPrescriptionDose or the ROI number a
    prescription references."""
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
    return _corrupt_element(rng, ds, parent, tag, vr)


# --- contours and ROIs ----------------------------------------------------------------

def contour(rng, name, kind, data, current):
    """One contour of one ROI: its points corrupted, moved, dropped or shifted, or its
    geometric type changed."""
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
        k = rng.choice([1, 2, 3, 5, 6])
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


def roi(rng, name, kind, data, current):
    """An ROI's name, number, contour reference or interpreted type."""
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


# --- identifiers, links and codes ------------------------------------------------------

#: What ``edit_ids`` may change in any object, and in addition per kind: a tag, or the
#: name of a UID link in ``_UID_LINKS``.
_ID_EDITS = [T(0x10, 0x20), T(0x20, 0x52), T(8, 0x18), SOP_CLASS]
_KIND_ID_EDITS = {
    "RTDOSE": ["plan_ref", T(0x3004, 0x2), T(0x3004, 0x4), T(0x3004, 0xA)],
    "RTPLAN": ["ss_ref", T(0x300E, 0x2)],
    "RTSTRUCT": ["ss_frame", "ss_series"],
    "CT": [T(0x20, 0xE)],
}
#: UID links inside sequences: name -> the sequences (first item of each) and the UID.
_UID_LINKS = {
    "plan_ref": ("ReferencedRTPlanSequence", "ReferencedSOPInstanceUID"),
    "ss_ref": ("ReferencedStructureSetSequence", "ReferencedSOPInstanceUID"),
    "ss_frame": ("ReferencedFrameOfReferenceSequence", "FrameOfReferenceUID"),
    "ss_series": ("ReferencedFrameOfReferenceSequence", "RTReferencedStudySequence",
                  "RTReferencedSeriesSequence", "SeriesInstanceUID"),
}
#: Coded strings (DoseUnits, DoseType, DoseSummationType, ApprovalStatus) and the values
#: they may get.
_CODES = (T(0x3004, 0x2), T(0x3004, 0x4), T(0x3004, 0xA), T(0x300E, 0x2))
_CODE_VALUES = ["GY", "RELATIVE", "PHYSICAL", "EFFECTIVE", "ERROR", "PLAN", "FRACTION",
                "BEAM", "MULTI_PLAN", "BRACHY", "UNAPPROVED", "REJECTED", "APPROVED", "",
                "gy"]
_SOP_CLASSES = [RT_DOSE, RT_STRUCT, RT_PLAN, CT_IMAGE, "1.2.840.10008.5.1.4.1.1.7"]


def edit_ids(rng, name, kind, data, current):
    """A patient ID, UID, UID link, SOP class or coded string changed."""
    ds = _read_ds(data)
    what = rng.choice(_ID_EDITS + _KIND_ID_EDITS.get(kind, []))
    if what in _UID_LINKS:
        uid = _uid(rng)  # drawn before the sequences are looked up (they may be gone)
        *path, attr = _UID_LINKS[what]
        item = ds
        for seq in path:
            item = getattr(item, seq)[0]
        setattr(item, attr, uid)
    elif what == T(0x10, 0x20):
        ds.PatientID = rng.choice(["OTHER-1", "", str(ds.PatientID) + " "])
    elif what in _CODES:
        value = rng.choice(_CODE_VALUES)
        _set_raw(ds, what, "CS", value)
        return _write_ds(ds), f"{_kw(what)} -> {value!r}"
    elif what == SOP_CLASS:
        _set_raw(ds, what, "UI", rng.choice(_SOP_CLASSES))
    else:
        _set_raw(ds, what, "UI", _uid(rng))
    return _write_ds(ds), f"{what if isinstance(what, str) else _kw(what)} changed"


def _uid(rng: random.Random) -> str:
    return "2.25." + str(rng.getrandbits(120))


def _roi_name(ds, rc) -> str:
    ref = str(rc.get("ReferencedROINumber", "?"))
    for r in ds.StructureSetROISequence:
        if str(r.get("ROINumber", "")) == ref:
            return str(r.get("ROIName", ""))
    return f"#{ref}"
