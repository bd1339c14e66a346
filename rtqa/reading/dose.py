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

import hashlib
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rtqa.errors import DicomInputError
from rtqa.reading.common import (MAX_COORDINATE_MM, floats, read_dataset, reader, required,
                                 text, whole)
from rtqa.reading.orientation import axial_mapping
from rtqa.reading.tps_dvh import tps_dvhs_of

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
    #: The planning system's DVHs in the file (``rtqa.reading.tps_dvh.read_tps_dvhs``,
    #: from the same parse); None when not read with the dose.
    tps_dvhs: tuple | None = None

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


def _native_dtype(ds, n: int, length: int | None) -> np.dtype | None:
    """The dtype of native little-endian stored values with BitsStored = BitsAllocated
    (16 or 32) and a complete RT Dose pixel description (PS3.3 C.8.8.3.4: SamplesPerPixel
    1, MONOCHROME2, HighBit = BitsStored - 1) holding ``n`` values in ``length`` bytes;
    None for anything else (pydicom decodes it, and refuses what it cannot)."""
    try:
        meta = getattr(ds, "file_meta", None)
        tsu = meta.get("TransferSyntaxUID", None) if meta is not None else None
        bits, stored = ds.get("BitsAllocated", None), ds.get("BitsStored", None)
        rep, spp = ds.get("PixelRepresentation", None), ds.get("SamplesPerPixel", None)
        high, photometric = ds.get("HighBit", None), ds.get("PhotometricInterpretation", None)
        if (tsu in _NATIVE_LE and bits in (16, 32) and stored == bits and rep in (0, 1)
                and spp == 1 and high == bits - 1 and photometric == "MONOCHROME2"
                and length in (n * bits // 8, n * bits // 8 + 1)):
            return np.dtype(f"<{'ui'[int(rep)]}{int(bits) // 8}")
    except Exception:  # noqa: BLE001 - any doubt: pydicom decodes (and reports) it
        pass
    return None


def _stored_values(ds, path: Path, n_frames: int, rows: int, cols: int) -> np.ndarray:
    """The stored pixel values as a (frames, rows, columns) integer array. Native
    little-endian data (see :func:`_native_dtype`) is read in place (a view of the
    PixelData bytes, no copy); anything else is decoded by pydicom."""
    n = n_frames * rows * cols
    try:
        data = ds.PixelData
        dt = _native_dtype(ds, n, len(data)) if isinstance(data, bytes) else None
        if dt is not None:
            return np.frombuffer(data, dtype=dt, count=n).reshape(n_frames, rows, cols)
    except Exception:  # noqa: BLE001 - any doubt: pydicom decodes (and reports) it
        pass
    try:
        raw = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for broken pixel data
        raise DicomInputError(f"cannot decode PixelData ({type(exc).__name__}: {exc})",
                              path) from None
    return np.asarray(raw).reshape(n_frames, rows, cols)


def _scaled_frames(frames, order: np.ndarray, shape: tuple[int, int], scaling: float,
                   transpose: bool = False, flip_x: bool = False, flip_y: bool = False):
    """(dose, lowest, highest stored value): ``frames`` (stored (rows, columns) integer
    frames, in file order) times ``scaling`` written straight into one C-contiguous
    float64 array of frames ``order`` (``dose[k]`` from frame ``order[k]``), each frame
    transposed (image rows along patient x) and then flipped in x and y as asked. No
    integer or float64 temporary of the grid; the same values, bit for bit, as
    ``arr[order].astype(float64) * scaling`` on the transformed stored array."""
    n = order.size
    dest = np.empty(n, dtype=np.intp)
    dest[order] = np.arange(n)
    dose = np.empty((n, *shape), dtype=np.float64)
    top, low, count = 0, 0, 0
    for src, frame in enumerate(frames):
        count += 1
        top = max(top, int(frame.max()))
        low = min(low, int(frame.min()))
        if transpose:
            frame = frame.T
        if flip_x:
            frame = frame[:, ::-1]
        if flip_y:
            frame = frame[::-1, :]
        np.multiply(frame, scaling, out=dose[dest[src]])
    if count != n:
        raise ValueError(f"{count} stored frames for {n}")
    return dose, low, top


#: Bytes read at a time around the pixel data (header, trailing elements).
_CHUNK = 1 << 20


class _FileFrames:
    """The stored frames of a native PixelData value read from the file one frame at a
    time, in file order, into one reused buffer (no copy of the whole pixel data); every
    byte of the file goes through SHA-256, which must equal the scan's digest: the dose
    is the content that was classified, walked and recorded (a file changed since is
    refused)."""

    def __init__(self, path: Path, offset: int, length: int, dtype: np.dtype,
                 rows: int, cols: int, sha256: str):
        self.path, self.offset, self.length = path, offset, length
        self.dtype, self.rows, self.cols, self.sha256 = dtype, rows, cols, sha256

    def __call__(self):
        digest = hashlib.sha256()
        frame = np.empty(self.rows * self.cols, dtype=self.dtype)
        view = memoryview(frame).cast("B")
        try:
            with open(self.path, "rb", buffering=0) as fh:
                self._copy(fh, self.offset, digest)
                used = 0
                while used + view.nbytes <= self.length:
                    got = fh.readinto(view)
                    if got != view.nbytes:
                        raise DicomInputError("file changed while being read (shorter than "
                                              "when it was scanned)", self.path)
                    digest.update(view)
                    used += got
                    yield frame.reshape(self.rows, self.cols)
                self._copy(fh, None, digest)
        except OSError as exc:
            raise DicomInputError(f"cannot be read ({exc.strerror or exc})", self.path) \
                from None
        if self.sha256 and digest.hexdigest() != self.sha256:
            raise DicomInputError("file changed while being read (its content differs from "
                                  "when it was scanned): read the export again once it is "
                                  "complete", self.path)

    @staticmethod
    def _copy(fh, n: int | None, digest) -> None:
        """Hash the next ``n`` bytes (None: up to the end of the file)."""
        while n is None or n > 0:
            block = fh.read(_CHUNK if n is None else min(n, _CHUNK))
            if not block:
                if n is not None:
                    raise DicomInputError("file changed while being read (shorter than "
                                          "when it was scanned)", fh.name)
                return
            digest.update(block)
            if n is not None:
                n -= len(block)


@reader("RTDOSE")
def read_dose(path: Path, max_voxels: int = MAX_DOSE_VOXELS, dataset=None,
              pixel_data: tuple[int, int] | None = None, sha256: str = "") -> DoseGrid:
    """Read one RTDOSE file into a :class:`DoseGrid` (dose in Gy as stored, not yet
    scaled for FRACTION summation).

    ``dataset``, ``pixel_data``, ``sha256``: the file's data set up to its PixelData as
    the scan parsed it, the (offset, length) of its native PixelData value and the
    file's SHA-256 (``rtqa.reading.scan.Scanned``). Native 16/32-bit little-endian dose
    is then read from the file frame by frame straight into the float64 grid (the peak
    memory is the grid plus one frame), and the file must still have that digest.
    Without them, or for any other pixel encoding, the whole file is parsed and pydicom
    decodes what is not native."""
    header = dataset is not None and pixel_data is not None
    ds = dataset if header else read_dataset(path)
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
    if not header and "PixelData" not in ds:
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

    # the stored frames, in file order: read from the file one at a time (native data
    # the scan located), else from the parsed PixelData (pydicom decodes the rest)
    n = n_frames * rows * cols
    dtype = _native_dtype(ds, n, pixel_data[1]) if header else None
    if dtype is not None:
        frames = _FileFrames(path, pixel_data[0], pixel_data[1], dtype, rows, cols,
                             sha256)()
    else:
        if header:  # not native: the whole file, decoded by pydicom
            ds = read_dataset(path)
            if "PixelData" not in ds:
                raise DicomInputError("missing PixelData (the dose values)", path)
        frames = iter(_stored_values(ds, path, n_frames, rows, cols))

    # Image axes -> patient axes. Columns run along the row direction cosine.
    col_coords = ipp[mapping.row_axis] + mapping.row_sign * dcol * np.arange(cols)
    row_coords = ipp[mapping.col_axis] + mapping.col_sign * drow * np.arange(rows)
    transpose = mapping.row_axis != 0
    x, y = (row_coords, col_coords) if transpose else (col_coords, row_coords)
    flip_x = x.size > 1 and x[1] < x[0]
    flip_y = y.size > 1 and y[1] < y[0]
    x, y = (x[::-1] if flip_x else x), (y[::-1] if flip_y else y)
    for axis, c in (("x", x), ("y", y), ("z", z)):
        if c.size and float(np.max(np.abs(c))) > MAX_COORDINATE_MM:
            raise DicomInputError(f"dose grid {axis} coordinates reach {float(np.max(np.abs(c))):.4g}"
                                  f" mm, beyond +/-{MAX_COORDINATE_MM:g} mm: corrupt position "
                                  "or spacing", path)
    order = np.argsort(z, kind="stable")
    z = z[order]
    if z.size > 1 and np.any(np.diff(z) <= 1e-6):
        raise DicomInputError("dose frames at repeated z positions", path)

    dose, low, top = _scaled_frames(frames, order, (y.size, x.size), float(scaling),
                                    transpose, flip_x, flip_y)
    if low < 0:
        raise DicomInputError("negative stored dose values", path)
    dmax = float(top) * scaling
    if not math.isfinite(dmax) or dmax > MAX_PLAUSIBLE_DOSE_GY:  # no overflow on corrupt values
        raise DicomInputError(
            f"maximum dose {dmax:.4g} Gy is implausible (DoseGridScaling {scaling:.6g}): "
            "corrupt scaling?", path)

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
        tps_dvhs=tuple(tps_dvhs_of(ds)),
    )
