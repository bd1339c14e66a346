"""Dose accounting, fraction consistency, every plan listed, contour damage and dose
plausibility (issue 13 items 1-3, issue 12 item 9).

Every export is the committed sample (plans_sample/hcc_pass or hcc_fail) copied and edited
the way real exports go wrong (a second copy of a dose, a plan sum beside the plan dose,
fractions edited after the dose was computed...). The sample's own verdicts and BED values
are the reference: hcc_fail's T10 lesion has D95% ~30 Gy in 5 fractions (BED10 ~48 Gy,
FAIL); each attack would turn it (or another row) into a PASS if the rule were wrong.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from rtqa.checks.pipeline import CheckOptions, run_check
from rtqa.dvh.radiobiology import bed
from rtqa.errors import RtqaError
from rtqa.results import NOT_EVALUATED, PASS, Reason

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "plans_sample"
PASS_RD, PASS_RP, PASS_RS = "RD.SBRT_5fx.dcm", "RP.SBRT_5fx.dcm", "RS.hcc_pass.dcm"
FAIL_RD, FAIL_RP = "RD.SBRT_5fx_bad.dcm", "RP.SBRT_5fx_bad.dcm"


def copy(sample: str, dst: Path) -> Path:
    shutil.copytree(SAMPLES / sample, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


def edit(path: Path, change, out: Path | None = None) -> Path:
    ds = pydicom.dcmread(path)
    change(ds)
    out = out or path
    ds.save_as(out, enforce_file_format=True)
    return out


def new_uid(ds: Dataset) -> None:
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def check(folder: Path, **options):
    return run_check([str(folder)], CheckOptions(**options))


def rows(report, prefix: str):
    return [c for c in report.checks if c.id.startswith(prefix)]


def lesion(report, name: str):
    return next(r for r in report.lesions if r.name == name)


@pytest.fixture(scope="module")
def fail_report():
    return check(SAMPLES / "hcc_fail")


@pytest.fixture(scope="module")
def pass_report():
    return check(SAMPLES / "hcc_pass")


def test_samples_keep_their_verdicts_and_list_their_dose(pass_report, fail_report):
    assert pass_report.status == "PASS" and fail_report.status == "FAIL"
    (d,) = pass_report.doses
    assert (Path(d.file).name, d.summation_type, d.role, d.used, d.plan) == (
        PASS_RD, "PLAN", "plan dose", True, "SBRT_5fx")
    (p,) = pass_report.plans
    assert p.checked and p.approval_status == "APPROVED" and "checked" in p.note
    (acc,) = rows(pass_report, "integrity.dose_accounting")
    assert acc.status == PASS
    assert 30.0 < lesion(fail_report, "T10").dose_gy < 31.0
    assert lesion(fail_report, "T10").status == "FAIL"


# --- 13.1 dose accounting -------------------------------------------------------------------

def test_duplicate_dose_under_a_new_uid_is_an_error_naming_both_files(tmp_path, fail_report):
    """A failing plan plus a second copy of its dose (new SOP Instance UID, re-encoded:
    stored values doubled, scaling halved, 1 unit of noise): never summed to a PASS."""
    folder = copy("hcc_fail", tmp_path / "dup")

    def reencode(ds):
        new_uid(ds)
        arr = ds.pixel_array.astype(np.uint32) * 2
        rng = np.random.default_rng(0)
        arr = arr + rng.integers(0, 2, arr.shape, dtype=np.uint32)
        ds.BitsAllocated = ds.BitsStored = 32
        ds.HighBit = 31
        ds.PixelData = arr.astype("<u4").tobytes()
        ds.DoseGridScaling = f"{float(ds.DoseGridScaling) / 2:.8g}"

    edit(folder / FAIL_RD, reencode, folder / "RD.copy.dcm")
    r = check(folder)
    assert r.status == "ERROR"
    (bad,) = [c for c in rows(r, "integrity.dose_accounting") if c.status == NOT_EVALUATED]
    assert bad.reason == Reason.DOSE_DUPLICATE
    assert FAIL_RD in bad.note and "RD.copy.dcm" in bad.note
    roles = {Path(d.file).name: (d.role, d.used) for d in r.doses}
    assert sorted(roles.values()) == [("duplicate", False), ("plan dose", True)]
    # the copy is not counted: the lesion keeps the single plan's BED
    t10 = lesion(r, "T10")
    assert t10.status == "FAIL"
    assert t10.bed_gy == pytest.approx(lesion(fail_report, "T10").bed_gy, abs=0.05)


def test_copy_of_plan_and_dose_under_new_uids_is_not_summed(tmp_path):
    """A re-plan: RTPLAN and RTDOSE copied under new UIDs (the plan relabelled). Both the
    duplicate grid and the two plans on one lesion give ERROR; never a PASS on the sum."""
    folder = copy("hcc_fail", tmp_path / "replan")
    plan_uid = generate_uid()

    def plan(ds):
        ds.SOPInstanceUID = plan_uid
        ds.file_meta.MediaStorageSOPInstanceUID = plan_uid
        ds.RTPlanLabel = "SBRT_v2"

    def dose(ds):
        new_uid(ds)
        ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = plan_uid

    edit(folder / FAIL_RP, plan, folder / "RP.v2.dcm")
    edit(folder / FAIL_RD, dose, folder / "RD.v2.dcm")
    r = check(folder)
    assert r.status == "ERROR"
    reasons = {c.reason for c in r.checks if c.status == NOT_EVALUATED}
    assert {Reason.DOSE_DUPLICATE, Reason.PLANS_UNCONFIRMED} & reasons
    # the copy is not counted: T10 keeps its own 48 Gy (FAIL), never the sum's 130 Gy
    assert lesion(r, "T10").status == "FAIL" and lesion(r, "T10").bed_gy < 50.0
    # confirmed as one course the sum would be evaluated, but the duplicate still errs
    r2 = check(folder, sum_plans=True)
    assert r2.status == "ERROR"
    assert any(c.reason == Reason.DOSE_DUPLICATE for c in r2.checks)


def test_two_different_plans_on_one_lesion_need_sum_plans(tmp_path, fail_report):
    """Second plan (new UIDs) whose dose is the failing dose x 0.9 (not a duplicate): the
    old guard only fired when every plan passed alone; now NOT EVALUATED unconfirmed."""
    folder = copy("hcc_fail", tmp_path / "two")
    plan_uid = generate_uid()

    def plan(ds):
        ds.SOPInstanceUID = plan_uid
        ds.file_meta.MediaStorageSOPInstanceUID = plan_uid
        ds.RTPlanLabel = "SBRT_boost"

    def dose(ds):
        new_uid(ds)
        ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID = plan_uid
        ds.DoseGridScaling = f"{float(ds.DoseGridScaling) * 0.9:.8g}"

    edit(folder / FAIL_RP, plan, folder / "RP.boost.dcm")
    edit(folder / FAIL_RD, dose, folder / "RD.boost.dcm")
    r = check(folder)
    assert r.status == "ERROR"
    t10 = lesion(r, "T10")
    assert t10.status == NOT_EVALUATED and "--sum-plans" in t10.note
    (course,) = rows(r, "integrity.plans.course")
    assert course.status == NOT_EVALUATED and course.reason == Reason.PLANS_UNCONFIRMED
    assert not any(c.reason == Reason.DOSE_DUPLICATE for c in r.checks)
    confirmed = check(folder, sum_plans=True)
    (course,) = rows(confirmed, "integrity.plans.course")
    assert course.status == PASS
    assert lesion(confirmed, "T10").status == PASS  # 30 + 27 Gy summed: the user said so


def test_multi_plan_dose_beside_the_plan_dose_is_not_added(tmp_path, fail_report):
    folder = copy("hcc_fail", tmp_path / "multi")

    def multi(ds):
        new_uid(ds)
        ds.DoseSummationType = "MULTI_PLAN"

    edit(folder / FAIL_RD, multi, folder / "RD.plansum.dcm")
    r = check(folder)
    assert r.status == "FAIL"  # as the sample: the plan sum is neither added nor an error
    roles = {Path(d.file).name: (d.role, d.used) for d in r.doses}
    assert roles == {FAIL_RD: ("plan dose", True), "RD.plansum.dcm": ("alternative", False)}
    t10 = lesion(r, "T10")
    assert t10.bed_gy == pytest.approx(lesion(fail_report, "T10").bed_gy, abs=0.05)


def test_multi_plan_dose_of_two_plans_without_their_doses_is_an_error(tmp_path):
    folder = copy("hcc_pass", tmp_path / "multi2")
    other = generate_uid()

    def multi(ds):
        ds.DoseSummationType = "MULTI_PLAN"
        item = Dataset()
        item.ReferencedSOPClassUID = ds.ReferencedRTPlanSequence[0].ReferencedSOPClassUID
        item.ReferencedSOPInstanceUID = other
        ds.ReferencedRTPlanSequence.append(item)

    edit(folder / PASS_RD, multi)
    with pytest.raises(RtqaError, match="MULTI_PLAN.*cannot be split"):
        check(folder)


@pytest.fixture(scope="module")
def beam_folder(tmp_path_factory):
    """hcc_fail with both its PLAN dose and one RTDOSE per beam (BEAM), as written by the
    sample writer for the same plan (same UIDs)."""
    from rtqa.sample import hcc_fail, write_case
    folder = copy("hcc_fail", tmp_path_factory.mktemp("beams") / "plan_and_beams")
    case = hcc_fail()
    p = case.plans[0]
    beams = replace(case, ct=replace(case.ct, write=False),
                    plans=(replace(p, grid=replace(p.grid, summation="BEAM")),))
    write_case(beams, folder)
    return folder


def test_plan_and_beam_doses_count_once(beam_folder, fail_report):
    r = check(beam_folder)
    roles = [(Path(d.file).name, d.summation_type, d.role, d.used) for d in r.doses]
    beams = [x for x in roles if x[1] == "BEAM"]
    assert len(beams) == 9 and all(x[2:] == ("alternative", False) for x in beams)
    assert (FAIL_RD, "PLAN", "plan dose", True) in roles
    assert r.status == "FAIL"
    t10 = lesion(r, "T10")
    assert t10.bed_gy == pytest.approx(lesion(fail_report, "T10").bed_gy, abs=0.05)


def test_plan_and_disagreeing_beam_doses_is_an_error(beam_folder, tmp_path):
    folder = tmp_path / "beams_off"
    shutil.copytree(beam_folder, folder)
    first = sorted(folder.glob("RD.*beam*.dcm"))[0]
    edit(first, lambda ds: setattr(ds, "DoseGridScaling",
                                   f"{float(ds.DoseGridScaling) * 3:.8g}"))
    r = check(folder)
    assert r.status == "ERROR"
    (bad,) = [c for c in rows(r, "integrity.dose_accounting") if c.status == NOT_EVALUATED]
    assert bad.reason == Reason.DOSE_INCONSISTENT and "disagree" in bad.note


# --- 13.2 fraction consistency --------------------------------------------------------------

def test_fractions_edited_after_the_dose_do_not_turn_fail_into_pass(tmp_path):
    """hcc_fail's RTPLAN edited from 5 to 3 fractions: T10 (30 Gy, BED10 48 Gy in 5 fx)
    would read 30 (1 + 10/10) = 60 Gy in 3 fx and PASS. BeamDose x 3 = 18 Gy against the
    30 Gy prescription (ratio 0.6) contradicts the plan: ERROR naming the numbers."""
    folder = copy("hcc_fail", tmp_path / "fx")
    edit(folder / FAIL_RP, lambda ds: setattr(ds.FractionGroupSequence[0],
                                              "NumberOfFractionsPlanned", 3))
    r = check(folder)
    assert r.status == "ERROR"
    (fx,) = rows(r, "integrity.fractions.")
    assert fx.status == NOT_EVALUATED and fx.reason == Reason.FRACTIONS_INCONSISTENT
    assert "6 Gy x 3 fx = 18.00 Gy against TargetPrescriptionDose 30 Gy" in fx.note
    (grid,) = rows(r, "integrity.dose_vs_plan.")
    assert grid.status == NOT_EVALUATED and grid.reason == Reason.DOSE_INCONSISTENT
    # the lesion converted with the edited count is not passed either
    (t10,) = rows(r, "lesion.T10.bed")
    assert t10.status == NOT_EVALUATED and t10.reason == Reason.FRACTIONS_INCONSISTENT
    assert lesion(r, "T10").status == NOT_EVALUATED


def _two_group_plan(folder: Path, a: float, b: float, split_dose: bool) -> None:
    """hcc_pass's plan as two fraction groups: FG1 5 fx with BeamDose x a, FG2 10 fx with
    BeamDose x b x 5/10 (the TargetPrescriptionDose still the whole course: a + b = 1).
    ``split_dose``: two FRACTION doses (a/5 and b/10 of the plan dose), one per group;
    else the PLAN dose stays, linked to no group."""
    def plan(ds):
        fg1 = ds.FractionGroupSequence[0]
        fg2 = Dataset()
        for kw in ("NumberOfBeams", "NumberOfBrachyApplicationSetups"):
            setattr(fg2, kw, getattr(fg1, kw))
        fg2.FractionGroupNumber = 2
        fg2.NumberOfFractionsPlanned = 10
        beams = []
        for rb in fg1.ReferencedBeamSequence:
            nb = Dataset()
            nb.ReferencedBeamNumber = rb.ReferencedBeamNumber
            nb.BeamDose = f"{float(rb.BeamDose) * b * 5 / 10:.6g}"
            nb.BeamMeterset = rb.BeamMeterset
            nb.ReferencedDoseReferenceUID = rb.ReferencedDoseReferenceUID
            beams.append(nb)
            rb.BeamDose = f"{float(rb.BeamDose) * a:.6g}"
        fg2.ReferencedBeamSequence = Sequence(beams)
        ds.FractionGroupSequence.append(fg2)

    edit(folder / PASS_RP, plan)
    if not split_dose:
        return
    for number, share, n in ((1, a, 5), (2, b, 10)):
        def dose(ds, number=number, share=share, n=n):
            new_uid(ds)
            ds.DoseSummationType = "FRACTION"
            ds.DoseGridScaling = f"{float(ds.DoseGridScaling) * share / n:.8g}"
            rfg = Dataset()
            rfg.ReferencedFractionGroupNumber = number
            ds.ReferencedRTPlanSequence[0].ReferencedFractionGroupSequence = Sequence([rfg])
        edit(folder / PASS_RD, dose, folder / f"RD.fg{number}.dcm")
    (folder / PASS_RD).unlink()


def test_two_fraction_groups_each_with_its_own_count(tmp_path, pass_report):
    """5 + 10 fractions, 40 % and 60 % of hcc_pass's dose: T10 (D95% D = 40 Gy) has the
    true BED10 of 0.4 D (1 + 0.4 D/50) + 0.6 D (1 + 0.6 D/100) = 50.9 Gy (the voxel-wise
    BED sum is monotone in D, so its D95% is this function of the physical D95%), FAIL;
    the first group's count for all would give 40 (1 + 40/50) = 72 Gy, a PASS."""
    folder = copy("hcc_pass", tmp_path / "groups")
    _two_group_plan(folder, 0.4, 0.6, split_dose=True)
    r = check(folder)
    d = lesion(pass_report, "T10").dose_gy
    truth = float(bed(0.4 * d, 5, 10.0) + bed(0.6 * d, 10, 10.0))
    assert 50.0 < truth < 52.0
    t10 = lesion(r, "T10")
    assert t10.bed_gy == pytest.approx(truth, abs=0.15)
    assert t10.status == "FAIL" and sorted(t10.fractions) == [5, 10]
    assert set(t10.plans) == {"SBRT_5fx FG1", "SBRT_5fx FG2"}
    (fx,) = rows(r, "integrity.fractions.")
    assert fx.status == PASS  # 3.2 Gy x 5 + 2.4 Gy x 10 = 40 Gy, as prescribed
    (plan,) = r.plans
    assert plan.checked and "FG1" in plan.note and "FG2" in plan.note
    assert not rows(r, "integrity.plans.course")  # two groups of one plan: one course


def test_two_fraction_groups_with_one_plan_dose_is_an_error(tmp_path):
    folder = copy("hcc_pass", tmp_path / "groups_plan")
    _two_group_plan(folder, 0.4, 0.6, split_dose=False)
    with pytest.raises(RtqaError, match="2 fraction groups.*FG1: 5 fx, FG2: 10 fx"):
        check(folder)


# --- 13.3 nothing ignored -------------------------------------------------------------------

def test_approved_plan_without_dose_is_an_error_unless_a_plan_is_named(tmp_path):
    """An APPROVED plan (no RTDOSE) next to its UNAPPROVED sibling, which has the dose."""
    folder = copy("hcc_pass", tmp_path / "approved")

    def approved(ds):
        new_uid(ds)
        ds.RTPlanLabel = "SBRT_final"

    edit(folder / PASS_RP, approved, folder / "RP.final.dcm")
    edit(folder / PASS_RP, lambda ds: setattr(ds, "ApprovalStatus", "UNAPPROVED"))
    r = check(folder)
    assert r.status == "ERROR"
    (row,) = rows(r, "integrity.plan_without_dose.")
    assert row.reason == Reason.DOSE_MISSING and "SBRT_final" in row.note
    listed = {p.label: (p.checked, p.approval_status) for p in r.plans}
    assert listed == {"SBRT_5fx": (True, "UNAPPROVED"), "SBRT_final": (False, "APPROVED")}
    named = check(folder, plan="SBRT_5fx")
    assert not rows(named, "integrity.plan_without_dose.")
    assert named.status == "PASS"
    final = next(p for p in named.plans if p.label == "SBRT_final")
    assert not final.checked and "--plan SBRT_5fx" in final.note
    with pytest.raises(RtqaError, match="--plan SBRT_final"):
        check(folder, plan="SBRT_final")


def _drop_planes(folder: Path, roi_number: int, z_lo: float, z_hi: float) -> int:
    """Remove an ROI's contours with z in [z_lo, z_hi]; return how many were removed."""
    removed = []

    def change(ds):
        for rc in ds.ROIContourSequence:
            if int(rc.ReferencedROINumber) != roi_number:
                continue
            keep = [c for c in rc.ContourSequence
                    if not z_lo <= float(c.ContourData[2]) <= z_hi]
            removed.append(len(rc.ContourSequence) - len(keep))
            rc.ContourSequence = Sequence(keep)

    edit(folder / "RS.hcc_fail.dcm", change)
    return removed[0]


def test_oar_gap_at_the_hot_spot_is_not_evaluated(tmp_path, fail_report):
    """hcc_fail's cord hot spot (30 Gy cloud, z 4-16 mm): 8 cord planes removed there
    (z 0-21 mm). The cord rows would PASS on the remaining contours; they are NOT
    EVALUATED (CONTOUR_DAMAGE) and the ROI's damage is reported."""
    folder = copy("hcc_fail", tmp_path / "gap")
    n = _drop_planes(folder, 11, 0.0, 21.0)
    assert n == 8
    r = check(folder)
    assert r.status == "ERROR"
    (row,) = rows(r, "integrity.contours.SpinalCord")
    assert row.reason == Reason.CONTOUR_DAMAGE and "8 contour plane(s) missing" in row.note
    cord = [c for c in r.checks if c.category == "organs at risk" and "SpinalCord" in c.rois
            and c.priority == "mandatory"]
    assert cord and all(c.status in (NOT_EVALUATED, "FAIL") for c in cord)
    assert any(c.reason == Reason.CONTOUR_DAMAGE for c in cord)
    assert not any(c.status == PASS for c in cord)


def test_gap_far_from_dose_is_reported_and_evaluated(tmp_path, pass_report):
    """A gap in the cord at its low end (z -90..-80 mm, far below every target): reported
    per ROI, rows evaluated, and the report says why."""
    folder = copy("hcc_pass", tmp_path / "gap_far")
    edit(folder / PASS_RS, lambda ds: None, folder / "RS.hcc_fail.dcm")
    (folder / PASS_RS).unlink()
    _drop_planes(folder, 11, -90.0, -80.0)
    r = check(folder)
    (row,) = rows(r, "integrity.contours.SpinalCord")
    assert row.status == "WARN" and "clearly away from the high-dose region" in row.note
    assert r.status == "PASS"


def test_open_contours_are_counted_per_roi(tmp_path):
    folder = copy("hcc_fail", tmp_path / "open")

    def change(ds):
        for rc in ds.ROIContourSequence:
            if int(rc.ReferencedROINumber) == 11:
                for c in rc.ContourSequence:
                    if 3.0 <= float(c.ContourData[2]) <= 13.0:
                        c.ContourGeometricType = "OPEN_PLANAR"

    edit(folder / "RS.hcc_fail.dcm", change)
    r = check(folder)
    (row,) = rows(r, "integrity.contours.SpinalCord")
    assert "4 open contour(s)" in row.note
    assert r.status == "ERROR"


# --- 12.9 plausibility ----------------------------------------------------------------------

def test_fraction_dose_holding_the_course_total_is_an_error(tmp_path):
    """hcc_pass's PLAN dose relabelled FRACTION (the Pinnacle case): x 5 fractions would
    make PTV maxima of ~260 Gy. ERROR saying which numbers disagree; no silent rescale."""
    folder = copy("hcc_pass", tmp_path / "fraction_total")
    edit(folder / PASS_RD, lambda ds: setattr(ds, "DoseSummationType", "FRACTION"))
    r = check(folder)
    assert r.status == "ERROR"
    (row,) = rows(r, "integrity.dose_plausibility.")
    assert row.status == NOT_EVALUATED and row.reason == Reason.DOSE_INCONSISTENT
    assert "look like the course total" in row.note and "50 Gy" in row.note


def test_dose_ten_times_the_prescription_is_an_error(tmp_path):
    folder = copy("hcc_pass", tmp_path / "x10")
    edit(folder / PASS_RD, lambda ds: setattr(ds, "DoseGridScaling",
                                              f"{float(ds.DoseGridScaling) * 10:.8g}"))
    r = check(folder)
    (row,) = rows(r, "integrity.dose_plausibility.")
    assert row.status == NOT_EVALUATED and row.value == pytest.approx(10.55, abs=0.1)
    assert r.status == "ERROR"


def test_structure_mostly_outside_the_grid_is_not_evaluated(tmp_path):
    """Dose grid cropped to 2 frames at the top of the CT: the kidneys (z -113..-16 mm)
    are entirely outside, the cord (whole CT) ~99 % outside. Cord rows that PASS on the
    covered sliver are NOT EVALUATED (OUTSIDE_DOSE_GRID), never numbers of the sliver."""
    folder = copy("hcc_pass", tmp_path / "sliver")

    def crop(ds):
        n = int(ds.NumberOfFrames)
        arr = ds.pixel_array.reshape(n, int(ds.Rows), int(ds.Columns))[-2:]
        offsets = [float(v) for v in ds.GridFrameOffsetVector][-2:]
        z0 = float(ds.ImagePositionPatient[2]) + offsets[0]
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1],
                                   f"{z0:.4f}"]
        ds.GridFrameOffsetVector = [0.0, offsets[1] - offsets[0]]
        ds.NumberOfFrames = 2
        ds.PixelData = np.ascontiguousarray(arr).tobytes()

    edit(folder / PASS_RD, crop)
    r = check(folder)
    assert r.status == "ERROR"
    cord = [c for c in r.checks if c.category == "organs at risk" and c.rois == ("SpinalCord",)
            and c.priority == "mandatory"]
    assert cord and all(c.status == NOT_EVALUATED for c in cord)
    assert any(c.reason == Reason.OUTSIDE_DOSE_GRID and "outside the dose grid" in c.note
               for c in cord)


def test_gap_is_a_step_between_overlapping_contours_only():
    """Planes every 3 mm; 8 planes missing in one column of squares is a gap of 8; the same
    step between two squares 100 mm apart (two lesions in one ROI) is no gap."""
    from rtqa.reading.structures import Structure

    def square(cx):
        return np.array([[cx - 5, -5], [cx + 5, -5], [cx + 5, 5], [cx - 5, 5]], float)

    zs = [0, 3, 6, 9, 36, 39, 42]
    one = Structure(1, "Cord", "ORGAN", tuple((float(z), (square(0),)) for z in zs),
                    np.empty((0, 3)))
    assert one.gaps() == ((9.0, 36.0, 8),)
    two = Structure(2, "PTV_ALL", "PTV", tuple((float(z), (square(0 if z < 20 else 100),))
                                              for z in zs), np.empty((0, 3)))
    assert two.gaps() == ()
