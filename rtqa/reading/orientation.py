"""Image orientation: map a (row, column) image plane onto patient x/y axes.

rtqa handles every axial orientation whose row and column direction cosines lie along
the patient x and y axes (head/feet first, supine/prone, and the in-plane 90 degree
rotations of decubitus set-ups). Oblique planes, or planes that are not axial, are
refused with a clear message: their DVH would need a resampling rtqa does not do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtqa.errors import DicomInputError

_TOL = 1e-4


@dataclass(frozen=True)
class AxialMapping:
    """How the image axes map onto patient axes.

    ``row_axis`` (0 for x, 1 for y) is the patient axis along which the column index
    increases (the row direction cosine); ``row_sign`` its sign; likewise for the column
    direction cosine. ``normal_z`` is +1 or -1: the z direction of row x column.
    """

    row_axis: int
    row_sign: int
    col_axis: int
    col_sign: int
    normal_z: int


def axial_mapping(iop, path: Path) -> AxialMapping:
    try:
        v = np.asarray([float(x) for x in iop], dtype=float)
    except (TypeError, ValueError):
        raise DicomInputError(f"ImageOrientationPatient is not numeric: {iop!r}", path) from None
    if v.size != 6 or not np.all(np.isfinite(v)):
        raise DicomInputError("ImageOrientationPatient must have 6 finite values", path)
    row, col = v[:3], v[3:]
    axes = []
    for vec in (row, col):
        k = int(np.argmax(np.abs(vec)))
        if k == 2 or abs(abs(vec[k]) - 1.0) > _TOL or np.sum(np.abs(vec)) - abs(vec[k]) > _TOL:
            raise DicomInputError(
                "oblique or non-axial ImageOrientationPatient ["
                + ", ".join(f"{x:.4g}" for x in v) + "]: "
                "rtqa supports axial planes with rows and columns along the patient x/y "
                "axes only", path)
        axes.append((k, int(np.sign(vec[k]))))
    (ra, rs), (ca, cs) = axes
    if ra == ca:
        raise DicomInputError(f"ImageOrientationPatient {list(v)} has parallel row and "
                              "column directions", path)
    normal = np.cross(row, col)
    return AxialMapping(ra, rs, ca, cs, int(np.sign(normal[2])))
