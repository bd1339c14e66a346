"""Limits for every fraction count (rtqa.constraints.derivation, selection): LQ isoeffect
against published worked values, every derived row of the shipped protocol recomputed
independently from the raw TOML (bisection, not the closed form), the conservative choice
of the reference schedule, informative conventional rows, organs without a limit, the
normal-liver rule at every count and ``rtqa constraints list --fractions N`` for N = 1..8.
"""

from __future__ import annotations

import math
import tomllib

import pytest
from click.testing import CliRunner

from rtqa.cli import main
from rtqa.constraints import (Limit, bed, derive_rows, isoeffective_total_dose,
                              load_protocol, select)
from rtqa.constraints.derivation import round_down
from rtqa.errors import ConstraintFileError
from rtqa.paths import constraints_dir, protocols_dir

from tests.checks.test_constraints import row

FRACTIONS = (1, 2, 3, 4, 5, 6, 7, 8)


@pytest.fixture(scope="module")
def trial():
    return load_protocol("oligo-hcc")


# --- LQ arithmetic against published worked values (constraints.md) ---------------------

@pytest.mark.parametrize("dose, n, expected", [
    (60, 4, 150.0), (30, 3, 60.0), (45, 15, 58.5), (50, 10, 75.0), (40, 5, 72.0),
    (24, 3, 43.2), (35, 5, 59.5), (54, 3, 151.2)])
def test_bed10_worked_values(dose, n, expected):
    assert bed(dose, n, 10.0) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("dose, n, eqd2_3", [(40, 5, 88.0), (30, 3, 78.0)])
def test_eqd2_worked_values_are_isoeffective_2gy_schedules(dose, n, eqd2_3):
    # EQD2(α/β 3) = the total dose in 2 Gy fractions with the same BED: 44 x 2 Gy, 39 x 2 Gy
    assert bed(dose, n, 3.0) / (1 + 2 / 3.0) == pytest.approx(eqd2_3, abs=1e-9)
    k = round(eqd2_3 / 2)
    assert isoeffective_total_dose(dose, n, k, 3.0) == pytest.approx(eqd2_3, abs=1e-9)


def test_isoeffective_dose_exact_cases():
    # 30 Gy/3 fx (BED10 60, the trial's threshold) = 20 Gy in 1 fraction: 20 (1 + 20/10) = 60
    assert isoeffective_total_dose(30, 3, 1, 10.0) == pytest.approx(20.0, abs=1e-12)
    assert isoeffective_total_dose(20, 1, 3, 10.0) == pytest.approx(30.0, abs=1e-12)
    for n in FRACTIONS:                          # same count: same dose
        assert isoeffective_total_dose(17.3, n, n, 3.0) == pytest.approx(17.3, abs=1e-12)


@pytest.mark.parametrize("k, n, ab", [(1, 4, 3.0), (3, 4, 2.0), (5, 8, 3.0), (5, 30, 2.0)])
def test_more_fractions_allow_more_total_dose_at_equal_bed(k, n, ab):
    d = isoeffective_total_dose(20.0, k, n, ab)
    assert d > 20.0
    assert bed(d, n, ab) == pytest.approx(bed(20.0, k, ab), rel=1e-12)
    assert isoeffective_total_dose(d, n, k, ab) == pytest.approx(20.0, rel=1e-12)


def test_round_down_never_exceeds_the_exact_value():
    for x in (13.501, 16.6019, 24.9799, 12.0, 0.019999):
        r = round_down(x)
        assert r <= x + 1e-12 and x - r < 0.01
    assert round_down(18.43) == 18.43 and round_down(12.5439) == 12.54


@pytest.mark.parametrize("bad", [
    dict(total_gy=-1.0), dict(total_gy=math.nan), dict(alpha_beta=0.0), dict(fractions=0)])
def test_isoeffective_dose_rejects_bad_input(bad):
    args = dict(total_gy=10.0, ref_fractions=3, fractions=4, alpha_beta=3.0) | bad
    with pytest.raises(ValueError):
        isoeffective_total_dose(**args)


# --- the example: stomach point dose 40.8 Gy ---------------------------------------

def test_stomach_point_dose_limit_at_3_4_5_fractions(trial):
    limits = {}
    for n in (3, 4, 5):
        rows = [e for e in trial.select(n) if e.applied and e.structure == "Stomach"
                and e.constraint.metric == "D0.035cc[Gy]"]
        assert len(rows) == 1
        limits[n] = (rows[0].constraint.limit, rows[0].derived)
    assert limits[3] == (Limit("<", 22.2), False)
    assert limits[5] == (Limit("<", 32.0), False)
    # 4 fx: from 22.2 Gy/3 fx (BED3 76.96 Gy) -> 24.98 Gy; from 32 Gy/5 -> 29.2: the lower
    assert limits[4] == (Limit("<", 24.97), True)
    for n in (3, 4, 5):
        assert not limits[n][0].holds(40.8)


# --- every derived row, recomputed independently ------------------------------------------

CNS = {"SpinalCord", "Brainstem", "OpticChiasm", "OpticNrv_L", "OpticNrv_R", "CaudaEquina"}


def _raw_rows():
    """The protocol's rows straight from the TOML files (no rtqa loader)."""
    text = (protocols_dir() / "oligo-hcc.toml").read_text()
    out = []
    for name in tomllib.loads(text)["protocol"]["include"]:
        data = tomllib.loads((constraints_dir() / name).read_text())
        for r in data["constraint"]:
            out.append(dict(r, file=name))
    return out


def _counts(spec):
    if isinstance(spec, int):
        return {spec}
    if isinstance(spec, list):
        return set(spec)
    lo, _, hi = spec.partition("-")
    return set(range(int(lo), int(hi or lo) + 1))


def _norm(structure: str) -> str:
    return " ".join(structure.replace("+", " + ").replace("-", " - ").split())


def _solve_total(target_bed: float, n: int, ab: float) -> float:
    """N·d with N·d·(1 + d/ab) = target_bed, by bisection (independent of the closed form)."""
    lo, hi = 0.0, 200.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if n * mid * (1 + mid / ab) < target_bed:
            lo = mid
        else:
            hi = mid
    return n * (lo + hi) / 2


#: LQ derivation range (fractions), as decided in rtqa.constraints.derivation.
SBRT_RANGE = range(1, 9)
#: Counts beyond it: moderately hypofractionated and conventional courses.
BEYOND = (9, 10, 15, 20, 30)


def _expected_derived(n: int, hypo: bool = True):
    """(structure, metric) -> (limit, reference count, reference limit) for every family
    that needs a derived row at n fractions (none beyond the 1-8 fraction range)."""
    if n not in SBRT_RANGE:
        return {}
    fams: dict[tuple[str, str], list[dict]] = {}
    for r in _raw_rows():
        fams.setdefault((_norm(r["structure"]), r["metric"]), []).append(r)
    out = {}
    for key, rows in fams.items():
        on = [r for r in rows if r.get("enabled", r.get("status") == "V")]
        sourced = [r for r in on if ("fractions" not in r and (
            r.get("fractionation") != "conventional" or not hypo))
            or ("fractions" in r and n in _counts(r["fractions"]))]
        if sourced:
            continue
        refs = [r for r in on if "fractions" in r and r["limit"].lstrip().startswith("<")
                and r.get("dose_type", "physical") == "physical"
                and key[1].endswith("[Gy]") and not key[1].startswith(("V", "CV"))]
        if not refs:
            continue
        ab = 2.0 if any(op in CNS for op in key[0].split(" + ")) else 3.0
        best = min(abs(k - n) for r in refs for k in _counts(r["fractions"]))
        cands = []
        for r in refs:
            ref_limit = float(r["limit"].lstrip("<= "))
            for k in _counts(r["fractions"]):
                if abs(k - n) == best:
                    b = k * (ref_limit / k) * (1 + (ref_limit / k) / ab)
                    cands.append((_solve_total(b, n, ab), k, ref_limit))
        out[key] = min(cands)
    return out


@pytest.mark.parametrize("n", FRACTIONS + BEYOND)
def test_every_derived_row_recomputed_from_its_reference(trial, n):
    expected = _expected_derived(n, hypo=n < 25)
    got = {(e.structure, e.constraint.metric): e for e in trial.select(n)
           if e.kind in ("apply", "replaced") and e.derived}
    assert set(got) == set(expected)
    replaced = {k for k, e in got.items() if e.kind == "replaced"}
    assert replaced == ({("Liver - GTV", "DC700cc[Gy]")} if 3 <= n <= 8 else set())
    for key, (exact, k, ref_limit) in expected.items():
        c = got[key].constraint
        d = c.derivation
        assert d.reference_fractions == k and d.reference.limit.value == ref_limit, key
        assert d.exact_gy == pytest.approx(exact, abs=1e-7), key
        assert c.limit.value == pytest.approx(math.floor(exact * 100 + 1e-7) / 100, abs=1e-9)
        assert c.limit.value <= exact + 1e-9
        assert d.reference.enabled and d.reference.status == "V"
        assert c.fractions == frozenset({n}) and c.dose_type == "physical"
        assert c.source == f"derived (LQ) from {d.reference.source}, {k} fx"
        assert got[key].conversion_note.startswith("derived (LQ): ")


def test_derivations_at_4_fractions_cover_the_serial_organs_tg101_lacks(trial):
    derived = {(e.structure, e.constraint.metric): e.constraint for e in trial.select(4)
               if e.applied and e.derived}
    for organ in ("Stomach", "Duodenum", "Bowel_Small", "Colon", "Rectum", "Esophagus",
                  "GreatVes", "Rib", "Skin", "Heart", "Trachea + Bronchus"):
        assert (organ, "D0.035cc[Gy]") in derived, organ
    # ties (3 and 5 fx equally near): the lower of the two isoeffective limits
    great = derived[("GreatVes", "D10cc[Gy]")]
    from3 = isoeffective_total_dose(39.0, 3, 4, 3.0)
    from5 = isoeffective_total_dose(47.0, 5, 4, 3.0)
    assert great.limit.value == round_down(min(from3, from5))
    assert great.derivation.reference_fractions == (3 if from3 < from5 else 5)


def test_a_sourced_row_is_never_replaced_by_a_derived_one(trial):
    for n in FRACTIONS:
        sel = [e for e in trial.select(n) if e.applied and not e.constraint.conventional]
        keys = [(e.structure, e.constraint.metric) for e in sel if not e.derived]
        derived = [(e.structure, e.constraint.metric) for e in sel if e.derived]
        assert not set(keys) & set(derived)
        assert len(derived) == len(set(derived))


def test_unverified_rows_are_never_references():
    rows = [row("Liver - GTV", "DC700cc[Gy]", "< 19.2", fractions=frozenset({3}), status="U"),
            row("Liver - GTV", "DC700cc[Gy]", "< 9.1", fractions=frozenset({1}))]
    (d,) = derive_rows(rows, 4)
    assert d.derivation.reference.limit.value == 9.1
    assert derive_rows(rows[:1], 4) == []


def test_volume_rules_and_lower_bounds_are_not_derived():
    rows = [row("Kidney_L", "V20Gy[%]", "< 30", fractions=frozenset({5})),
            row("Liver - GTV", "CV15Gy[cc]", ">= 700", fractions=frozenset({5}))]
    assert derive_rows(rows, 4) == []


def test_a_protocol_row_replaces_the_derived_one(tmp_path):
    (tmp_path / "p.toml").write_text(
        '[protocol]\nname = "own"\ninclude = ["tg101.toml"]\n'
        '[[constraint]]\nstructure = "Stomach"\nmetric = "D0.035cc[Gy]"\nlimit = "< 21"\n'
        'fractions = [4]\nsource = "institution X"\nstatus = "V"\n')
    p = load_protocol(tmp_path / "p.toml")
    rows = [e for e in p.select(4) if e.applied and e.structure == "Stomach"]
    by_metric = {e.constraint.metric: e for e in rows}
    assert not by_metric["D0.035cc[Gy]"].derived
    assert by_metric["D0.035cc[Gy]"].constraint.limit == Limit("<", 21)
    assert by_metric["D10cc[Gy]"].derived                     # the other metric still is
    off = tmp_path / "off.toml"
    off.write_text('[protocol]\nname = "off"\ninclude = ["tg101.toml"]\n'
                   '[limits]\nderive_lq = false\n')
    assert [e.kind for e in load_protocol(off).select(4) if e.structure == "Stomach"] == \
        ["none"]


# --- SBRT rows win over conventional EQD2 rows ------------------------------------------

def test_conventional_mean_liver_row_only_informs_where_an_sbrt_row_applies(trial):
    for n in FRACTIONS:
        liver = [e for e in trial.select(n) if e.applied and e.structure == "Liver - GTV"
                 and e.constraint.metric == "Mean[Gy]"]
        conv = [e for e in liver if e.constraint.conventional]
        sbrt = [e for e in liver if not e.constraint.conventional]
        assert len(conv) == 1 and len(sbrt) == 1
        assert conv[0].informative and conv[0].constraint.priority == "optimal"
        assert "informative only" in conv[0].conversion_note
        assert sbrt[0].constraint.priority == "mandatory" and not sbrt[0].informative
    at3 = [e for e in trial.select(3) if e.applied and e.structure == "Liver - GTV"
           and e.constraint.metric == "Mean[Gy]" and not e.constraint.conventional][0]
    assert at3.constraint.limit == Limit("<", 13) and not at3.derived
    # conventionally fractionated: the conventional row is the limit itself
    conv30 = [e for e in trial.select(30, dose_per_fraction_gy=2.0) if e.applied
              and e.structure == "Liver - GTV" and e.constraint.metric == "Mean[Gy]"]
    assert [(e.constraint.conventional, e.informative, e.constraint.priority)
            for e in conv30] == [(True, False, "mandatory")]


def test_conventional_rows_without_an_sbrt_counterpart_stay_mandatory(trial):
    sel = [e for e in trial.select(4) if e.applied and e.constraint.conventional]
    esophagus_mean = [e for e in sel if e.structure == "Esophagus"
                      and e.constraint.metric == "Mean[Gy]"][0]
    assert not esophagus_mean.informative and esophagus_mean.constraint.priority == "mandatory"


# --- organs without a limit, the liver rule ---------------------------------------------

def _without_limit(n: int) -> set[str]:
    """Structures of the shipped protocol with no applicable enabled row at n fractions,
    from the raw TOML: beyond 8 fractions, those with no conventional row, no row for
    any count and no row naming n (nothing is derived there); inside, none (every
    family of an SBRT organ gets a sourced or derived row)."""
    if n in SBRT_RANGE:
        return set()
    by: dict[str, list[dict]] = {}
    for r in _raw_rows():
        by.setdefault(_norm(r["structure"]), []).append(r)
    out = set()
    for structure, rows in by.items():
        on = [r for r in rows if r.get("enabled", r.get("status") == "V")]
        if not any("fractions" not in r or n in _counts(r["fractions"]) for r in on):
            out.add(structure)
    return out - set(load_protocol("oligo-hcc").limits.no_limit)


@pytest.mark.parametrize("n", FRACTIONS + BEYOND)
def test_every_organ_has_a_limit_or_an_explicit_no_limit_or_fails_closed(trial, n):
    """Coverage at every count: every structure the protocol names has an applied row
    (with its source), or "no limit by protocol", or -- beyond the LQ derivation range
    only -- a fail-closed "none" entry (a contoured organ is NOT EVALUATED) that says
    why and how to add a row."""
    structures = {c.structure for c in trial.constraints}
    sel = trial.select(n)
    applied = {e.structure for e in sel if e.applied and not e.informative}
    exempt = {e.structure for e in sel if e.kind == "exempt"}
    # whole-structure "none" entries; hot-spot family entries (``metric`` set, beyond 8 fx
    # in hypofractionated plans) come on top of applied rows of the same structure
    none = {e.structure for e in sel if e.kind == "none" and not e.metric}
    assert none == _without_limit(n), n
    assert applied | exempt | none == structures, n
    assert not applied & none and not exempt & none and not applied & exempt
    for e in sel:
        if e.kind == "exempt":
            assert e.structure in trial.limits.no_limit
            assert "no limit by protocol" in e.reason and "V2" in e.reason
        if e.kind == "none" and e.metric:   # a hot-spot family of an applied structure
            assert e.structure in applied and e.reason.startswith("no hot-spot limit (")
            assert f'metric = "{e.metric}"' in e.hint
        elif e.kind == "none":
            assert e.reason == f"no constraint for {n} fractions"
            assert "not derived by LQ beyond 8 fractions" in e.hint
            assert f'structure = "{e.structure}"' in e.hint and f"fractions = [{n}]" in e.hint
        if e.applied:
            assert e.constraint.source and e.constraint.enabled
    if n in BEYOND:
        # QUANTEC has no row for these: fail closed, never an extrapolated SBRT limit
        assert {"GreatVes", "Rib", "Skin", "Duodenum", "Colon"} <= none
        assert not [e for e in sel if e.derived]


def test_great_vessels_beyond_8_fractions_get_no_extrapolated_limit(trial):
    # the old behaviour: 47 Gy/5 fx carried to 30 fx by LQ (α/β 3) = 94.7 Gy
    assert round_down(isoeffective_total_dose(47.0, 5, 30, 3.0)) == 94.67
    for n in (8, 9, 10, 15, 30):
        great = [e for e in trial.select(n) if e.structure == "GreatVes"]
        if n == 8:
            d10 = [e for e in great if e.applied and e.constraint.metric == "D10cc[Gy]"]
            assert len(d10) == 1 and d10[0].derived
            assert d10[0].constraint.derivation.reference_fractions == 5
            assert d10[0].constraint.limit.value == round_down(
                isoeffective_total_dose(47.0, 5, 8, 3.0))
        else:
            assert [e.kind for e in great] == ["none"], n


def test_a_protocol_row_gives_a_limit_beyond_8_fractions(tmp_path):
    (tmp_path / "p.toml").write_text(
        '[protocol]\nname = "own"\ninclude = ["tg101.toml"]\n'
        '[[constraint]]\nstructure = "GreatVes"\nmetric = "D0.035cc[Gy]"\nlimit = "< 60"\n'
        'fractions = "25-30"\nsource = "institution X"\nstatus = "V"\n')
    p = load_protocol(tmp_path / "p.toml")
    great = [e for e in p.select(30) if e.structure == "GreatVes"]
    assert [(e.kind, e.constraint.label, e.derived) for e in great] == \
        [("apply", "D0.035cc[Gy] < 60", False)]
    assert [e.kind for e in p.select(20) if e.structure == "GreatVes"] == ["none"]


def test_references_beyond_8_fractions_are_not_used():
    rows = [row("Stomach", "D0.035cc[Gy]", "< 40", fractions=frozenset({10})),
            row("Stomach", "D0.035cc[Gy]", "< 22.2", fractions=frozenset({3}))]
    (d,) = derive_rows(rows, 8)
    assert d.derivation.reference_fractions == 3
    assert derive_rows(rows[:1], 8) == []
    assert derive_rows(rows, 9) == [] and derive_rows(rows, 30) == []


def test_normal_liver_rule_at_every_fraction_count(trial):
    for n in FRACTIONS + BEYOND:
        rule = [e for e in trial.select(n) if e.applied and e.structure == "Liver - GTV"
                and e.constraint.metric == "CV15Gy[cc]"]
        assert len(rule) == 1 and rule[0].dose_type == "physical"
        assert rule[0].constraint.limit == Limit(">=", 700)
        assert not rule[0].constraint.limit.holds(559.0)


def test_protocol_limits_section_errors(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('[protocol]\nname = "x"\n[limits]\nno_limit = ["Skin"]\n')
    with pytest.raises(ConstraintFileError, match=r"line 3: \[limits\]: no_limit needs "
                                                  r"no_limit_source"):
        load_protocol(p)
    p.write_text('[protocol]\nname = "x"\n[limits]\nderive_lq = "yes"\n')
    with pytest.raises(ConstraintFileError, match="derive_lq must be true or false"):
        load_protocol(p)
    p.write_text('[protocol]\nname = "x"\n[limits]\nno_limit = ["Skin", "Skin"]\n'
                 'no_limit_source = "s"\n')
    with pytest.raises(ConstraintFileError, match="twice"):
        load_protocol(p)
    p.write_text('[protocol]\nname = "x"\n[limits]\nno_limit = ["Skin"]\n'
                 'no_limit_source = "institution: skin dose judged by the physicist"\n')
    lim = load_protocol(p).limits
    assert lim.no_limit == ("Skin",) and lim.derive_lq
    assert select([row("Skin", "D10cc[Gy]", "< 30", fractions=frozenset({3}), status="U")],
                  4, no_limit={"Skin": "s"})[0].kind == "exempt"


# --- rtqa constraints list --fractions N, N = 1..8 -----------------------------------------

@pytest.mark.parametrize("n", FRACTIONS + BEYOND)
def test_cli_every_named_organ_has_a_row_or_no_limit_by_protocol(trial, n):
    """For N = 1..8 every organ the protocol names shows an enabled or derived row with
    its source, or NO LIMIT BY PROTOCOL. Beyond 8 fractions the organs without a
    conventional row show NO CONSTRAINT (fail closed) with the row to add, and no
    derived row appears."""
    res = CliRunner().invoke(main, ["constraints", "list", "--fractions", str(n)])
    assert res.exit_code == 0, res.output
    out = res.output
    without = _without_limit(n)
    assert ("NO CONSTRAINT" in out) is bool(without)
    body = out.split("\nProtocol settings:")[0]
    if n in BEYOND:
        assert "[LQ]" not in body and "[REPLACED]" not in body
        assert "beyond the SBRT range (1-8 fx): no LQ derivation" in body
    blocks = {}
    for block in body.split("\n\n")[1:]:
        lines = block.splitlines()
        blocks[lines[0]] = lines[1:]
    assert set(blocks) == {c.structure for c in trial.constraints}
    for structure, lines in blocks.items():
        rows = [ln for ln in lines if ln.startswith("  ") and not ln.startswith("      ")]
        enabled = [ln for ln in rows if not ln.strip().startswith(("[OFF]", "[INFO]",
                                                                   "NO LIMIT",
                                                                   "NO CONSTRAINT: no hot-spot"))]
        if structure in trial.limits.no_limit:
            assert rows == [rows[0]] and rows[0].startswith("  NO LIMIT BY PROTOCOL: "), \
                structure
            continue
        if structure in without:
            assert rows == [rows[0]] and rows[0].startswith(
                f"  NO CONSTRAINT: no constraint for {n} fractions; a contoured {structure} "
                "is NOT EVALUATED (plan ERROR)"), structure
            assert f'structure = "{structure}"' in lines[1], structure
            continue
        enabled = [ln for ln in enabled if not ln.strip().startswith("[REPLACED]")]
        assert enabled, (n, structure)
        for ln in enabled:
            assert " V " in ln and "NO SOURCE" not in ln and "[" in ln and ".toml:" in ln
            if ln.strip().startswith("[LQ]"):
                assert "derived (LQ) from " in ln and " fx [" in ln


# --- plausibility against published 4-fraction values ---------------------------------------

#: RTOG 0915 4-fraction point maxima, NCCN NSCLC Table 3 (V2, shipped off in
#: constraints/rtog_sabr_4fx.toml): Gy.
RTOG_4FX = {"Esophagus": 30.0, "BrachialPlex_L": 27.2, "BrachialPlex_R": 27.2, "Heart": 34.0,
            "GreatVes": 49.0, "Trachea + Bronchus": 34.8, "Rib": 40.0, "Skin": 36.0,
            "Stomach": 27.2}


def test_derived_4fx_point_maxima_are_at_or_below_the_rtog_0915_values(trial):
    derived = {e.structure: e.constraint.limit.value for e in trial.select(4)
               if e.applied and e.derived and e.constraint.metric == "D0.035cc[Gy]"}
    for organ, published in RTOG_4FX.items():
        assert organ in derived, organ
        # conservative, and close: within 10 % below the trial values
        assert 0.9 * published <= derived[organ] <= published, (organ, derived[organ])
    off = [e for e in trial.select(4, derive=False) if e.kind == "disabled"
           and e.constraint.file.name == "rtog_sabr_4fx.toml"]
    assert {e.structure for e in off} == set(RTOG_4FX) | {"SpinalCord"}
    assert all(e.constraint.status == "V2" and not e.constraint.enabled for e in off)


# --- a protocol replacing a derived family by its own rule ([[limits.replace]]) ---------

def test_liver_dc700cc_derived_rows_are_replaced_by_the_trial_rule_at_3_to_8_fx(trial):
    """TG-101's only verified liver row is DC700cc < 9.1 Gy in 1 fx; the trial's rule
    CV15Gy[cc] >= 700 is the same condition with 15 Gy. At 3-8 fx the derived DC700cc
    row is replaced (listed, not evaluated; the rule's note names it), at 2 fx it stays
    a limit, at 1 fx the sourced row applies."""
    for n in FRACTIONS:
        liver = [e for e in trial.select(n) if e.structure == "Liver - GTV"
                 and e.kind in ("apply", "replaced")]
        dc = [e for e in liver if e.constraint.metric == "DC700cc[Gy]"]
        rule = [e for e in liver if e.constraint.metric == "CV15Gy[cc]"]
        assert len(dc) == 1 and len(rule) == 1
        assert rule[0].applied and rule[0].constraint.priority == "mandatory"
        exact = _solve_total(9.1 * (1 + 9.1 / 3.0), n, 3.0)
        if n == 1:
            assert not dc[0].derived and dc[0].constraint.limit == Limit("<", 9.1)
            assert dc[0].applied and not dc[0].replaced_by
            continue
        c = dc[0].constraint
        assert dc[0].derived and c.limit.value == pytest.approx(
            math.floor(exact * 100 + 1e-7) / 100, abs=1e-9)
        if n == 2:       # 12.14 Gy: kept, the 15 Gy rule is not stated for 2 fractions
            assert c.limit.value == 12.14
            assert dc[0].applied and not dc[0].replaced_by
            assert c.priority == "mandatory" and "replaces" not in rule[0].conversion_note
        else:
            assert dc[0].kind == "replaced" and not dc[0].applied
            assert dc[0].replaced_by == "protocol oligo-hcc: Liver - GTV CV15Gy[cc] >= 700"
            assert dc[0].conversion_note.startswith("derived (LQ): ")
            assert "replaced by protocol oligo-hcc" in dc[0].conversion_note
            assert (f"replaces the derived DC700cc[Gy] < {c.limit.value:g} (derived (LQ) "
                    "from Benedict et al.") in rule[0].conversion_note
    at3 = [e for e in trial.select(3) if e.constraint is not None
           and e.constraint.metric == "DC700cc[Gy]" and e.kind == "replaced"]
    assert at3[0].constraint.limit == Limit("<", 14.22)      # stricter than 15 Gy


def _replace_protocol(tmp_path, entry: str, rows: str = "") -> object:
    p = tmp_path / "r.toml"
    p.write_text('[protocol]\nname = "rep"\ninclude = ["tg101.toml", "normal_liver.toml"]\n'
                 + rows + "[limits]\nderive_lq = true\n" + entry, encoding="utf-8")
    return load_protocol(p)


GOOD_ENTRY = ('[[limits.replace]]\nstructure = "Liver - GTV"\nmetric = "DC700cc[Gy]"\n'
              'by_metric = "CV15Gy[cc]"\nsource = "test: the same rule"\n')


def test_replacement_without_fractions_applies_at_every_derived_count(tmp_path):
    p = _replace_protocol(tmp_path, GOOD_ENTRY)
    (rep,) = p.limits.replace
    assert rep.fractions is None and rep.protocol == "rep" and rep.line == 6
    for n in range(2, 9):
        (dc,) = [e for e in p.select(n) if e.constraint is not None
                 and e.constraint.metric == "DC700cc[Gy]" and e.kind != "disabled"]
        assert dc.derived and dc.kind == "replaced" and dc.replaced_by, n
    # beyond 8 fractions nothing is derived, so nothing is replaced
    assert not [e for e in p.select(10) if e.applied and e.constraint.metric == "DC700cc[Gy]"]


def test_replacement_keeps_the_derived_row_where_the_replacing_row_does_not_apply(tmp_path):
    rows = ('[[constraint]]\nstructure = "Lung_L + Lung_R - GTV"\nmetric = "CV7.4Gy[cc]"\n'
            'limit = ">= 1000"\nfractions = [4]\nsource = "test"\nstatus = "V"\n')
    entry = ('[[limits.replace]]\nstructure = "Lung_L + Lung_R - GTV"\n'
             'metric = "DC1000cc[Gy]"\nby_metric = "CV7.4Gy[cc]"\nfractions = "2-5"\n'
             'source = "test"\n')
    p = _replace_protocol(tmp_path, entry, rows)
    for n, replaced in ((2, False), (4, True), (5, False), (6, False)):
        (dc,) = [e for e in p.select(n) if e.constraint is not None
                 and e.constraint.metric == "DC1000cc[Gy]" and e.kind != "disabled"]
        assert bool(dc.replaced_by) is replaced, n
        assert dc.kind == ("replaced" if replaced else "apply")


@pytest.mark.parametrize("entry, message", [
    (GOOD_ENTRY.replace('source = "test: the same rule"\n', ""),
     r"line 6: \[\[limits.replace\]\]: missing required key 'source'"),
    (GOOD_ENTRY.replace("DC700cc", "DC500cc"),
     r"line 8: .*no enabled SBRT row of Liver - GTV DC500cc\[Gy\].*nothing to replace"),
    (GOOD_ENTRY.replace("CV15Gy[cc]", "CV20Gy[cc]"),
     r"line 9: .*by_metric: the protocol has no enabled row of Liver - GTV CV20Gy\[cc\]"),
    (GOOD_ENTRY.replace('"CV15Gy[cc]"', '"DC700cc[Gy]"'),
     r"line 9: .*by_metric is the replaced metric"),
    (GOOD_ENTRY + GOOD_ENTRY.replace("source", 'fractions = [3]\nsource'),
     r"line 13: .*replaced twice for the same fraction counts"),
    (GOOD_ENTRY.replace("by_metric", "by"), r"line 9: .*unknown key 'by'"),
    (GOOD_ENTRY.replace('structure = "Liver - GTV"', 'structure = "Liver -"'),
     r"line 7: \[\[limits.replace\]\]: structure expression"),
])
def test_replacement_errors_name_the_line(tmp_path, entry, message):
    with pytest.raises(ConstraintFileError, match=message):
        _replace_protocol(tmp_path, entry)


@pytest.mark.parametrize("n, dpf", [(10, None), (12, None), (15, 3.0), (10, 5.0)])
def test_hot_spot_families_without_a_row_beyond_8_fx_are_never_silently_dropped(trial, n,
                                                                                dpf):
    """Review finding: at 10 fx the stomach kept only QUANTEC's D100% < 45 Gy row (a
    minimum dose), so a 50 Gy hot spot passed. Beyond the derivation range, in a
    hypofractionated plan, a structure whose TG-101 rows limit its hot spot and whose
    applying rows bound no hot spot gets a "none" entry (NOT EVALUATED when contoured);
    a structure with an applying hot-spot bound (QUANTEC's cord Dmax) does not."""
    sel = trial.select(n, dose_per_fraction_gy=dpf)
    none = {e.structure: e for e in sel if e.kind == "none" and e.metric}
    assert "Stomach" in none and none["Stomach"].metric.endswith("cc[Gy]")
    assert "SpinalCord" not in none and "Brainstem" not in none
    stomach = [e for e in sel if e.structure == "Stomach" and e.kind == "apply"]
    assert [e.constraint.metric for e in stomach] == ["D100%[Gy]"]


@pytest.mark.parametrize("n, dpf", [(30, None), (30, 2.0), (25, 1.8)])
def test_conventional_plans_are_judged_by_the_conventional_rows(trial, n, dpf):
    sel = trial.select(n, dose_per_fraction_gy=dpf)
    assert not [e for e in sel if e.kind == "none" and e.metric]
    assert any(e.structure == "Stomach" and e.kind == "apply" for e in sel)
