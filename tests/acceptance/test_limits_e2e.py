"""End-to-end: organ-at-risk limits at every fraction count (issue 12 items 1-2), on
exports written in code (``rtqa.sample.hcc_pass`` with the fraction count and ONE dose or
structure change) and checked through the real command line.

* The same physical stomach point dose at 3, 4 and 5 fractions FAILs at each: TG-101
  3 fx (< 22.2 Gy), LQ-derived 4 fx (< 24.97 Gy, from 22.2 Gy/3 fx), TG-101 5 fx (< 32).
* The normal-liver rule (>= 700 cc below 15 Gy) at 6 and 8 fractions: 606 cc spared
  FAILs, hcc_pass's ~1200 cc passes.
* At 3-8 fractions the LQ-derived TG-101 liver DC700cc row is replaced by the trial's
  rule: not evaluated, named on the rule's row ("replaces the derived DC700cc ...").
* Beyond the LQ derivation range (10 and 30 fractions): no derived row anywhere; the
  contoured great vessels (and duodenum: QUANTEC has no row for either) are NOT
  EVALUATED (exit 2) with the protocol row to add; with such a row they are evaluated.

Analytic truth: ``rtqa.sample.plan_dose`` at the hot spot's centre; the normal-liver
volumes are those of ``tests/e2e_cases.py`` (606 cc for ``normal_liver_spread``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import e2e_cases as cases
from rtqa.cli import main
from rtqa.sample import (DoseCloud, EllipticCylinder, StructureSpec, hcc_pass, plan_dose,
                         sphere, write_case)

pytestmark = pytest.mark.slow

CV15 = "oar.normal_liver.Liver-GTV.CV15Gy"
DC700 = "oar.lq.tg101.Liver-GTV.DC700cc"
#: Centre of the stomach (ellipsoid (90, -22, -50), 38 x 36 x 42 mm) in hcc_pass.
STOMACH_CENTRE = (90.0, -22.0, -50.0)
STOMACH_POINT_GY = 40.8
#: An aorta-like great vessel clear of every hcc_pass organ and PTV.
GREAT_VESSELS = StructureSpec("GreatVes", EllipticCylinder((25.0, 30.0), (9.0, 9.0),
                                                           -110.0, 100.0),
                              color=(200, 0, 0))


def check(folder: Path, *args) -> tuple[int, dict]:
    res = CliRunner().invoke(main, ["check", str(folder), "--json", "-", *map(str, args)],
                             env={"RTQA_DEBUG": None})
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(repr(res.exception)) from res.exception
    return res.exit_code, json.loads(res.stdout)


def by_id(doc) -> dict:
    ids = [c["id"] for c in doc["checks"]]
    assert len(ids) == len(set(ids))
    return {c["id"]: c for c in doc["checks"]}


def blocking(doc) -> dict[str, str]:
    return {c["id"]: c["status"] for c in doc["checks"] if c["priority"] == "mandatory"
            and c["status"] != "PASS"}


def _fractions(case, n: int, name: str, clouds=(), structures=()):
    (plan,) = case.plans
    plan = replace(plan, fractions=n, label=f"SBRT_{n}fx", clouds=plan.clouds + tuple(clouds))
    return replace(case, name=name, plans=(plan,),
                   structures=case.structures + tuple(structures))


def _stomach_case(n: int):
    base = hcc_pass()
    background = float(plan_dose(base, base.plans[0], np.array([STOMACH_CENTRE]))[0])
    hot = DoseCloud(sphere(STOMACH_CENTRE, 5.0), STOMACH_POINT_GY - background,
                    falloff_mm=2.0, falloff_power=6.0, label="stomach point dose")
    case = _fractions(base, n, f"stomach{n}", clouds=[hot])
    truth = float(plan_dose(case, case.plans[0], np.array([STOMACH_CENTRE]))[0])
    return case, truth


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    done: dict = {}

    def get(name: str, build, *args):
        key = (name, *args)
        if key not in done:
            folder = tmp_path_factory.mktemp(name)
            write_case(build(), folder)
            done[key] = check(folder, *args)
        return done[key]
    return get


# --- the same physical dose at 3, 4 and 5 fractions ----------------------------------------

@pytest.mark.parametrize("n, cid, limit, derivation", [
    (3, "oar.tg101.Stomach.D0.035cc", "< 22.2", None),
    (4, "oar.lq.tg101.Stomach.D0.035cc", "< 24.97",
     "derived (LQ) from Benedict et al. Med Phys 2010;37(8):4078, Table III, 3 fx"),
    (5, "oar.tg101.Stomach.D0.035cc", "< 32", None)])
def test_stomach_point_dose_fails_at_3_4_and_5_fractions(run, n, cid, limit, derivation):
    case, truth = _stomach_case(n)
    assert truth == pytest.approx(STOMACH_POINT_GY, abs=1e-6)
    code, doc = run(f"stomach{n}", lambda: case)
    assert code == 1 and doc["status"] == "FAIL"
    assert blocking(doc) == {cid: "FAIL"}
    row = by_id(doc)[cid]
    assert (row["structure"], row["metric"], row["limit"]) == ("Stomach", "D0.035cc[Gy]",
                                                               limit)
    # D0.035cc of a 5 mm plateau on a 3 mm grid: within 0.6 Gy of the analytic point dose
    assert row["value"] == pytest.approx(truth, abs=0.6)
    assert row["derivation"] == derivation and row["fractions"] == [n]
    assert not [c for c in doc["checks"] if c["reason"] == "no_limit"]


@pytest.mark.parametrize("n", [3, 4, 5])
def test_derived_liver_dc700cc_row_is_shown_replaced_by_the_trial_rule(run, n):
    case, _ = _stomach_case(n)
    _, doc = run(f"stomach{n}", lambda: case)
    rows = by_id(doc)
    rule = rows[CV15]
    assert rule["status"] == "PASS" and rule["priority"] == "mandatory"
    limit = {3: "14.22", 4: "15.82", 5: "17.13"}[n]
    assert (f"replaces the derived DC700cc[Gy] < {limit} (derived (LQ) from Benedict et al. "
            "Med Phys 2010;37(8):4078, Table III, 1 fx), the same rule ([[limits.replace]] "
            "of protocol oligo-hcc)") in rule["note"]
    assert DC700 not in rows                                # replaced: not evaluated


# --- the normal-liver rule at 6 and 8 fractions ----------------------------------------------

@pytest.mark.parametrize("n", [6, 8])
def test_liver_rule_fails_with_606_cc_spared_at_6_and_8_fractions(run, n):
    code, doc = run(f"liver700_{n}",
                    lambda: _fractions(cases.normal_liver_spread(), n, f"liver700_{n}"))
    assert code == 1 and doc["status"] == "FAIL"
    rule = by_id(doc)[CV15]
    assert rule["status"] == "FAIL" and rule["priority"] == "mandatory"
    assert rule["value"] == pytest.approx(606.0, abs=45.0) and rule["fractions"] == [n]
    assert rule["derivation"] is None and rule["source"].startswith("Pan et al.")
    # the derived DC700cc row is replaced at 6-8 fx too (the rule's note names it)
    assert DC700 not in by_id(doc) and "replaces the derived DC700cc[Gy] <" in rule["note"]
    assert CV15 in blocking(doc)


@pytest.mark.parametrize("n", [6, 8])
def test_liver_rule_passes_with_hcc_pass_dose_at_6_and_8_fractions(run, n):
    code, doc = run(f"liverok_{n}", lambda: _fractions(hcc_pass(), n, f"liverok_{n}"))
    rule = by_id(doc)[CV15]
    assert rule["status"] == "PASS" and rule["value"] >= 1100
    assert not [c for c in blocking(doc) if "Liver" in c]


# --- beyond the derivation range: 10 and 30 fractions ---------------------------------------

EXTRA_ROW = """name = "institution X"
[[constraint]]
structure = "GreatVes"
metric = "D0.035cc[Gy]"
limit = "< 60"
fractions = [{n}]
source = "institution X, conventional great-vessel limit (test)"
status = "V"
"""


@pytest.mark.parametrize("n", [10, 30])
def test_contoured_great_vessels_beyond_8_fractions_are_not_evaluated(run, tmp_path, n):
    def build():
        return _fractions(hcc_pass(), n, f"vessels{n}", structures=[GREAT_VESSELS])

    code, doc = run(f"vessels{n}", build)
    assert code == 2 and doc["status"] == "ERROR"
    assert not [c for c in doc["checks"] if c.get("derivation")]      # nothing extrapolated
    assert not [c for c in doc["checks"] if c["id"].startswith("oar.lq.")]
    rows = by_id(doc)
    gv = rows["oar.none.GreatVes"]
    assert gv["status"] == "NOT EVALUATED" and gv["reason"] == "no_limit"
    assert gv["priority"] == "mandatory" and gv["fractions"] == [n]
    assert "not derived by LQ beyond 8 fractions" in gv["note"]
    assert f'structure = "GreatVes"' in gv["note"] and f"fractions = [{n}]" in gv["note"]
    assert rows["oar.none.Duodenum"]["status"] == "NOT EVALUATED"
    assert not [c for c in doc["checks"] if c["structure"] == "GreatVes"
                and c["id"] != "oar.none.GreatVes" and c["category"] == "organs at risk"]

    # the physicist adds a row for that count: the great vessels are evaluated
    extra = tmp_path / "extra.toml"
    extra.write_text(EXTRA_ROW.format(n=n), encoding="utf-8")
    _, doc2 = run(f"vessels{n}", build, "--constraints", extra)
    rows2 = by_id(doc2)
    assert "oar.none.GreatVes" not in rows2
    (row,) = [c for c in doc2["checks"] if c["structure"] == "GreatVes"
              and c["category"] == "organs at risk"]
    assert row["status"] == "PASS" and row["limit"] == "< 60" and row["derivation"] is None
    assert row["source"].startswith("institution X")
