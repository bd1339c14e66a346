"""Planning CT series: slice positions and pixel size, from headers only (mm).

The true slice spacing is the difference of ImagePositionPatient z between neighbouring
slices, not SliceThickness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtqa.errors import DicomInputError
from rtqa.reading import raw as _raw
from rtqa.reading.common import MAX_COORDINATE_MM, floats, read_dataset, reader, required, text

#: A CT pixel larger than this (mm) is a corrupt PixelSpacing.
MAX_PIXEL_MM = 50.0


@dataclass(frozen=True, eq=False)
class CTSeries:
    series_instance_uid: str
    frame_of_reference_uid: str
    patient_id: str
    paths: tuple[Path, ...]
    z: np.ndarray  # sorted slice positions, mm
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing), mm; the largest seen
    slice_thickness: float | None
    axial: bool = True  # every slice axial (rows/columns along patient x/y)
    #: (x min, x max, y min, y max) mm covered by the images (pixel edges, union of the
    #: slices); None when unknown (Rows/Columns absent, not axial).
    xy_bounds: tuple[float, float, float, float] | None = None

    @property
    def slice_spacings(self) -> np.ndarray:
        return np.diff(self.z)


@dataclass(frozen=True)
class _Slice:
    path: Path
    series: str
    frame: str
    patient: str
    z: float
    spacing: tuple[float, float]
    thickness: float | None
    axial: bool
    xy_bounds: tuple[float, float, float, float] | None = None


@reader("CT image")
def read_ct_slice(path: Path, dataset=None) -> _Slice:
    """The header of one CT slice. ImagePositionPatient, ImageOrientationPatient and
    PixelSpacing are Type 1 (Image Plane module): a slice without them is refused, never
    placed at a default position. ``dataset``: the file's header already parsed (by the
    scan), else the file is read."""
    ds = dataset if dataset is not None else read_dataset(path, stop_before_pixels=True)
    src = _plain_header(ds) or _Pydicom(ds, path)  # values read in the order checked
    ipp = src.ipp()
    if max(abs(v) for v in ipp) > MAX_COORDINATE_MM:
        raise DicomInputError(f"ImagePositionPatient {ipp} is beyond +/-{MAX_COORDINATE_MM:g} "
                              "mm (corrupt value)", path)
    ps = src.ps()
    if not (0 < ps[0] <= MAX_PIXEL_MM and 0 < ps[1] <= MAX_PIXEL_MM):
        raise DicomInputError(f"PixelSpacing {ps} mm is not a CT pixel size", path)
    iop = src.iop()
    row, col = np.asarray(iop[:3]), np.asarray(iop[3:])
    if max(abs(x) for x in iop) > 1.001 or abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3 \
            or abs(float(row @ col)) > 1e-3:
        raise DicomInputError("ImageOrientationPatient [" + ", ".join(f"{x:.4g}" for x in iop)
                              + "] is not two orthogonal unit vectors", path)
    normal = np.cross(row, col)
    axial = bool(abs(abs(normal[2]) - 1.0) < 1e-4)
    thick = src.thickness()
    try:
        thickness = float(thick) if thick not in (None, "") else None
    except (TypeError, ValueError, OverflowError):
        thickness = None
    if thickness is not None and not (math.isfinite(thickness) and thickness > 0):
        thickness = None
    bounds = None
    rows, cols = src.rows_columns()
    if axial and isinstance(rows, int) and isinstance(cols, int) and rows > 0 and cols > 0:
        # corners of the pixel centres, widened by half a pixel: the area the image shows
        origin = np.asarray(ipp[:2])
        a = row[:2] * ps[1] * (cols - 1)
        b = col[:2] * ps[0] * (rows - 1)
        corners = np.array([origin, origin + a, origin + b, origin + a + b])
        half = 0.5 * max(ps)
        bounds = (float(corners[:, 0].min() - half), float(corners[:, 0].max() + half),
                  float(corners[:, 1].min() - half), float(corners[:, 1].max() + half))
    series, frame, patient = src.uids()
    return _Slice(path, series, frame, patient, float(ipp[2]), (ps[0], ps[1]), thickness,
                  axial, bounds)


class _Pydicom:
    """The values :func:`read_ct_slice` checks, read through pydicom when asked (pydicom
    converts lazily: a corrupt value is reported when its turn comes)."""

    def __init__(self, ds, path: Path):
        self.ds, self.path = ds, path

    def ipp(self):
        return floats(required(self.ds, "ImagePositionPatient", self.path), 3,
                      "ImagePositionPatient", self.path)

    def ps(self):
        return floats(required(self.ds, "PixelSpacing", self.path), 2, "PixelSpacing",
                      self.path)

    def iop(self):
        return floats(required(self.ds, "ImageOrientationPatient", self.path), 6,
                      "ImageOrientationPatient", self.path)

    def thickness(self):
        return self.ds.get("SliceThickness", None)

    def rows_columns(self):
        return self.ds.get("Rows", None), self.ds.get("Columns", None)

    def uids(self):
        return (text(self.ds, "SeriesInstanceUID"), text(self.ds, "FrameOfReferenceUID"),
                text(self.ds, "PatientID"))


class _Plain:
    """:class:`_Pydicom`'s values, read raw beforehand (``_plain_header``)."""

    def __init__(self, ipp, ps, iop, thick, rows, cols, uids):
        self._v = ipp, ps, iop, thick, (rows, cols), uids

    def ipp(self):
        return self._v[0]

    def ps(self):
        return self._v[1]

    def iop(self):
        return self._v[2]

    def thickness(self):
        return self._v[3]

    def rows_columns(self):
        return self._v[4]

    def uids(self):
        return self._v[5]


_IPP, _PS, _IOP, _THICK = 0x00200032, 0x00280030, 0x00200037, 0x00180050
_ROWS, _COLS, _SERIES, _FRAME, _PATIENT = 0x00280010, 0x00280011, 0x0020000E, 0x00200052, \
    0x00100020


def _plain_header(ds) -> _Plain | None:
    """:class:`_Pydicom`'s values from the raw values (``rtqa.reading.raw``) when every
    one is plain (none can then fail to convert, and each is the value pydicom gives);
    None otherwise."""
    get = lambda tag: _raw.value(ds, tag)  # noqa: E731
    ipp, ps, iop = _raw.plain_ds(get(_IPP)), _raw.plain_ds(get(_PS)), _raw.plain_ds(get(_IOP))
    if ipp is None or ps is None or iop is None or len(ipp) != 3 or len(ps) != 2 \
            or len(iop) != 6:
        return None
    thick = get(_THICK)
    if thick is not None:
        thick = _raw.plain_ds(thick)
        if thick is None or len(thick) != 1:
            return None
        thick = thick[0]
    rows, cols = _raw.plain_us(get(_ROWS)), _raw.plain_us(get(_COLS))
    series = _raw.plain_text(get(_SERIES), "UI")
    frame = _raw.plain_text(get(_FRAME), "UI")
    patient = _raw.plain_text(get(_PATIENT), "LO")
    if rows is _raw.NOT_RAW or cols is _raw.NOT_RAW or None in (series, frame, patient):
        return None
    return _Plain(ipp, ps, iop, thick, rows, cols, (series, frame, patient))


def _union(bounds):
    if not bounds or any(b is None for b in bounds):
        return None
    b = np.array(bounds)
    return (float(b[:, 0].min()), float(b[:, 1].max()), float(b[:, 2].min()),
            float(b[:, 3].max()))


def assemble_series(slices: list[_Slice]) -> list[CTSeries]:
    by_uid: dict[str, list[_Slice]] = {}
    for s in slices:
        by_uid.setdefault(s.series, []).append(s)
    out = []
    for uid, items in sorted(by_uid.items()):
        items.sort(key=lambda s: s.z)
        for attr, what in (("patient", "PatientID"), ("frame", "FrameOfReferenceUID")):
            values = {getattr(s, attr) for s in items}
            if len(values) > 1:
                odd = next(s for s in items if getattr(s, attr) != getattr(items[0], attr))
                raise DicomInputError(f"CT series {uid} mixes {what}s "
                                      + ", ".join(sorted(map(repr, values))), odd.path)
        zs = np.array([s.z for s in items])
        if zs.size > 1 and np.any(np.diff(zs) <= 1e-3) and all(s.axial for s in items):
            k = int(np.flatnonzero(np.diff(zs) <= 1e-3)[0])
            raise DicomInputError(f"CT series {uid}: two slices at z = {zs[k]:.2f} mm "
                                  f"({items[k].path.name} and {items[k + 1].path.name})",
                                  items[k + 1].path)
        out.append(CTSeries(
            series_instance_uid=uid, frame_of_reference_uid=items[0].frame,
            patient_id=items[0].patient, paths=tuple(s.path for s in items),
            z=np.array([s.z for s in items]),
            pixel_spacing=(max(s.spacing[0] for s in items), max(s.spacing[1] for s in items)),
            slice_thickness=items[0].thickness, axial=all(s.axial for s in items),
            xy_bounds=_union([s.xy_bounds for s in items])))
    return out
