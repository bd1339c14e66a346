"""A small, independent DICOM RT builder for analytic phantom tests.

Nothing here imports rtqa: the files are written from first principles (DICOM PS3.3
RT Dose, RT Structure Set and RT Plan modules) so that the reader is tested against the
standard, not against itself.

Geometry of the dose grid (PS3.3 C.7.6.2.1.1 and C.8.8.3.2), as implemented here:

* voxel (frame f, row r, column c) lies at
  ``IPP + c * col_spacing * R + r * row_spacing * C + off[f] * N``
  where R, C are the row / column direction cosines of ImageOrientationPatient,
  N = R x C, PixelSpacing = [row_spacing, col_spacing] (row spacing = distance between
  rows, i.e. the step along C) and ``off`` the *relative* frame offsets along N.
* GridFrameOffsetVector is written either relative (``off`` itself, first value 0) or
  absolute (patient z of each frame; only for IOP [1,0,0,0,1,0], as the standard allows).

Doses are an analytic function of patient (x, y, z) mm evaluated at the voxel centres,
stored as unsigned integers with DoseGridScaling (quantisation error <= scaling / 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

RT_DOSE_UID = "1.2.840.10008.5.1.4.1.1.481.2"
RT_STRUCT_UID = "1.2.840.10008.5.1.4.1.1.481.3"
RT_PLAN_UID = "1.2.840.10008.5.1.4.1.1.481.5"

IOP_HFS = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def ds_str(v: float) -> str:
    """A Decimal String (<= 16 characters) for ``v``."""
    s = f"{float(v):.6f}".rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    if len(s) > 16:
        s = f"{float(v):.10g}"
    return s


@dataclass
class Study:
    """UIDs shared by the objects of one phantom export."""

    frame_uid: str = field(default_factory=generate_uid)
    study_uid: str = field(default_factory=generate_uid)
    patient_id: str = "PHANTOM"


def _base(study: Study, sop_class: str, modality: str, sop_uid: str | None = None,
          with_frame: bool = True) -> Dataset:
    sop_uid = sop_uid or generate_uid()
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = "Phantom^Analytic"
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study.study_uid
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.Manufacturer = "rtqa tests"
    if with_frame:
        ds.FrameOfReferenceUID = study.frame_uid
        ds.PositionReferenceIndicator = ""
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(path, ds, enforce_file_format=True)
    return path


# ---------------------------------------------------------------------------------------
# RT Dose
# ---------------------------------------------------------------------------------------

@dataclass
class DoseFile:
    path: Path
    sop_uid: str
    #: patient coordinates (mm) of every voxel, each shaped (frames, rows, cols)
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    #: the dose (Gy) each voxel represents after quantisation (stored x scaling)
    dose: np.ndarray
    scaling: float


def dose_grid_points(ipp, iop, pixel_spacing, rows, cols, offsets):
    """Patient coordinates (frames, rows, cols) of every voxel centre (see module doc)."""
    R = np.asarray(iop[:3], dtype=float)
    C = np.asarray(iop[3:], dtype=float)
    N = np.cross(R, C)
    drow, dcol = float(pixel_spacing[0]), float(pixel_spacing[1])
    f = np.asarray(offsets, dtype=float)[:, None, None, None]
    r = np.arange(rows, dtype=float)[None, :, None, None]
    c = np.arange(cols, dtype=float)[None, None, :, None]
    p = (np.asarray(ipp, dtype=float) + c * dcol * R + r * drow * C + f * N)
    return p[..., 0], p[..., 1], p[..., 2]


def write_dose(path, func: Callable, *, study: Study, ipp, rows: int, cols: int,
               pixel_spacing=(2.0, 2.0), offsets: Sequence[float], iop=IOP_HFS,
               gfov: str = "relative", bits: int = 16, scaling: float | None = None,
               summation: str = "PLAN", units: str = "GY", dose_type: str = "PHYSICAL",
               plan_uid: str | None = None, beam_numbers: Sequence[int] = (),
               sop_uid: str | None = None) -> DoseFile:
    """Write an RTDOSE whose voxel (f, r, c) holds ``func(x, y, z)`` (Gy).

    ``offsets``: relative frame offsets (mm) along the plane normal R x C; the first must
    be 0. ``gfov``: "relative" writes them as they are; "absolute" writes patient z
    (IPP z + offset; IOP must be [1,0,0,0,1,0])."""
    offsets = [float(o) for o in offsets]
    assert offsets[0] == 0.0, "relative frame offsets start at 0"
    px, py, pz = dose_grid_points(ipp, iop, pixel_spacing, rows, cols, offsets)
    dose = np.asarray(func(px, py, pz), dtype=float) * np.ones_like(px)
    assert np.all(np.isfinite(dose)) and dose.min() >= 0.0, "phantom dose must be >= 0"
    top = (1 << bits) - 1
    if scaling is None:
        scaling = max(float(dose.max()), 1e-6) / (0.9 * top)
    stored = np.rint(dose / scaling)
    assert stored.max() <= top, "dose exceeds the pixel range"
    stored = stored.astype(np.uint16 if bits == 16 else np.uint32)

    ds = _base(study, RT_DOSE_UID, "RTDOSE", sop_uid)
    ds.ContentDate = "20240101"
    ds.ContentTime = "120000"
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = [ds_str(v) for v in ipp]
    ds.ImageOrientationPatient = [ds_str(v) for v in iop]
    ds.SliceThickness = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = len(offsets)
    ds.FrameIncrementPointer = Tag(0x3004, 0x000C)
    ds.Rows = rows
    ds.Columns = cols
    ds.PixelSpacing = [ds_str(v) for v in pixel_spacing]
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.DoseUnits = units
    ds.DoseType = dose_type
    ds.DoseSummationType = summation
    if gfov == "relative":
        ds.GridFrameOffsetVector = [ds_str(v) for v in offsets]
    elif gfov == "absolute":
        assert tuple(float(v) for v in iop) == IOP_HFS, "absolute GFOV needs IOP 1,0,0,0,1,0"
        ds.GridFrameOffsetVector = [ds_str(float(ipp[2]) + v) for v in offsets]
    else:
        raise ValueError(gfov)
    ds.DoseGridScaling = f"{scaling:.10g}"
    scaling = float(ds.DoseGridScaling)  # what a reader sees
    if plan_uid:
        ref = Dataset()
        ref.ReferencedSOPClassUID = RT_PLAN_UID
        ref.ReferencedSOPInstanceUID = plan_uid
        if beam_numbers:
            fg = Dataset()
            fg.ReferencedFractionGroupNumber = 1
            beams = []
            for b in beam_numbers:
                item = Dataset()
                item.ReferencedBeamNumber = int(b)
                beams.append(item)
            fg.ReferencedBeamSequence = DicomSequence(beams)
            ref.ReferencedFractionGroupSequence = DicomSequence([fg])
        ds.ReferencedRTPlanSequence = DicomSequence([ref])
    ds.PixelData = stored.tobytes()
    _save(ds, path)
    return DoseFile(Path(path), ds.SOPInstanceUID, px, py, pz,
                    stored.astype(float) * scaling, scaling)


def regular_offsets(n: int, step: float) -> list[float]:
    return [k * step for k in range(n)]


# ---------------------------------------------------------------------------------------
# Contours of analytic solids
# ---------------------------------------------------------------------------------------

def circle(cx: float, cy: float, r: float, z: float, n: int = 256,
           reverse: bool = False) -> np.ndarray:
    """(n, 3) points of a circle of radius ``r`` (a vertex at angle 0, n even: also at pi)."""
    t = 2 * np.pi * np.arange(n) / n
    if reverse:
        t = -t
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t), np.full(n, float(z))])


def rectangle(cx: float, cy: float, lx: float, ly: float, z: float, per_edge: int = 64,
              reverse: bool = False) -> np.ndarray:
    """(4 * per_edge, 3) points along an axis-aligned rectangle (corners included)."""
    x0, x1, y0, y1 = cx - lx / 2, cx + lx / 2, cy - ly / 2, cy + ly / 2
    s = np.arange(per_edge) / per_edge
    xs = np.concatenate([x0 + s * lx, np.full(per_edge, x1), x1 - s * lx, np.full(per_edge, x0)])
    ys = np.concatenate([np.full(per_edge, y0), y0 + s * ly, np.full(per_edge, y1), y1 - s * ly])
    pts = np.column_stack([xs, ys, np.full(xs.size, float(z))])
    return pts[::-1].copy() if reverse else pts


def slab_planes(z_lo: float, z_hi: float, spacing: float) -> np.ndarray:
    """Planes for a solid spanning [z_lo, z_hi] *including* half-slice end caps: first
    plane at z_lo + spacing / 2, last at z_hi - spacing / 2."""
    n = (z_hi - z_lo) / spacing
    assert abs(n - round(n)) < 1e-9, "height must be a multiple of the spacing"
    return z_lo + spacing / 2 + spacing * np.arange(int(round(n)))


def sphere_contours(center, r: float, planes, n: int = 256):
    """One circle per plane strictly inside the sphere."""
    cx, cy, cz = center
    out = []
    for z in planes:
        d = z - cz
        if abs(d) < r:
            out.append(("CLOSED_PLANAR", circle(cx, cy, np.sqrt(r * r - d * d), z, n)))
    return out


def box_contours(center, size, spacing: float, per_edge: int = 64):
    """Rectangles on planes such that the box height *with* end caps is size[2]."""
    cx, cy, cz = center
    lx, ly, lz = size
    return [("CLOSED_PLANAR", rectangle(cx, cy, lx, ly, z, per_edge))
            for z in slab_planes(cz - lz / 2, cz + lz / 2, spacing)]


def cylinder_contours(center, r: float, height: float, spacing: float, n: int = 256):
    cx, cy, cz = center
    return [("CLOSED_PLANAR", circle(cx, cy, r, z, n))
            for z in slab_planes(cz - height / 2, cz + height / 2, spacing)]


def ring_contours(center, r_out: float, r_in: float, height: float, spacing: float,
                  n: int = 256, reverse_inner: bool = False):
    """Annulus: an outer and an inner circle on each plane (the inner one a hole)."""
    cx, cy, cz = center
    out = []
    for z in slab_planes(cz - height / 2, cz + height / 2, spacing):
        out.append(("CLOSED_PLANAR", circle(cx, cy, r_out, z, n)))
        out.append(("CLOSED_PLANAR", circle(cx, cy, r_in, z, n, reverse=reverse_inner)))
    return out


# ---------------------------------------------------------------------------------------
# RT Structure Set
# ---------------------------------------------------------------------------------------

@dataclass
class Roi:
    number: int
    name: str
    contours: list  # [(ContourGeometricType, (N, 3) array)]
    interpreted_type: str = "ORGAN"
    #: False: the ROI is listed but has no ROIContourSequence item at all
    write_contour_item: bool = True


def write_struct(path, rois: Sequence[Roi], *, study: Study, sop_uid: str | None = None,
                 shuffle_sequences: bool = False) -> str:
    """Write an RTSTRUCT; returns its SOP Instance UID. ``shuffle_sequences`` writes the
    three ROI sequences in different orders (they must be linked by ROINumber)."""
    ds = _base(study, RT_STRUCT_UID, "RTSTRUCT", sop_uid, with_frame=False)
    ds.StructureSetLabel = "PHANTOM"
    ds.StructureSetDate = "20240101"
    ds.StructureSetTime = "120000"
    ref_frame = Dataset()
    ref_frame.FrameOfReferenceUID = study.frame_uid
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([ref_frame])
    ss_items, rc_items, obs_items = [], [], []
    for roi in rois:
        it = Dataset()
        it.ROINumber = roi.number
        it.ReferencedFrameOfReferenceUID = study.frame_uid
        it.ROIName = roi.name
        it.ROIGenerationAlgorithm = "MANUAL"
        ss_items.append(it)
        if roi.write_contour_item:
            rc = Dataset()
            rc.ReferencedROINumber = roi.number
            rc.ROIDisplayColor = [255, 0, 0]
            contours = []
            for k, (gtype, pts) in enumerate(roi.contours):
                c = Dataset()
                c.ContourNumber = k + 1
                c.ContourGeometricType = gtype
                pts = np.asarray(pts, dtype=float).reshape(-1, 3)
                c.NumberOfContourPoints = len(pts)
                c.ContourData = [ds_str(v) for v in pts.reshape(-1)]
                contours.append(c)
            rc.ContourSequence = DicomSequence(contours)
            rc_items.append(rc)
        ob = Dataset()
        ob.ObservationNumber = roi.number
        ob.ReferencedROINumber = roi.number
        ob.RTROIInterpretedType = roi.interpreted_type
        ob.ROIInterpreter = ""
        obs_items.append(ob)
    if shuffle_sequences:
        rc_items = rc_items[::-1]
        obs_items = obs_items[1:] + obs_items[:1]
    ds.StructureSetROISequence = DicomSequence(ss_items)
    ds.ROIContourSequence = DicomSequence(rc_items)
    ds.RTROIObservationsSequence = DicomSequence(obs_items)
    _save(ds, path)
    return ds.SOPInstanceUID


# ---------------------------------------------------------------------------------------
# RT Plan
# ---------------------------------------------------------------------------------------

def write_plan(path, *, study: Study, fractions: int = 5, beam_numbers: Sequence[int] = (1,),
               beam_dose_gy: float | None = None, label: str = "PHANTOM_PLAN",
               structure_set_uid: str | None = None, sop_uid: str | None = None) -> str:
    """Write a minimal RTPLAN (one fraction group); returns its SOP Instance UID."""
    ds = _base(study, RT_PLAN_UID, "RTPLAN", sop_uid)
    ds.RTPlanLabel = label
    ds.RTPlanName = label
    ds.RTPlanDate = "20240101"
    ds.RTPlanTime = "120000"
    ds.RTPlanGeometry = "PATIENT"
    ds.ApprovalStatus = "APPROVED"
    if structure_set_uid:
        ref = Dataset()
        ref.ReferencedSOPClassUID = RT_STRUCT_UID
        ref.ReferencedSOPInstanceUID = structure_set_uid
        ds.ReferencedStructureSetSequence = DicomSequence([ref])
    fg = Dataset()
    fg.FractionGroupNumber = 1
    fg.NumberOfFractionsPlanned = fractions
    fg.NumberOfBeams = len(beam_numbers)
    fg.NumberOfBrachyApplicationSetups = 0
    refs = []
    for b in beam_numbers:
        rb = Dataset()
        rb.ReferencedBeamNumber = b
        if beam_dose_gy is not None:
            rb.BeamDose = ds_str(beam_dose_gy)
        refs.append(rb)
    fg.ReferencedBeamSequence = DicomSequence(refs)
    ds.FractionGroupSequence = DicomSequence([fg])
    beams = []
    for b in beam_numbers:
        bm = Dataset()
        bm.BeamNumber = b
        bm.BeamName = f"B{b}"
        bm.BeamType = "STATIC"
        bm.RadiationType = "PHOTON"
        bm.TreatmentMachineName = "PHANTOM"
        bm.TreatmentDeliveryType = "TREATMENT"
        bm.NumberOfWedges = 0
        bm.NumberOfCompensators = 0
        bm.NumberOfBoli = 0
        bm.NumberOfBlocks = 0
        bm.NumberOfControlPoints = 0
        beams.append(bm)
    ds.BeamSequence = DicomSequence(beams)
    _save(ds, path)
    return ds.SOPInstanceUID
