"""Planning CT series: slice positions and pixel size, from headers only (mm).

The true slice spacing is the difference of ImagePositionPatient z between neighbouring
slices, not SliceThickness.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtqa.errors import DicomInputError
from rtqa.reading.common import floats, read_dataset, text


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


def read_ct_slice(path: Path) -> _Slice:
    ds = read_dataset(path, stop_before_pixels=True)
    ipp = floats(ds.get("ImagePositionPatient", [0, 0, float("nan")]), 3,
                 "ImagePositionPatient", path) if "ImagePositionPatient" in ds else [0, 0, 0]
    ps = floats(ds.get("PixelSpacing", [0, 0]), 2, "PixelSpacing", path)
    thick = ds.get("SliceThickness", None)
    iop = floats(ds.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0]), 6,
                 "ImageOrientationPatient", path)
    normal = np.cross(iop[:3], iop[3:])
    axial = bool(abs(abs(normal[2]) - 1.0) < 1e-4)
    try:
        thickness = float(thick) if thick not in (None, "") else None
    except (TypeError, ValueError):
        thickness = None
    return _Slice(path, text(ds, "SeriesInstanceUID"), text(ds, "FrameOfReferenceUID"),
                  text(ds, "PatientID"), float(ipp[2]), (ps[0], ps[1]), thickness, axial)


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
        out.append(CTSeries(
            series_instance_uid=uid, frame_of_reference_uid=items[0].frame,
            patient_id=items[0].patient, paths=tuple(s.path for s in items),
            z=np.array([s.z for s in items]),
            pixel_spacing=(max(s.spacing[0] for s in items), max(s.spacing[1] for s in items)),
            slice_thickness=items[0].thickness, axial=all(s.axial for s in items)))
    return out
