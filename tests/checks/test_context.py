"""The plan context: built once, read by every check family; one dose service with the
CT slice positions for every DVH; structured rows."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from rtqa.checks import accounting, bed, context, integrity, names, oar, protocol
from rtqa.checks.context import CheckOptions, Evaluation, build_context, curve
from rtqa.checks.pipeline import run_check
from rtqa.dvh.data import DVHData
from rtqa.reading import load_export
from rtqa.results import NOT_EVALUATED, DoseView
from rtqa.sample import write_case
from tests.e2e_cases import alternative_plans


class Counting:
    """An injected DVH cache that computes every time and records each call."""

    def __init__(self):
        self.calls = []

    def get(self, structure, grid, ct_z, compute):
        self.calls.append((structure.name, grid, ct_z))
        return compute()


@pytest.fixture(scope="module")
def two_plans(tmp_path_factory):
    out = tmp_path_factory.mktemp("two_plans")
    write_case(alternative_plans(), out)
    return out


def test_context_holds_the_plan(pass_dir):
    ctx = build_context([str(pass_dir)])
    export = load_export([str(pass_dir)])
    ct = export.ct_for(export.structure_sets[0])
    assert ctx.fractions == (5,)
    assert np.array_equal(ctx.ct_z, ct.z) and ctx.dose.ct_z is ctx.ct_z
    assert [c.label for c in ctx.courses] == ["SBRT_5fx"]
    assert ctx.dose.courses == ctx.courses
    assert {les.name for les in ctx.lesions} == {"Liver", "Lung", "T10"}
    assert ctx.lesions is ctx.lesions  # found once
    assert ctx.names.standard_to_roi["SpinalCord"] == "SpinalCord"


def test_match_rois_runs_once_per_check(pass_dir, monkeypatch):
    calls = []
    real = names.match_rois

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    for module in (names, context, oar):
        monkeypatch.setattr(module, "match_rois", counting)
    run_check([str(pass_dir)])
    assert len(calls) == 1


def test_run_check_is_the_families_in_order(pass_dir):
    ctx = build_context([str(pass_dir)])
    lesions, oars, rules = bed.evaluate(ctx), oar.evaluate(ctx), protocol.evaluate(ctx)
    plan = integrity.evaluate(ctx, lesions.checks + oars.checks)
    for ev in (lesions, oars, rules, plan):
        assert isinstance(ev, Evaluation)
    guarded, accounts, _, _ = accounting.evaluate(
        ctx, [c for ev in (lesions, oars, rules, plan) for c in ev.checks])
    expected = [c.id for c in guarded] + [c.id for c in accounts.checks]
    report = run_check([str(pass_dir)])
    assert [c.id for c in report.checks] == expected
    assert report.status == "PASS"
    assert [r.name for r in report.lesions] == [r.name for r in lesions.lesions]


def test_every_dvh_once_and_always_with_the_ct_positions(two_plans):
    """Two plans (the prescription check on each plan's own dose, the lesions summed as
    BED): each (structure, dose grid) computed once, and every computation gets the
    planning-CT slice positions (before, the per-plan prescription DVH had none)."""
    cache = Counting()
    report = run_check([str(two_plans)], CheckOptions(sum_plans=True, dvh_cache=cache))
    ctx = build_context([str(two_plans)])
    assert len(ctx.courses) == 2
    assert all(z is not None and np.array_equal(z, ctx.ct_z) for _, _, z in cache.calls)
    repeats = Counter((name, id(grid)) for name, grid, _ in cache.calls)
    assert max(repeats.values()) == 1
    rx = [c for c in report.checks if c.id.startswith("integrity.prescription.")]
    assert {c.plans for c in rx} == {("SBRT_5fx",), ("SBRT_5fx_v2",)}
    assert all(c.dose_view == DoseView.PHYSICAL and c.fractions == (5,) for c in rx)
    # the lesion rows are on the voxel-wise BED sum of both plans
    (liver,) = [c for c in report.checks if c.id == "lesion.Liver.bed"]
    assert liver.plans == ("SBRT_5fx", "SBRT_5fx_v2") and liver.fractions == (5, 5)
    assert (liver.dose_view, liver.alpha_beta) == (DoseView.BED, 10.0)


def test_rows_are_structured(fail_dir):
    report = run_check([str(fail_dir)])
    assert report.status == "FAIL"
    for c in report.checks:
        assert isinstance(c.dose_view, DoseView)
        if c.dose_view in (DoseView.EQD2, DoseView.BED):
            assert c.alpha_beta is not None and c.alpha_beta > 0
        else:
            assert c.alpha_beta is None
        if c.dose_view is not DoseView.NONE:
            assert c.plans == ("SBRT_5fx_bad",) and c.fractions == (5,)
        if c.status == NOT_EVALUATED:
            assert c.reason is not None
    eqd2 = {c.structure: c.alpha_beta for c in report.checks if c.dose_view == DoseView.EQD2}
    assert eqd2["SpinalCord"] == 2.0 and eqd2["Liver - GTV"] == 3.0
    assert all(les.comparator == ">=" for les in report.lesions)


def test_curve_of_an_empty_dvh_is_zero_not_nan():
    edges = np.arange(0, 1001) * 0.01
    d = DVHData("x", edges, np.zeros(edges.size), 0.0, 0.0, 0.0, 0.0)
    c = curve("x", d)
    assert len(c.dose_gy) == 400 and set(c.volume_pct) == {0.0}
    assert c.dose_gy[0] == 0.0 and c.dose_gy[-1] == 10.0


@pytest.mark.slow
def test_two_plans_of_different_fraction_counts_in_either_file_order(tmp_path):
    """hcc_pass plus a 3-fraction boost of the liver lesion: each plan's fraction-specific
    organ rows on its own dose and count, composite rows on the sum; the same report
    whichever plan's files come first."""
    import shutil
    from dataclasses import replace as dc_replace

    from rtqa.sample import hcc_pass
    base = hcc_pass()
    p = base.plans[0]
    case = dc_replace(base, name="boost", plans=(
        p, dc_replace(p, label="Boost_3fx", fractions=3, targets=p.targets[:1])))
    first = tmp_path / "first"
    write_case(case, first)
    second = tmp_path / "second"
    second.mkdir()
    for f in first.iterdir():  # the boost's files sort first here, last there
        name = ("a_" if "Boost" in f.name else "z_") + f.name
        shutil.copy(f, second / name)
    reports = [run_check([str(d)], CheckOptions(sum_plans=True)) for d in (first, second)]
    rows = [[(c.id, c.status, c.value, c.plans, c.fractions) for c in r.checks]
            for r in reports]
    assert rows[0] == rows[1]
    assert reports[0].status == reports[1].status
    by_id = {c.id: c for c in reports[0].checks}
    own = {c.id.rsplit("@", 1)[1] for c in reports[0].checks if "@" in c.id}
    assert own == {"SBRT_5fx", "Boost_3fx"}
    for c in reports[0].checks:
        if "@" in c.id and c.dose_view == DoseView.PHYSICAL:
            label = c.id.rsplit("@", 1)[1]
            assert c.plans == (label,) and c.fractions == ((3,) if "Boost" in label else (5,))
    eqd2 = [c for c in by_id.values() if c.dose_view == DoseView.EQD2
            and c.category == "organs at risk" and c.status != NOT_EVALUATED]
    assert eqd2 and all(set(c.plans) == {"SBRT_5fx", "Boost_3fx"} for c in eqd2)
    assert "not stated" in reports[0].conventions["delivery"]
