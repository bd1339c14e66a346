"""RTSTRUCT → structures as planar polygons in patient coordinates (mm).

* ROIs are linked by ROINumber across StructureSetROISequence, ROIContourSequence and
  RTROIObservationsSequence (never by position in the sequences).
* CLOSED_PLANAR contours carry volume; POINT and OPEN_PLANAR contours do not (they are
  kept as points / counted, for markers and reports).
* Several contours on one plane are combined with the even-odd rule downstream (an inner
  contour is a hole; keyhole contours also work).
* A closed contour with fewer than 3 points, or whose points do not lie in one axial plane,
  is dropped with a warning naming the ROI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.tag import Tag

from rtqa.errors import DicomInputError
from rtqa import _native
from rtqa.reading import raw as _raw
from rtqa.reading.common import MAX_COORDINATE_MM, read_dataset, reader, text, whole

_CONTOUR_DATA = Tag(0x3006, 0x0050)
_CONTOUR_SEQUENCE = 0x30060040
_GEOMETRIC_TYPE = 0x30060042
_CONTOUR_TAGS = (_GEOMETRIC_TYPE, 0x30060050)
#: A step between contour planes larger than this multiple of the ROI's median plane
#: spacing is a gap (planes missing inside the ROI's extent).
GAP_FACTOR = 1.5
#: Contour points within this distance (mm) in z belong to one plane.
PLANE_TOL_MM = 0.01
#: Refuse structure sets with more contour points than this (a clinical one has a few
#: million at most); override with the environment variable RTQA_MAX_CONTOUR_POINTS.
MAX_CONTOUR_POINTS = int(os.environ.get("RTQA_MAX_CONTOUR_POINTS", 50_000_000))


@dataclass(frozen=True, eq=False)
class Structure:
    """One ROI. ``planes`` is a z-sorted tuple of (z_mm, polygons), each polygon an (N, 2)
    float array of x, y in mm (implicitly closed)."""

    roi_number: int
    name: str
    interpreted_type: str
    planes: tuple[tuple[float, tuple[np.ndarray, ...]], ...]
    points: np.ndarray  # (M, 3) POINT contour coordinates, mm
    n_open_contours: int = 0
    warnings: tuple[str, ...] = ()
    #: OPEN_PLANAR / OPEN_NONPLANAR contour points, (N, 3) mm each (no volume).
    open_contours: tuple[np.ndarray, ...] = ()

    @property
    def has_volume(self) -> bool:
        return len(self.planes) > 0

    @property
    def z_planes(self) -> np.ndarray:
        return np.array([z for z, _ in self.planes], dtype=float)

    def gaps(self, factor: float = GAP_FACTOR) -> tuple[tuple[float, float, int], ...]:
        """Planes missing inside the ROI's z extent: (z below, z above, planes missing) for
        every step between consecutive contour planes larger than ``factor`` x the ROI's
        usual (median) plane spacing, where the contours on both sides overlap in x-y (a
        step between parts that do not overlap, two lesions in one ROI, is no gap)."""
        zs = self.z_planes
        if zs.size < 3:
            return ()
        steps = np.diff(zs)
        usual = float(np.median(steps))
        if not usual > 0:
            return ()
        big = np.flatnonzero(steps > factor * usual)
        out = []
        for k in big:
            # contours on both sides of the step that overlap in x-y: the same object goes
            # on (a gap); no overlap: separate parts of one ROI (two lesions in one PTV)
            a = np.concatenate(self.planes[k][1])
            b = np.concatenate(self.planes[k + 1][1])
            if (a[:, 0].max() < b[:, 0].min() or b[:, 0].max() < a[:, 0].min()
                    or a[:, 1].max() < b[:, 1].min() or b[:, 1].max() < a[:, 1].min()):
                continue
            out.append((float(zs[k]), float(zs[k + 1]),
                        max(1, int(round(steps[k] / usual)) - 1)))
        return tuple(out)


@dataclass(frozen=True, eq=False)
class StructureSet:
    path: Path
    sop_instance_uid: str
    frame_of_reference_uid: str
    patient_id: str
    label: str
    referenced_series_uids: tuple[str, ...]
    structures: tuple[Structure, ...]

    def by_name(self, name: str) -> Structure | None:
        for s in self.structures:
            if s.name == name:
                return s
        return None


def _parse_floats(raw) -> np.ndarray:
    value = raw.value if hasattr(raw, "value") else raw
    if value is None:
        return np.empty(0)
    if isinstance(value, bytes):
        try:  # one value per backslash-separated token (the common case, ~30% faster)
            return np.array(value.split(b"\\"), dtype=np.float64)
        except ValueError:  # empty tokens or inner spaces: split on both, as always
            return np.array(value.replace(b"\\", b" ").split(), dtype=np.float64)
    if isinstance(value, (int, float)):
        return np.array([float(value)])
    return np.asarray([float(v) for v in value], dtype=np.float64)


_DIGITS_MAX = 15  # a mantissa of at most 15 digits is an exact float64 integer (< 2**53)
_POW10 = 10.0 ** np.arange(23)  # exact in float64 up to 1e22
_CLASS = np.zeros(256, dtype=np.uint8)  # character classes of a plain decimal list
_CLASS[48:58], _CLASS[92], _CLASS[46], _CLASS[[43, 45]] = 1, 2, 3, 4


#: Bytes of ContourData parsed per vectorised pass (its temporaries are ~30x this).
_PARSE_CHUNK = 1 << 18


def parse_decimals(values: list[bytes]) -> list[np.ndarray] | None:
    """:func:`_parse_decimals` over runs of ``values`` of about ``_PARSE_CHUNK`` bytes,
    so that its temporary arrays stay small whatever the structure set's size."""
    flat = parse_flat(values)
    if flat is None:
        return None
    out, counts = flat
    return np.split(out, np.cumsum(counts)[:-1]) if len(values) else []


def parse_flat(values: list[bytes]) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`parse_decimals` as (every value of every item in order, number of values
    of each item)."""
    outs: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    start, size = 0, 0
    for k, v in enumerate(values):
        size += len(v)
        if size >= _PARSE_CHUNK or k == len(values) - 1:
            part = _parse_decimals(values[start:k + 1])
            if part is None:
                return None
            outs.append(part[0])
            counts.append(part[1])
            start, size = k + 1, 0
    if not outs:
        return np.empty(0), np.zeros(0, dtype=np.intp)
    if len(outs) == 1:
        return outs[0], counts[0]
    return np.concatenate(outs), np.concatenate(counts)


def _parse_decimals(values: list[bytes]) -> tuple[np.ndarray, np.ndarray] | None:
    """Every backslash-separated decimal in each of ``values`` (DS byte strings, e.g.
    ContourData), parsed in one vectorised pass over all of them: the same float64 values,
    bit for bit, as ``float(token)``, all in one array, and the number of values of each
    of ``values``. None when any token is not a plain decimal
    (``[+-]digits[.digits]``, at most 15 digits, nothing else, not empty): the caller
    then parses token by token.

    Exactness: a mantissa ``m`` of at most 15 digits and ``k`` <= 22 fraction digits are
    exact float64 values, so ``m / 10**k`` is the correctly rounded value of the
    decimal, as ``float`` gives (IEEE 754 division rounds correctly)."""
    if not values:
        return np.empty(0), np.zeros(0, dtype=np.intp)
    c = _native.load("rtqa.reading._cdecimal")
    if c is not None:  # the same values and the same None cases, compiled
        counts = np.fromiter((v.count(b"\\") + 1 for v in values), dtype=np.intp,
                             count=len(values))
        out = np.empty(int(counts.sum()))
        return (out, counts) if c.parse(list(values), out) else None
    stripped = [v.strip(b" \x00") for v in values]
    b = np.frombuffer(b"\\".join(stripped), dtype=np.uint8)
    cls = _CLASS[b]  # 0 other, 1 digit, 2 backslash, 3 dot, 4 sign
    if not cls.all():
        return None
    digit = cls == 1
    cuts = np.flatnonzero(cls == 2)
    starts = np.concatenate(([0], cuts + 1))
    ends = np.concatenate((cuts, [b.size]))
    if np.any(ends <= starts):  # an empty token
        return None
    signs = np.flatnonzero(cls == 4)
    if signs.size and not np.all((signs == 0) | (b[signs - 1] == 92)):  # a sign only first
        return None
    cd = np.cumsum(digit, dtype=np.int32)
    cd_end = cd[ends - 1]
    n_digits = np.diff(np.concatenate(([0], cd_end)))
    if n_digits.min() < 1 or n_digits.max() > _DIGITS_MAX:
        return None
    # digits in order: the k-th digit (cd = k + 1) belongs to token t, with
    # cd_end[t] - cd digits after it in its token
    t = np.repeat(np.arange(starts.size), n_digits)
    right = np.repeat(cd_end, n_digits) - np.arange(1, int(cd_end[-1]) + 1, dtype=np.int32)
    dots = np.flatnonzero(cls == 3)
    td = np.searchsorted(cuts, dots)
    if td.size > 1 and np.any(td[1:] == td[:-1]):  # two dots in one token
        return None
    mantissa = np.bincount(t, weights=(b[digit] - 48) * _POW10[right], minlength=starts.size)
    frac = np.zeros(starts.size, dtype=np.intp)
    frac[td] = cd_end[td] - cd[dots]
    out = mantissa / _POW10[frac]
    negative = np.flatnonzero(b[starts] == 45)
    out[negative] = -out[negative]
    counts = np.fromiter((v.count(b"\\") + 1 for v in stripped), dtype=np.intp,
                         count=len(stripped))
    return out, counts


class _RawContour:
    """One ContourSequence item read by :func:`_raw_contours`: its ContourGeometricType
    (as ``text(item, ...)`` gives it) and its ContourData value bytes."""

    __slots__ = ("gtype", "data")

    def __init__(self, gtype: str, data: bytes):
        self.gtype, self.data = gtype, data


def _raw_contours(rc) -> list[_RawContour] | None:
    """The ContourSequence items of one ROIContourSequence item without pydicom's
    data sets and value conversions (``rtqa.reading.raw``); None unless every item is
    plain: a one-valued ContourGeometricType of [A-Z0-9_ ] (or none) and a non-empty
    ContourData (pydicom then reads the sequence as before, with its errors)."""
    found = _raw.items(rc.get_item(_CONTOUR_SEQUENCE, keep_deferred=True), _CONTOUR_TAGS)
    if found is None:
        return None
    out = []
    for item in found:
        gtype = _raw.plain_cs(item.get(_GEOMETRIC_TYPE))
        data = item.get(0x30060050)
        if gtype is None or data is None or data[0] not in ("DS", None) or not data[1]:
            return None
        out.append(_RawContour(gtype, data[1]))
    return out


def _contour_points(item, path: Path, roi_name: str, parsed: np.ndarray | None = None
                    ) -> np.ndarray:
    """The (N, 3) points of one contour item (``parsed``: its ContourData values when
    they were parsed already, by :func:`parse_decimals`)."""
    if isinstance(item, _RawContour):
        raw = item.data
    else:
        raw = item.get_item(_CONTOUR_DATA) if _CONTOUR_DATA in item else None
    if raw is None:
        raise DicomInputError(f"ROI '{roi_name}': contour without ContourData", path)
    try:
        pts = parsed if parsed is not None else _parse_floats(raw)
    except ValueError:
        raise DicomInputError(f"ROI '{roi_name}': ContourData is not numeric", path) from None
    if pts.size % 3:
        raise DicomInputError(f"ROI '{roi_name}': ContourData length {pts.size} is not a "
                              "multiple of 3", path)
    if not np.all(np.isfinite(pts)):
        raise DicomInputError(f"ROI '{roi_name}': ContourData has non-finite values", path)
    if pts.size and float(np.max(np.abs(pts))) > MAX_COORDINATE_MM:
        raise DicomInputError(f"ROI '{roi_name}': ContourData coordinate "
                              f"{float(np.max(np.abs(pts))):.4g} mm is beyond "
                              f"+/-{MAX_COORDINATE_MM:g} mm (corrupt value)", path)
    return pts.reshape(-1, 3)


def _group_planes(polys: list[tuple[float, np.ndarray]]):
    if not polys:
        return ()
    polys.sort(key=lambda p: p[0])
    planes: list[tuple[float, list[np.ndarray]]] = []
    for z, xy in polys:
        if planes and abs(z - planes[-1][0]) <= PLANE_TOL_MM:
            planes[-1][1].append(xy)
        else:
            planes.append((z, [xy]))
    return tuple((float(z), tuple(p)) for z, p in planes)


def _parse_all(items: dict[int, list]) -> tuple[np.ndarray, np.ndarray] | None:
    """ContourData of every contour item (by ROI number, in item order) parsed by
    :func:`parse_flat` in one pass: (all values, number of values of each contour); None
    when any is missing, not a byte string or not plain decimals (each contour is then
    parsed on its own, reporting its ROI)."""
    raw: list[bytes] = []
    for contour_items in items.values():
        for item in contour_items:
            if isinstance(item, _RawContour):
                raw.append(item.data)
                continue
            elem = item.get_item(_CONTOUR_DATA) if _CONTOUR_DATA in item else None
            value = getattr(elem, "value", None)
            if not isinstance(value, bytes):
                return None
            raw.append(value)
    return parse_flat(raw)


class _Points:
    """The points of every contour at once (all values of :func:`_parse_all`), when every
    contour passes :func:`_contour_points`'s checks and the total is within
    ``MAX_CONTOUR_POINTS`` (:meth:`of` gives None otherwise: each contour is then checked
    on its own, and the first problem reported as before). Contour ``i`` is rows
    ``start[i]:end[i]`` of ``pts``; its z spread (``np.ptp``) is computed for all at once."""

    def __init__(self, values: np.ndarray, counts: np.ndarray):
        self.pts = values.reshape(-1, 3)
        n = counts // 3
        end = np.cumsum(n)
        self.start, self.end = (end - n).tolist(), end.tolist()
        self.z = np.ascontiguousarray(self.pts[:, 2])
        self.xy = np.ascontiguousarray(self.pts[:, :2])
        if n.size:
            first = end - n
            self.spread = (np.maximum.reduceat(self.z, first)
                           - np.minimum.reduceat(self.z, first)).tolist()
        else:
            self.spread = []

    @classmethod
    def of(cls, parsed: tuple[np.ndarray, np.ndarray] | None) -> "_Points | None":
        if parsed is None:
            return None
        values, counts = parsed
        if counts.size and (counts.min() < 3 or np.any(counts % 3)):
            return None
        if values.size and not (np.isfinite(values).all()
                                and max(float(values.max()), -float(values.min()))
                                <= MAX_COORDINATE_MM):
            return None
        if values.size // 3 > MAX_CONTOUR_POINTS:
            return None
        return cls(values, counts)

    def mean_z(self, i: int) -> float:
        """``float(np.mean(pts[:, 2]))`` of contour ``i``, bit for bit (the same sum)."""
        s, e = self.start[i], self.end[i]
        return float(np.add.reduce(self.z[s:e]) / (e - s))


@reader("RTSTRUCT")
def read_structure_set(path: Path, dataset=None) -> StructureSet:
    """One RTSTRUCT. ``dataset``: the file already parsed (by the scan), else it is read."""
    ds = dataset if dataset is not None else read_dataset(path)
    for keyword in ("StructureSetROISequence", "ROIContourSequence",
                    "RTROIObservationsSequence"):
        if keyword not in ds:
            raise DicomInputError(f"missing required {keyword} (incomplete RTSTRUCT?)", path)
    names: dict[int, str] = {}
    for roi in ds.get("StructureSetROISequence", []) or []:
        if "ROINumber" not in roi:
            raise DicomInputError("StructureSetROISequence item without ROINumber", path)
        number = whole(roi, "ROINumber", path)
        if number in names:
            raise DicomInputError(f"ROINumber {number} is used by two ROIs ('{names[number]}' "
                                  f"and '{text(roi, 'ROIName')}'): ROIs cannot be told apart",
                                  path)
        name = text(roi, "ROIName") or f"ROI {number}"
        if name in names.values():
            raise DicomInputError(f"two ROIs are named '{name}' (ROINumber "
                                  f"{next(k for k, v in names.items() if v == name)} and "
                                  f"{number}): which one is meant cannot be told", path)
        names[number] = name
    types: dict[int, str] = {}
    for obs in ds.get("RTROIObservationsSequence", []) or []:
        if "ReferencedROINumber" in obs:
            types[whole(obs, "ReferencedROINumber", path)] = \
                text(obs, "RTROIInterpretedType").upper()
    contours: dict[int, object] = {}
    for rc in ds.get("ROIContourSequence", []) or []:
        if "ReferencedROINumber" not in rc:
            raise DicomInputError("ROIContourSequence item without ReferencedROINumber", path)
        number = whole(rc, "ReferencedROINumber", path)
        if number not in names:
            raise DicomInputError(f"ROIContourSequence has contours for ROI number {number}, "
                                  "which StructureSetROISequence does not define: whose "
                                  "contours are they?", path)
        if number in contours:
            raise DicomInputError(f"ROIContourSequence has two items for ROI number {number} "
                                  f"('{names[number]}')", path)
        contours[number] = rc

    # the contour items: raw (no pydicom data sets) when every one is plain, else read
    # through pydicom; every contour's ContourData parsed in one pass (per contour when
    # one is unusual)
    items: dict[int, list] = {}
    for number in names:
        rc = contours.get(number)
        found = _raw_contours(rc) if rc is not None else []
        if found is None:
            items = {number: list((rc.get("ContourSequence", []) or []) if rc is not None
                                  else [])
                     for number, rc in ((n, contours.get(n)) for n in names)}
            break
        items[number] = found
    parsed = _parse_all(items)
    every = _Points.of(parsed)  # all contours at once, when none has a problem
    if every is None and parsed is not None:  # split per contour (checked one by one)
        values, counts = parsed
        split = np.split(values, np.cumsum(counts)[:-1]) if counts.size else []
        parsed, k = {}, 0
        for number, contour_items in items.items():
            parsed[number] = split[k:k + len(contour_items)]
            k += len(contour_items)

    structures = []
    total_points = 0
    i = -1  # the contour's index over all ROIs
    for number, name in names.items():
        warnings: list[str] = []
        polys: list[tuple[float, np.ndarray]] = []
        points: list[np.ndarray] = []
        n_open = 0
        open_pts: list[np.ndarray] = []
        for k, item in enumerate(items[number]):
            i += 1
            gtype = item.gtype if isinstance(item, _RawContour) else \
                text(item, "ContourGeometricType").upper()
            if every is not None:
                pts = every.pts[every.start[i]:every.end[i]]
            else:
                pts = _contour_points(item, path, name,
                                      parsed[number][k] if parsed is not None else None)
                total_points += len(pts)
                if total_points > MAX_CONTOUR_POINTS:
                    raise DicomInputError(f"more than {MAX_CONTOUR_POINTS} contour points: "
                                          "far larger than any clinical structure set (set "
                                          "RTQA_MAX_CONTOUR_POINTS to raise the limit)", path)
            if gtype == "POINT":
                points.append(pts)
                continue
            if gtype == "OPEN_PLANAR" or gtype == "OPEN_NONPLANAR":
                n_open += 1
                if len(pts):
                    open_pts.append(pts)
                continue
            if gtype != "CLOSED_PLANAR":
                warnings.append(f"contour of type '{gtype or 'missing'}' ignored")
                continue
            if len(pts) < 3:
                warnings.append(f"closed contour with {len(pts)} point(s) at z="
                                f"{pts[0, 2] if len(pts) else float('nan'):.2f} mm ignored")
                continue
            zr = every.spread[i] if every is not None else float(np.ptp(pts[:, 2]))
            if zr > PLANE_TOL_MM:
                warnings.append(f"contour not in one axial plane (z spread {zr:.2f} mm) "
                                "ignored")
                continue
            if every is not None:
                polys.append((every.mean_z(i), every.xy[every.start[i]:every.end[i]]))
            else:
                polys.append((float(np.mean(pts[:, 2])), np.ascontiguousarray(pts[:, :2])))
        structures.append(Structure(
            roi_number=number, name=name, interpreted_type=types.get(number, ""),
            planes=_group_planes(polys),
            points=np.concatenate(points) if points else np.empty((0, 3)),
            n_open_contours=n_open, warnings=tuple(warnings),
            open_contours=tuple(open_pts)))

    series: list[str] = []
    frame = ""
    for fr in ds.get("ReferencedFrameOfReferenceSequence", []) or []:
        frame = frame or text(fr, "FrameOfReferenceUID")
        for st in fr.get("RTReferencedStudySequence", []) or []:
            for se in st.get("RTReferencedSeriesSequence", []) or []:
                uid = text(se, "SeriesInstanceUID")
                if not uid:  # Type 1: which CT the contours were drawn on is unknown
                    raise DicomInputError("RTReferencedSeriesSequence item without "
                                          "SeriesInstanceUID", path)
                series.append(uid)
    return StructureSet(
        path=path, sop_instance_uid=text(ds, "SOPInstanceUID"),
        frame_of_reference_uid=frame or text(ds, "FrameOfReferenceUID"),
        patient_id=text(ds, "PatientID"),
        label=text(ds, "StructureSetLabel"),
        referenced_series_uids=tuple(series), structures=tuple(structures))
