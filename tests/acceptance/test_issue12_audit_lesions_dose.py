"""Independent audit of issue 12 items 8-9: PTV margins without a CTV, the organ of a
lesion by containment, dose plausibility against the RTPLAN, structures mostly outside
the dose grid. Exports written in code (tests/audit_cases.py), checked with rtqa.check.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

import rtqa
from rtqa.results import FAIL, NOT_EVALUATED, PASS, Reason

from tests import audit_cases as A

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("audit_lesions")


def _by_id(report):
    return {c.id: c for c in report.checks}


# --- PTV margin without a CTV -----------------------------------------------------------------

@pytest.mark.parametrize("margin, status", [(0.5, FAIL), (1.5, FAIL), (3.0, PASS)])
def test_ptv_margin_from_the_gtv_without_a_ctv(root, margin, status):
    """PTV_Lung = GTV_Lung (sphere r 10 mm) + margin, no CTV; protocol lower bound 2 mm.
    Truth: the margin of concentric spheres is exactly ``margin`` everywhere."""
    report = rtqa.check(A.write(A.lung_margin(margin), root / f"margin{margin}", root))
    c = _by_id(report)["protocol.ptv_margin.PTV_Lung"]
    assert c.status == status and c.unit == "mm" and c.priority == "mandatory"
    assert c.value == pytest.approx(margin, abs=0.35)
    if status == FAIL:
        assert report.status != "PASS" and rtqa.exit_code(report) != 0


# --- the organ of a lesion --------------------------------------------------------------------

ORGANS_ROW = "protocol.oligoprogression.organs"


@pytest.mark.parametrize("gap", [11.0, 3.0])
def test_node_outside_the_liver_has_no_organ(root, gap):
    """A node whose surface is ``gap`` mm in front of the liver: in no organ contour.
    Liver, Lung, T10 (unknown) and the node (unknown): 2-4 organs, > 3 possible."""
    folder = A.write(A.node_case(gap, r_mm=5.0), root / f"node{gap}", root)
    report = rtqa.check(folder)
    organs = {les.name: les.organ for les in report.lesions}
    assert organs.get("LN") == "unknown" and organs.get("Liver") == "Liver", organs
    row = _by_id(report)[ORGANS_ROW]
    assert row.status == NOT_EVALUATED and row.reason == Reason.LESION_ORGAN_UNKNOWN
    assert report.status == "ERROR" and rtqa.exit_code(report) == 2
    named = rtqa.check(folder, lesion_organs={"PTV_LN": "LymphNode", "T10": "Bone"})
    row = _by_id(named)[ORGANS_ROW]
    assert (row.status, row.value) == (FAIL, 4)       # Bone, Liver, LymphNode, Lung
    assert named.status == "FAIL"
    inliver = rtqa.check(folder, lesion_organs={"PTV_LN": "Liver", "T10": "Bone"})
    row = _by_id(inliver)[ORGANS_ROW]
    assert (row.status, row.value) == (PASS, 3)


def test_node_inside_the_liver_is_a_liver_lesion(root):
    """The same node with its centre 20 mm inside the liver: organ Liver; Liver, Lung and
    T10 (unknown, at most one more organ): at most 3 organs, PASS."""
    report = rtqa.check(A.write(A.node_case(0.0, r_mm=5.0, inside_depth_mm=20.0),
                                root / "node_in", root))
    organs = {les.name: les.organ for les in report.lesions}
    assert organs.get("LN") == "Liver", organs
    assert _by_id(report)[ORGANS_ROW].status == PASS


# --- dose plausibility --------------------------------------------------------------------------

@pytest.mark.parametrize("fx", [3, 8])
def test_fraction_dose_holding_the_course_total_is_an_error(root, fx):
    """A course dose relabelled FRACTION: read as per fraction it would mean fx x 52 Gy
    maxima. ERROR with reason dose_inconsistent; never a silent x fx."""
    base = A.hcc_pass()
    folder = A.write(A.with_plan(base, fractions=fx), root / f"fxtotal{fx}", root)
    A.edit_dose(folder, lambda ds: setattr(ds, "DoseSummationType", "FRACTION"))
    report = rtqa.check(folder)
    rows = [c for c in report.checks if c.id.startswith("integrity.dose_plausibility")]
    assert rows and rows[0].status == NOT_EVALUATED
    assert rows[0].reason == Reason.DOSE_INCONSISTENT
    assert rows[0].value == pytest.approx(1.055 * fx, rel=0.05)   # max / prescription
    assert report.status == "ERROR"


def test_a_true_fraction_dose_is_scaled_and_checked(root):
    """Control: a FRACTION dose that is one fraction (course / 5): evaluated like hcc_pass."""
    report = rtqa.check(A.write(A.summation("FRACTION"), root / "fraction_ok", root))
    assert report.status == "PASS"


@pytest.mark.parametrize("factor, error", [(2.3, True), (0.2, True), (1.0, False)])
def test_course_dose_far_from_the_prescription_is_an_error(root, factor, error):
    """DoseGridScaling multiplied by ``factor``: a course maximum 2.4x or 0.21x the
    prescription is implausible (ERROR); the unscaled dose is not."""
    folder = A.write(A.hcc_pass(), root / f"scaled{factor}", root)
    A.edit_dose(folder, lambda ds: setattr(ds, "DoseGridScaling",
                                           f"{float(ds.DoseGridScaling) * factor:.8g}"))
    report = rtqa.check(folder)
    rows = [c for c in report.checks if c.id.startswith("integrity.dose_plausibility")]
    assert rows and rows[0].value == pytest.approx(1.055 * factor, rel=0.05)
    if error:
        assert rows[0].status == NOT_EVALUATED and rows[0].reason == Reason.DOSE_INCONSISTENT
        assert report.status == "ERROR"
    else:
        assert rows[0].status == PASS and report.status == "PASS"


# --- structures mostly outside the dose grid ------------------------------------------------------

@pytest.mark.parametrize("x_centre", [155.0, 157.0])
def test_rib_mostly_outside_the_grid_is_not_evaluated(root, x_centre):
    """A rib (x 152-158 or 154-160 mm) on a grid ending at x ~ 154.5 mm, with a 25 Gy hot
    spot beyond the grid: its point and 1 cc rows must not be numbers of the covered
    sliver (which would pass)."""
    report = rtqa.check(A.write(A.rib_partly_outside_grid(x_centre), root / f"rib{x_centre}",
                                root))
    rows = [c for c in report.checks if c.structure == "Rib" and c.id.startswith("oar.")
            and c.priority == "mandatory"]
    assert rows
    for c in rows:
        assert c.status != PASS, (c.id, c.value)
        if c.status == NOT_EVALUATED:
            assert c.reason in (Reason.OUTSIDE_DOSE_GRID, Reason.METRIC_UNDEFINED)
    assert any(c.reason == Reason.OUTSIDE_DOSE_GRID for c in rows)
    assert report.status == "ERROR"


def test_rib_partly_outside_the_grid_far_from_dose_is_evaluated(root):
    """Control: the same rib 30 % outside the grid without the hot spot (covered part
    ~1 Gy, far below 20 % of the 53 Gy course maximum): evaluated on the covered part."""
    report = rtqa.check(A.write(A.rib_partly_outside_grid(155.0, hot_gy=0.0),
                                root / "rib_cold", root))
    rows = [c for c in report.checks if c.structure == "Rib" and c.id.startswith("oar.")
            and c.priority == "mandatory"]
    assert rows and all(c.status == PASS for c in rows), [(c.id, c.status) for c in rows]
    assert report.status == "PASS"


@pytest.mark.parametrize("margin, status", [(1.0, FAIL), (3.0, PASS), (7.0, FAIL)])
def test_ptv_margin_around_the_ctv_keeps_both_bounds(root, margin, status):
    """PTV_Liver = CTV_Liver + margin (concentric spheres): 2-5 mm inclusive."""
    report = rtqa.check(A.write(A.liver_ptv_margin(margin), root / f"ctv{margin}", root))
    c = _by_id(report)["protocol.ptv_margin.PTV_Liver"]
    assert c.status == status and c.value == pytest.approx(margin, abs=0.35)
    assert (report.status == "PASS") == (status == PASS)


@pytest.mark.parametrize("offset", [-3.0, 3.0])
def test_lesion_organ_is_the_organ_holding_most_of_its_gtv(root, offset):
    """A node r 8 mm straddling the liver's front surface, centre 3 mm inside (about 64 %
    of the GTV in the liver: organ Liver) or 3 mm outside (about 36 %: unknown)."""
    from rtqa.sample import sample_inside, structure
    case = A.node_straddling_liver(offset)
    pts, _ = sample_inside(structure(case, "GTV_LN").shape, 0.5)
    frac = float(structure(case, "Liver").shape.contains(pts).mean())
    assert (frac > 0.55) if offset < 0 else (frac < 0.45)
    report = rtqa.check(A.write(case, root / f"straddle{offset}", root))
    organ = {les.name: les.organ for les in report.lesions}["LN"]
    assert organ == ("Liver" if offset < 0 else "unknown")
    row = _by_id(report)[ORGANS_ROW]
    assert row.status == (PASS if offset < 0 else NOT_EVALUATED)


def test_a_one_fraction_fraction_dose_is_the_course(root):
    """FRACTION summation at 1 fraction: the stored dose is the course; plausible."""
    base = A.summation("FRACTION")
    case = A.with_plan(base, fractions=1)
    report = rtqa.check(A.write(case, root / "fraction1", root))
    rows = [c for c in report.checks if c.id.startswith("integrity.dose_plausibility")]
    assert rows and rows[0].status == PASS
    assert rows[0].value == pytest.approx(1.055, rel=0.05)
