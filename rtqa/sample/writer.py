"""Write a :class:`~rtqa.sample.phantom.CaseSpec` as a DICOM RT export.

Files (all Part 10, Explicit VR Little Endian; CT optionally RLE Lossless):

* ``CT.<nnn>.dcm``                 CT Image Storage, one per slice, nnn = 1.. by increasing z
* ``RS.<case>.dcm``                RT Structure Set
* ``RP.<label>.dcm``               RT Plan, one per plan (unless ``write_plan=False``)
* ``RD.<label>.dcm``               RT Dose (PLAN or FRACTION summation)
* ``RD.<label>.beam<nn>.dcm``      RT Dose per beam (BEAM summation)

Links: RTDOSE ReferencedRTPlanSequence -> RTPLAN; RTPLAN ReferencedStructureSetSequence
-> RTSTRUCT; RTSTRUCT ReferencedFrameOfReferenceSequence / RTReferencedStudySequence /
RTReferencedSeriesSequence / ContourImageSequence -> CT series and slices. One
FrameOfReferenceUID, StudyInstanceUID and PatientID for everything.

Determinism: every UID is a name-based (RFC 4122 version 5) UUID of the case name, its
seed and the object's role, written as ``2.25.<integer>`` (ISO/IEC 9834-8); dates and
times are fixed. Writing the same spec twice gives byte-identical files (same rtqa and
pydicom versions; SoftwareVersions carries the rtqa version).
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, RLELossless

from rtqa import __version__
from rtqa.sample.phantom import (
    CaseSpec,
    PlanSpec,
    all_structures,
    beam_dose,
    ct_hu,
    lesion,
    plan_beams,
    plan_dose,
    roi_numbers,
    validate_case,
)

__all__ = ["write_case", "make_uid", "SOP_CLASS", "file_names"]

SOP_CLASS = {
    "CT": UID("1.2.840.10008.5.1.4.1.1.2"),
    "RTDOSE": UID("1.2.840.10008.5.1.4.1.1.481.2"),
    "RTSTRUCT": UID("1.2.840.10008.5.1.4.1.1.481.3"),
    "RTPLAN": UID("1.2.840.10008.5.1.4.1.1.481.5"),
}
# Referenced SOP Class of a study in RTReferencedStudySequence (as TPSs export it)
_STUDY_COMPONENT_SOP = UID("1.2.840.10008.3.1.2.3.1")

_UUID_NAMESPACE = uuid.UUID("6f2a1c1e-3b1d-5b8e-9a51-7274716173a1")  # fixed: "rtqa sample"
_IMPLEMENTATION_UID = UID(f"2.25.{uuid.uuid5(_UUID_NAMESPACE, 'rtqa.sample implementation').int}")
_IMPLEMENTATION_NAME = "RTQA_SAMPLE"

_TIME = "090000"
_CONTOUR_DATA = Tag(0x3006, 0x0050)


def make_uid(case: CaseSpec, *parts: object) -> UID:
    """Deterministic UID ``2.25.<uuid5 integer>`` from the case name, seed and ``parts``.

    (``pydicom.uid.generate_uid(prefix=None, ...)`` ignores its entropy sources and is
    random, so it cannot be used for reproducible exports.)
    """
    name = "|".join([case.name, case.seed, *map(str, parts)])
    return UID(f"2.25.{uuid.uuid5(_UUID_NAMESPACE, name).int}")


def _ds(v: float, nd: int = 6) -> str:
    """A DS string (<= 16 chars) of ``v`` rounded to ``nd`` decimals, trailing zeros removed."""
    s = f"{round(float(v), nd):.{nd}f}".rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    if len(s) > 16:
        s = f"{float(v):.10g}"
    return s


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


@dataclass(frozen=True)
class _Uids:
    study: UID
    frame: UID
    ct_series: UID
    rs_series: UID
    rs: UID
    plan_series: UID
    dose_series: UID

    @classmethod
    def of(cls, case: CaseSpec) -> _Uids:
        return cls(*(make_uid(case, role) for role in
                     ("study", "frame_of_reference", "ct_series", "rtstruct_series", "rtstruct",
                      "rtplan_series", "rtdose_series")))


def file_names(case: CaseSpec) -> list[str]:
    """The file names :func:`write_case` writes for ``case`` (no I/O)."""
    out = [f"CT.{k + 1:03d}.dcm" for k in range(len(case.ct.zs))] if case.ct.write else []
    out.append(f"RS.{_safe(case.name)}.dcm")
    for p in case.plans:
        if p.write_plan:
            out.append(f"RP.{_safe(p.label)}.dcm")
        if p.grid.summation == "BEAM":
            out += [f"RD.{_safe(p.label)}.beam{b.number:02d}.dcm" for b in plan_beams(case, p)]
        else:
            out.append(f"RD.{_safe(p.label)}.dcm")
    return out


# ---------------------------------------------------------------------------------------
# Common modules
# ---------------------------------------------------------------------------------------


def _new(case: CaseSpec, u: _Uids, sop_class: UID, sop_uid: UID, modality: str, series_uid: UID,
         series_number: int, series_description: str, transfer_syntax: UID = ExplicitVRLittleEndian) -> Dataset:
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = _IMPLEMENTATION_UID
    meta.ImplementationVersionName = _IMPLEMENTATION_NAME

    ds = Dataset()
    ds.file_meta = meta
    ds.set_original_encoding(False, True, "iso8859")
    # SOP common
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.InstanceCreationDate = case.study_date
    ds.InstanceCreationTime = _TIME
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    # Patient
    ds.PatientName = case.patient_name
    ds.PatientID = case.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    # General study
    ds.StudyInstanceUID = u.study
    ds.StudyDate = case.study_date
    ds.StudyTime = _TIME
    ds.ReferringPhysicianName = ""
    ds.StudyID = "RTQA1"
    ds.AccessionNumber = ""
    ds.StudyDescription = (case.description or case.name)[:64]
    # Series
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description[:64]
    ds.SeriesDate = case.study_date
    ds.SeriesTime = _TIME
    ds.OperatorsName = ""
    # Equipment
    ds.Manufacturer = "rtqa synthetic"
    ds.ManufacturerModelName = "rtqa.sample"
    ds.StationName = "RTQA"
    ds.SoftwareVersions = f"rtqa {__version__}"
    # Frame of reference (CT, RTSTRUCT via ROI refs, RTPLAN, RTDOSE)
    if modality in ("CT", "RTDOSE", "RTPLAN"):
        ds.FrameOfReferenceUID = u.frame
        ds.PositionReferenceIndicator = ""
    return ds


def _save(ds: Dataset, path: Path) -> None:
    dcmwrite(path, ds, enforce_file_format=True)


def _ref(sop_class: UID, sop_uid: UID) -> Dataset:
    it = Dataset()
    it.ReferencedSOPClassUID = sop_class
    it.ReferencedSOPInstanceUID = sop_uid
    return it


# ---------------------------------------------------------------------------------------
# CT
# ---------------------------------------------------------------------------------------


def _ct_uids(case: CaseSpec) -> list[UID]:
    return [make_uid(case, "ct", k) for k in range(len(case.ct.zs))]


def _write_ct(case: CaseSpec, u: _Uids, outdir: Path) -> list[Path]:
    ct = case.ct
    xs, ys = ct.pixel_centres()
    x0, y0 = ct.origin_xy
    dx, dy = ct.pixel_spacing_mm
    zs = ct.zs
    gaps = np.diff(zs)
    nominal = float(np.min(gaps)) if len(gaps) else float(ct.slice_spacing_mm)
    xx, yy = np.meshgrid(xs, ys, indexing="xy")
    uids = _ct_uids(case)
    paths = []
    ts = RLELossless if ct.rle else ExplicitVRLittleEndian
    for k, z in enumerate(zs):
        ds = _new(case, u, SOP_CLASS["CT"], uids[k], "CT", u.ct_series, 1, "Planning CT",
                  transfer_syntax=ExplicitVRLittleEndian)
        ds.PatientPosition = "HFS"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        ds.ContentDate = case.study_date
        ds.ContentTime = _TIME
        ds.ImagePositionPatient = [_ds(x0), _ds(y0), _ds(z)]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PixelSpacing = [_ds(dy), _ds(dx)]  # [row spacing (y), column spacing (x)]
        ds.SliceThickness = _ds(nominal)
        ds.SliceLocation = _ds(z)
        ds.KVP = "120"
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ct.rows
        ds.Columns = ct.columns
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        pts = np.stack([xx, yy, np.full_like(xx, z)], axis=-1)
        stored = np.clip(np.rint(ct_hu(case, pts) + 1024.0), 0, 65535).astype("<u2")
        if ct.rle:
            ds.compress(ts, stored, encoding_plugin="pydicom", generate_instance_uid=False)
            ds.file_meta.MediaStorageSOPInstanceUID = uids[k]
        else:
            ds.PixelData = stored.tobytes()
        path = outdir / f"CT.{k + 1:03d}.dcm"
        _save(ds, path)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------
# RT Structure Set
# ---------------------------------------------------------------------------------------


def _contour_bytes(loop: np.ndarray, z: float, decimals: int) -> bytes:
    """ContourData (x1\\y1\\z1\\x2...) as DS text, values rounded to ``decimals`` mm."""
    xyz = np.empty((len(loop), 3))
    xyz[:, :2] = loop
    xyz[:, 2] = z
    vals = np.round(xyz, decimals).ravel() + 0.0  # + 0.0 turns -0.0 into 0.0
    text = "\\".join(map(repr, vals.tolist())) + "\\"
    text = text.replace(".0\\", "\\")[:-1]
    b = text.encode("ascii")
    return b + b" " if len(b) % 2 else b


def _color(name: str) -> list[int]:
    h = uuid.uuid5(_UUID_NAMESPACE, name).bytes
    return [64 + h[0] % 192, 64 + h[1] % 192, 64 + h[2] % 192]


def _write_rtstruct(case: CaseSpec, u: _Uids, outdir: Path) -> Path:
    zs = case.ct.zs
    ct_uids = _ct_uids(case)
    nums = roi_numbers(case)
    structs = all_structures(case)

    ds = _new(case, u, SOP_CLASS["RTSTRUCT"], u.rs, "RTSTRUCT", u.rs_series, 2, "Structures")
    ds.StructureSetLabel = "RTQA"
    ds.StructureSetName = case.name[:64]
    ds.StructureSetDate = case.study_date
    ds.StructureSetTime = _TIME

    series = Dataset()
    series.SeriesInstanceUID = u.ct_series
    series.ContourImageSequence = Sequence([_ref(SOP_CLASS["CT"], c) for c in ct_uids])
    study = _ref(_STUDY_COMPONENT_SOP, u.study)
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = u.frame
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])

    roi_items, contour_items, obs_items = [], [], []
    for i, s in enumerate(structs):
        it = Dataset()
        it.ROINumber = nums[s.name]
        it.ReferencedFrameOfReferenceUID = u.frame
        it.ROIName = s.name
        it.ROIGenerationAlgorithm = "MANUAL"
        roi_items.append(it)

        ob = Dataset()
        ob.ObservationNumber = i + 1
        ob.ReferencedROINumber = nums[s.name]
        ob.RTROIInterpretedType = s.interpreted_type
        ob.ROIInterpreter = ""
        obs_items.append(ob)

        lo, hi = s.shape.bounds()
        spacing = s.contour_spacing_mm or case.contour_spacing_mm
        contours = []
        for k in np.flatnonzero((zs >= lo[2] - 1e-9) & (zs <= hi[2] + 1e-9)):
            for loop in s.shape.sections(float(zs[k]), spacing, case.min_contour_points):
                c = Dataset()
                c.set_original_encoding(False, True, "iso8859")
                c.ContourImageSequence = Sequence([_ref(SOP_CLASS["CT"], ct_uids[k])])
                c.ContourGeometricType = "CLOSED_PLANAR"
                c.NumberOfContourPoints = len(loop)
                data = _contour_bytes(loop, float(zs[k]), case.coordinate_decimals)
                c[_CONTOUR_DATA] = RawDataElement(_CONTOUR_DATA, "DS", len(data), data, 0, False, True)
                contours.append(c)
        rc = Dataset()
        rc.set_original_encoding(False, True, "iso8859")
        rc.ROIDisplayColor = list(s.color) if s.color else _color(s.name)
        rc.ReferencedROINumber = nums[s.name]
        if contours:
            rc.ContourSequence = Sequence(contours)
        contour_items.append(rc)

    if case.roi_contour_order == "reversed":
        contour_items = contour_items[::-1]
    ds.StructureSetROISequence = Sequence(roi_items)
    ds.ROIContourSequence = Sequence(contour_items)
    ds.RTROIObservationsSequence = Sequence(obs_items)
    ds.ApprovalStatus = "APPROVED"
    ds.ReviewDate = case.study_date
    ds.ReviewTime = _TIME
    ds.ReviewerName = "RTQA^Physicist"
    path = outdir / f"RS.{_safe(case.name)}.dcm"
    _save(ds, path)
    return path


# ---------------------------------------------------------------------------------------
# RT Plan
# ---------------------------------------------------------------------------------------


def _write_rtplan(case: CaseSpec, u: _Uids, plan: PlanSpec, plan_uid: UID, outdir: Path) -> Path:
    nums = roi_numbers(case)
    ds = _new(case, u, SOP_CLASS["RTPLAN"], plan_uid, "RTPLAN", u.plan_series, 3, "Plans")
    ds.RTPlanLabel = plan.label
    ds.RTPlanName = (plan.plan_name or plan.label)[:64]
    ds.RTPlanDescription = (plan.description or "")[:1024]
    ds.RTPlanDate = case.study_date
    ds.RTPlanTime = _TIME
    ds.RTPlanGeometry = "PATIENT"
    ds.PrescriptionDescription = "; ".join(
        f"{_ds(t.prescription_gy, 2)} Gy/{plan.fractions} fx to {lesion(case, t.lesion).roi_names['PTV']}"
        for t in plan.targets)[:1024]
    ds.ReferencedStructureSetSequence = Sequence([_ref(SOP_CLASS["RTSTRUCT"], u.rs)])

    dose_refs = []
    for j, t in enumerate(plan.targets):
        les = lesion(case, t.lesion)
        ptv = les.roi_names["PTV"]
        dr = Dataset()
        dr.DoseReferenceNumber = j + 1
        dr.DoseReferenceUID = make_uid(case, "doseref", plan.label, t.lesion)
        dr.DoseReferenceStructureType = "VOLUME"
        dr.DoseReferenceDescription = ptv
        dr.ReferencedROINumber = nums[ptv]
        dr.DoseReferenceType = "TARGET"
        dr.TargetPrescriptionDose = _ds(t.prescription_gy, 4)
        dr.DeliveryMaximumDose = _ds(t.prescription_gy * (1 + t.boost) * 1.02, 3)
        dose_refs.append(dr)
    ds.DoseReferenceSequence = Sequence(dose_refs)

    beams = plan_beams(case, plan)
    fg = Dataset()
    fg.FractionGroupNumber = 1
    fg.NumberOfFractionsPlanned = plan.fractions
    fg.NumberOfBeams = len(beams)
    fg.NumberOfBrachyApplicationSetups = 0
    rbs = []
    for b in beams:
        rb = Dataset()
        rb.ReferencedBeamNumber = b.number
        rb.BeamDose = _ds(b.dose_per_fraction_gy, 6)
        rb.BeamMeterset = _ds(b.meterset_mu, 2)
        rb.ReferencedDoseReferenceUID = make_uid(case, "doseref", plan.label, b.lesion)
        rbs.append(rb)
    fg.ReferencedBeamSequence = Sequence(rbs)
    ds.FractionGroupSequence = Sequence([fg])

    setup = Dataset()
    setup.PatientSetupNumber = 1
    setup.PatientPosition = "HFS"
    setup.SetupTechnique = "ISOCENTRIC"
    ds.PatientSetupSequence = Sequence([setup])

    beam_items = []
    for b in beams:
        bi = Dataset()
        bi.BeamNumber = b.number
        bi.BeamName = b.name[:64]
        bi.BeamDescription = f"{b.lesion} field {b.number}"
        bi.BeamType = "STATIC"
        bi.RadiationType = "PHOTON"
        bi.TreatmentMachineName = plan.machine
        bi.PrimaryDosimeterUnit = "MU"
        bi.SourceAxisDistance = "1000"
        bi.TreatmentDeliveryType = "TREATMENT"
        bi.NumberOfWedges = 0
        bi.NumberOfCompensators = 0
        bi.NumberOfBoli = 0
        bi.NumberOfBlocks = 0
        bi.FinalCumulativeMetersetWeight = "1"
        bi.ReferencedPatientSetupNumber = 1
        devs = []
        for typ in ("ASYMX", "ASYMY"):
            d = Dataset()
            d.RTBeamLimitingDeviceType = typ
            d.NumberOfLeafJawPairs = 1
            devs.append(d)
        bi.BeamLimitingDeviceSequence = Sequence(devs)
        cps = []
        for ci in range(2):
            cp = Dataset()
            cp.ControlPointIndex = ci
            cp.CumulativeMetersetWeight = str(ci)
            if ci == 0:
                cp.NominalBeamEnergy = _ds(plan.energy_mv)
                cp.GantryAngle = _ds(b.gantry_deg, 1)
                cp.GantryRotationDirection = "NONE"
                cp.BeamLimitingDeviceAngle = "0"
                cp.BeamLimitingDeviceRotationDirection = "NONE"
                cp.PatientSupportAngle = "0"
                cp.PatientSupportRotationDirection = "NONE"
                cp.TableTopEccentricAngle = "0"
                cp.TableTopEccentricRotationDirection = "NONE"
                cp.TableTopPitchAngle = 0.0
                cp.TableTopPitchRotationDirection = "NONE"
                cp.TableTopRollAngle = 0.0
                cp.TableTopRollRotationDirection = "NONE"
                cp.TableTopVerticalPosition = ""
                cp.TableTopLongitudinalPosition = ""
                cp.TableTopLateralPosition = ""
                cp.IsocenterPosition = [_ds(v, 2) for v in b.isocentre]
                cp.SourceToSurfaceDistance = "900"
                pos = []
                for typ in ("ASYMX", "ASYMY"):
                    p = Dataset()
                    p.RTBeamLimitingDeviceType = typ
                    p.LeafJawPositions = [_ds(-b.field_half_mm, 1), _ds(b.field_half_mm, 1)]
                    pos.append(p)
                cp.BeamLimitingDevicePositionSequence = Sequence(pos)
            cps.append(cp)
        bi.NumberOfControlPoints = len(cps)
        bi.ControlPointSequence = Sequence(cps)
        beam_items.append(bi)
    ds.BeamSequence = Sequence(beam_items)

    ds.ApprovalStatus = plan.approval
    if plan.approval != "UNAPPROVED":
        ds.ReviewDate = case.study_date
        ds.ReviewTime = _TIME
        ds.ReviewerName = "RTQA^Physicist"
    path = outdir / f"RP.{_safe(plan.label)}.dcm"
    _save(ds, path)
    return path


# ---------------------------------------------------------------------------------------
# RT Dose
# ---------------------------------------------------------------------------------------


def _scaling(max_value: float, bits: int) -> float:
    """DoseGridScaling as the float of its DS text (so stored x scaling is what readers get)."""
    top = float(2**bits - 1)
    s = max(max_value, 1e-6) / top
    txt = f"{s:.6g}"
    val = float(txt)
    if math.ceil(max_value / val) > top:  # rounding of the text went down: nudge up
        val = float(f"{s * 1.000002:.6g}")
    return val


def _write_rtdose(case: CaseSpec, u: _Uids, plan: PlanSpec, plan_uid: UID, sop_uid: UID,
                  beam_number: int | None, path: Path, instance: int) -> Path:
    g = plan.grid
    zs, ys, xs = g.zs, g.ys, g.xs
    dx, dy, _ = g.spacing_mm
    frames = []
    for k in range(len(zs)):
        pts = g.points(k)
        if beam_number is None:
            d = plan_dose(case, plan, pts)
        else:
            d = beam_dose(case, plan, beam_number, pts)
        frames.append(d)
    dose = np.stack(frames)
    if g.summation == "FRACTION":
        dose = dose / plan.fractions
    if g.units == "RELATIVE":
        dose = dose / max(t.prescription_gy for t in plan.targets) if plan.targets else dose / dose.max()
    scale = _scaling(float(dose.max()), g.bits)
    dtype = "<u2" if g.bits == 16 else "<u4"
    stored = np.clip(np.rint(dose / scale), 0, 2**g.bits - 1).astype(dtype)

    ds = _new(case, u, SOP_CLASS["RTDOSE"], sop_uid, "RTDOSE", u.dose_series, 4, "Dose")
    ds.InstanceNumber = instance
    ds.ContentDate = case.study_date
    ds.ContentTime = _TIME
    ds.ImagePositionPatient = [_ds(xs[0]), _ds(ys[0]), _ds(zs[0])]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PixelSpacing = [_ds(dy), _ds(dx)]  # [row spacing (y), column spacing (x)]
    ds.SliceThickness = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = len(zs)
    ds.FrameIncrementPointer = Tag(0x3004, 0x000C)
    ds.Rows = len(ys)
    ds.Columns = len(xs)
    ds.BitsAllocated = g.bits
    ds.BitsStored = g.bits
    ds.HighBit = g.bits - 1
    ds.PixelRepresentation = 0
    ds.DoseUnits = g.units
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = g.summation
    offsets = zs - zs[0] if g.frame_offsets == "relative" else zs
    ds.GridFrameOffsetVector = [_ds(v) for v in offsets]
    ds.DoseGridScaling = repr(scale) if len(repr(scale)) <= 16 else f"{scale:.6g}"
    ds.TissueHeterogeneityCorrection = "IMAGE"

    ref = _ref(SOP_CLASS["RTPLAN"], plan_uid)
    if g.summation in ("FRACTION", "BEAM"):
        rfg = Dataset()
        rfg.ReferencedFractionGroupNumber = 1
        if beam_number is not None:
            rb = Dataset()
            rb.ReferencedBeamNumber = beam_number
            rfg.ReferencedBeamSequence = Sequence([rb])
        ref.ReferencedFractionGroupSequence = Sequence([rfg])
    ds.ReferencedRTPlanSequence = Sequence([ref])
    ds.PixelData = stored.tobytes()
    _save(ds, path)
    return path


# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------


def write_case(case: CaseSpec, outdir: str | Path) -> dict:
    """Write ``case`` into ``outdir`` (created if needed; files of the same name are
    overwritten, others left alone) and return what was written::

        {"case": name, "outdir": str, "files": [paths],
         "ct": [paths], "rtstruct": path,
         "plans": [{"label", "rtplan": path | None, "rtplan_uid",
                    "rtdose": [paths], "rtdose_uids": [...], "summation"}],
         "uids": {"study", "frame_of_reference", "ct_series", "rtstruct", "ct": [...]}}
    """
    validate_case(case)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    u = _Uids.of(case)
    result: dict = {"case": case.name, "outdir": str(out), "files": []}
    ct_paths = _write_ct(case, u, out) if case.ct.write else []
    rs_path = _write_rtstruct(case, u, out)
    plans = []
    for p in case.plans:
        plan_uid = make_uid(case, "rtplan", p.label)
        rp = _write_rtplan(case, u, p, plan_uid, out) if p.write_plan else None
        doses, dose_uids = [], []
        if p.grid.summation == "BEAM":
            for b in plan_beams(case, p):
                uid = make_uid(case, "rtdose", p.label, b.number)
                doses.append(_write_rtdose(case, u, p, plan_uid, uid, b.number,
                                           out / f"RD.{_safe(p.label)}.beam{b.number:02d}.dcm",
                                           b.number))
                dose_uids.append(uid)
        else:
            uid = make_uid(case, "rtdose", p.label)
            doses.append(_write_rtdose(case, u, p, plan_uid, uid, None, out / f"RD.{_safe(p.label)}.dcm", 1))
            dose_uids.append(uid)
        plans.append({"label": p.label, "rtplan": str(rp) if rp else None, "rtplan_uid": str(plan_uid),
                      "rtdose": [str(d) for d in doses], "rtdose_uids": [str(x) for x in dose_uids],
                      "summation": p.grid.summation})
    result["ct"] = [str(p) for p in ct_paths]
    result["rtstruct"] = str(rs_path)
    result["plans"] = plans
    result["uids"] = {
        "study": str(u.study),
        "frame_of_reference": str(u.frame),
        "ct_series": str(u.ct_series),
        "rtstruct": str(u.rs),
        "ct": [str(x) for x in _ct_uids(case)],
    }
    files = result["ct"] + [result["rtstruct"]]
    for p in plans:
        files += ([p["rtplan"]] if p["rtplan"] else []) + p["rtdose"]
    result["files"] = files
    return result
