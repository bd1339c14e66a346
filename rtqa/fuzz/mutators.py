"""Mutations: random damage to the files of a sample export.

``Mutator.mutate`` picks a file and an operation and applies it: byte-level damage
(truncation, bit flips, zeroed runs, pixel damage), element-level edits (deletion,
numeric values, contours, ROIs, UIDs and codes) and file-level changes (a file removed
or duplicated). Case *i* of seed *s* is defined by what these functions draw from
``rng`` and in which order: a refactoring must not change either.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from .common import (CT_IMAGE, RT_DOSE, RT_PLAN, RT_STRUCT, T, _kw, _raw_text, _read_ds,
                     _set_raw, _write_ds, lenient_pydicom)
from .content import _SPEC


@dataclass
class Mutation:
    file: str
    op: str
    detail: str


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


def _uid(rng: random.Random) -> str:
    return "2.25." + str(rng.getrandbits(120))


def _roi_name(ds, rc) -> str:
    ref = str(rc.get("ReferencedROINumber", "?"))
    for r in ds.StructureSetROISequence:
        if str(r.get("ROINumber", "")) == ref:
            return str(r.get("ROIName", ""))
    return f"#{ref}"
