"""Dose-scaling headroom of lesions that fall short (issue 12 item 7), against values
computed here independently: the LQ quadratic solved by hand, closed forms on DVHs
built here, and an export built in code whose organ limits are set from its own values.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rtqa.checks.headroom import lesion_factor, row_factor, scaled
from rtqa.checks.pipeline import run_check
from rtqa.checks.context import CheckOptions
from rtqa.dvh.data import DVHData
from rtqa.results import FAIL, PASS, Category, Check, DoseView
from rtqa.sample import (CaseSpec, CTSpec, DoseGridSpec, EllipticCylinder, LesionSpec,
                         PlanSpec, StructureSpec, TargetDose, sphere, write_case)


def quadratic_f(d: float, n: int, ab: float, target: float) -> float:
    """f with f d (1 + f d / (n ab)) = target: (d^2/(n ab)) f^2 + d f - target = 0."""
    a, b, c = d * d / (n * ab), d, -target
    return (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)


def test_lesion_factor_is_the_root_of_the_lq_quadratic():
    # D95% 30 Gy in 5 fx: BED10 48 Gy; x 1.1753 -> 35.26 Gy, BED10 60 Gy
    f = lesion_factor(30.0, 5, 10.0, 60.0)
    assert f == pytest.approx(quadratic_f(30.0, 5, 10.0, 60.0), rel=1e-12)
    assert f == pytest.approx(1.17360, abs=1e-5)  # x = 25 (sqrt(5.8) - 1) = 35.208 Gy
    x = f * 30.0
    assert x * (1 + x / 50.0) == pytest.approx(60.0, rel=1e-12)
    # 1 fraction and 3 fractions
    for d, n in ((20.0, 1), (25.0, 3)):
        assert lesion_factor(d, n, 10.0, 60.0) == pytest.approx(quadratic_f(d, n, 10.0, 60.0))


def two_level_dvh(v1: float, d1: float, v2: float, d2: float) -> DVHData:
    """v1 cc at d1 Gy and v2 cc at d2 Gy (d1 < d2), on 0.01 Gy nodes."""
    edges = np.round(np.arange(0.0, d2 + 0.02, 0.01), 10)
    cum = np.where(edges <= d1, v1 + v2, np.where(edges <= d2, v2, 0.0))
    cum[-1] = 0.0
    return DVHData("organ", edges, cum.astype(float), v1 + v2, d1, d2,
                   (v1 * d1 + v2 * d2) / (v1 + v2))


def row(metric, limit, value, view=DoseView.PHYSICAL, ab=None, fx=(5,)):
    return Check("oar.test.Organ." + metric, Category.OARS, PASS, "test", structure="Organ",
                 rois=("Organ",), metric=metric, value=value, unit="Gy", limit=limit,
                 dose_view=view, alpha_beta=ab, plans=("P",), fractions=fx)


def test_physical_max_limit_1_2_times_the_value_gives_1_2():
    d = two_level_dvh(10.0, 10.0, 1.0, 25.0)
    assert row_factor(row("Max[Gy]", "<= 30", 25.0), d, DoseView.PHYSICAL, None) == \
        pytest.approx(1.2, rel=1e-12)
    assert row_factor(row("Mean[Gy]", "<= 20", d.mean_gy), d, DoseView.PHYSICAL, None) == \
        pytest.approx(20.0 / d.mean_gy, rel=1e-12)


def test_physical_volume_rows_use_the_dose_at_the_allowed_volume():
    # 10 cc at 10 Gy, 1 cc at 25 Gy (the step between the 10.00 and 10.01 Gy nodes,
    # linear between them). V20Gy[cc] <= 5: 1 cc now; fails when the dose at which 5 cc
    # remain, 10 + 0.01 (11 - 5)/10 Gy, reaches 20 Gy: f = 20 / 10.006 (~2).
    # CV15Gy[cc] >= 5 (5 cc below 15 Gy): fails when V reaches 11 - 5 = 6 cc at 15 Gy:
    # f = 15 / (10 + 0.01 x 5/10) (~1.5).
    d = two_level_dvh(10.0, 10.0, 1.0, 25.0)
    f_v = row_factor(row("V20Gy[cc]", "<= 5", 1.0), d, DoseView.PHYSICAL, None)
    assert f_v == pytest.approx(20.0 / 10.006, rel=1e-9)
    f_cv = row_factor(row("CV15Gy[cc]", ">= 5", 10.0), d, DoseView.PHYSICAL, None)
    assert f_cv == pytest.approx(15.0 / 10.005, rel=1e-9)


def test_eqd2_rows_solved_voxel_wise():
    n, ab = 5, 3.0
    d = two_level_dvh(10.0, 10.0, 1.0, 25.0)

    def eqd2(x):
        return x * (1 + x / (n * ab)) / (1 + 2 / ab)

    # EQD2 max: 25 Gy in 5 fx -> 25 (1 + 5/3) / (5/3) = 40 Gy; limit 50: f with
    # eqd2(25 f) = 50, from the quadratic of BED = 50 (1 + 2/3)
    f = row_factor(row("Max[Gy]", "<= 50", eqd2(25.0), DoseView.EQD2, ab), d,
                   DoseView.EQD2, n)
    assert f == pytest.approx(quadratic_f(25.0, n, ab, 50.0 * (1 + 2 / ab)) , rel=1e-9)
    # mean EQD2, voxel-wise over both parts (the DVH bins hold them at 10.005 and 25.005
    # Gy): (10 eqd2(10.005 f) + 1 eqd2(25.005 f)) / 11 = 12 -> a quadratic in f
    lo, hi = 10.005, 25.005
    mean = (10 * eqd2(lo) + eqd2(hi)) / 11
    f = row_factor(row("Mean[Gy]", "<= 12", mean, DoseView.EQD2, ab), d, DoseView.EQD2, n)
    k = 1 + 2 / ab
    a = (10 * lo ** 2 + hi ** 2) / (n * ab) / (11 * k)
    b = (10 * lo + hi) / (11 * k)
    want = (-b + math.sqrt(b * b + 4 * a * 12.0)) / (2 * a)
    assert f == pytest.approx(want, rel=1e-6)


def test_a_row_that_never_binds_has_no_factor_and_a_mismatch_is_refused():
    d = two_level_dvh(10.0, 10.0, 1.0, 25.0)
    assert row_factor(row("V20Gy[cc]", "<= 100", 1.0), d, DoseView.PHYSICAL, None) is None
    with pytest.raises(ValueError):
        row_factor(row("Max[Gy]", "<= 30", 24.0), d, DoseView.PHYSICAL, None)
    assert scaled(d, 2.0).max_gy == 50.0


# --- end to end: a lesion short of BED10 60 Gy next to the cord --------------------------

PROTOCOL = """
[protocol]
name = "headroom-test"
description = "test protocol"
source = "test"

[lesions]
bed_limit = ">= 60"
alpha_beta = 10
coverage_metric = "D95%[Gy]"
coverage_structures = ["PTV", "GTV"]
source = "test: BED10 >= 60 Gy"

[[constraint]]
structure = "SpinalCord"
metric = "Max[Gy]"
limit = "<= {max_limit}"
source = "test: 1.2 x the achieved maximum"
status = "V"

[[constraint]]
structure = "SpinalCord"
metric = "Mean[Gy]"
limit = "<= {mean_limit}"
source = "test: 3 x the achieved mean"
status = "V"
"""


def _protocol(folder: Path, max_limit: float, mean_limit: float) -> Path:
    path = folder / "headroom-test.toml"
    path.write_text(PROTOCOL.format(max_limit=f"{max_limit:.6f}",
                                    mean_limit=f"{mean_limit:.6f}"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def short_lesion(tmp_path_factory):
    root = tmp_path_factory.mktemp("headroom")
    body = StructureSpec("External", EllipticCylinder((0, 0), (150, 80), -1e4, 1e4),
                         "EXTERNAL")
    cord = StructureSpec("SpinalCord", EllipticCylinder((0.0, 28.0), (5.0, 4.0), -30, 30),
                         "ORGAN")
    grid = DoseGridSpec.covering(np.array([-40.0, -40, -40]), np.array([40.0, 40, 40]),
                                 (2.0, 2.0, 2.0))
    case = CaseSpec("short", (body, cord), CTSpec(z_mm=(-45, 45), slice_spacing_mm=3.0,
                                                  write=False),
                    (LesionSpec("C", sphere((0.0, 0.0, 0.0), 10.0), 5.0),),
                    (PlanSpec("SBRT", 5, (TargetDose("C", 30.0),), grid),))
    write_case(case, root / "plan")
    return root


def test_headroom_names_the_first_organ_row_and_changes_no_verdict(short_lesion):
    folder = short_lesion / "plan"
    first = run_check([str(folder)], CheckOptions(
        protocol=str(_protocol(short_lesion, 1000.0, 1000.0))))
    by = {c.id: c for c in first.checks if c.category == Category.OARS}
    mx = next(c for c in by.values() if c.metric == "Max[Gy]")
    mean = next(c for c in by.values() if c.metric == "Mean[Gy]")
    assert mx.value > 5.0
    report = run_check([str(folder)], CheckOptions(
        protocol=str(_protocol(short_lesion, 1.2 * mx.value, 3.0 * mean.value))))
    (les,) = report.lesions
    assert les.status == FAIL and les.fractions == (5,)
    h = les.headroom
    assert h is not None
    # coverage: the lesion's own D95% in 5 fx, scaled to BED10 60 Gy by the quadratic
    assert h.factor_to_bed_limit == pytest.approx(quadratic_f(les.dose_gy, 5, 10.0, 60.0),
                                                  rel=1e-9)
    assert h.factor_prescription_to_bed_limit == pytest.approx(
        quadratic_f(30.0, 5, 10.0, 60.0), rel=1e-9)
    # first organ row: the maximum (x1.2) before the mean (x3)
    assert h.factor_first_oar_fail == pytest.approx(1.2, rel=1e-5)
    assert (h.binding_structure, h.binding_metric, h.binding_dose_view) == (
        "SpinalCord", "Max[Gy]", "physical")
    assert h.binding_row == mx.id and h.rows_not_scaled == ()
    # informative only: the same rows and statuses as without it
    assert [(c.id, c.status) for c in report.checks if c.category == Category.OARS] == \
        [(c.id, PASS) for c in first.checks if c.category == Category.OARS]
    assert report.status == first.status
    from rtqa.report.json_report import to_dict
    doc = to_dict(report)
    assert doc["lesions"][0]["headroom"]["binding_row"] == mx.id
    from rtqa.report.text import render_text
    text = " ".join(render_text(report, color=False, width=200).split())
    assert "first organ row fails at x1.200: SpinalCord Max[Gy]" in text


def test_mean_coverage_metric_is_scaled_voxel_wise(short_lesion):
    """A protocol whose coverage metric is the mean: the factor found makes the mean BED10
    of the scaled dose exactly 60 Gy (checked on the re-binned BED DVH, ``convert_dvh``),
    and is within 3 % of the analytic one (mean over points 0.5 mm apart in the PTV)."""
    from rtqa.checks.context import build_context
    from rtqa.dvh.convert import convert_dvh
    from rtqa.sample import plan_dose, sample_inside
    path = _protocol(short_lesion, 1000.0, 1000.0)
    text = path.read_text(encoding="utf-8").replace('"D95%[Gy]"', '"Mean[Gy]"')
    path = short_lesion / "mean.toml"
    path.write_text(text, encoding="utf-8")
    folder = short_lesion / "plan"
    report = run_check([str(folder)], CheckOptions(protocol=str(path)))
    (les,) = report.lesions
    assert les.status == FAIL and les.metric == "Mean[Gy]"
    f = les.headroom.factor_to_bed_limit
    ctx = build_context([str(folder)], CheckOptions(protocol=str(path)))
    ptv = next(t for t in ctx.lesions[0].targets if t.roi == "PTV_C")
    d = ctx.dose.dvh(ptv.structure)
    assert convert_dvh(scaled(d, f), "BED", 5, 10.0).mean_gy == pytest.approx(60.0, abs=0.01)
    lesion = LesionSpec("C", sphere((0.0, 0.0, 0.0), 10.0), 5.0)
    body = StructureSpec("External", EllipticCylinder((0, 0), (150, 80), -1e4, 1e4))
    grid = DoseGridSpec.covering(np.array([-40.0] * 3), np.array([40.0] * 3))
    case = CaseSpec("m", (body,), CTSpec(z_mm=(-45, 45), write=False), (lesion,),
                    (PlanSpec("SBRT", 5, (TargetDose("C", 30.0),), grid),))
    pts, _ = sample_inside(lesion.ptv, 0.5)
    dose = plan_dose(case, "SBRT", pts)
    lo, hi = 0.5, 3.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        x = mid * dose
        lo, hi = (mid, hi) if np.mean(x * (1 + x / 50.0)) < 60.0 else (lo, mid)
    assert f == pytest.approx(hi, rel=0.03)
