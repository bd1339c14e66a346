"""Organ-at-risk limits for every fraction count, evaluated on in-memory phantoms
(rtqa.checks.oar with the shipped oligo-hcc protocol or small test protocols): the same
physical dose at 3, 4 and 5 fractions, the normal-liver rule at 6 and 8 fractions,
contoured organs without a limit, and SBRT rows over conventional EQD2 rows.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rtqa.checks.oar import evaluate_oars
from rtqa.constraints import load_protocol
from rtqa.paths import protocols_dir
from rtqa.dvh.radiobiology import eqd2
from rtqa.reading.structures import StructureSet
from rtqa.results import FAIL, NOT_EVALUATED, PASS, WARN, Reason, overall_status

from tests.checks.test_oar import _course
from tests.dvh import test_structops as so


@pytest.fixture(scope="module")
def trial():
    return load_protocol("oligo-hcc")


def _ss(*structures):
    return StructureSet(path=Path("RS.limits.dcm"), sop_instance_uid="1.2.3.19",
                        frame_of_reference_uid=so.FRAME, patient_id="PHANTOM", label="ss",
                        referenced_series_uids=(), structures=tuple(structures))


def _rows_of(result, structure):
    return [c for c in result.checks if c.structure == structure]


# --- the same physical dose at 3, 4 and 5 fractions ---------------------------------------

@pytest.mark.parametrize("n, limit, derived", [(3, "< 22.2", False), (4, "< 24.97", True),
                                                (5, "< 32", False)])
def test_stomach_point_dose_of_40_8_gy_fails_at_3_4_and_5_fractions(trial, n, limit,
                                                                     derived):
    grid = so.uniform_grid((-30, -30, -30), (30, 30, 30), 40.8)
    ss = _ss(so.sphere("Stomach", (0, 0, 0), 15))
    result = evaluate_oars(trial, ss, [_course(grid, n, 40.8)], fractions=n)
    stomach = _rows_of(result, "Stomach")
    point = [c for c in stomach if c.metric == "D0.035cc[Gy]"]
    assert len(point) == 1
    c = point[0]
    assert c.status == FAIL and c.priority == "mandatory" and c.limit == limit
    assert c.value == pytest.approx(40.8, abs=0.01)
    assert (c.derivation is not None) is derived
    if derived:
        assert c.derivation == ("derived (LQ) from Benedict et al. Med Phys "
                                "2010;37(8):4078, Table III, 3 fx")
        assert c.id == "oar.lq.tg101.Stomach.D0.035cc" and c.source.startswith(c.derivation)
        assert "24.976 Gy in 4 fx" in c.note
    assert not any(c.status == WARN or c.reason == Reason.NO_LIMIT for c in stomach)
    assert overall_status(stomach) == "FAIL"


# --- the normal-liver rule at 6 and 8 fractions ------------------------------------------

def _liver_case(r, x0, n):
    """Liver ball of radius r (mm) in the linear field D = 15 + 0.5 (x - x0) Gy (>= 0):
    exactly the part x < x0 is below 15 Gy."""
    grid = so.uniform_grid((-r - 6,) * 3, (r + 6,) * 3,
                           dose_fn=lambda x, y, z: np.maximum(0.0, 15 + 0.5 * (x - x0)))
    ss = _ss(so.sphere("Liver", (0, 0, 0), r))
    return ss, [_course(grid, n, 40.0)]


def _cap_cc(r, x0):
    h = r + x0
    return np.pi * h * h * (3 * r - h) / 3 / 1000.0


@pytest.mark.parametrize("n", [6, 8])
def test_liver_rule_fails_with_452_cc_spared_at_6_and_8_fractions(trial, n):
    ss, courses = _liver_case(60, 0.0, n)
    result = evaluate_oars(trial, ss, courses, fractions=n)
    rule = [c for c in result.checks if c.metric == "CV15Gy[cc]"][0]
    spared = so.sphere_slab_cc(60) / 2
    assert rule.value == pytest.approx(spared, rel=0.02) and spared < 700
    assert rule.status == FAIL and rule.priority == "mandatory" and rule.limit == ">= 700"
    assert rule.derivation is None and rule.source.startswith("Pan et al.")
    assert overall_status(_rows_of(result, "Liver - GTV")) == "FAIL"


@pytest.mark.parametrize("n", [6, 8])
def test_liver_rule_passes_with_1018_cc_spared_at_6_and_8_fractions(trial, n):
    ss, courses = _liver_case(70, 20.0, n)
    result = evaluate_oars(trial, ss, courses, fractions=n)
    liver = _rows_of(result, "Liver - GTV")
    rule = [c for c in liver if c.metric == "CV15Gy[cc]"][0]
    assert rule.value == pytest.approx(_cap_cc(70, 20.0), rel=0.02)
    assert rule.status == PASS
    # every other liver row passes too: the derived (LQ) mean at 8 fx (the derived
    # DC700cc row is replaced by the 700 cc rule at 3-8 fx and not evaluated)
    assert {c.metric for c in liver if c.derivation} == ({"Mean[Gy]"} if n == 8 else set())
    assert "replaces the derived DC700cc[Gy] < " in rule.note
    assert overall_status(liver) == "PASS"


# --- contoured organs without a limit ------------------------------------------------------

def _proto(tmp_path, limits=""):
    path = tmp_path / "p.toml"
    path.write_text(
        '[protocol]\nname = "limits-test"\n' + limits +
        '[[constraint]]\nstructure = "Kidney_L"\nmetric = "V11.5Gy[%]"\nlimit = "< 60"\n'
        'fractions = [5]\nsource = "test row"\nstatus = "V"\n', encoding="utf-8")
    return load_protocol(path)


def test_contoured_organ_without_a_limit_is_not_evaluated(tmp_path):
    grid = so.uniform_grid((-20, -20, -20), (20, 20, 20), 10.0)
    ss = _ss(so.sphere("Kidney_L", (0, 0, 0), 10))
    result = evaluate_oars(_proto(tmp_path), ss, [_course(grid, 3, 30.0)], fractions=3)
    (c,) = result.checks
    assert c.status == NOT_EVALUATED and c.priority == "mandatory"
    assert c.reason == Reason.NO_LIMIT and c.id == "oar.none.Kidney_L"
    assert "no constraint for 3 fractions" in c.note and "[limits] no_limit" in c.note
    assert c.plans == ("P1",) and c.fractions == (3,) and c.rois == ("Kidney_L",)
    assert overall_status(result.checks) == "ERROR"
    # at 5 fractions the row applies: evaluated, no NO_LIMIT row
    five = evaluate_oars(_proto(tmp_path), ss, [_course(grid, 5, 30.0)], fractions=5)
    assert [(x.status, x.reason) for x in five.checks] == [(PASS, None)]


def test_protocol_no_limit_makes_it_a_visible_warning(tmp_path):
    grid = so.uniform_grid((-20, -20, -20), (20, 20, 20), 10.0)
    ss = _ss(so.sphere("Kidney_L", (0, 0, 0), 10))
    limits = ('[limits]\nno_limit = ["Kidney_L"]\n'
              'no_limit_source = "test: kidney judged by the physicist"\n')
    result = evaluate_oars(_proto(tmp_path, limits), ss, [_course(grid, 3, 30.0)],
                           fractions=3)
    (c,) = result.checks
    assert c.status == WARN and c.priority == "optimal" and c.reason == Reason.NO_LIMIT
    assert "no limit by protocol: test: kidney judged by the physicist" in c.note
    assert overall_status(result.checks) == "PASS"


def test_organs_the_plan_does_not_have_give_no_no_limit_row(tmp_path):
    grid = so.uniform_grid((-20, -20, -20), (20, 20, 20), 10.0)
    ss = _ss(so.sphere("Heart", (0, 0, 0), 10))
    result = evaluate_oars(_proto(tmp_path), ss, [_course(grid, 3, 30.0)], fractions=3)
    assert not [c for c in result.checks if c.reason == Reason.NO_LIMIT]


# --- SBRT rows over conventional EQD2 rows ---------------------------------------------------

def _liver_protocol(tmp_path, sbrt=True):
    rows = ('[[constraint]]\nstructure = "Liver"\nmetric = "Mean[Gy]"\nlimit = "< 15"\n'
            'fractionation = "conventional"\nsource = "test conventional"\nstatus = "V"\n')
    if sbrt:
        rows += ('[[constraint]]\nstructure = "Liver"\nmetric = "Mean[Gy]"\nlimit = "< 13"\n'
                 'fractions = [3]\nsource = "test SBRT"\nstatus = "V"\n')
    path = tmp_path / ("sbrt.toml" if sbrt else "conv.toml")
    path.write_text('[protocol]\nname = "liver-test"\n' + rows, encoding="utf-8")
    return load_protocol(path)


def test_conventional_eqd2_row_does_not_override_the_sbrt_row(tmp_path):
    grid = so.uniform_grid((-40, -40, -40), (40, 40, 40), 12.0)
    ss = _ss(so.sphere("Liver", (0, 0, 0), 30))
    courses = [_course(grid, 3, 36.0)]
    result = evaluate_oars(_liver_protocol(tmp_path), ss, courses, fractions=3)
    conv, sbrt = result.checks
    # 12 Gy in 3 fx: physical mean 12 < 13 passes the SBRT row; EQD2 16.8 > 15
    assert sbrt.status == PASS and sbrt.priority == "mandatory" and sbrt.value == \
        pytest.approx(12.0, abs=0.01)
    assert conv.status == FAIL and conv.priority == "optimal"
    assert conv.value == pytest.approx(eqd2(12.0, 3, 3.0), abs=0.05)
    assert "informative only" in conv.note and "Mean[Gy] < 13 (test SBRT)" in conv.note
    assert overall_status(result.checks) == "PASS"
    # without an SBRT row the conventional EQD2 row is the limit (mandatory)
    alone = evaluate_oars(_liver_protocol(tmp_path, sbrt=False), ss, courses, fractions=3)
    (c,) = alone.checks
    assert c.status == FAIL and c.priority == "mandatory"
    assert overall_status(alone.checks) == "FAIL"


# --- the trial's liver rule replaces the derived DC700cc row ---------------------------------

def _spared_cc(r: float, x_cut: float) -> float:
    """Volume (cc) of the contoured ball (n-gon planes, slab convention) with x < x_cut:
    shapely clips each plane's polygon (independent of rtqa's DVH engine)."""
    from shapely.geometry import Polygon, box as sbox

    total = 0.0
    for z in so.planes_z(-r, r):
        poly = Polygon(so.circle(0.0, 0.0, math.sqrt(r * r - z * z)))
        total += poly.intersection(sbox(-1e4, -1e4, x_cut, 1e4)).area
    return total * so.DZ / 1000.0


def _x_at(r: float, cc: float) -> float:
    lo, hi = -r, r
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _spared_cc(r, mid) < cc else (lo, mid)
    return (lo + hi) / 2


def test_liver_720cc_spared_passes_the_trial_rule_at_3_fx_derived_row_replaced(trial,
                                                                               tmp_path):
    """Normal liver (ball r 70 mm, no GTV) in D = 15 + g (x - x0) Gy: 720 cc below 15 Gy
    (the trial's rule passes) while the coldest 700 cc reach DC700cc ~ 14.6 Gy, above the
    derived TG-101 DC700cc < 14.22 Gy at 3 fx (9.1 Gy in 1 fx, LQ α/β 3). The trial's
    rule replaces the derived row: the rule's row names it, the derived row is not
    evaluated, the liver passes. Without the replacement the derived row FAILs."""
    r, g = 70.0, 0.3
    x0 = _x_at(r, 720.0)
    x700 = _x_at(r, 700.0)
    dc700_truth = 15 + g * (x700 - x0)
    assert 14.22 < dc700_truth < 15.0
    grid = so.uniform_grid((-r - 6,) * 3, (r + 6,) * 3,
                           dose_fn=lambda x, y, z: np.maximum(0.0, 15 + g * (x - x0)))
    ss = _ss(so.sphere("Liver", (0, 0, 0), r))
    courses = [_course(grid, 3, 45.0)]

    def rows(protocol):
        res = evaluate_oars(protocol, ss, courses, fractions=3)
        return ({c.metric: c for c in _rows_of(res, "Liver - GTV")
                 if c.metric in ("CV15Gy[cc]", "DC700cc[Gy]")})

    got = rows(trial)
    assert set(got) == {"CV15Gy[cc]"}                  # the derived row is not evaluated
    rule = got["CV15Gy[cc]"]
    assert rule.value == pytest.approx(720.0, abs=3.0) and rule.status == PASS
    assert rule.priority == "mandatory" and rule.derivation is None
    assert ("replaces the derived DC700cc[Gy] < 14.22 (derived (LQ) from Benedict et al. "
            "Med Phys 2010;37(8):4078, Table III, 1 fx), the same rule ([[limits.replace]] "
            "of protocol oligo-hcc)") in rule.note
    listed = [e for e in trial.select(3) if e.structure == "Liver - GTV"
              and e.constraint is not None and e.constraint.metric == "DC700cc[Gy]"
              and e.kind != "disabled"]
    assert [(e.kind, e.replaced_by) for e in listed] == \
        [("replaced", "protocol oligo-hcc: Liver - GTV CV15Gy[cc] >= 700")]

    # the same protocol without [[limits.replace]]: the derived row is a mandatory FAIL
    text = (protocols_dir() / "oligo-hcc.toml").read_text(encoding="utf-8")
    cut = text.index("\n[[limits.replace]]\n")
    plain = tmp_path / "oligo-hcc-plain.toml"
    plain.write_text(text[:cut], encoding="utf-8")
    got = rows(load_protocol(plain))
    dc = got["DC700cc[Gy]"]
    assert dc.value == pytest.approx(dc700_truth, abs=0.05)
    assert dc.status == FAIL and dc.limit == "< 14.22" and dc.priority == "mandatory"
    assert dc.derivation == ("derived (LQ) from Benedict et al. Med Phys 2010;37(8):4078, "
                             "Table III, 1 fx")
    assert "replaces" not in got["CV15Gy[cc]"].note
    assert overall_status(list(got.values())) == "FAIL"


def test_contoured_great_vessels_at_30_fx_are_not_evaluated_never_extrapolated(trial):
    """A conventional 30-fraction plan: no derived (LQ) row anywhere; the great vessels
    (QUANTEC has no row for them) are NOT EVALUATED with the row to add (plan ERROR);
    the stomach gets QUANTEC's conventional row on physical dose."""
    grid = so.uniform_grid((-60, -40, -40), (60, 40, 40), 60.0)
    ss = _ss(so.sphere("GreatVes", (-30, 0, 0), 12), so.sphere("Stomach", (30, 0, 0), 20))
    result = evaluate_oars(trial, ss, [_course(grid, 30, 60.0)], fractions=30)
    assert not [c for c in result.checks if c.derivation]
    (gv,) = _rows_of(result, "GreatVes")
    assert gv.status == NOT_EVALUATED and gv.reason == Reason.NO_LIMIT
    assert gv.priority == "mandatory" and gv.id == "oar.none.GreatVes"
    assert "not derived by LQ beyond 8 fractions" in gv.note
    assert 'structure = "GreatVes"' in gv.note and "fractions = [30]" in gv.note
    stomach = _rows_of(result, "Stomach")
    assert [(c.metric, c.limit, c.dose_view) for c in stomach] == \
        [("D100%[Gy]", "< 45", "physical")]
    assert stomach[0].status == FAIL          # 60 Gy everywhere > 45 Gy
    assert overall_status(result.checks) == "ERROR"
