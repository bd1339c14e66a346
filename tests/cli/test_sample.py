"""Tests of the synthetic plan generator (rtqa.sample) and ``rtqa sample``.

The clinical checks here use the generator's own analytic truth (points sampled inside
the analytic solids, analytic dose), never rtqa's DVH engine.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.uid import UID

from rtqa.cli import main
from rtqa.sample import (
    Box,
    CaseSpec,
    CTSpec,
    DoseCloud,
    DoseGridSpec,
    Ellipsoid,
    EllipticCylinder,
    LesionSpec,
    PlanSpec,
    Ring,
    StructureSpec,
    TargetDose,
    all_structures,
    beam_dose,
    ct_hu,
    file_names,
    hcc_fail,
    hcc_pass,
    plan_beams,
    plan_dose,
    profile,
    roi_numbers,
    sample_dose,
    sample_inside,
    sphere,
    structure,
    validate_case,
    write_case,
)
from rtqa.sample.shapes import ellipse_loop, polygon_area

REPO = Path(__file__).resolve().parents[2]
CT_SOP = "1.2.840.10008.5.1.4.1.1.2"
RTDOSE_SOP = "1.2.840.10008.5.1.4.1.1.481.2"
RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"
RTPLAN_SOP = "1.2.840.10008.5.1.4.1.1.481.5"
MB = 1_000_000


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def load(folder: Path) -> dict[str, list]:
    """Datasets of a folder grouped by SOP Class (not by file name)."""
    out: dict[str, list] = {CT_SOP: [], RTDOSE_SOP: [], RTSTRUCT_SOP: [], RTPLAN_SOP: []}
    for p in sorted(folder.iterdir()):
        ds = pydicom.dcmread(p)
        ds.filename = str(p)
        out[str(ds.SOPClassUID)].append(ds)
    return out


def dose_grid_coords(ds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x of columns, y of rows, z of frames of an RTDOSE, from its attributes alone."""
    ipp = [float(v) for v in ds.ImagePositionPatient]
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)  # [dy, dx]
    xs = ipp[0] + col_spacing * np.arange(ds.Columns)
    ys = ipp[1] + row_spacing * np.arange(ds.Rows)
    off = np.array([float(v) for v in ds.GridFrameOffsetVector])
    zs = ipp[2] + off if off[0] == 0 else off
    return xs, ys, zs


def dose_gy(ds) -> np.ndarray:
    arr = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    return arr * float(ds.DoseGridScaling)


def contour_items(rs):
    """(ROIName, contour dataset) for every contour, linking by ROINumber."""
    names = {int(r.ROINumber): r.ROIName for r in rs.StructureSetROISequence}
    for rc in rs.ROIContourSequence:
        for c in rc.get("ContourSequence", []):
            yield names[int(rc.ReferencedROINumber)], c


def contour_xyz(c) -> np.ndarray:
    return np.asarray([float(v) for v in c.ContourData]).reshape(-1, 3)


def clipped(shape, ct: CTSpec):
    """Solids running through the scan are contoured on CT slices only: clip them to the
    slabs of the first and last slice."""
    if isinstance(shape, EllipticCylinder):
        h = 0.5 * float(np.min(np.diff(ct.zs)))
        return replace(shape, z_min=max(shape.z_min, ct.zs[0] - h), z_max=min(shape.z_max, ct.zs[-1] + h))
    return shape


def truth_doses(case: CaseSpec, names, spacing=2.0, exclude=None):
    """Analytic plan dose (Gy) at grid points inside the union of ``names`` (minus
    ``exclude``), and the cc each point stands for."""
    pts = []
    for n in names:
        p, cc = sample_inside(clipped(structure(case, n).shape, case.ct), spacing)
        pts.append(p)
    p = np.concatenate(pts)
    if exclude:
        p = p[~structure(case, exclude).shape.contains(p)]
    return plan_dose(case, case.plans[0], p), cc


def d_cc(doses: np.ndarray, cc_per_point: float, cc: float) -> float:
    """Minimum dose to the hottest ``cc`` (Gy)."""
    s = np.sort(doses)[::-1]
    return float(s[min(len(s) - 1, max(0, math.ceil(cc / cc_per_point) - 1))])


def d_pct(doses: np.ndarray, pct: float) -> float:
    s = np.sort(doses)[::-1]
    return float(s[math.ceil(len(s) * pct / 100.0) - 1])


def bed(d, n, ab):
    return d * (1 + d / (n * ab))


def eqd2(d, n, ab):
    return bed(d, n, ab) / (1 + 2 / ab)


def evaluate(case: CaseSpec) -> dict[str, tuple[bool, float]]:
    """The trial checks on the analytic truth: name -> (passes, value)."""
    pl = case.plans[0]
    n = pl.fractions
    out: dict[str, tuple[bool, float]] = {}
    for t in pl.targets:
        les = next(x for x in case.lesions if x.name == t.lesion)
        ptv = les.roi_names["PTV"]
        d, _ = truth_doses(case, [ptv], 1.0)
        b = bed(d_pct(d, 95), n, 10)
        out[f"{ptv} BED10(D95%) >= 60"] = (b >= 60, b)
        rx_bed = bed(t.prescription_gy, n, 10)
        out[f"{ptv} BED10(Rx) >= 60"] = (rx_bed >= 60, rx_bed)
    d, cc = truth_doses(case, ["Liver"], 2.0, exclude="GTV_Liver")
    vol = len(d) * cc
    spared = float((d < 15.0).sum() * cc)
    out["normal liver >= 700 cc below 15 Gy"] = (spared >= 700, spared)
    out["normal liver mean < 13 Gy"] = (d.mean() < 13, float(d.mean()))
    out["normal liver volume >= 700 cc"] = (vol >= 700, vol)
    d, cc = truth_doses(case, ["SpinalCord"], 0.5)
    out["SpinalCord D0.35cc < 23 Gy"] = (d_cc(d, cc, 0.35) < 23, d_cc(d, cc, 0.35))
    out["SpinalCord D0.03cc < 30 Gy"] = (d_cc(d, cc, 0.03) < 30, d_cc(d, cc, 0.03))
    d, cc = truth_doses(case, ["Esophagus"], 1.0)
    out["Esophagus D5cc < 19.5 Gy"] = (d_cc(d, cc, 5) < 19.5, d_cc(d, cc, 5))
    out["Esophagus D0.03cc < 35 Gy"] = (d_cc(d, cc, 0.03) < 35, d_cc(d, cc, 0.03))
    d, cc = truth_doses(case, ["Heart"], 2.0)
    out["Heart D15cc < 32 Gy"] = (d_cc(d, cc, 15) < 32, d_cc(d, cc, 15))
    out["Heart D0.03cc < 38 Gy"] = (d.max() < 38, float(d.max()))
    d, cc = truth_doses(case, ["Stomach"], 1.0)
    out["Stomach D10cc < 18 Gy"] = (d_cc(d, cc, 10) < 18, d_cc(d, cc, 10))
    out["Stomach D0.03cc < 32 Gy"] = (d.max() < 32, float(d.max()))
    d, cc = truth_doses(case, ["Duodenum"], 1.0)
    out["Duodenum D5cc < 18 Gy"] = (d_cc(d, cc, 5) < 18, d_cc(d, cc, 5))
    out["Duodenum D10cc < 12.5 Gy"] = (d_cc(d, cc, 10) < 12.5, d_cc(d, cc, 10))
    out["Duodenum D0.03cc < 32 Gy"] = (d.max() < 32, float(d.max()))
    d, cc = truth_doses(case, ["Lung_L", "Lung_R"], 2.0, exclude="GTV_Lung")
    e = eqd2(d, n, 3.0)
    out["Lungs V20Gy(EQD2) < 10 %"] = ((e >= 20).mean() < 0.10, float(100 * (e >= 20).mean()))
    out["Lungs mean EQD2 < 7 Gy"] = (e.mean() < 7, float(e.mean()))
    for k in ("Kidney_L", "Kidney_R"):
        d, _ = truth_doses(case, [k], 2.0)
        out[f"{k} mean < 10 Gy"] = (d.mean() < 10, float(d.mean()))
    return out


def tiny_case(name: str = "tiny", grid_kw: dict | None = None, plan_kw: dict | None = None,
              **case_kw) -> CaseSpec:
    """A small phantom that writes in well under a second."""
    structures = (
        StructureSpec("BODY", EllipticCylinder((0.0, 0.0), (60.0, 40.0), -1000.0, 1000.0), "EXTERNAL",
                      hu=0.0),
        StructureSpec("Organ", Ellipsoid((-25.0, 0.0, 0.0), (15.0, 12.0, 10.0)), hu=60.0),
        StructureSpec("Block", Box((28.0, 12.0, 0.0), (14.0, 10.0, 8.0)), hu=300.0),
        StructureSpec("zRing", Ring(sphere((25.0, -15.0, 0.0), 12.0), sphere((25.0, -15.0, 0.0), 6.0)),
                      "CONTROL"),
    )
    lesions = (LesionSpec("A", sphere((0.0, -10.0, 1.0), 6.0), ptv_margin_mm=3.0, ctv_margin_mm=2.0),
               LesionSpec("B", sphere((-25.0, 2.0, 0.0), 4.0), ptv_margin_mm=2.0))
    ct = CTSpec(z_mm=(-15.0, 15.0), slice_spacing_mm=2.5, pixel_spacing_mm=(1.5, 1.5), rows=60, columns=84)
    grid = DoseGridSpec((-30.0, 30.0), (-30.0, 24.0), (-12.0, 12.0), (2.0, 2.5, 3.0), **(grid_kw or {}))
    plan_args = dict(label="P1", fractions=3,
                     targets=(TargetDose("A", 24.0, beams=2), TargetDose("B", 30.0, beams=1)),
                     grid=grid, clouds=(DoseCloud(sphere((20.0, 10.0, 0.0), 4.0), 5.0),))
    plan_args.update(plan_kw or {})
    kw = dict(name=name, structures=structures, ct=ct, lesions=lesions,
              plans=(PlanSpec(**plan_args),), contour_spacing_mm=1.0)
    kw.update(case_kw)
    return CaseSpec(**kw)


# ---------------------------------------------------------------------------------------
# fixtures: the two named cases, written once per session
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pass_files(pass_dir):
    return load(pass_dir)


# ---------------------------------------------------------------------------------------
# DICOM structure and links
# ---------------------------------------------------------------------------------------


def test_sop_classes_uids_and_links(pass_dir, pass_files):
    f = pass_files
    case = hcc_pass()
    assert len(f[CT_SOP]) == len(case.ct.zs) and len(f[RTSTRUCT_SOP]) == 1
    assert len(f[RTPLAN_SOP]) == 1 and len(f[RTDOSE_SOP]) == 1
    rs, rp, rd = f[RTSTRUCT_SOP][0], f[RTPLAN_SOP][0], f[RTDOSE_SOP][0]
    every = f[CT_SOP] + [rs, rp, rd]
    for ds in every:
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert UID(ds.SOPInstanceUID).is_valid
        assert ds.PatientID == "RTQA-HCC-001"
    assert len({ds.StudyInstanceUID for ds in every}) == 1
    assert len({ds.SOPInstanceUID for ds in every}) == len(every)
    for ds in (rs, rp, rd):
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert {ds.file_meta.TransferSyntaxUID for ds in f[CT_SOP]} == {pydicom.uid.RLELossless}
    modalities = {ds.Modality for ds in every}
    assert modalities == {"CT", "RTSTRUCT", "RTPLAN", "RTDOSE"}

    frame = f[CT_SOP][0].FrameOfReferenceUID
    assert {ds.FrameOfReferenceUID for ds in f[CT_SOP] + [rp, rd]} == {frame}
    # RTDOSE -> RTPLAN -> RTSTRUCT
    assert rd.ReferencedRTPlanSequence[0].ReferencedSOPClassUID == RTPLAN_SOP
    assert rd.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == rp.SOPInstanceUID
    assert rp.ReferencedStructureSetSequence[0].ReferencedSOPClassUID == RTSTRUCT_SOP
    assert rp.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID == rs.SOPInstanceUID
    # RTSTRUCT -> frame of reference, study, CT series and every slice
    ref = rs.ReferencedFrameOfReferenceSequence[0]
    assert ref.FrameOfReferenceUID == frame
    study = ref.RTReferencedStudySequence[0]
    assert study.ReferencedSOPInstanceUID == rs.StudyInstanceUID
    series = study.RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == f[CT_SOP][0].SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in series.ContourImageSequence} == \
        {ds.SOPInstanceUID for ds in f[CT_SOP]}
    assert {r.ReferencedFrameOfReferenceUID for r in rs.StructureSetROISequence} == {frame}
    # file names say what they are
    assert sorted(p.name for p in pass_dir.iterdir()) == sorted(file_names(case))


def test_rtstruct_rois(pass_files):
    rs = pass_files[RTSTRUCT_SOP][0]
    names = {int(r.ROINumber): r.ROIName for r in rs.StructureSetROISequence}
    types = {names[int(o.ReferencedROINumber)]: o.RTROIInterpretedType for o in rs.RTROIObservationsSequence}
    for organ in ("Liver", "Lung_L", "Lung_R", "SpinalCord", "Esophagus", "Stomach", "Duodenum",
                  "Kidney_L", "Kidney_R", "Heart"):
        assert types[organ] == "ORGAN"
    assert types["External"] == "EXTERNAL"
    assert types["GTV_Liver"] == "GTV" and types["CTV_Liver"] == "CTV" and types["PTV_Liver"] == "PTV"
    assert types["GTV_Lung"] == "GTV" and types["PTV_Lung"] == "PTV"
    assert types["GTV_T10"] == "GTV" and types["PTV_T10"] == "PTV"
    assert types["zRing_PTV"] == "CONTROL" and types["opt_avoid"] == "AVOIDANCE"
    assert {int(rc.ReferencedROINumber) for rc in rs.ROIContourSequence} == set(names)
    for _, c in contour_items(rs):
        assert c.ContourGeometricType == "CLOSED_PLANAR"
        assert len(c.ContourData) == 3 * int(c.NumberOfContourPoints)


def test_contour_planes_coincide_with_ct_slices(pass_files):
    cts = pass_files[CT_SOP]
    rs = pass_files[RTSTRUCT_SOP][0]
    z_of_uid = {ds.SOPInstanceUID: float(ds.ImagePositionPatient[2]) for ds in cts}
    ct_z = np.array(sorted(z_of_uid.values()))
    assert np.all(np.diff(ct_z) <= 3.0 + 1e-9)
    planes: dict[str, set[float]] = {}
    for name, c in contour_items(rs):
        xyz = contour_xyz(c)
        z = xyz[0, 2]
        assert np.all(xyz[:, 2] == z), "contours are planar"
        assert np.min(np.abs(ct_z - z)) < 1e-6, f"{name}: plane z={z} is not a CT slice"
        assert z_of_uid[c.ContourImageSequence[0].ReferencedSOPInstanceUID] == pytest.approx(z)
        planes.setdefault(name, set()).add(float(z))
    # every slice that cuts a solid has its contour(s), and no other slice
    case = hcc_pass()
    for s in all_structures(case):
        expected = {float(z) for z in ct_z if s.shape.sections(float(z), 2.0, 16)}
        assert planes.get(s.name, set()) == expected, s.name


def test_contour_vertices_on_analytic_surface(pass_files):
    rs = pass_files[RTSTRUCT_SOP][0]
    case = hcc_pass()
    tol = 0.05 * math.sqrt(2) + 0.07  # 0.1 mm rounding + area-preserving offset (<= 0.07 mm here)
    per_plane: dict[tuple[str, float], list[np.ndarray]] = {}
    for name, c in contour_items(rs):
        xyz = contour_xyz(c)
        shape = structure(case, name).shape
        assert np.max(np.abs(shape.signed_distance(xyz))) < tol, name
        chords = np.linalg.norm(np.diff(np.vstack([xyz, xyz[:1]]), axis=0), axis=1)
        spacing = structure(case, name).contour_spacing_mm or case.contour_spacing_mm
        assert chords.max() <= spacing + 0.15, name
        # polygon area = the generator's area for that loop (outer or hole) after rounding
        areas = np.array([polygon_area(v) for v in shape.sections(float(xyz[0, 2]), spacing, 16)])
        assert np.min(np.abs(areas - polygon_area(xyz[:, :2])) / np.abs(areas)) < 0.01, name
        per_plane.setdefault((name, float(xyz[0, 2])), []).append(xyz)
    # body-sized contours have a few hundred vertices
    ext = [len(v[0]) for (n, _), v in per_plane.items() if n == "External"]
    assert 300 <= min(ext) <= max(ext) <= 500
    # the ring has its hole on every plane that cuts the inner sphere, drawn clockwise
    ring = [v for (n, _), v in per_plane.items() if n == "zRing_PTV"]
    holes = [v for v in ring if len(v) == 2]
    assert len(holes) >= 5
    for outer, inner in holes:
        assert polygon_area(outer[:, :2]) > 0 > polygon_area(inner[:, :2])
        assert abs(polygon_area(inner[:, :2])) < polygon_area(outer[:, :2])


def test_ct_geometry_and_hu(pass_files):
    cts = sorted(pass_files[CT_SOP], key=lambda d: float(d.ImagePositionPatient[2]))
    case = hcc_pass()
    zs = np.array([float(d.ImagePositionPatient[2]) for d in cts])
    np.testing.assert_allclose(zs, case.ct.zs)
    assert np.all(np.diff(zs) <= 3.0) and float(cts[0].SliceThickness) == 3.0
    for d in cts:
        assert [float(v) for v in d.PixelSpacing] == [1.0, 1.0]
        assert d.Rows == case.ct.rows and d.Columns == case.ct.columns
    for d in (cts[5], cts[len(cts) // 2], cts[-10]):
        hu = d.pixel_array.astype(float) * float(d.RescaleSlope) + float(d.RescaleIntercept)
        x0, y0, z = (float(v) for v in d.ImagePositionPatient)
        dy, dx = (float(v) for v in d.PixelSpacing)
        xx, yy = np.meshgrid(x0 + dx * np.arange(d.Columns), y0 + dy * np.arange(d.Rows))
        truth = ct_hu(case, np.stack([xx, yy, np.full_like(xx, z)], axis=-1))
        np.testing.assert_array_equal(hu, truth)
        assert set(np.unique(hu)) <= {-1000.0, -800.0, 40.0, 400.0}
    # the lungs are air-filled on the CT
    mid = cts[len(cts) // 2 + 15]
    hu = mid.pixel_array.astype(float) - 1024
    assert (hu == -800).sum() > 5000 and (hu == 400).sum() > 500


def test_rtplan_prescriptions_and_beams(pass_files):
    rp = pass_files[RTPLAN_SOP][0]
    rs = pass_files[RTSTRUCT_SOP][0]
    roi = {r.ROIName: int(r.ROINumber) for r in rs.StructureSetROISequence}
    assert rp.RTPlanLabel == "SBRT_5fx" and rp.ApprovalStatus == "APPROVED"
    fg = rp.FractionGroupSequence[0]
    assert int(fg.NumberOfFractionsPlanned) == 5
    rx = {}
    for dr in rp.DoseReferenceSequence:
        assert dr.DoseReferenceType == "TARGET" and dr.DoseReferenceStructureType == "VOLUME"
        name = next(n for n, k in roi.items() if k == int(dr.ReferencedROINumber))
        rx[name] = float(dr.TargetPrescriptionDose)
    assert rx == {"PTV_Liver": 50.0, "PTV_Lung": 50.0, "PTV_T10": 40.0}
    # per-fraction beam doses add up to the prescription of their target
    uid_to_ptv = {dr.DoseReferenceUID: next(n for n, k in roi.items() if k == int(dr.ReferencedROINumber))
                  for dr in rp.DoseReferenceSequence}
    per_target: dict[str, float] = {}
    for rb in fg.ReferencedBeamSequence:
        ptv = uid_to_ptv[rb.ReferencedDoseReferenceUID]
        per_target[ptv] = per_target.get(ptv, 0.0) + float(rb.BeamDose)
    for ptv, d in per_target.items():
        assert d * 5 == pytest.approx(rx[ptv], abs=1e-4)
    assert int(fg.NumberOfBeams) == len(rp.BeamSequence) == len(fg.ReferencedBeamSequence) == 9
    assert {int(b.BeamNumber) for b in rp.BeamSequence} == \
        {int(r.ReferencedBeamNumber) for r in fg.ReferencedBeamSequence}


def test_pass_dose_grid_matches_analytic_dose(pass_files):
    rd = pass_files[RTDOSE_SOP][0]
    case = hcc_pass()
    assert rd.DoseUnits == "GY" and rd.DoseSummationType == "PLAN" and rd.DoseType == "PHYSICAL"
    xs, ys, zs = dose_grid_coords(rd)
    assert float(rd.PixelSpacing[0]) <= 3 and float(rd.PixelSpacing[1]) <= 3 and np.all(np.abs(np.diff(zs)) <= 3)
    pts = np.stack(np.meshgrid(xs, ys, zs, indexing="xy"), axis=-1).transpose(2, 0, 1, 3)
    truth = plan_dose(case, 0, pts)
    scale = float(rd.DoseGridScaling)
    assert np.max(np.abs(dose_gy(rd) - truth)) <= 0.5 * scale + 1e-9
    # the grid covers every organ (not necessarily the External), and the end slabs in z
    for s in all_structures(case):
        if s.interpreted_type == "EXTERNAL":
            continue
        lo, hi = clipped(s.shape, case.ct).bounds()
        assert xs[0] <= lo[0] and hi[0] <= xs[-1], s.name
        assert ys[0] <= lo[1] and hi[1] <= ys[-1], s.name
        assert zs.min() <= lo[2] and hi[2] <= zs.max(), s.name


# ---------------------------------------------------------------------------------------
# dose encodings on a tiny phantom
# ---------------------------------------------------------------------------------------

GRID_VARIANTS = [
    {},
    {"summation": "FRACTION"},
    {"z_order": "decreasing"},
    {"z_order": "decreasing", "frame_offsets": "absolute"},
    {"frame_offsets": "absolute", "bits": 32},
    {"units": "RELATIVE"},
    {"z_positions_mm": (-12.0, -9.0, -7.5, -3.0, 0.0, 2.0, 9.0, 12.0)},
    {"summation": "BEAM", "z_order": "decreasing", "bits": 32},
]


@pytest.mark.parametrize("grid_kw", GRID_VARIANTS, ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()) or "plan")
def test_dose_grid_encodings(tmp_path, grid_kw):
    case = tiny_case(grid_kw=grid_kw)
    p = case.plans[0]
    res = write_case(case, tmp_path)
    rds = load(tmp_path)[RTDOSE_SOP]
    beams = plan_beams(case, p)
    assert len(rds) == (len(beams) if p.grid.summation == "BEAM" else 1)
    total = 0.0
    for rd in rds:
        xs, ys, zs = dose_grid_coords(rd)
        off = [float(v) for v in rd.GridFrameOffsetVector]
        assert (off[0] == 0) == (p.grid.frame_offsets == "relative")
        assert rd.BitsAllocated == p.grid.bits and rd.PixelRepresentation == 0
        assert rd.DoseSummationType == p.grid.summation and rd.DoseUnits == p.grid.units
        np.testing.assert_allclose(xs, p.grid.xs)
        np.testing.assert_allclose(ys, p.grid.ys)
        np.testing.assert_allclose(zs, p.grid.zs)
        assert (np.diff(zs) < 0).all() if p.grid.z_order == "decreasing" else (np.diff(zs) > 0).all()
        assert [float(v) for v in rd.PixelSpacing] == [2.5, 2.0]  # [row (y), column (x)]
        pts = np.stack(np.meshgrid(xs, ys, zs, indexing="xy"), axis=-1).transpose(2, 0, 1, 3)
        if p.grid.summation == "BEAM":
            num = int(rd.ReferencedRTPlanSequence[0].ReferencedFractionGroupSequence[0]
                      .ReferencedBeamSequence[0].ReferencedBeamNumber)
            truth = beam_dose(case, p, num, pts)
        else:
            truth = plan_dose(case, p, pts)
        if p.grid.summation == "FRACTION":
            truth = truth / p.fractions
            assert rd.ReferencedRTPlanSequence[0].ReferencedFractionGroupSequence[0].ReferencedFractionGroupNumber == 1
        if p.grid.units == "RELATIVE":
            truth = truth / 30.0
        got = dose_gy(rd)
        assert np.max(np.abs(got - truth)) <= 0.5 * float(rd.DoseGridScaling) + 1e-9
        assert rd.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == res["plans"][0]["rtplan_uid"]
        total = total + got
    if p.grid.summation == "BEAM":  # the beams add up to the plan
        pts = np.stack(np.meshgrid(*dose_grid_coords(rds[0]), indexing="xy"), axis=-1).transpose(2, 0, 1, 3)
        assert np.max(np.abs(total - plan_dose(case, p, pts))) < 1e-3


def test_analytic_dose_profile():
    case = tiny_case(plan_kw={"targets": (TargetDose("A", 24.0),), "clouds": ()})
    p = case.plans[0]
    ptv = structure(case, "PTV_A").shape
    inside, cc = sample_inside(ptv, 0.5)
    d = plan_dose(case, p, inside)
    assert d.min() >= 24.0 and d.max() <= 24.0 * 1.07  # 100-107 % of 24 Gy inside the PTV
    # 50 % of the prescription at falloff_mm outside the PTV (other targets far away)
    r = 6 + 2 + 3
    assert float(plan_dose(case, p, np.array([0.0, -10.0 - r - 8.0, 1.0]))) == pytest.approx(12.0, abs=0.3)
    # monotone fall-off, continuous at the surface
    d_axis = profile(np.linspace(-10, 40, 501), 8.0)
    assert np.all(np.diff(d_axis[100:]) <= 0) and profile(np.array([0.0]), 8.0)[0] == 1.0
    assert abs(profile(np.array([1e-6]), 8.0)[0] - profile(np.array([-1e-6]), 8.0)[0]) < 1e-9
    # per fraction
    pt = np.array([[0.0, -10.0, 1.0]])
    assert plan_dose(case, p, pt, per_fraction=True) == pytest.approx(plan_dose(case, p, pt) / 3)


# ---------------------------------------------------------------------------------------
# options: missing objects, several plans, ROI numbering
# ---------------------------------------------------------------------------------------


def test_options_no_ct_no_plan_and_two_plans(tmp_path):
    base = tiny_case()
    g = base.plans[0].grid
    plans = (
        PlanSpec("Lesion_A", 3, (TargetDose("A", 27.0),), g, approval="UNAPPROVED"),
        PlanSpec("Lesion_B", 5, (TargetDose("B", 35.0, beams=2),), replace(g, summation="FRACTION"),
                 write_plan=False),
    )
    structures = tuple(replace(s, roi_number=100 + i) for i, s in enumerate(base.structures))
    case = replace(base, name="options", plans=plans, ct=replace(base.ct, write=False),
                   structures=structures, roi_contour_order="reversed")
    res = write_case(case, tmp_path)
    f = load(tmp_path)
    assert f[CT_SOP] == [] and res["ct"] == []
    assert len(f[RTPLAN_SOP]) == 1 and len(f[RTDOSE_SOP]) == 2
    rs, rp = f[RTSTRUCT_SOP][0], f[RTPLAN_SOP][0]
    # the structure set still names the (absent) CT slices
    refs = rs.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert [i.ReferencedSOPInstanceUID for i in refs.ContourImageSequence] == res["uids"]["ct"]
    # ROI numbers as given for organs, lesion ROIs numbered after them; contours reversed
    nums = roi_numbers(case)
    assert nums["BODY"] == 100 and nums["GTV_A"] not in (100, 101, 102, 103)
    assert [int(r.ROINumber) for r in rs.StructureSetROISequence] == list(nums.values())
    assert [int(r.ReferencedROINumber) for r in rs.ROIContourSequence] == list(nums.values())[::-1]
    # plan A: its own fractions, prescription and approval; plan B: dose without its plan
    assert rp.RTPlanLabel == "Lesion_A" and rp.ApprovalStatus == "UNAPPROVED"
    assert int(rp.FractionGroupSequence[0].NumberOfFractionsPlanned) == 3
    assert float(rp.DoseReferenceSequence[0].TargetPrescriptionDose) == 27.0
    by_plan = {rd.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID: rd for rd in f[RTDOSE_SOP]}
    assert rp.SOPInstanceUID in by_plan
    missing = [u for u in by_plan if u != rp.SOPInstanceUID]
    assert missing == [res["plans"][1]["rtplan_uid"]] and res["plans"][1]["rtplan"] is None
    assert by_plan[missing[0]].DoseSummationType == "FRACTION"
    # each plan's dose holds only its own lesions
    pt = np.array([[-25.0, 2.0, 0.0]])  # centre of lesion B
    assert plan_dose(case, "Lesion_A", pt)[0] < 10 < 35 <= plan_dose(case, "Lesion_B", pt)[0]


def test_uneven_ct_slices_and_structure_outside_grid(tmp_path):
    base = tiny_case()
    zs = (-14.0, -11.0, -9.0, -6.0, -5.0, -2.0, 0.0, 1.5, 4.0, 7.0, 12.0)
    grid = replace(base.plans[0].grid, x_mm=(-30.0, 10.0))  # "Block" (x 21..35) lies outside
    case = replace(base, ct=replace(base.ct, slice_positions_mm=zs),
                   plans=(replace(base.plans[0], grid=grid),))
    write_case(case, tmp_path)
    f = load(tmp_path)
    assert sorted(float(d.ImagePositionPatient[2]) for d in f[CT_SOP]) == list(zs)
    assert float(f[CT_SOP][0].SliceThickness) == 1.0  # smallest gap
    planes = {float(contour_xyz(c)[0, 2]) for n, c in contour_items(f[RTSTRUCT_SOP][0]) if n == "Organ"}
    assert planes == {z for z in zs if abs(z) < 10.0}
    xs, _, _ = dose_grid_coords(f[RTDOSE_SOP][0])
    lo, _ = structure(case, "Block").shape.bounds()
    assert xs[-1] < lo[0]


def test_validation_errors():
    case = tiny_case()
    dup = replace(case, structures=case.structures + (case.structures[1],))
    with pytest.raises(ValueError, match="duplicate ROI names"):
        validate_case(dup)
    bad = replace(case, plans=(replace(case.plans[0], targets=(TargetDose("nope", 10.0),)),))
    with pytest.raises(ValueError, match="unknown lesion"):
        validate_case(bad)
    with pytest.raises(ValueError, match="1-16"):
        validate_case(replace(case, plans=(replace(case.plans[0], label="x" * 17),)))


# ---------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------


def test_deterministic_bytes(tmp_path):
    case = tiny_case(grid_kw={"summation": "BEAM"})
    a = write_case(case, tmp_path / "a")
    b = write_case(case, tmp_path / "b")
    names = sorted(Path(p).name for p in a["files"])
    assert names == sorted(Path(p).name for p in b["files"]) == sorted(file_names(case))
    for n in names:
        assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes(), n
    # another seed gives other UIDs
    c = write_case(replace(case, seed="other"), tmp_path / "c")
    assert c["uids"]["study"] != a["uids"]["study"]


def test_named_case_regenerates_identically(tmp_path, pass_dir):
    write_case(hcc_pass(), tmp_path)
    for p in pass_dir.iterdir():
        assert (tmp_path / p.name).read_bytes() == p.read_bytes(), p.name


@pytest.mark.parametrize("name", ["hcc_pass", "hcc_fail"])
def test_committed_samples_are_current(name, pass_dir, fail_dir):
    """plans_sample/<case> is what ``rtqa sample`` writes today (regenerate with
    ``rtqa sample plans_sample/<case> --case <case> --force`` when this fails)."""
    committed = REPO / "plans_sample" / name
    if not committed.is_dir():
        pytest.skip(f"{committed} not present")
    fresh = pass_dir if name == "hcc_pass" else fail_dir
    assert sorted(p.name for p in committed.iterdir()) == sorted(p.name for p in fresh.iterdir())
    for p in sorted(fresh.iterdir()):
        a, b = pydicom.dcmread(p), pydicom.dcmread(committed / p.name)
        assert a.SOPInstanceUID == b.SOPInstanceUID, p.name
        if "PixelData" in a:
            assert np.array_equal(a.pixel_array, b.pixel_array), p.name
        if a.Modality == "RTDOSE":
            assert a.DoseGridScaling == b.DoseGridScaling
        if a.Modality == "RTSTRUCT":
            assert [c.ContourData for _, c in contour_items(a)] == [c.ContourData for _, c in contour_items(b)]
        if a.Modality == "RTPLAN":
            assert a.DoseReferenceSequence == b.DoseReferenceSequence


# ---------------------------------------------------------------------------------------
# clinical content of the named cases (independent analytic estimate)
# ---------------------------------------------------------------------------------------


def test_pass_case_meets_design_targets():
    case = hcc_pass()
    res = evaluate(case)
    failed = {k: v for k, (ok, v) in res.items() if not ok}
    assert not failed, failed
    # ... with margin
    assert res["normal liver volume >= 700 cc"][1] >= 1200
    assert res["normal liver >= 700 cc below 15 Gy"][1] >= 1000
    assert res["normal liver mean < 13 Gy"][1] < 11
    assert res["SpinalCord D0.03cc < 30 Gy"][1] < 22
    for k in ("PTV_Liver", "PTV_Lung", "PTV_T10"):
        assert res[f"{k} BED10(D95%) >= 60"][1] >= 70
    assert res["Lungs V20Gy(EQD2) < 10 %"][1] < 5 and res["Lungs mean EQD2 < 7 Gy"][1] < 5
    assert res["Duodenum D10cc < 12.5 Gy"][1] < 6 and res["Esophagus D5cc < 19.5 Gy"][1] < 12


def test_fail_case_fails_exactly_what_it_should():
    res = evaluate(hcc_fail())
    failed = {k for k, (ok, _) in res.items() if not ok}
    assert failed == {
        "PTV_T10 BED10(D95%) >= 60",
        "PTV_T10 BED10(Rx) >= 60",
        "normal liver >= 700 cc below 15 Gy",
        "normal liver mean < 13 Gy",
        "SpinalCord D0.35cc < 23 Gy",
        "SpinalCord D0.03cc < 30 Gy",
    }
    assert res["PTV_T10 BED10(Rx) >= 60"][1] == pytest.approx(48.0)
    assert res["PTV_T10 BED10(D95%) >= 60"][1] < 55
    assert res["normal liver >= 700 cc below 15 Gy"][1] < 600  # clearly below 700 cc
    assert res["normal liver volume >= 700 cc"][1] >= 1200  # the rule could be met
    assert res["SpinalCord D0.03cc < 30 Gy"][1] > 32


def test_anatomy_is_realistic():
    case = hcc_pass()
    vol = {s.name: s.shape.volume_cc for s in all_structures(case)}
    assert 1300 <= vol["Liver"] <= 1700
    assert 1300 <= vol["Lung_L"] <= 1700 and 1300 <= vol["Lung_R"] <= 1700
    assert 300 <= vol["Heart"] <= 700 and 100 <= vol["Kidney_L"] <= 250
    ext = structure(case, "External").shape
    assert ext.semi_axes_xy == (170.0, 120.0)
    # organs lie inside the body; the liver is in the right upper abdomen, lungs above it
    for s in all_structures(case):
        if s.interpreted_type == "EXTERNAL":
            continue
        p, _ = sample_inside(clipped(s.shape, case.ct), 3.0)
        assert ext.contains(p).mean() > 0.999, s.name
    liver, lung_r = structure(case, "Liver").shape, structure(case, "Lung_R").shape
    assert liver.centre[0] < 0 and lung_r.centre[2] > liver.centre[2] + 80
    # organs barely overlap (ellipsoids cannot nest): < 2 cc for any pair
    organs = ["Liver", "Lung_L", "Lung_R", "Heart", "Stomach", "Duodenum", "Kidney_L", "Kidney_R"]
    pts = {n: sample_inside(structure(case, n).shape, 2.0) for n in organs}
    for i, a in enumerate(organs):
        for b in organs[i + 1:]:
            p, cc = pts[a]
            assert structure(case, b).shape.contains(p).sum() * cc < 2.0, (a, b)
    # PTV = CTV + 2-5 mm (checked on the CTV's contour vertices), vertebral PTV >= 5 mm from cord
    for les in case.lesions:
        inner = les.ctv or les.gtv
        verts = np.concatenate([np.column_stack([v, np.full(len(v), z)])
                                for z in np.arange(-150, 150, 1.0)
                                for v in inner.sections(float(z), 1.0, 16)])
        margin = -les.ptv.signed_distance(verts)
        assert 2.0 <= margin.min() and margin.max() <= 5.0, les.name
    cord = clipped(structure(case, "SpinalCord").shape, case.ct)
    p, _ = sample_inside(cord, 0.5)
    assert structure(case, "PTV_T10").shape.signed_distance(p).min() >= 5.0


def test_sample_dose_helper_matches_independent_estimate():
    case = hcc_pass()
    d1, cc1 = sample_dose(case, "Liver", spacing_mm=2.0, exclude="GTV_Liver")
    d2, cc2 = truth_doses(case, ["Liver"], 2.0, exclude="GTV_Liver")
    assert cc1 == cc2 and np.array_equal(np.sort(d1), np.sort(d2))
    d, cc = sample_dose(case, ("Lung_L", "Lung_R"), spacing_mm=2.0)
    assert len(d) * cc == pytest.approx(2 * structure(case, "Lung_L").shape.volume_cc, rel=0.01)
    d, cc = sample_dose(case, "SpinalCord", spacing_mm=0.5)
    zs = case.ct.zs
    assert len(d) * cc == pytest.approx(math.pi * 5 * 4 * (zs[-1] - zs[0] + 3.0) / 1000, rel=0.03)


def test_case_sizes_within_budget(pass_dir, fail_dir):
    for d in (pass_dir, fail_dir):
        assert sum(p.stat().st_size for p in d.iterdir()) <= 3 * MB


# ---------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [
    Ellipsoid((1.0, 2.0, 3.0), (20.0, 12.0, 9.0)),
    sphere((0.0, 0.0, 0.0), 10.0),
    EllipticCylinder((5.0, -5.0), (15.0, 8.0), -10.0, 12.0),
    Box((0.0, 0.0, 0.0), (10.0, 20.0, 6.0)),
    Ring(sphere((0.0, 0.0, 0.0), 15.0), sphere((0.0, 0.0, 0.0), 8.0)),
], ids=["ellipsoid", "sphere", "cylinder", "box", "ring"])
def test_shapes(shape):
    p, cc = sample_inside(shape, 0.5)
    assert len(p) * cc == pytest.approx(shape.volume_cc, rel=0.02)
    # sections: area of the contours (holes subtract) matches the sampled cross-section
    lo, hi = shape.bounds()
    z = 0.5 * (lo[2] + hi[2]) + 0.3
    loops = shape.sections(z, 0.5, 16)
    area = sum(polygon_area(v) for v in loops)
    xs = np.arange(lo[0], hi[0], 0.1) + 0.05
    ys = np.arange(lo[1], hi[1], 0.1) + 0.05
    xx, yy = np.meshgrid(xs, ys)
    inside = shape.contains(np.stack([xx, yy, np.full_like(xx, z)], axis=-1)).sum() * 0.01
    assert area == pytest.approx(inside, rel=0.01)
    for v in loops:  # vertices on (or, area-preserving, within 0.2 % of) the surface, ~0.5 mm apart
        pts = np.column_stack([v, np.full(len(v), z)])
        assert np.abs(shape.signed_distance(pts)).max() < 0.02
        assert np.linalg.norm(np.diff(np.vstack([v, v[:1]]), axis=0), axis=1).max() <= 0.5 * 1.002
    assert shape.sections(hi[2] + 1.0) == []
    # signed distance: negative inside, positive outside
    d = shape.signed_distance(p)
    assert (d <= 1e-9).all()


def test_signed_distance_exact_for_spheres_and_boxes():
    s = sphere((1.0, 2.0, 3.0), 5.0)
    assert s.signed_distance(np.array([1.0, 2.0, 13.0])) == pytest.approx(5.0)
    b = Box((0.0, 0.0, 0.0), (10.0, 10.0, 10.0))
    assert b.signed_distance(np.array([8.0, 9.0, 0.0])) == pytest.approx(5.0)
    assert b.signed_distance(np.array([4.0, 0.0, 0.0])) == pytest.approx(-1.0)
    loop = ellipse_loop(0.0, 0.0, 30.0, 10.0, 1.0, 16)
    seg = np.linalg.norm(np.diff(np.vstack([loop, loop[:1]]), axis=0), axis=1)
    assert seg.max() <= 1.001 and seg.min() > 0.9  # even arc-length spacing
    # polygons keep the exact area (small contours too); or sit on the curve if asked
    for n_min, (a, b) in ((16, (5.0, 4.0)), (16, (30.0, 10.0)), (64, (2.0, 2.0))):
        loop = ellipse_loop(1.0, 2.0, a, b, 2.0, n_min)
        assert polygon_area(loop) == pytest.approx(math.pi * a * b, rel=1e-12)
        on = ellipse_loop(1.0, 2.0, a, b, 2.0, n_min, area_preserving=False)
        assert np.allclose(((on[:, 0] - 1) / a) ** 2 + ((on[:, 1] - 2) / b) ** 2, 1.0)


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------


def test_cli_refuses_non_empty_folder_and_force_writes(tmp_path, monkeypatch):
    import rtqa.cli.sample as cli_sample

    (tmp_path / "notes.txt").write_text("keep me")
    res = CliRunner().invoke(main, ["sample", str(tmp_path)])
    assert res.exit_code == 2 and "not empty" in res.output
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    monkeypatch.setattr(cli_sample, "get_case", lambda name: tiny_case(name))
    res = CliRunner().invoke(main, ["sample", str(tmp_path), "--force"])
    assert res.exit_code == 0, res.output
    assert "RTDOSE" in res.output and "RD.P1.dcm" in res.output
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert (tmp_path / "RS.hcc_pass.dcm").exists()


def test_cli_help():
    res = CliRunner().invoke(main, ["sample", "--help"])
    assert res.exit_code == 0
    for word in ("OUTDIR", "--case", "--force", "hcc_pass", "hcc_fail", "body_bench", "rtqa check"):
        assert word in res.output
