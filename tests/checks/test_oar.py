"""Organ-at-risk evaluation (rtqa.checks.oar): the sample plans against their analytic truths
(plans_sample/README.md), and in-memory phantoms (analytic solids, uniform or linear
dose) for the rules: missing/ambiguous/partial structures, spared-volume rules that cannot
be met, metrics that cannot be evaluated, coverage by the dose grid, several plans.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rtqa.constraints import load_protocol
from rtqa.dvh import compute_dvh
from rtqa.dvh.metrics import volume_at_least
from rtqa.checks.oar import MAX_CURVE_POINTS, evaluate_oars
from rtqa.dvh.service import DoseService
from rtqa.dvh.radiobiology import bed, eqd2
from rtqa.reading.export import CourseDose, load_export
from rtqa.reading.plan import Plan, TargetPrescription
from rtqa.reading.structures import StructureSet
from rtqa.results import FAIL, NOT_EVALUATED, PASS, WARN, overall_status
from rtqa.sample import hcc_fail, hcc_pass, write_case

from tests.dvh import test_structops as so

LIVER_RULE = "oar.normal_liver.Liver-GTV.CV15Gy"


# --- the sample plans ------------------------------------------------------------------

def _load(tmp_path_factory, case):
    out = tmp_path_factory.mktemp(case.name)
    write_case(case, out)
    export = load_export([out])
    ss = export.structure_sets[0]
    return ss, list(export.courses), export.ct_for(ss).z


@pytest.fixture(scope="module")
def protocol():
    return load_protocol("oligo-hcc")


@pytest.fixture(scope="module")
def hcc_pass_plan(tmp_path_factory):
    return _load(tmp_path_factory, hcc_pass())


@pytest.fixture(scope="module")
def hcc_fail_plan(tmp_path_factory):
    return _load(tmp_path_factory, hcc_fail())


def _run(protocol, plan, fractions=5, overrides=None, **kw):
    ss, courses, ct_z = plan
    return evaluate_oars(protocol, ss, courses, fractions=fractions, overrides=overrides,
                         ct_z=ct_z, **kw)


@pytest.fixture(scope="module")
def pass5(protocol, hcc_pass_plan):
    return _run(protocol, hcc_pass_plan)


def _by_id(result):
    return {c.id: c for c in result.checks}


def test_hcc_pass_every_applied_check_passes(pass5):
    checks = pass5.checks
    assert len({c.id for c in checks}) == len(checks)  # ids unique
    evaluated = [c for c in checks if c.status != NOT_EVALUATED]
    # 29 sourced rows + 2 derived by LQ for 5 fractions (lungs DC1000cc from TG-101's
    # 1 fx row, normal-liver mean from QUANTEC's 6 fx row); the derived normal-liver
    # DC700cc row is replaced by the trial's 700 cc rule ([[limits.replace]], 3-8 fx)
    assert len(evaluated) == 31 and all(c.status == PASS for c in evaluated)
    assert {c.id for c in evaluated if c.derivation} == {
        "oar.lq.tg101.Lung_L+Lung_R-GTV.DC1000cc", "oar.lq.quantec.Liver-GTV.Mean"}
    assert "replaces the derived DC700cc[Gy] < 17.13" in _by_id(pass5)[LIVER_RULE].note
    # the rest: organs the plan does not have (brainstem, optic pathway, rectum...)
    absent = [c for c in checks if c.status == NOT_EVALUATED]
    assert absent and all(c.priority == "optimal" and "no structure matching" in c.note
                          for c in absent)
    assert not any(c.status == WARN for c in checks)
    assert overall_status(checks) == "PASS"
    assert all(c.category == "organs at risk" and c.source for c in checks)


@pytest.mark.parametrize("cid, truth", [
    (LIVER_RULE, 1203.0),                                  # normal liver below 15 Gy, cc
    ("oar.tg101.SpinalCord.D0.035cc", 6.8),                # README: D0.03cc 6.8 Gy
    ("oar.tg101.SpinalCord.D0.35cc", 5.4),
    ("oar.tg101.Esophagus.D5cc", 2.7),
    ("oar.tg101.Esophagus.D0.035cc", 5.2),
    ("oar.tg101.Heart.D0.035cc", 2.1),
    ("oar.tg101.Duodenum.D5cc", 0.9),
    ("oar.quantec.Lung_L+Lung_R-GTV.V20Gy", 2.4),          # EQD2 (3 Gy), %
    ("oar.quantec.Lung_L+Lung_R-GTV.Mean", 2.9),           # EQD2 (3 Gy), Gy
])
def test_hcc_pass_values_match_the_truth(pass5, cid, truth):
    assert _by_id(pass5)[cid].value == pytest.approx(truth, rel=0.02, abs=0.05)


def test_hcc_pass_check_fields(pass5):
    c = _by_id(pass5)
    rule = c[LIVER_RULE]
    assert (rule.structure, rule.metric, rule.unit, rule.limit) == \
        ("Liver - GTV", "CV15Gy[cc]", "cc", ">= 700")
    assert rule.rois == ("Liver", "GTV_Liver", "GTV_Lung", "GTV_T10")
    assert "Pan et al." in rule.source and "status V" in rule.source \
        and "normal_liver.toml:" in rule.source
    assert rule.priority == "mandatory"
    # conventional QUANTEC row on EQD2: value = EQD2 of the physical D0.035cc (alpha/beta 2)
    conv = c["oar.quantec.SpinalCord.D0.035cc"]
    assert "conventional limit evaluated on EQD2 (α/β = 2 Gy" in conv.note
    phys = c["oar.tg101.SpinalCord.D0.035cc"].value
    assert conv.value == pytest.approx(eqd2(phys, 5, 2.0), abs=0.01)
    assert pass5.structures_used["GTV"] == ("GTV_Liver", "GTV_Lung", "GTV_T10")
    assert pass5.structures_used["Liver"] == ("Liver",)


def test_hcc_pass_curves_and_marks(pass5):
    curves = {cv.name: cv for cv in pass5.curves}
    # one curve per structure and dose view its rows use: physical, and EQD2 at the α/β
    eqd2 = {f"{c.structure} — EQD2(α/β {c.alpha_beta:g})" for c in pass5.checks
            if str(c.dose_view) == "EQD2" and c.value is not None}
    physical = {c.structure for c in pass5.checks
                if str(c.dose_view) == "physical" and c.value is not None}
    assert set(curves) == eqd2 | physical
    assert {"SpinalCord", "Esophagus", "Heart", "Liver - GTV", "Stomach", "Duodenum",
            "Kidney_L + Kidney_R — EQD2(α/β 3)", "Liver - GTV — EQD2(α/β 3)"} <= set(curves)
    for cv in curves.values():
        assert 2 <= len(cv.dose_gy) <= MAX_CURVE_POINTS
        assert cv.volume_pct[0] == pytest.approx(100.0) and cv.volume_pct[-1] == 0.0
        assert np.all(np.diff(cv.dose_gy) > 0) and np.all(np.diff(cv.volume_pct) <= 1e-9)
        for dose, pct, label, status in cv.marks:   # every mark lies on the curve
            on = np.interp(dose, cv.dose_gy, cv.volume_pct)
            assert pct == pytest.approx(on, abs=0.5), label
            assert status == PASS
    liver = curves["Liver - GTV"]
    assert liver.volume_cc == pytest.approx(1417, rel=0.01)
    (dose, pct, label, _), = [m for m in liver.marks if m[2].startswith("CV15Gy")]
    assert dose == 15.0 and label == "CV15Gy[cc] >= 700"
    assert pct == pytest.approx(100 * (1417 - 1203) / 1417, abs=1.0)
    # EQD2 rows are marked on their EQD2 curve, never on the physical-dose curve
    assert "Kidney_L + Kidney_R" not in curves
    kidneys = curves["Kidney_L + Kidney_R — EQD2(α/β 3)"]
    assert {m[2] for m in kidneys.marks} >= {"Mean[Gy] < 15", "V20Gy[%] < 32"}


def test_hcc_fail_fails_liver_rule_liver_mean_and_cord_only(protocol, hcc_fail_plan):
    result = _run(protocol, hcc_fail_plan)
    c = _by_id(result)
    failed = {x.id for x in result.checks if x.status == FAIL}
    assert failed == {LIVER_RULE, "oar.quantec.Liver-GTV.Mean",
                      "oar.tg101.SpinalCord.D0.035cc", "oar.tg101.SpinalCord.D0.35cc",
                      "oar.tg101.SpinalCord.D1.2cc", "oar.hytec.SpinalCord.D0.035cc",
                      "oar.quantec.SpinalCord.D0.035cc", "oar.lq.quantec.Liver-GTV.Mean"}
    # (the derived DC700cc row is replaced by the 700 cc rule at 5 fx: not evaluated)
    # conventional rows on EQD2 only inform where an SBRT row for the same metric applies
    assert c["oar.quantec.Liver-GTV.Mean"].priority == "optimal"
    assert c["oar.quantec.SpinalCord.D0.035cc"].priority == "optimal"
    assert c[LIVER_RULE].value == pytest.approx(452, rel=0.02)
    assert "cannot be met" not in c[LIVER_RULE].note   # 1417 cc could meet it
    assert c["oar.tg101.SpinalCord.D0.035cc"].value == pytest.approx(35.0, rel=0.02)
    assert c["oar.tg101.SpinalCord.D0.35cc"].value == pytest.approx(33.7, rel=0.02)
    assert c["oar.tg101.Heart.D0.035cc"].value == pytest.approx(10.8, rel=0.03)
    others = [x for x in result.checks if x.status != NOT_EVALUATED and x.id not in failed]
    assert others and all(x.status == PASS for x in others)
    assert overall_status(result.checks) == "FAIL"


def test_four_fractions_every_organ_has_a_sourced_or_derived_limit(protocol, hcc_pass_plan):
    result = _run(protocol, hcc_pass_plan, fractions=4)
    assert not [c for c in result.checks if c.status == WARN or c.id.startswith("oar.none.")]
    c = _by_id(result)
    # the duodenum has TG-101 rows for 1/3/5 fractions only: 4 fx is derived (LQ, α/β 3)
    duo = c["oar.lq.tg101.Duodenum.D5cc"]
    assert duo.status == PASS and duo.limit == "< 16.6"
    assert duo.derivation.startswith("derived (LQ) from Benedict et al.") and \
        duo.derivation.endswith(", 5 fx")
    assert duo.source.startswith("derived (LQ) from Benedict et al.")
    conventional = [x for x in result.checks if x.id.startswith("oar.quantec.")
                    and x.status != NOT_EVALUATED]
    assert conventional and all("QUANTEC conventional limit evaluated on EQD2" in x.note
                                and "4 fractions" in x.note for x in conventional)
    assert c["oar.hytec.SpinalCord.D0.035cc"].limit == "< 23"
    assert c[LIVER_RULE].status == PASS  # the 700 cc rule holds at every fraction count


def test_ambiguous_liver_is_never_guessed_and_map_resolves_it(protocol, hcc_pass_plan,
                                                              pass5):
    ss, courses, ct_z = hcc_pass_plan
    liver = ss.by_name("Liver")
    copy = replace(liver, roi_number=99, name="LIVER")
    amb = replace(ss, structures=ss.structures + (copy,))
    result = _run(protocol, (amb, courses, ct_z))
    liver_checks = [c for c in result.checks if c.structure == "Liver - GTV"]
    # conventional mean, 700 cc rule, derived (LQ) mean; the derived DC700cc row is
    # replaced by the 700 cc rule at 5 fx
    assert len(liver_checks) == 3
    for c in liver_checks:
        assert c.status == NOT_EVALUATED and c.priority == "mandatory"
        assert "'Liver' is ambiguous" in c.note and "'LIVER'" in c.note \
            and "--map Liver=" in c.note
    assert overall_status(result.checks) == "ERROR"

    fixed = _run(protocol, (amb, courses, ct_z), overrides={"Liver": "Liver"})
    c = _by_id(fixed)[LIVER_RULE]
    assert c.status == PASS and c.rois[0] == "Liver"
    assert c.value == pytest.approx(_by_id(pass5)[LIVER_RULE].value)


def test_each_dvh_is_computed_once_through_the_injected_cache(protocol, hcc_pass_plan):
    ss, courses, ct_z = hcc_pass_plan
    calls = []

    class Counting:
        def get(self, structure, grid, ct_z_, compute):
            assert ct_z_ is ct_z  # the CT slice positions go with every computation
            calls.append(structure.name)
            return compute()

    dose = DoseService(courses, ct_z, cache=Counting())
    result = _run(protocol, hcc_pass_plan, dose=dose)
    # one physical DVH per structure, the plan's ROIs and those built from expressions;
    # several rows and EQD2 conversions (one plan: dose-axis conversion) share it
    assert len(calls) == len(set(calls))
    assert sorted(calls) == ["Duodenum", "Esophagus", "Heart", "Kidney_L + Kidney_R",
                             "Liver - GTV", "Lung_L + Lung_R - GTV", "SpinalCord", "Stomach"]
    # a curve per structure and dose view (8 physical DVHs, EQD2 ones derived from them)
    names = {c.name for c in result.curves}
    assert len(result.curves) == len(names) and len(names) >= 13
    assert {n.split(" — ")[0] for n in names} == set(calls)
    assert _by_id(result)[LIVER_RULE].status == PASS


# --- in-memory phantoms ----------------------------------------------------------------
# Linear dose D(x) = 8 + 0.05 x Gy (3-13 Gy) on a 2 mm grid x, y in [-100, 100],
# z in [-60, 60]. Solids (mm): Liver ball r 50 at the origin, GTV_Liver ball r 10 at the
# origin (normal liver: a centred shell, mean dose 8 Gy exactly); Kidney_L box x 60-80
# (dose 11-12 Gy: V11.5Gy = 50 %, mean 11.5, max 12); Stomach ball r 15 centred on the
# top face of the grid (z = 61: half outside); Heart ball r 10 at z = 150 (outside).

def _dose(x, y, z):
    return 8.0 + 0.05 * x


GRID = so.uniform_grid((-100, -80, -60), (100, 80, 60), dose_fn=_dose)


def _phantom(*names):
    solids = {
        "Liver": lambda: so.sphere("Liver", (0, 0, 0), 50),
        "GTV_Liver": lambda: so.sphere("GTV_Liver", (0, 0, 0), 10, kind="GTV"),
        "Kidney_L": lambda: so.box("Kidney_L", 60, -10, -10, 80, 10, 10),
        "Stomach": lambda: so.sphere("Stomach", (0, 0, 61), 15),
        "Heart": lambda: so.sphere("Heart", (0, 0, 150), 10),
    }
    return StructureSet(path=Path("RS.phantom.dcm"), sop_instance_uid="1.2.3.9",
                        frame_of_reference_uid=so.FRAME, patient_id="PHANTOM", label="ss",
                        referenced_series_uids=(),
                        structures=tuple(solids[n]() for n in names))


def _course(grid, fractions, rx_gy=None, label="P1", per_fraction=False):
    plan = Plan(path=Path(f"RP.{label}.dcm"), sop_instance_uid=f"1.2.3.{len(label)}",
                frame_of_reference_uid=grid.frame_of_reference_uid, patient_id="PHANTOM",
                label=label, name=label, approval_status="APPROVED", fractions=fractions,
                referenced_structure_set_uid=None,
                prescriptions=(TargetPrescription(rx_gy, None, ""),) if rx_gy else (),
                beam_dose_per_fraction_gy=None, beam_numbers=(), n_fraction_groups=1,
                prescription_text="")
    return CourseDose(grid, plan, (grid.path,), per_fraction, "")


PROTOCOL = """
[protocol]
name = "phantom-test"
include = ["normal_liver.toml"]
{rows}
"""


def _row(structure, metric, limit, **extra):
    keys = "".join(f'{k} = {v!r}\n'.replace("'", '"') for k, v in extra.items())
    return (f'[[constraint]]\nstructure = "{structure}"\nmetric = "{metric}"\n'
            f'limit = "{limit}"\nsource = "test row"\nstatus = "V"\n{keys}')


def _protocol(tmp_path, *rows):
    path = tmp_path / "phantom.toml"
    path.write_text(PROTOCOL.format(rows="\n".join(rows)), encoding="utf-8")
    return load_protocol(path)


def _eval(tmp_path, rows, ss, courses, fractions=5, **kw):
    result = evaluate_oars(_protocol(tmp_path, *rows), ss, courses, fractions=fractions,
                           overrides=None, **kw)
    return {(c.structure, c.metric): c for c in result.checks}, result


def test_small_normal_liver_fails_the_700cc_rule(tmp_path):
    ss = _phantom("Liver", "GTV_Liver")
    checks, result = _eval(tmp_path, [_row("Liver - GTV", "DC700cc[Gy]", "< 15"),
                                      _row("Liver - GTV", "Mean[Gy]", "< 9"),
                                      _row("Liver", "D700cc[Gy]", "< 20")],
                           ss, [_course(GRID, 5, 40.0)])
    normal_cc = so.sphere_slab_cc(50) - so.sphere_slab_cc(10)   # ~519 cc
    rule = checks[("Liver - GTV", "CV15Gy[cc]")]
    assert rule.status == FAIL and rule.priority == "mandatory"
    assert rule.value == pytest.approx(normal_cc, rel=0.01)     # all of it below 15 Gy
    only = re.search(r"normal liver is only ([0-9.]+) cc", rule.note)
    assert only and float(only[1]) == pytest.approx(normal_cc, rel=0.01)
    assert "the rule (>= 700 cc below 15 Gy) cannot be met" in rule.note
    # the same rule written as the max dose to the coldest 700 cc: FAIL, cannot be met
    dc = checks[("Liver - GTV", "DC700cc[Gy]")]
    assert dc.status == FAIL and dc.value is None and "cannot be met" in dc.note
    # the normal-liver mean in a linear field: the dose at the shell's centre
    assert checks[("Liver - GTV", "Mean[Gy]")].value == pytest.approx(8.0, abs=0.01)
    assert checks[("Liver - GTV", "Mean[Gy]")].status == PASS
    # D700cc of a 524 cc liver cannot be evaluated: never a guess, never D700cc for the rule
    d700 = checks[("Liver", "D700cc[Gy]")]
    assert d700.status == NOT_EVALUATED and "asks for 700 cc" in d700.note
    assert overall_status(result.checks) == "ERROR"


def test_volume_dose_metrics_and_marks_in_a_linear_field(tmp_path):
    ss = _phantom("Kidney_L")
    checks, result = _eval(tmp_path, [
        _row("Kidney_L", "V11.5Gy[%]", "< 60"), _row("Kidney_L", "Max[Gy]", "< 12.5"),
        _row("Kidney_L", "Mean[Gy]", "< 11", priority="optimal"),
        _row("Kidney_L", "D50%[Gy]", "< 12"), _row("Kidney_L", "CV11.5Gy[cc]", "> 3")],
        ss, [_course(GRID, 5, 40.0)])
    v = checks[("Kidney_L", "V11.5Gy[%]")]
    assert v.status == PASS and v.value == pytest.approx(50.0, abs=0.5) and v.unit == "%"
    assert checks[("Kidney_L", "Max[Gy]")].value == pytest.approx(12.0, abs=0.02)
    mean = checks[("Kidney_L", "Mean[Gy]")]
    assert mean.status == FAIL and mean.priority == "optimal"   # optimal: stays FAIL
    assert mean.value == pytest.approx(11.5, abs=0.01)
    assert checks[("Kidney_L", "D50%[Gy]")].value == pytest.approx(11.5, abs=0.02)
    assert checks[("Kidney_L", "CV11.5Gy[cc]")].value == pytest.approx(4.0, abs=0.05)
    kidney = [c for c in result.checks if c.structure == "Kidney_L"]
    assert overall_status(kidney) == "PASS"   # the optimal FAIL does not count
    curve = next(cv for cv in result.curves if cv.name == "Kidney_L")
    marks = {label.split()[0]: (d, p) for d, p, label, _ in curve.marks}
    assert marks["V11.5Gy[%]"] == pytest.approx((11.5, 50.0), abs=0.5)
    assert marks["Max[Gy]"] == pytest.approx((12.0, 0.0), abs=0.02)
    assert marks["D50%[Gy]"] == pytest.approx((11.5, 50.0), abs=0.05)
    assert marks["CV11.5Gy[cc]"] == pytest.approx((11.5, 50.0), abs=0.5)
    d, p = marks["Mean[Gy]"]
    edges = np.asarray(curve.dose_gy)
    assert p == pytest.approx(np.interp(d, edges, curve.volume_pct), abs=0.5)


def test_missing_partial_and_required_structures(tmp_path):
    ss = _phantom("Kidney_L")                                      # no liver, no Kidney_R
    checks, result = _eval(tmp_path, [_row("Kidney_L + Kidney_R", "Mean[Gy]", "< 15"),
                                      _row("Bladder", "Max[Gy]", "< 50")],
                           ss, [_course(GRID, 5, 40.0)])
    partial = checks[("Kidney_L + Kidney_R", "Mean[Gy]")]
    assert partial.status == NOT_EVALUATED and partial.priority == "mandatory"
    assert "no structure matching 'Kidney_R' (ROIs: Kidney_L)" in partial.note
    assert partial.rois == ("Kidney_L",)
    # rows of the protocol file itself and the trial's normal-liver rule are required
    for key in [("Bladder", "Max[Gy]"), ("Liver - GTV", "CV15Gy[cc]")]:
        assert checks[key].status == NOT_EVALUATED and checks[key].priority == "mandatory"
    assert "no structure matching 'Liver'" in checks[("Liver - GTV", "CV15Gy[cc]")].note
    assert result.curves == ()


def test_dose_grid_coverage(tmp_path):
    ss = _phantom("Stomach", "Heart")
    checks, result = _eval(tmp_path, [_row("Stomach", "Mean[Gy]", "< 20"),
                                      _row("Heart", "Max[Gy]", "< 20")],
                           ss, [_course(GRID, 5, 40.0)])
    stomach = checks[("Stomach", "Mean[Gy]")]
    assert stomach.status == PASS and stomach.value == pytest.approx(8.0, abs=0.01)
    assert "outside the dose grid" in stomach.note
    heart = checks[("Heart", "Max[Gy]")]
    assert heart.status == NOT_EVALUATED and "entirely outside the dose grid" in heart.note
    assert [cv.name for cv in result.curves] == ["Stomach"]
    assert result.curves[0].volume_cc == pytest.approx(so.sphere_slab_cc(15) / 2, rel=0.02)


SEVERAL_PLAN_ROWS = (
    _row("Liver", "Mean[Gy]", "< 25", fractions=[5]),
    _row("Liver", "Max[Gy]", "< 8", fractions=[3]),
    _row("Liver", "Max[Gy]", "< 35"),
    _row("Liver", "D50%[Gy]", "< 40", dose_type="EQD2", alpha_beta=3),
    _row("Liver", "Mean[Gy]", "< 45", dose_type="BED", alpha_beta=10))


def _several_plans(tmp_path, reverse=False, delivery=None):
    """Plan A: 20 Gy uniform in 5 fx; plan AB: 9 Gy uniform in 3 fx (same grid nodes)."""
    ss = _phantom("Liver", "GTV_Liver")
    g1 = so.uniform_grid((-60, -60, -60), (60, 60, 60), 20.0, uid="1.2.3.1")
    g2 = so.uniform_grid((-60, -60, -60), (60, 60, 60), 9.0, uid="1.2.3.2")
    courses = [_course(g1, 5, 20.0, "A"), _course(g2, 3, 9.0, "AB")]
    if reverse:
        courses.reverse()
    _, result = _eval(tmp_path, SEVERAL_PLAN_ROWS, ss, courses, fractions=courses[0].plan.fractions,
                      delivery=delivery)
    return {c.id: c for c in result.checks if c.structure == "Liver"}


@pytest.mark.parametrize("reverse", [False, True])
def test_each_plan_gets_the_rows_of_its_own_fraction_count(tmp_path, reverse):
    rows = _several_plans(tmp_path, reverse)
    # fraction-specific physical rows: on each plan's own dose, with its own count
    a = rows["oar.phantom.Liver.Mean@A"]
    assert (a.value, a.status, a.plans, a.fractions) == (pytest.approx(20.0), PASS, ("A",), (5,))
    ab = rows["oar.phantom.Liver.Max@AB"]
    assert (ab.value, ab.status, ab.plans, ab.fractions) == (pytest.approx(9.0), FAIL, ("AB",),
                                                             (3,))
    assert "oar.phantom.Liver.Mean@AB" not in rows and "oar.phantom.Liver.Max@A" not in rows
    # a row for any fraction count: on the physical sum
    total = rows["oar.phantom.Liver.Max"]
    assert total.value == pytest.approx(29.0, abs=1e-6) and total.dose_view == "physical"
    # composite rows on the voxel-wise sum; delivery not stated: concurrent for organs
    # (the physical sum in the fewest fractions: 29 Gy in 3 fx), the higher organ dose
    eq = rows["oar.phantom.Liver.D50%"]
    assert eq.value == pytest.approx(eqd2(29.0, 3, 3.0), abs=0.01)  # 73.5 Gy
    assert eq.value > eqd2(20.0, 5, 3.0) + eqd2(9.0, 3, 3.0)        # sequential: 38.8 Gy
    assert eq.status == FAIL and "concurrent delivery" in eq.note
    assert set(eq.plans) == {"A", "AB"} and eq.alpha_beta == 3.0
    b = rows["oar.phantom.Liver.Mean"]
    assert b.value == pytest.approx(bed(29.0, 3, 10.0), abs=1e-6)


def test_rows_do_not_depend_on_the_order_of_the_plans(tmp_path):
    one, other = _several_plans(tmp_path), _several_plans(tmp_path, reverse=True)
    assert list(one) == list(other)
    for cid, c in one.items():
        assert (c.status, c.value, c.plans, c.fractions) == \
            (other[cid].status, other[cid].value, other[cid].plans, other[cid].fractions)


def test_sequential_delivery_sums_each_plans_eqd2(tmp_path):
    rows = _several_plans(tmp_path, delivery="sequential")
    eq = rows["oar.phantom.Liver.D50%"]
    assert eq.value == pytest.approx(eqd2(20.0, 5, 3.0) + eqd2(9.0, 3, 3.0), abs=0.01)  # 38.8
    assert eq.status == PASS and "sequential delivery" in eq.note
    b = rows["oar.phantom.Liver.Mean"]
    assert b.value == pytest.approx(bed(20.0, 5, 10.0) + bed(9.0, 3, 10.0), abs=1e-6)  # 39.7
    assert rows["oar.phantom.Liver.Mean@A"].value == pytest.approx(20.0)


def test_concurrent_plans_of_one_fraction_count_are_one_physical_sum(tmp_path):
    """Two 5-fraction plans delivered on the same days: the 5-fraction physical rows on
    their physical sum, EQD2 of that sum in 5 fractions (not the sum of each plan's)."""
    ss = _phantom("Liver", "GTV_Liver")
    g1 = so.uniform_grid((-60, -60, -60), (60, 60, 60), 10.0, uid="1.2.3.1")
    g2 = so.uniform_grid((-60, -60, -60), (60, 60, 60), 6.0, uid="1.2.3.2")
    courses = [_course(g1, 5, 10.0, "A"), _course(g2, 5, 6.0, "B")]
    rows = [_row("Liver", "Mean[Gy]", "< 20", fractions=[5]),
            _row("Liver", "Mean[Gy]", "< 30", dose_type="EQD2", alpha_beta=3)]
    by_id = {c.id: c for c in _eval(tmp_path, rows, ss, courses)[1].checks}
    assert by_id["oar.phantom.Liver.Mean"].value == pytest.approx(16.0)       # 5 fx, sum
    assert by_id["oar.phantom.Liver.Mean#2"].value == pytest.approx(eqd2(16.0, 5, 3.0))
    by_id = {c.id: c for c in _eval(tmp_path, rows, ss, courses, delivery="sequential")[1]
             .checks}
    assert by_id["oar.phantom.Liver.Mean@A"].value == pytest.approx(10.0)
    assert by_id["oar.phantom.Liver.Mean@B"].value == pytest.approx(6.0)
    assert by_id["oar.phantom.Liver.Mean"].value == pytest.approx(
        eqd2(10.0, 5, 3.0) + eqd2(6.0, 5, 3.0))


def test_conventional_rows_follow_the_dose_per_fraction(tmp_path):
    ss = _phantom("Liver")
    grid = so.uniform_grid((-60, -60, -60), (60, 60, 60), 60.0)
    row = _row("Liver", "Mean[Gy]", "< 70", fractionation="conventional")
    conv, _ = _eval(tmp_path, [row], ss, [_course(grid, 30, 60.0)], fractions=30)
    c = conv[("Liver", "Mean[Gy]")]
    assert c.status == PASS and c.value == pytest.approx(60.0)
    assert "conventional limit on physical dose" in c.note
    hypo, _ = _eval(tmp_path, [row], ss, [_course(grid, 5, 60.0)], fractions=5)
    c = hypo[("Liver", "Mean[Gy]")]
    # (the converted mean integrates the 0.01 Gy DVH bins: within 0.05 Gy)
    assert c.status == FAIL and c.value == pytest.approx(eqd2(60.0, 5, 3.0), abs=0.05)
    assert "EQD2 (α/β = 3 Gy" in c.note


def test_dose_that_cannot_be_used(tmp_path):
    ss = _phantom("Liver", "GTV_Liver")
    rows = [_row("Liver", "Mean[Gy]", "< 20")]
    per_fx, _ = _eval(tmp_path, rows, ss, [_course(GRID, None, per_fraction=True)])
    c = per_fx[("Liver", "Mean[Gy]")]
    assert c.status == NOT_EVALUATED and "per fraction" in c.note
    other = replace(GRID, frame_of_reference_uid="9.9.9")
    wrong, _ = _eval(tmp_path, rows, ss, [_course(other, 5, 40.0)])
    c = wrong[("Liver", "Mean[Gy]")]
    assert c.status == NOT_EVALUATED and "frame of reference" in c.note
    none, _ = _eval(tmp_path, rows, ss, [])
    assert none[("Liver", "Mean[Gy]")].status == NOT_EVALUATED
