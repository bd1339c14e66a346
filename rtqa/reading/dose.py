"""RTDOSE → a dose grid in Gy on ascending patient x, y, z axes.

Conventions handled (see shared reference dicom-rt.md):
* ImagePositionPatient is the centre of the first voxel; PixelSpacing = [row spacing
  (between rows), column spacing (between columns)].
* Any axial orientation with rows/columns along patient x/y (flips and 90 degree
  rotations); oblique grids are refused.
* GridFrameOffsetVector relative (first value 0: offsets along the plane normal from
  ImagePositionPatient) or absolute (first value equals ImagePositionPatient z); frames
  may decrease and be unevenly spaced. Frames are re-ordered to ascending z.
* Stored value x DoseGridScaling = dose in Gy; 16- or 32-bit pixels.
* DoseUnits must be GY (RELATIVE cannot be compared with Gy limits); DoseType ERROR is
  refused. DoseSummationType is kept; scaling FRACTION doses by the plan's fraction count
  and summing BEAM doses is done when linking (rtqa.reading.export).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rtqa.errors import DicomInputError
from rtqa.reading.common import (MAX_COORDINATE_MM, floats, read_dataset, reader, required,
                                 text, whole)
from rtqa.reading.orientation import axial_mapping

#: Transfer syntaxes whose PixelData is stored native, little-endian (read in place).
_NATIVE_LE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")

#: A dose above this (Gy) anywhere in a grid is taken as a corrupt DoseGridScaling.
MAX_PLAUSIBLE_DOSE_GY = 1000.0
#: Dose grid spacings (mm) outside this range are corrupt values, not a calculation grid.
MIN_SPACING_MM, MAX_SPACING_MM = 0.01, 100.0
#: Refuse grids with more voxels than this before allocating them (a clinical grid has a
#: few million); override with the environment variable RTQA_MAX_DOSE_VOXELS.
MAX_DOSE_VOXELS = int(os.environ.get("RTQA_MAX_DOSE_VOXELS", 200_000_000))


@dataclass(frozen=True, eq=False)
class DoseGrid:
    """A 3-D dose distribution. ``dose[k, j, i]`` is the dose in Gy at (x[i], y[j], z[k]).

    ``x``, ``y``, ``z`` are voxel-centre coordinates in mm, strictly ascending; x and y
    are evenly spaced, z may be uneven.
    """

    path: Path
    sop_instance_uid: str
    frame_of_reference_uid: str
    patient_id: str
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    dose: np.ndarray
    summation_type: str
    dose_type: str
    referenced_plan_uid: str | None
    referenced_beam_numbers: tuple[int, ...]
    #: How the stored dose was turned into course dose, for the report.
    scaling_note: str = ""
    #: Every RTPLAN the ReferencedRTPlanSequence names (a MULTI_PLAN dose names several).
    referenced_plan_uids: tuple[str, ...] = ()
    #: ReferencedFractionGroupNumber values of the ReferencedRTPlanSequence items.
    referenced_fraction_groups: tuple[int, ...] = ()

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(dx, dy, dz) in mm; dz is the smallest frame spacing."""
        dz = float(np.min(np.diff(self.z))) if self.z.size > 1 else float("nan")
        return (float(self.x[1] - self.x[0]) if self.x.size > 1 else float("nan"),
                float(self.y[1] - self.y[0]) if self.y.size > 1 else float("nan"), dz)

    def scaled(self, factor: float, note: str) -> "DoseGrid":
        return replace(self, dose=self.dose * factor, scaling_note=note)


def _frame_z(ds, path: Path, ipp_z: float, normal_z: int, n_frames: int) -> np.ndarray:
    if n_frames == 1 and "GridFrameOffsetVector" not in ds:
        return np.array([ipp_z])
    gfov = floats(required(ds, "GridFrameOffsetVector", path), None, "GridFrameOffsetVector",
                  path)
    if len(gfov) != n_frames:
        raise DicomInputError(f"GridFrameOffsetVector has {len(gfov)} values for "
                              f"{n_frames} frames", path)
    g = np.asarray(gfov, dtype=float)
    if g[0] == 0.0:
        return ipp_z + normal_z * g
    if abs(g[0] - ipp_z) <= 1e-3:
        return g
    raise DicomInputError(
        f"GridFrameOffsetVector starts at {g[0]}: neither 0 (relative offsets) nor the "
        f"ImagePositionPatient z {ipp_z} (absolute positions)", path)


def _stored_values(ds, path: Path, n_frames: int, rows: int, cols: int) -> np.ndarray:
    """The stored pixel values as a (frames, rows, columns) integer array. Native
    little-endian data with BitsStored = BitsAllocated (16 or 32) is read in place (a
    view of the PixelData bytes, no copy); anything else is decoded by pydicom."""
    try:
        meta = getattr(ds, "file_meta", None)
        tsu = meta.get("TransferSyntaxUID", None) if meta is not None else None
        bits, stored = ds.get("BitsAllocated", None), ds.get("BitsStored", None)
        rep, spp = ds.get("PixelRepresentation", None), ds.get("SamplesPerPixel", 1)
        data = ds.PixelData
        n = n_frames * rows * cols
        if (tsu in _NATIVE_LE and bits in (16, 32) and stored == bits and rep in (0, 1)
                and spp == 1 and isinstance(data, bytes)
                and len(data) in (n * bits // 8, n * bits // 8 + 1)):
            dt = np.dtype(f"<{'ui'[int(rep)]}{int(bits) // 8}")
            return np.frombuffer(data, dtype=dt, count=n).reshape(n_frames, rows, cols)
    except Exception:  # noqa: BLE001 - any doubt: pydicom decodes (and reports) it
        pass
    try:
        raw = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for broken pixel data
        raise DicomInputError(f"cannot decode PixelData ({type(exc).__name__}: {exc})",
                              path) from None
    return np.asarray(raw).reshape(n_frames, rows, cols)


def _scaled_float64(arr: np.ndarray, order: np.ndarray, scaling: float) -> np.ndarray:
    """``arr[order].astype(float64) * scaling`` written straight into one C-contiguous
    float64 array (no integer or float64 temporaries; the same values bit for bit)."""
    dose = np.empty(arr.shape, dtype=np.float64)
    n = order.size
    if np.array_equal(order, np.arange(n)):
        np.multiply(arr, scaling, out=dose)
    elif np.array_equal(order, np.arange(n)[::-1]):
        np.multiply(arr[::-1], scaling, out=dose)
    else:
        for k, src in enumerate(order):
            np.multiply(arr[src], scaling, out=dose[k])
    return dose


@reader("RTDOSE")
def read_dose(path: Path, max_voxels: int = MAX_DOSE_VOXELS) -> DoseGrid:
    """Read one RTDOSE file into a :class:`DoseGrid` (dose in Gy as stored, not yet
    scaled for FRACTION summation)."""
    ds = read_dataset(path)
    summation = text(ds, "DoseSummationType").upper()
    if not summation:
        raise DicomInputError("missing DoseSummationType: cannot tell whether the dose is "
                              "for one fraction, one beam or the whole plan", path)
    units = text(ds, "DoseUnits").upper()
    if units != "GY":
        raise DicomInputError(
            f"DoseUnits is {units or 'missing'}: only absolute dose (GY) can be checked "
            "against Gy limits", path)
    dose_type = text(ds, "DoseType").upper()
    if dose_type == "ERROR":
        raise DicomInputError("DoseType is ERROR (a dose difference, not a dose)", path)
    if "PixelData" not in ds:
        raise DicomInputError("missing PixelData (the dose values)", path)
    rows, cols = whole(ds, "Rows", path), whole(ds, "Columns", path)
    if rows is None or cols is None:
        raise DicomInputError("missing required Rows or Columns", path)
    n_frames = whole(ds, "NumberOfFrames", path, default=1)
    if rows < 1 or cols < 1 or n_frames < 1:
        raise DicomInputError(f"empty dose grid ({n_frames}x{rows}x{cols})", path)
    if rows * cols * n_frames > max_voxels:
        raise DicomInputError(
            f"dose grid of {n_frames}x{rows}x{cols} voxels exceeds the limit of {max_voxels} "
            "(set RTQA_MAX_DOSE_VOXELS to raise it)", path)
    mapping = axial_mapping(required(ds, "ImageOrientationPatient", path), path)
    ipp = floats(required(ds, "ImagePositionPatient", path), 3, "ImagePositionPatient", path)
    drow, dcol = floats(required(ds, "PixelSpacing", path), 2, "PixelSpacing", path)
    if not (MIN_SPACING_MM <= drow <= MAX_SPACING_MM and MIN_SPACING_MM <= dcol <= MAX_SPACING_MM):
        raise DicomInputError(f"PixelSpacing {[drow, dcol]} mm is not a dose grid spacing "
                              f"({MIN_SPACING_MM:g} to {MAX_SPACING_MM:g} mm)", path)
    # Type 1C (required with PixelData): a missing scaling is never taken as 1.
    scaling = floats(required(ds, "DoseGridScaling", path, "stored value x scaling = Gy"),
                     1, "DoseGridScaling", path)[0]
    if not scaling > 0:
        raise DicomInputError(f"DoseGridScaling must be positive, is {scaling}", path)
    z = _frame_z(ds, path, ipp[2], mapping.normal_z, n_frames)

    arr = _stored_values(ds, path, n_frames, rows, cols)
    if np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise DicomInputError("negative stored dose values", path)
    dmax = float(arr.max()) * scaling if arr.size else 0.0  # before scaling the array:
    if not math.isfinite(dmax) or dmax > MAX_PLAUSIBLE_DOSE_GY:  # no overflow on corrupt values
        raise DicomInputError(
            f"maximum dose {dmax:.4g} Gy is implausible (DoseGridScaling {scaling:.6g}): "
            "corrupt scaling?", path)

    # Image axes -> patient axes (views of the stored values). Columns run along the row
    # direction cosine.
    col_coords = ipp[mapping.row_axis] + mapping.row_sign * dcol * np.arange(cols)
    row_coords = ipp[mapping.col_axis] + mapping.col_sign * drow * np.arange(rows)
    if mapping.row_axis == 0:
        x, y = col_coords, row_coords
    else:
        x, y = row_coords, col_coords
        arr = arr.transpose(0, 2, 1)
    if x.size > 1 and x[1] < x[0]:
        x, arr = x[::-1], arr[:, :, ::-1]
    if y.size > 1 and y[1] < y[0]:
        y, arr = y[::-1], arr[:, ::-1, :]
    for axis, c in (("x", x), ("y", y), ("z", z)):
        if c.size and float(np.max(np.abs(c))) > MAX_COORDINATE_MM:
            raise DicomInputError(f"dose grid {axis} coordinates reach {float(np.max(np.abs(c))):.4g}"
                                  f" mm, beyond +/-{MAX_COORDINATE_MM:g} mm: corrupt position "
                                  "or spacing", path)
    order = np.argsort(z, kind="stable")
    z = z[order]
    if z.size > 1 and np.any(np.diff(z) <= 1e-6):
        raise DicomInputError("dose frames at repeated z positions", path)
    dose = _scaled_float64(arr, order, float(scaling))
    del arr

    ref_plans: list[str] = []
    beams: list[int] = []
    groups: list[int] = []
    for item in ds.get("ReferencedRTPlanSequence", []) or []:
        uid = text(item, "ReferencedSOPInstanceUID")
        if uid and uid not in ref_plans:
            ref_plans.append(uid)
        for fg in item.get("ReferencedFractionGroupSequence", []) or []:
            if "ReferencedFractionGroupNumber" in fg:
                number = whole(fg, "ReferencedFractionGroupNumber", path, empty_ok=True)
                if number is not None and number not in groups:
                    groups.append(number)
            for b in fg.get("ReferencedBeamSequence", []) or []:
                if "ReferencedBeamNumber" in b:
                    beams.append(whole(b, "ReferencedBeamNumber", path))
    return DoseGrid(
        path=path,
        sop_instance_uid=text(ds, "SOPInstanceUID"),
        frame_of_reference_uid=text(ds, "FrameOfReferenceUID"),
        patient_id=text(ds, "PatientID"),
        x=np.ascontiguousarray(x, dtype=float), y=np.ascontiguousarray(y, dtype=float),
        z=np.ascontiguousarray(z, dtype=float), dose=dose,
        summation_type=summation,
        dose_type=dose_type or "PHYSICAL",
        referenced_plan_uid=ref_plans[0] if ref_plans else None,
        referenced_beam_numbers=tuple(beams),
        referenced_plan_uids=tuple(ref_plans),
        referenced_fraction_groups=tuple(groups),
    )
