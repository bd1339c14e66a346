"""DICOM RT reading: classification, refusals, orientation, summation types, contours.

Every expected dose is the analytic function the phantom was written from (see
tests/phantoms.py); every expected volume is closed-form.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
from pydicom.errors import BytesLengthException

from rtqa.dvh import compute_dvh, trilinear
from rtqa.errors import DicomInputError, RtqaError
from rtqa.dvh.metrics import evaluate, parse_metric, volume_at_least
from rtqa.reading import load_export

try:
    import phantoms as ph
except ImportError:  # tests collected as a package
    from tests import phantoms as ph


def multilinear(x, y, z):
    """A dose that trilinear interpolation reproduces exactly (span of 1, x, y, z, xy, yz,
    xz, xyz), with distinct, asymmetric dependence on x, y and z so that any flip or
    transposition of the axes changes it. Positive on |x|, |y|, |z| <= 30 mm."""
    return 20.0 + 0.3 * x - 0.2 * y + 0.1 * z + 0.004 * x * y - 0.003 * y * z


SMALL_GRID = dict(ipp=(-10.0, -12.0, -8.0), rows=9, cols=11, pixel_spacing=(3.0, 2.0),
                  offsets=ph.regular_offsets(7, 2.5))


def _sphere_roi(number=1, name="Sphere", c=(0.0, 0.0, 0.0), r=6.0, itype="PTV"):
    return ph.Roi(number, name, ph.sphere_contours(c, r, c[2] + np.arange(-5.0, 6.0, 1.0)),
                  itype)


def _assert_names_file(exc: DicomInputError, path: Path):
    assert exc.path is not None, str(exc)
    assert Path(exc.path).resolve() == Path(path).resolve()
    assert Path(path).name in str(exc)


# ---------------------------------------------------------------------------------------
# Finding and classifying files
# ---------------------------------------------------------------------------------------

def test_classification_by_sop_class_not_by_name(tmp_path):
    study = ph.Study()
    sub = tmp_path / "export" / "deeper"
    # misleading names: the dose is called like a structure set and vice versa
    ss_uid = ph.write_struct(tmp_path / "export" / "RD.dose.dcm", [_sphere_roi()], study=study)
    plan_uid = ph.write_plan(sub / "image0001", study=study, fractions=3,
                             structure_set_uid=ss_uid)
    ph.write_dose(sub / "RS_structures.txt", multilinear, study=study, plan_uid=plan_uid,
                  **SMALL_GRID)
    (tmp_path / "export" / "report.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n")
    (tmp_path / "export" / "notes.txt").write_text("plan notes, not DICOM\n")
    (sub / "DICOMDIR_README").write_bytes(b"\x00" * 300)

    ex = load_export([tmp_path / "export"])
    kinds = {f.path.name: f.kind for f in ex.scanned.files}
    assert kinds == {"RD.dose.dcm": "RTSTRUCT", "image0001": "RTPLAN",
                     "RS_structures.txt": "RTDOSE"}
    skipped = sorted(p.name for p, _ in ex.scanned.skipped)
    assert skipped == ["DICOMDIR_README", "notes.txt", "report.pdf"]
    assert len(ex.doses) == 1 and len(ex.plans) == 1 and len(ex.structure_sets) == 1
    assert ex.plans[0].referenced_structure_set_uid == ss_uid
    assert ex.courses[0].plan is ex.plans[0]
    assert ex.structure_sets[0].frame_of_reference_uid == ex.courses[0].grid \
        .frame_of_reference_uid == study.frame_uid


def test_dcm_file_that_is_not_dicom_is_an_error(tmp_path):
    ph.write_dose(tmp_path / "RD.dcm", multilinear, study=ph.Study(), **SMALL_GRID)
    bad = tmp_path / "RS.broken.dcm"
    bad.write_text("this is not DICOM at all\n" * 20)
    with pytest.raises(DicomInputError) as err:
        load_export([tmp_path])
    _assert_names_file(err.value, bad)


def test_explicitly_named_non_dicom_file_is_an_error(tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("hello\n")
    with pytest.raises(DicomInputError) as err:
        load_export([txt])
    _assert_names_file(err.value, txt)


# Truncated files. Offsets are found in the written bytes (Explicit VR Little Endian):
# 128-byte preamble + "DICM", then the file meta group, then the data set.

def _tag_pos(raw: bytes, group: int, elem: int, start: int = 0) -> int:
    i = raw.find(struct.pack("<HH", group, elem), start)
    assert i >= 0, (hex(group), hex(elem))
    return i


def _meta_end(raw: bytes) -> int:
    assert raw[128:132] == b"DICM" and raw[132:136] == b"\x02\x00\x00\x00"
    return 144 + struct.unpack("<I", raw[140:144])[0]


def _cut(raw: bytes, where: str) -> int:
    """Byte count to keep for a named truncation point."""
    if where == "pixel_data_middle":
        i = _tag_pos(raw, 0x7FE0, 0x0010, _meta_end(raw))
        return i + 12 + struct.unpack("<I", raw[i + 8:i + 12])[0] // 2
    if where == "pixel_data_last_bytes":
        return len(raw) - 2
    if where == "meta_group_length_value_missing":
        return 140
    if where == "before_dose_module":  # data set ends inside the Image Plane module
        i = _tag_pos(raw, 0x0020, 0x0037, _meta_end(raw))  # ImageOrientationPatient
        return i + 5
    if where == "meta_group_length_half_value":
        return 142
    if where == "meta_element_length_field":  # (0002,0001) OB: 4-byte length cut
        assert raw[144:150] == b"\x02\x00\x01\x00OB"
        return 154
    if where == "pixel_data_length_field":
        return _tag_pos(raw, 0x7FE0, 0x0010, _meta_end(raw)) + 10
    if where == "inside_sop_class_uid":
        i = _tag_pos(raw, 0x0008, 0x0016, _meta_end(raw))
        assert raw[i + 4:i + 6] == b"UI"
        return i + 8 + struct.unpack("<H", raw[i + 6:i + 8])[0] // 2
    raise ValueError(where)


def _write_truncated_dose(tmp_path, name, where):
    path = tmp_path / name
    ph.write_dose(path, multilinear, study=ph.Study(), **SMALL_GRID)
    raw = path.read_bytes()
    n = _cut(raw, where)
    assert 132 < n < len(raw)
    path.write_bytes(raw[:n])
    return path


@pytest.mark.parametrize("name", ["RD.trunc.dcm", "RD_truncated_noext"])
@pytest.mark.parametrize("where", ["pixel_data_middle", "pixel_data_last_bytes",
                                   "meta_group_length_value_missing", "before_dose_module"])
def test_truncated_rtdose_is_an_error(tmp_path, name, where):
    path = _write_truncated_dose(tmp_path, name, where)
    with pytest.raises(DicomInputError) as err:
        load_export([tmp_path])
    _assert_names_file(err.value, path)


@pytest.mark.parametrize("where", ["meta_group_length_half_value", "meta_element_length_field",
                                   "pixel_data_length_field"])
def test_truncated_rtdose_inside_a_length_field_is_an_error(tmp_path, where):
    path = _write_truncated_dose(tmp_path, "RD.dcm", where)
    with pytest.raises(DicomInputError) as err:
        load_export([tmp_path])
    _assert_names_file(err.value, path)


def test_rtdose_truncated_inside_sop_class_uid_is_an_error(tmp_path):
    study = ph.Study()
    ph.write_dose(tmp_path / "RD.plan1.dcm", multilinear, study=study, **SMALL_GRID)
    path = tmp_path / "RD.plan2.dcm"
    ph.write_dose(path, multilinear, study=study, **SMALL_GRID)
    raw = path.read_bytes()
    path.write_bytes(raw[:_cut(raw, "inside_sop_class_uid")])
    with pytest.raises(DicomInputError) as err:
        load_export([tmp_path])
    _assert_names_file(err.value, path)


def _truncated_struct(tmp_path, tag, frac):
    path = tmp_path / "RS.dcm"
    study = ph.Study()
    ph.write_struct(path, [_sphere_roi(1, "PTV"), _sphere_roi(2, "Cord", r=3.0,
                                                             itype="ORGAN")], study=study)
    ph.write_dose(tmp_path / "RD.dcm", multilinear, study=study, **SMALL_GRID)
    raw = path.read_bytes()
    i = _tag_pos(raw, *tag, _meta_end(raw))
    n = i + int(frac * (len(raw) - i)) if frac < 1 else i + int(frac)
    path.write_bytes(raw[:n])
    return path


def test_rtstruct_truncated_in_roi_list_is_an_error(tmp_path):
    path = _truncated_struct(tmp_path, (0x3006, 0x0020), 40)
    with pytest.raises(DicomInputError) as err:
        load_export([tmp_path])
    _assert_names_file(err.value, path)


def test_rtstruct_truncated_in_observations_is_an_error(tmp_path):
    path = _truncated_struct(tmp_path, (0x3006, 0x0080), 0.75)
    with pytest.raises(DicomInputError) as err:
        load_export([tmp_path])
    _assert_names_file(err.value, path)


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(RtqaError, match="no DICOM"):
        load_export([tmp_path])


# ---------------------------------------------------------------------------------------
# Refused dose files
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,pattern", [
    (dict(units="RELATIVE"), "RELATIVE"),
    (dict(units="CGY"), "DoseUnits"),
    (dict(dose_type="ERROR"), "ERROR"),
    (dict(summation="BRACHY"), "BRACHY"),
    (dict(iop=(math.cos(0.2), math.sin(0.2), 0.0, -math.sin(0.2), math.cos(0.2), 0.0)),
     "(?i)oblique"),
    (dict(iop=(1.0, 0.0, 0.0, 0.0, 0.0, -1.0)), "(?i)oblique or non-axial"),
])
def test_refused_dose(tmp_path, kw, pattern):
    path = tmp_path / "RD.dcm"
    ph.write_dose(path, multilinear, study=ph.Study(), **{**SMALL_GRID, **kw})
    with pytest.raises(DicomInputError, match=pattern) as err:
        load_export([tmp_path])
    _assert_names_file(err.value, path)


# ---------------------------------------------------------------------------------------
# Orientation, frame order, pixel depth
# ---------------------------------------------------------------------------------------

ORIENTATIONS = {
    "HFS": (1, 0, 0, 0, 1, 0),
    "FFS": (-1, 0, 0, 0, 1, 0),
    "HFP": (-1, 0, 0, 0, -1, 0),
    "FFP": (1, 0, 0, 0, -1, 0),
    "rows_along_y": (0, 1, 0, 1, 0, 0),     # transposed in-plane (decubitus-like)
    "rows_along_minus_y": (0, -1, 0, 1, 0, 0),
}


@pytest.mark.parametrize("bits", [16, 32])
@pytest.mark.parametrize("orient", list(ORIENTATIONS))
def test_orientation_maps_doses_to_patient_coordinates(tmp_path, orient, bits):
    iop = tuple(float(v) for v in ORIENTATIONS[orient])
    # rows != cols and PixelSpacing row != column, so a transposition cannot hide
    kw = dict(ipp=(7.0, -5.0, 4.0), rows=9, cols=12, pixel_spacing=(2.0, 1.5),
              offsets=[0.0, 2.0, 4.5, 6.0, 9.0], iop=iop, bits=bits)
    df = ph.write_dose(tmp_path / "RD", multilinear, study=ph.Study(), **kw)
    grid = load_export([tmp_path]).courses[0].grid
    # axes: ascending, and exactly the set of voxel-centre coordinates written
    for axis, p in (("x", df.px), ("y", df.py), ("z", df.pz)):
        got = getattr(grid, axis)
        assert np.all(np.diff(got) > 0), axis
        assert np.allclose(got, np.unique(np.round(p, 6)), atol=1e-4), axis
    assert grid.dose.shape == (5, grid.y.size, grid.x.size)
    # every node holds the analytic dose of its own position
    zz, yy, xx = np.meshgrid(grid.z, grid.y, grid.x, indexing="ij")
    tol = df.scaling  # quantisation <= scaling / 2
    assert np.allclose(grid.dose, multilinear(xx, yy, zz), atol=tol)
    # and the interpolated dose anywhere inside is the analytic (multilinear) dose
    rng = np.random.default_rng(7)
    pts = np.column_stack([rng.uniform(grid.x[0], grid.x[-1], 300),
                           rng.uniform(grid.y[0], grid.y[-1], 300),
                           rng.uniform(grid.z[0], grid.z[-1], 300)])
    d, inside = trilinear(grid, *pts.T)
    assert inside.all()
    assert np.allclose(d, multilinear(*pts.T), atol=tol)


def test_orientation_is_a_real_check():
    """Guard: over the test region the dose function tells every flip and transposition
    apart by far more than the quantisation tolerance."""
    rng = np.random.default_rng(3)
    x, y, z = rng.uniform(-10.0, 20.0, size=(3, 50))
    base = multilinear(x, y, z)
    for alt in (multilinear(-x, y, z), multilinear(x, -y, z), multilinear(y, x, z),
                multilinear(x, y, -z), multilinear(x, z, y)):
        assert np.max(np.abs(alt - base)) > 1.0


def test_feet_first_dvh_matches_head_first(tmp_path):
    """A sphere in a linear field read through an FFS grid and an HFS grid."""
    c = (2.0, -3.0, 1.0)
    out = []
    for name, iop, ipp in (("hfs", (1, 0, 0, 0, 1, 0), (-20.0, -24.0, -20.0)),
                           ("ffs", (-1, 0, 0, 0, 1, 0), (24.0, -24.0, 22.0))):
        d = tmp_path / name
        study = ph.Study()
        ph.write_struct(d / "RS.dcm", [_sphere_roi(c=c, r=10.0)], study=study)
        ph.write_dose(d / "RD.dcm", lambda x, y, z: 30 + 0.8 * (x - c[0]), study=study,
                      ipp=ipp, rows=25, cols=23, pixel_spacing=(2.0, 2.0),
                      offsets=ph.regular_offsets(22, 2.0), iop=tuple(map(float, iop)))
        ex = load_export([d])
        s = ex.structure_sets[0].structures[0]
        out.append(compute_dvh(s, ex.courses[0].grid))
    hfs, ffs = out
    for dvh in out:
        assert dvh.mean_gy == pytest.approx(30.0, abs=0.1)
        assert dvh.max_gy == pytest.approx(30 + 0.8 * 10.0, abs=0.1)
    assert ffs.mean_gy == pytest.approx(hfs.mean_gy, abs=0.05)


# ---------------------------------------------------------------------------------------
# DoseSummationType and plan linking
# ---------------------------------------------------------------------------------------

def _nodes(grid):
    zz, yy, xx = np.meshgrid(grid.z, grid.y, grid.x, indexing="ij")
    return xx, yy, zz


def test_fraction_dose_scaled_by_plan_fractions(tmp_path):
    study = ph.Study()
    plan_uid = ph.write_plan(tmp_path / "RP.dcm", study=study, fractions=5)
    df = ph.write_dose(tmp_path / "RD.dcm", multilinear, study=study, summation="FRACTION",
                       plan_uid=plan_uid, **SMALL_GRID)
    ex = load_export([tmp_path])
    (course,) = ex.courses
    assert course.plan is not None and course.plan.fractions == 5
    assert not course.per_fraction
    assert "FRACTION" in course.note and "5 fractions" in course.note
    assert np.allclose(course.grid.dose, 5 * multilinear(*_nodes(course.grid)),
                       atol=5 * df.scaling)
    assert not any("per fraction" in w for w in ex.warnings)
    # the RTPLAN's count wins over an override (the check pipeline refuses the contradiction)
    ex3 = load_export([tmp_path], fractions_override=3)
    assert np.allclose(ex3.courses[0].grid.dose, 5 * multilinear(*_nodes(ex3.courses[0].grid)),
                       atol=5 * df.scaling)
    assert "5 fractions" in ex3.courses[0].note


def test_fraction_dose_without_plan_warns_per_fraction(tmp_path):
    df = ph.write_dose(tmp_path / "RD.dcm", multilinear, study=ph.Study(),
                       summation="FRACTION", **SMALL_GRID)
    ex = load_export([tmp_path])
    (course,) = ex.courses
    assert course.per_fraction
    assert any("per fraction" in w for w in ex.warnings), ex.warnings
    assert "per fraction" in course.note
    assert np.allclose(course.grid.dose, multilinear(*_nodes(course.grid)), atol=df.scaling)


def test_beam_doses_of_one_plan_are_summed(tmp_path):
    study = ph.Study()
    plan_uid = ph.write_plan(tmp_path / "RP.dcm", study=study, fractions=1,
                             beam_numbers=(1, 2, 3))
    funcs = {1: lambda x, y, z: 5 + 0.1 * x + 0 * y,
             2: lambda x, y, z: 7 - 0.05 * y + 0 * x,
             3: lambda x, y, z: 3 + 0.02 * z * x + 2.0 + 0 * y}
    scal = 0.0
    for b, f in funcs.items():
        scal += ph.write_dose(tmp_path / f"RD.beam{b}.dcm", f, study=study, summation="BEAM",
                              plan_uid=plan_uid, beam_numbers=(b,), **SMALL_GRID).scaling
    ex = load_export([tmp_path])
    assert len(ex.doses) == 3
    (course,) = ex.courses
    assert course.grid.summation_type == "BEAM"
    assert len(course.sources) == 3 and "3 beam doses" in course.note
    xx, yy, zz = _nodes(course.grid)
    want = sum(f(xx, yy, zz) for f in funcs.values())
    assert np.allclose(course.grid.dose, want, atol=scal)


def test_beam_doses_missing_plan_is_an_error(tmp_path):
    ph.write_dose(tmp_path / "RD.beam1.dcm", multilinear, study=ph.Study(), summation="BEAM",
                  plan_uid="1.2.3.4.5", beam_numbers=(1,), **SMALL_GRID)
    with pytest.raises(DicomInputError, match="BEAM"):
        load_export([tmp_path])


def test_beam_doses_on_different_grids_are_an_error(tmp_path):
    study = ph.Study()
    plan_uid = ph.write_plan(tmp_path / "RP.dcm", study=study, beam_numbers=(1, 2))
    ph.write_dose(tmp_path / "RD1.dcm", multilinear, study=study, summation="BEAM",
                  plan_uid=plan_uid, beam_numbers=(1,), **SMALL_GRID)
    ph.write_dose(tmp_path / "RD2.dcm", multilinear, study=study, summation="BEAM",
                  plan_uid=plan_uid, beam_numbers=(2,),
                  **{**SMALL_GRID, "ipp": (-9.0, -12.0, -8.0)})
    with pytest.raises(DicomInputError, match="different grids"):
        load_export([tmp_path])


# ---------------------------------------------------------------------------------------
# Structures
# ---------------------------------------------------------------------------------------

def test_point_open_and_empty_rois_carry_no_volume(tmp_path):
    study = ph.Study()
    line = np.array([[-5.0, 0.0, 0.0], [0.0, 3.0, 0.0], [5.0, 0.0, 0.0], [5.0, -4.0, 0.0]])
    rois = [
        _sphere_roi(1, "PTV"),
        ph.Roi(2, "Iso", [("POINT", np.array([[1.0, 2.0, 3.0]]))], "ISOCENTER"),
        ph.Roi(3, "Wire", [("OPEN_PLANAR", line)], "MARKER"),
        ph.Roi(4, "NoContourItem", [], "ORGAN", write_contour_item=False),
        ph.Roi(5, "EmptySequence", [], "ORGAN"),
    ]
    ph.write_struct(tmp_path / "RS.dcm", rois, study=study)
    ph.write_dose(tmp_path / "RD.dcm", multilinear, study=study, **SMALL_GRID)
    ex = load_export([tmp_path])
    s = {r.name: r for r in ex.structure_sets[0].structures}
    assert set(s) == {"PTV", "Iso", "Wire", "NoContourItem", "EmptySequence"}
    assert s["PTV"].has_volume
    for name in ("Iso", "Wire", "NoContourItem", "EmptySequence"):
        assert not s[name].has_volume, name
        with pytest.raises(RtqaError):
            compute_dvh(s[name], ex.courses[0].grid)
    assert s["Iso"].points.shape == (1, 3)
    assert np.allclose(s["Iso"].points, [[1.0, 2.0, 3.0]])
    assert s["PTV"].points.shape == (0, 3) and len(s["Iso"].planes) == 0
    assert s["Wire"].n_open_contours == 1
    assert s["Iso"].interpreted_type == "ISOCENTER"


def test_rois_linked_by_number_not_by_order(tmp_path):
    study = ph.Study()
    rois = [_sphere_roi(7, "Small", r=4.0, itype="GTV"),
            _sphere_roi(3, "Large", r=9.0, itype="PTV"),
            ph.Roi(12, "Box", ph.box_contours((0.0, 0.0, 0.0), (10.0, 8.0, 6.0), 2.0),
                   "AVOIDANCE")]
    ph.write_struct(tmp_path / "RS.dcm", rois, study=study, shuffle_sequences=True)
    ex = load_export([tmp_path])
    s = {r.name: r for r in ex.structure_sets[0].structures}
    assert (s["Small"].roi_number, s["Small"].interpreted_type) == (7, "GTV")
    assert (s["Large"].roi_number, s["Large"].interpreted_type) == (3, "PTV")
    assert (s["Box"].roi_number, s["Box"].interpreted_type) == (12, "AVOIDANCE")
    # contours follow the numbers too: the widest contour of each ROI
    assert max(np.ptp(p[:, 0]) for _, pp in s["Small"].planes for p in pp) == \
        pytest.approx(8.0, abs=1e-3)
    assert max(np.ptp(p[:, 0]) for _, pp in s["Large"].planes for p in pp) == \
        pytest.approx(18.0, abs=1e-3)
    assert s["Box"].z_planes.tolist() == [-2.0, 0.0, 2.0]


@pytest.mark.parametrize("reverse_inner", [False, True])
def test_inner_contour_is_a_hole(tmp_path, reverse_inner):
    """Outer 40 x 40 mm square, inner 10 x 10 mm square centred at x = +10 on every
    plane: area 1500 mm^2, centroid x = -(100 * 10) / 1500 mm (even-odd, any winding)."""
    study = ph.Study()
    h, t = 10.0, 2.0
    contours = []
    for z in ph.slab_planes(-h / 2, h / 2, t):
        contours.append(("CLOSED_PLANAR", ph.rectangle(0.0, 0.0, 40.0, 40.0, z)))
        contours.append(("CLOSED_PLANAR", ph.rectangle(10.0, 0.0, 10.0, 10.0, z,
                                                       reverse=reverse_inner)))
    ph.write_struct(tmp_path / "RS.dcm", [ph.Roi(1, "Frame", contours)], study=study)
    g = 2.0
    ph.write_dose(tmp_path / "RD.dcm", lambda x, y, z: 60.0 + g * x + 0 * y, study=study,
                  ipp=(-26.0, -26.0, -10.0), rows=27, cols=27, pixel_spacing=(2.0, 2.0),
                  offsets=ph.regular_offsets(11, 2.0))
    ex = load_export([tmp_path])
    s = ex.structure_sets[0].structures[0]
    assert all(len(polys) == 2 for _, polys in s.planes)
    dvh = compute_dvh(s, ex.courses[0].grid)
    area = 40.0 * 40.0 - 10.0 * 10.0
    assert dvh.total_volume_cc == pytest.approx(area * h / 1000, rel=0.005)
    cx = -(10.0 * 10.0 * 10.0) / area
    assert dvh.mean_gy == pytest.approx(60.0 + g * cx, abs=0.25 * g)
    # the strip 5 <= x <= 15 holds 30 x 10 mm^2 (the hole is empty), not 40 x 10
    e, c = dvh.edges_gy, dvh.cum_cc
    strip = volume_at_least(e, c, 60 + g * 5) - volume_at_least(e, c, 60 + g * 15)
    assert strip == pytest.approx(30 * 10 * h / 1000, rel=0.02)
    # and the strip -15 <= x <= -5 the full 40 x 10
    strip = volume_at_least(e, c, 60 - g * 15) - volume_at_least(e, c, 60 - g * 5)
    assert strip == pytest.approx(40 * 10 * h / 1000, rel=0.02)
    assert evaluate(parse_metric("Max[Gy]"), dvh) == pytest.approx(60 + g * 20, abs=0.01)


def _planar_solid(tmp_path, shapes, h=10.0, t=2.0, g=1.0):
    """Rectangles (cx, cy, lx, ly, reverse) on every plane of a slab of height h, in
    D = 60 + g x; returns the DVH."""
    study = ph.Study()
    contours = [("CLOSED_PLANAR", ph.rectangle(cx, cy, lx, ly, z, reverse=rev))
                for z in ph.slab_planes(-h / 2, h / 2, t) for cx, cy, lx, ly, rev in shapes]
    ph.write_struct(tmp_path / "RS.dcm", [ph.Roi(1, "Solid", contours)], study=study)
    ph.write_dose(tmp_path / "RD.dcm", lambda x, y, z: 60.0 + g * x + 0 * y, study=study,
                  ipp=(-30.0, -26.0, -10.0), rows=27, cols=31, pixel_spacing=(2.0, 2.0),
                  offsets=ph.regular_offsets(11, 2.0))
    ex = load_export([tmp_path])
    return compute_dvh(ex.structure_sets[0].structures[0], ex.courses[0].grid)


def test_two_islands_on_one_plane_add_up(tmp_path):
    # 10 x 10 at x = -15 and 20 x 20 at x = +10: area 500, centroid x = 5
    dvh = _planar_solid(tmp_path, [(-15.0, 0.0, 10.0, 10.0, False),
                                   (10.0, 0.0, 20.0, 20.0, True)])
    assert dvh.total_volume_cc == pytest.approx(500 * 10 / 1000, rel=0.005)
    assert dvh.mean_gy == pytest.approx(60.0 + 5.0, abs=0.25)
    assert dvh.min_gy == pytest.approx(60.0 - 20.0, abs=0.01)
    assert dvh.max_gy == pytest.approx(60.0 + 20.0, abs=0.01)
    # nothing between the islands (-10 < x < 0)
    e, c = dvh.edges_gy, dvh.cum_cc
    assert volume_at_least(e, c, 60 - 9.5) - volume_at_least(e, c, 60 - 0.5) == \
        pytest.approx(0.0, abs=0.005)


def test_island_inside_a_hole_is_filled(tmp_path):
    """Even-odd with three nested squares: 40 (solid), 20 (hole), 8 (island again)."""
    dvh = _planar_solid(tmp_path, [(0.0, 0.0, 40.0, 40.0, False),
                                   (0.0, 0.0, 20.0, 20.0, False),
                                   (0.0, 0.0, 8.0, 8.0, False)])
    area = 40 ** 2 - 20 ** 2 + 8 ** 2
    assert dvh.total_volume_cc == pytest.approx(area * 10 / 1000, rel=0.005)
    e, c = dvh.edges_gy, dvh.cum_cc
    # the band 4 < x < 10 lies in the hole for |y| < 10: only 2 x 10 mm of the outer ring
    band = volume_at_least(e, c, 60 + 4.5) - volume_at_least(e, c, 60 + 9.5)
    assert band == pytest.approx(5.0 * 20.0 * 10 / 1000, rel=0.03)
    # the band |x| < 4 holds the island (8 mm) and the ring's two 10 mm strips
    band = volume_at_least(e, c, 60 - 3.5) - volume_at_least(e, c, 60 + 3.5)
    assert band == pytest.approx(7.0 * (8.0 + 20.0) * 10 / 1000, rel=0.03)
