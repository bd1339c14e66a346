"""Independent audit of issue 12 items 3-4: per-plan rule selection (verdicts independent
of file order and of RTPlanLabel order) and the delivery of several plans (concurrent:
physical sum then LQ; sequential: sum of EQD2/BED; default: the conservative one per side).

Truths are computed here from the generator's analytic dose at points filling each
structure (rtqa.sample.sample_dose), with the LQ formulas of tests/audit_cases.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import rtqa
from rtqa.results import FAIL, PASS
from rtqa.sample import sample_dose

from tests import audit_cases as A

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("audit_plans")


def _files(folder, reverse):
    files = sorted(folder.iterdir())
    return [str(p) for p in (files[::-1] if reverse else files)]


def _label_free(cid, labels):
    """Row id with the plan label replaced by its role (A: first label given, B: second)."""
    for role, lab in zip("AB", labels):
        cid = re.sub(rf"([@.]){re.escape(lab)}(?=\.|$)", rf"\1<{role}>", cid)
    return cid


def _rows(report, labels):
    out = {}
    for c in report.checks:
        key = _label_free(c.id, labels)
        plans = tuple(sorted(_label_free("@" + p, labels) for p in c.plans))
        out[key] = (c.status, None if c.value is None else round(c.value, 6), plans,
                    tuple(sorted(c.fractions)), c.limit, c.reason)
    return out


# --- two plans, different fraction counts, any order ------------------------------------------

STOMACH_HOT = 27.0   # whole course: > TG-101 3 fx Dmax 22.2 Gy, < TG-101 5 fx Dmax 32 Gy


@pytest.mark.parametrize("hot_in", ["3fx", "5fx"])
@pytest.mark.parametrize("labels", [("PlanA", "PlanB"), ("Zulu", "Alpha")])
def test_two_plans_any_order_same_rows_and_own_fraction_count(root, hot_in, labels):
    """Plan 1 (liver lesion) and plan 2 (lung, T10) with 3 and 5 fractions; a 27 Gy stomach
    hot spot in one of them. Its stomach point-dose row is evaluated on that plan's dose
    with that plan's count: FAIL at 3 fx (> 22.2 Gy), PASS at 5 fx (< 32 Gy)."""
    fx_a, fx_b = (5, 3) if hot_in == "3fx" else (3, 5)
    case = A.two_plans(fx_a, fx_b, labels=labels, stomach_gy=STOMACH_HOT)
    folder = A.write(case, root / f"two_{hot_in}_{labels[0]}", root)
    fwd = rtqa.check(_files(folder, False), sum_plans=True)
    rev = rtqa.check(_files(folder, True), sum_plans=True)
    assert fwd.status == rev.status
    assert _rows(fwd, labels) == _rows(rev, labels)
    # the hot plan is labels[1]; its own stomach point row
    hot = [c for c in fwd.checks if c.structure == "Stomach" and c.metric == "D0.035cc[Gy]"
           and c.dose_view == "physical" and c.plans == (labels[1],)]
    assert hot, [(c.id, c.plans) for c in fwd.checks if c.structure == "Stomach"]
    for c in hot:
        assert c.fractions == (fx_b,)
        assert c.value == pytest.approx(STOMACH_HOT, abs=2.0)
        assert c.status == (FAIL if fx_b == 3 else PASS), (c.id, c.value, c.limit)
    other = [c for c in fwd.checks if c.structure == "Stomach" and c.metric == "D0.035cc[Gy]"
             and c.plans == (labels[0],)]
    assert other and all(c.fractions == (fx_a,) and c.value < 5.0 for c in other)
    if fx_b == 3:
        assert fwd.status != "PASS"


@pytest.mark.parametrize("fx", [(5, 3), (4, 8), (3, 6), (1, 2), (5, 30)])
def test_swapping_labels_gives_the_same_verdict_and_rows(root, fx):
    """The same two plans exported with their labels swapped (so the label order, and the
    UIDs derived from them, are reversed): the same rows up to the labels; the plan of
    ``fx[1]`` fractions carries the stomach hot spot."""
    results = []
    for labels in [("Zulu", "Alpha"), ("Alpha", "Zulu")]:
        case = A.two_plans(*fx, labels=labels, stomach_gy=STOMACH_HOT)
        folder = A.write(case, root / f"swap_{fx[0]}_{fx[1]}_{labels[0]}", root)
        report = rtqa.check(folder, sum_plans=True)
        results.append((report.status, _rows(report, labels)))
    assert results[0][0] == results[1][0]
    one, other = results[0][1], results[1][1]
    assert set(one) == set(other)
    assert {k: v for k, v in one.items() if v != other[k]} == {}
    assert not [k for k in one if "#" in k], "a row evaluated twice"


# --- concurrent vs sequential ------------------------------------------------------------------

def _normal_liver_points(case):
    """Per-plan analytic doses at the points of Liver - GTV_Liver (1.5 mm lattice)."""
    da, cc = sample_dose(case, "Liver", plan_spec=0, exclude="GTV_Liver", spacing_mm=1.5)
    db, _ = sample_dose(case, "Liver", plan_spec=1, exclude="GTV_Liver", spacing_mm=1.5)
    return da, db


@pytest.fixture(scope="module", params=[(5, 5), (3, 5)], ids=["5+5fx", "3+5fx"])
def washed(root, request):
    fa, fb = request.param
    case = A.liver_mean_plans(fa, 10.0, 10.0, fx_b=fb)
    folder = A.write(case, root / f"washed{fa}{fb}", root)
    return case, folder, fa, fb


def _liver_mean_eqd2(report):
    rows = [c for c in report.checks if c.structure == "Liver - GTV" and c.metric == "Mean[Gy]"
            and c.dose_view == "EQD2"]
    assert len(rows) == 1, [c.id for c in rows]     # one row, never evaluated twice
    return rows[0]


def test_concurrent_plans_liver_mean_eqd2_is_lq_of_the_physical_sum(washed):
    case, folder, fa, fb = washed
    da, db = _normal_liver_points(case)
    # concurrent: the physical sum in the fewest fractions; sequential: each its own count
    concurrent = float(np.mean(A.np_eqd2(da + db, min(fa, fb), 3.0)))
    sequential = float(np.mean(A.np_eqd2(da, fa, 3.0) + A.np_eqd2(db, fb, 3.0)))
    assert concurrent > 1.2 * sequential          # the two assumptions are far apart
    default = rtqa.check(folder, sum_plans=True)
    c = _liver_mean_eqd2(default)
    assert c.alpha_beta == 3.0 and set(c.plans) == {"WashA", "WashB"}
    assert c.value == pytest.approx(concurrent, rel=0.03)    # conservative for organs
    assert "delivery" in default.conventions
    conc = _liver_mean_eqd2(rtqa.check(folder, sum_plans=True, delivery="concurrent"))
    assert conc.value == pytest.approx(concurrent, rel=0.03)
    seq = _liver_mean_eqd2(rtqa.check(folder, sum_plans=True, delivery="sequential"))
    assert seq.value == pytest.approx(sequential, rel=0.03)


def test_split_course_lesion_bed_is_conservative_unless_delivery_is_stated(root):
    """Every lesion gets 20 Gy in 5 fx from each of two plans. Concurrent: 40 Gy in 5 fx,
    BED10 72 Gy; sequential: 2 x 20 (1 + 4/10) = 56 Gy < 60. Unstated: the lower BED
    (sequential) for lesion coverage, so the lesions fail."""
    case = A.split_course(5, 20.0)
    folder = A.write(case, root / "split", root)
    pts_a, _ = sample_dose(case, "PTV_Liver", plan_spec=0, spacing_mm=1.0)
    pts_b, _ = sample_dose(case, "PTV_Liver", plan_spec=1, spacing_mm=1.0)
    conc_truth = float(np.percentile(A.bed(pts_a + pts_b, 5, 10.0), 5))
    seq_truth = float(np.percentile(A.bed(pts_a, 5, 10.0) + A.bed(pts_b, 5, 10.0), 5))
    assert seq_truth < 60.0 < conc_truth
    default = rtqa.check(folder, sum_plans=True)
    les = {x.name: x for x in default.lesions}
    assert les["Liver"].bed_gy == pytest.approx(seq_truth, rel=0.03)
    assert les["Liver"].status == FAIL and default.status != "PASS"
    conc = rtqa.check(folder, sum_plans=True, delivery="concurrent")
    les = {x.name: x for x in conc.lesions}
    assert les["Liver"].bed_gy == pytest.approx(conc_truth, rel=0.03)
    assert les["Liver"].status == PASS
