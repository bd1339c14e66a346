"""TG-263 metric parsing and exact evaluation against analytic dose distributions.

Every DVH here is built from pieces of volume whose dose is uniformly distributed between
two node-aligned doses, so the cumulative DVH is exactly linear between the 0.01 Gy
nodes and every expected value has a closed form computed in this file.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rtqa.dvh.data import DVHData
from rtqa.errors import MetricSyntaxError, RtqaError
from rtqa.dvh.metrics import (
    Metric, cold_dose_at_volume, describe, dose_at_volume, evaluate, metric_unit_label,
    parse_metric, volume_at_least, volume_below,
)

STEP = 0.01


def make_dvh(pieces, name="test"):
    """pieces: (a_gy, b_gy, cc) with dose uniform on [a, b]; a, b multiples of 0.01 Gy."""
    top = max(b for _, b, _ in pieces)
    edges = np.arange(int(round(top / STEP)) + 3) * STEP
    cum = sum(cc * np.clip((b - edges) / (b - a), 0.0, 1.0) for a, b, cc in pieces)
    total = sum(cc for *_, cc in pieces)
    mean = sum(cc * (a + b) / 2 for a, b, cc in pieces) / total
    return DVHData(name, edges, cum, float(total), min(a for a, _, _ in pieces), top, mean)


def ev(text, dvh, rx=None):
    return evaluate(parse_metric(text), dvh, rx)


# --- closed forms for one uniform piece: T cc uniformly on [a, b] Gy -------------------
A, B, T = 10.0, 30.0, 1000.0
UNIFORM = make_dvh([(A, B, T)], "uniform")


def v_uni(d):  # volume >= d
    return T * min(max((B - d) / (B - A), 0.0), 1.0)


def d_uni(v):  # min dose to the hottest v cc
    return B - v / T * (B - A)


def dc_uni(x):  # max dose to the coldest x cc
    return A + x / T * (B - A)


UNIFORM_CASES = [
    ("D95%[Gy]", d_uni(0.95 * T)),              # 11.0
    ("D50%[Gy]", d_uni(0.5 * T)),               # 20.0
    ("D2cc[Gy]", d_uni(2)),                     # 29.96
    ("D0.03cc[Gy]", d_uni(0.03)),               # 29.9994: between nodes, not nearest bin
    ("D0.035cc[cGy]", 100 * d_uni(0.035)),      # 2999.93
    ("D95%[cGy]", 100 * d_uni(0.95 * T)),       # 1100
    ("D100%[Gy]", A),                           # end of the full-volume plateau
    ("D0cc[Gy]", B),                            # D0 is the maximum
    ("V20Gy[cc]", v_uni(20)),                   # 500
    ("V20Gy[%]", 100 * v_uni(20) / T),          # 50
    ("V2000cGy[cc]", v_uni(20)),
    ("V20.005Gy[cc]", v_uni(20.005)),           # 499.75: between nodes
    ("V0Gy[cc]", T),
    ("V5Gy[%]", 100.0),
    ("V35Gy[cc]", 0.0),
    ("CV15Gy[cc]", T - v_uni(15)),              # 250
    ("CV15Gy[%]", 100 * (T - v_uni(15)) / T),   # 25
    ("CV1500cGy[cc]", T - v_uni(15)),
    ("CV5Gy[cc]", 0.0),
    ("CV35Gy[%]", 100.0),
    ("DC250cc[Gy]", dc_uni(250)),               # 15
    ("DC50%[Gy]", dc_uni(500)),                 # 20
    ("DC0.03cc[cGy]", 100 * dc_uni(0.03)),      # 1000.06
    ("DC0cc[Gy]", A),                           # DC0 is the minimum
    ("DC100%[Gy]", B),
    ("Mean[Gy]", (A + B) / 2),
    ("Mean[cGy]", 100 * (A + B) / 2),
    ("Max[Gy]", B),
    ("Max[cGy]", 100 * B),
    ("Min[Gy]", A),
    ("Min[cGy]", 100 * A),
]


@pytest.mark.parametrize("text, expected", UNIFORM_CASES)
def test_uniform_distribution(text, expected):
    assert ev(text, UNIFORM) == pytest.approx(expected, abs=1e-9)


def test_worked_uniform_numbers():
    # the closed forms above, spelled out
    assert ev("D95%[Gy]", UNIFORM) == pytest.approx(11.0, abs=1e-9)
    assert ev("D2cc[Gy]", UNIFORM) == pytest.approx(29.96, abs=1e-9)
    assert ev("D0.03cc[Gy]", UNIFORM) == pytest.approx(29.9994, abs=1e-9)
    assert ev("V20Gy[cc]", UNIFORM) == pytest.approx(500.0, abs=1e-9)
    assert ev("CV15Gy[cc]", UNIFORM) == pytest.approx(250.0, abs=1e-9)
    assert ev("DC250cc[Gy]", UNIFORM) == pytest.approx(15.0, abs=1e-9)


@pytest.mark.parametrize("text, rx, expected", [
    ("V95%[%]", 20.0, 100 * v_uni(19.0) / T),   # 55
    ("V95%[cc]", 20.0, v_uni(19.0)),            # 550
    ("V100%[%]", 25.0, 100 * v_uni(25.0) / T),  # 25
    ("V107%[cc]", 20.0, v_uni(21.4)),
    ("CV95%[cc]", 20.0, T - v_uni(19.0)),       # 450
])
def test_percent_of_prescription(text, rx, expected):
    assert ev(text, UNIFORM, rx) == pytest.approx(expected, abs=1e-9)


def test_two_level_distribution():
    # 200 cc at 20 Gy and 800 cc at 60 Gy, each level spread over one 0.01 Gy bin
    dvh = make_dvh([(20.0, 20.01, 200.0), (60.0, 60.01, 800.0)])
    assert ev("D800cc[Gy]", dvh) == pytest.approx(60.0, abs=1e-9)          # plateau upper end
    assert ev("D900cc[Gy]", dvh) == pytest.approx(20.01 - 0.01 * 100 / 200, abs=1e-9)
    assert ev("D50%[Gy]", dvh) == pytest.approx(60.01 - 0.01 * 500 / 800, abs=1e-9)
    assert ev("V40Gy[cc]", dvh) == pytest.approx(800.0, abs=1e-9)
    assert ev("V40Gy[%]", dvh) == pytest.approx(80.0, abs=1e-9)
    assert ev("CV40Gy[cc]", dvh) == pytest.approx(200.0, abs=1e-9)
    assert ev("DC200cc[Gy]", dvh) == pytest.approx(20.01, abs=1e-9)        # plateau lower end
    assert ev("DC100cc[Gy]", dvh) == pytest.approx(20.005, abs=1e-9)
    assert ev("Mean[Gy]", dvh) == pytest.approx((200 * 20.005 + 800 * 60.005) / 1000)


def test_dose_gap_plateau_both_ends():
    # 400 cc uniform 0-10 Gy, 600 cc uniform 40-50 Gy: V = 600 cc for 10 <= D <= 40
    dvh = make_dvh([(0.0, 10.0, 400.0), (40.0, 50.0, 600.0)])
    assert ev("D600cc[Gy]", dvh) == pytest.approx(40.0, abs=1e-9)   # hottest 600 cc: >= 40
    assert ev("D60%[Gy]", dvh) == pytest.approx(40.0, abs=1e-9)
    assert ev("DC400cc[Gy]", dvh) == pytest.approx(10.0, abs=1e-9)  # coldest 400 cc: <= 10
    assert ev("DC40%[Gy]", dvh) == pytest.approx(10.0, abs=1e-9)
    # 600 + 400 (10 - D)/10 = 700  ->  D = 7.5
    assert ev("D700cc[Gy]", dvh) == pytest.approx(7.5, abs=1e-9)
    # coldest 500 cc: V = 500 inside 40-50: 600 (50 - D)/10 = 500
    assert ev("DC500cc[Gy]", dvh) == pytest.approx(50 - 500 / 60, abs=1e-9)
    assert ev("V25Gy[cc]", dvh) == pytest.approx(600.0, abs=1e-9)
    assert ev("CV25Gy[cc]", dvh) == pytest.approx(400.0, abs=1e-9)
    assert ev("D100%[Gy]", dvh) == pytest.approx(0.0, abs=1e-9)


def test_small_structure_no_false_zero():
    # dicompyler-core returns D95 = 0 on small structures; 0.05 cc uniform 50-52 Gy
    dvh = make_dvh([(50.0, 52.0, 0.05)])
    assert ev("D95%[Gy]", dvh) == pytest.approx(52 - 0.95 * 2, abs=1e-9)   # 50.1
    assert ev("D0.03cc[Gy]", dvh) == pytest.approx(52 - 0.03 / 0.05 * 2, abs=1e-9)  # 50.8


# --- the liver spared-volume rule (constraints.md) ----------------------------------

def test_liver_rule_fails_although_hottest_700cc_is_below_15gy():
    # 1000 cc normal liver: 600 cc uniform 0-12 Gy, 400 cc uniform 18-30 Gy
    liver = make_dvh([(0.0, 12.0, 600.0), (18.0, 30.0, 400.0)], "Liver-GTV")
    assert ev("V15Gy[cc]", liver) == pytest.approx(400.0, abs=1e-9)     # 400 cc above 15 Gy
    spared = ev("CV15Gy[cc]", liver)
    assert spared == pytest.approx(600.0, abs=1e-9)
    assert not spared >= 700                                           # rule FAILS
    # wrong reading: 400 + 600 (12 - D)/12 = 700  ->  D = 6 Gy, "passes"
    assert ev("D700cc[Gy]", liver) == pytest.approx(6.0, abs=1e-9)
    # right reading, equivalent to CV: coldest 700 cc reach 400 (30 - D)/12 = 300 -> 21 Gy
    assert ev("DC700cc[Gy]", liver) == pytest.approx(21.0, abs=1e-9)
    assert not ev("DC700cc[Gy]", liver) < 15


def test_liver_rule_passes_although_hottest_700cc_is_above_15gy():
    # 1500 cc normal liver: 750 cc uniform 5-15 Gy, 750 cc uniform 20-40 Gy
    liver = make_dvh([(5.0, 15.0, 750.0), (20.0, 40.0, 750.0)], "Liver-GTV")
    spared = ev("CV15Gy[cc]", liver)
    assert spared == pytest.approx(750.0, abs=1e-9)
    assert spared >= 700                                               # rule PASSES
    # wrong reading: 750 (40 - D)/20 = 700  ->  D = 21.33 Gy, "fails"
    assert ev("D700cc[Gy]", liver) == pytest.approx(40 - 700 * 20 / 750, abs=1e-9)
    # coldest 700 cc: 750 + 750 (15 - D)/10 = 800  ->  D = 14.33 Gy < 15
    dc = ev("DC700cc[Gy]", liver)
    assert dc == pytest.approx(15 - 50 * 10 / 750, abs=1e-9)
    assert dc < 15


def test_liver_smaller_than_critical_volume_cannot_be_evaluated():
    liver = make_dvh([(0.0, 10.0, 500.0)], "Liver-GTV")
    for text in ("DC700cc[Gy]", "D700cc[Gy]"):
        with pytest.raises(RtqaError, match=r"700 cc.*only 500 cc"):
            ev(text, liver)
    assert ev("CV15Gy[cc]", liver) == pytest.approx(500.0, abs=1e-9)   # < 700: fails


# --- fail closed ----------------------------------------------------------------------

def test_v_percent_of_prescription_needs_prescription():
    with pytest.raises(RtqaError, match="prescription"):
        ev("V95%[%]", UNIFORM)
    for bad in (0.0, -20.0, float("nan"), float("inf")):
        with pytest.raises(RtqaError, match="prescription"):
            ev("V95%[cc]", UNIFORM, bad)


@pytest.mark.parametrize("text", ["D95%[Gy]", "V20Gy[%]", "CV15Gy[cc]", "DC1cc[Gy]",
                                  "Mean[Gy]", "Max[Gy]", "Min[Gy]", "D0cc[Gy]"])
def test_empty_structure_raises(text):
    empty = DVHData("empty", np.arange(3) * STEP, np.zeros(3), 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(RtqaError, match="no volume"):
        ev(text, empty)


def test_volume_beyond_structure_is_an_error_not_zero():
    with pytest.raises(RtqaError, match="1000.5 cc"):
        ev("D1000.5cc[Gy]", UNIFORM)
    assert ev("D1000cc[Gy]", UNIFORM) == pytest.approx(A, abs=1e-9)   # exactly all: fine


def test_inconsistent_or_malformed_dvh_raises():
    e = np.arange(4) * STEP
    bad = [
        DVHData("v", e, np.array([10.0, 5.0, 2.0, 0.0]), 12.0, 0, 0.03, 0.01),   # volume != cum[0]
        DVHData("up", e, np.array([10.0, 5.0, 6.0, 0.0]), 10.0, 0, 0.03, 0.01),  # increasing
        DVHData("end", e, np.array([10.0, 5.0, 2.0, 1.0]), 10.0, 0, 0.03, 0.01),  # no 0 at end
        DVHData("nan", e, np.array([10.0, np.nan, 2.0, 0.0]), 10.0, 0, 0.03, 0.01),
        DVHData("edges", e[::-1], np.array([10.0, 5.0, 2.0, 0.0]), 10.0, 0, 0.03, 0.01),
    ]
    for dvh in bad:
        with pytest.raises(RtqaError):
            ev("D50%[Gy]", dvh)
        with pytest.raises(RtqaError):
            ev("V0.01Gy[cc]", dvh)


# --- pure array functions -------------------------------------------------------------

def test_pure_functions_vectorised_and_bounded():
    e, c = UNIFORM.edges_gy, UNIFORM.cum_cc
    np.testing.assert_allclose(volume_at_least(e, c, [-1.0, 0.0, 20.0, 30.0, 99.0]),
                               [T, T, 500.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(volume_below(e, c, [-1.0, 15.0, 99.0]), [0.0, 250.0, T], atol=1e-9)
    np.testing.assert_allclose(dose_at_volume(e, c, [0.0, 2.0, 500.0, T]),
                               [30.0, 29.96, 20.0, 10.0], atol=1e-9)
    np.testing.assert_allclose(cold_dose_at_volume(e, c, [0.0, 250.0, T]),
                               [10.0, 15.0, 30.0], atol=1e-9)
    assert isinstance(dose_at_volume(e, c, 2.0), float)
    assert isinstance(volume_at_least(e, c, 2.0), float)
    with pytest.raises(ValueError, match="exceeds"):
        dose_at_volume(e, c, 1001.0)
    with pytest.raises(ValueError, match="exceeds"):
        cold_dose_at_volume(e, c, 1001.0)
    with pytest.raises(ValueError):
        dose_at_volume(e, c, -1.0)
    with pytest.raises(ValueError, match="finite"):
        volume_at_least(e, c, float("nan"))
    with pytest.raises(ValueError, match="finite"):
        volume_below(e, c, [1.0, float("inf")])


def test_whole_volume_tolerates_rounding_of_volume_cc():
    # volume_cc 1e-10 relative above cum[0]: D100% / DC100% still evaluate
    dvh = dataclasses.replace(UNIFORM, volume_cc=T * (1 + 1e-10))
    assert ev("D100%[Gy]", dvh) == pytest.approx(A, abs=1e-9)
    assert ev("DC100%[Gy]", dvh) == pytest.approx(B, abs=1e-9)


def test_volume_outside_dose_grid_is_named():
    dvh = dataclasses.replace(make_dvh([(0.0, 10.0, 500.0)]), outside_cc=300.0)
    with pytest.raises(RtqaError, match="300 cc more lie outside the dose grid"):
        ev("DC700cc[Gy]", dvh)


pieces = st.lists(
    st.tuples(st.integers(0, 6000), st.integers(1, 3000),
              st.floats(min_value=0.01, max_value=2000)),
    min_size=1, max_size=3,
).map(lambda ps: [(a * STEP, (a + w) * STEP, cc) for a, w, cc in ps])


def v_closed(ps, d):
    return sum(cc * min(max((b - d) / (b - a), 0.0), 1.0) for a, b, cc in ps)


@given(pieces, st.floats(min_value=-1, max_value=100))
def test_v_and_cv_match_closed_form(ps, dose):
    dvh = make_dvh(ps)
    total = sum(cc for *_, cc in ps)
    expected = v_closed(ps, dose)
    assert volume_at_least(dvh.edges_gy, dvh.cum_cc, dose) == pytest.approx(expected, abs=1e-7)
    assert volume_below(dvh.edges_gy, dvh.cum_cc, dose) == pytest.approx(total - expected,
                                                                         abs=1e-7)


@given(pieces, st.floats(min_value=0.0, max_value=1.0))
@settings(max_examples=200)
def test_d_is_largest_dose_with_enough_volume(ps, frac):
    dvh = make_dvh(ps)
    total = sum(cc for *_, cc in ps)
    v = frac * total
    assume(v > 1e-6 * total)
    d = dose_at_volume(dvh.edges_gy, dvh.cum_cc, v)
    assert ev(f"D{np.format_float_positional(v, trim='-')}cc[Gy]", dvh) == d
    tol = 1e-7 * max(total, 1.0)
    assert v_closed(ps, d) == pytest.approx(v, abs=tol)       # V(D(v)) = v
    assert v_closed(ps, d + 1e-4) < v                         # nothing larger has V >= v


@given(pieces, st.floats(min_value=0.0, max_value=1.0))
@settings(max_examples=200)
def test_dc_is_smallest_dose_sparing_enough_volume(ps, frac):
    dvh = make_dvh(ps)
    total = sum(cc for *_, cc in ps)
    x = frac * total
    assume(x > 1e-6 * total)
    dc = cold_dose_at_volume(dvh.edges_gy, dvh.cum_cc, x)
    assert ev(f"DC{np.format_float_positional(x, trim='-')}cc[Gy]", dvh) == dc
    tol = 1e-7 * max(total, 1.0)
    assert total - v_closed(ps, dc) == pytest.approx(x, abs=tol)   # CV(DC(x)) = x
    if dc > 1e-4:
        assert total - v_closed(ps, dc - 1e-4) < x                  # nothing smaller spares x


@given(pieces, st.floats(0, 1), st.floats(0, 1))
def test_d_non_increasing_and_dc_non_decreasing(ps, f1, f2):
    dvh = make_dvh(ps)
    total = sum(cc for *_, cc in ps)
    lo, hi = sorted((f1 * total, f2 * total))
    e, c = dvh.edges_gy, dvh.cum_cc
    assert dose_at_volume(e, c, lo) >= dose_at_volume(e, c, hi) - 1e-9
    assert cold_dose_at_volume(e, c, lo) <= cold_dose_at_volume(e, c, hi) + 1e-9


# --- parsing --------------------------------------------------------------------------

VALID = [
    ("D95%[Gy]", "D", 95.0, "%", "Gy"),
    ("D2cc[Gy]", "D", 2.0, "cc", "Gy"),
    ("D0.03cc[Gy]", "D", 0.03, "cc", "Gy"),
    ("D0.035cc[cGy]", "D", 0.035, "cc", "cGy"),
    ("V20Gy[%]", "V", 20.0, "Gy", "%"),
    ("V20Gy[cc]", "V", 20.0, "Gy", "cc"),
    ("V2000cGy[cc]", "V", 2000.0, "cGy", "cc"),
    ("V95%[%]", "V", 95.0, "%", "%"),
    ("V95%[cc]", "V", 95.0, "%", "cc"),
    ("CV15Gy[cc]", "CV", 15.0, "Gy", "cc"),
    ("CV15Gy[%]", "CV", 15.0, "Gy", "%"),
    ("DC700cc[Gy]", "DC", 700.0, "cc", "Gy"),
    ("DC50%[Gy]", "DC", 50.0, "%", "Gy"),
    ("Mean[Gy]", "Mean", None, None, "Gy"),
    ("Max[Gy]", "Max", None, None, "Gy"),
    ("Min[Gy]", "Min", None, None, "Gy"),
    ("Mean[cGy]", "Mean", None, None, "cGy"),
    ("Max[cGy]", "Max", None, None, "cGy"),
    ("Min[cGy]", "Min", None, None, "cGy"),
]


@pytest.mark.parametrize("text, kind, value, vunit, runit", VALID)
def test_parse_valid(text, kind, value, vunit, runit):
    m = parse_metric(text)
    assert (m.kind, m.value, m.value_unit, m.result_unit) == (kind, value, vunit, runit)
    assert m.text == text
    assert str(m) == text
    assert metric_unit_label(m) == runit
    assert m.is_dose == (runit in ("Gy", "cGy"))


def test_parse_strips_whitespace_and_canonicalises():
    m = parse_metric("  D95.0%[Gy]\n")
    assert str(m) == "D95%[Gy]"
    assert m == parse_metric("D95%[Gy]")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.value = 90.0  # type: ignore[misc]


def test_describe():
    assert describe(parse_metric("D2cc[Gy]")) == "minimum dose to the hottest 2 cc"
    assert describe(parse_metric("DC700cc[Gy]")) == "maximum dose to the coldest 700 cc"
    assert describe(parse_metric("CV15Gy[cc]")) == "volume receiving less than 15 Gy"
    assert describe(parse_metric("V95%[%]")) == \
        "volume receiving at least 95% of the prescription"
    assert parse_metric("V95%[%]").needs_prescription
    assert not parse_metric("D95%[Gy]").needs_prescription


@pytest.mark.parametrize("text, why", [
    ("D2Gy[Gy]", r"D needs a volume \(% or cc\)"),
    ("D2gy[Gy]", r"number and a unit"),
    ("DC15Gy[Gy]", r"DC needs a volume"),
    ("V2cc[cc]", r"V needs a dose \(Gy, cGy or % of prescription\)"),
    ("CV700cc[cc]", r"CV needs a dose"),
    ("D95%[cc]", r"returns \[Gy\] or \[cGy\]"),
    ("D95%[%]", r"returns \[Gy\] or \[cGy\]"),
    ("V20Gy[Gy]", r"returns \[%\] or \[cc\]"),
    ("CV15Gy[cGy]", r"returns \[%\] or \[cc\]"),
    ("Mean[%]", r"Mean is a dose"),
    ("Max[cc]", r"Max is a dose"),
    ("", r"empty"),
    ("   ", r"empty"),
    ("D-5cc[Gy]", r"negative"),
    ("V-20Gy[%]", r"negative"),
    ("D150%[Gy]", r"<= 100%"),
    ("DC100.5%[Gy]", r"<= 100%"),
    ("garbage", r"square brackets"),
    ("D95%", r"square brackets"),
    ("D95%Gy", r"square brackets"),
    ("D95%[Gy", r"square brackets"),
    ("D95%[Gy]x", r"square brackets"),
    ("D95%[Gy][Gy]", r"square brackets"),
    ("D95%[gy]", r"case-sensitive"),
    ("D95%[]", r"result unit"),
    ("d95%[Gy]", r"metric type"),
    ("mean[Gy]", r"metric type"),
    ("X95%[Gy]", r"metric type"),
    ("D95[Gy]", r"number and a unit"),
    ("D%[Gy]", r"number and a unit"),
    ("D.5cc[Gy]", r"number and a unit"),
    ("D5.cc[Gy]", r"number and a unit"),
    ("D1e3cc[Gy]", r"number and a unit"),
    ("D 95%[Gy]", r"number and a unit"),
    ("D95% [Gy]", r"number and a unit"),
    ("D95%[ Gy]", r"result unit"),
    ("Dnan%[Gy]", r"number and a unit"),
    ("Dinfcc[Gy]", r"number and a unit"),
    ("D\u0662cc[Gy]", r"number and a unit"),     # Arabic-Indic digit two
    ("V20Gy[%]>=5", r"square brackets"),
])
def test_parse_invalid(text, why):
    with pytest.raises(MetricSyntaxError, match=why) as info:
        parse_metric(text)
    msg = str(info.value)
    assert repr(text.strip() or text) in msg              # names the metric
    assert "D95%[Gy]" in msg and "V20Gy[%]" in msg        # shows what valid looks like
    assert "\n" not in msg


def test_parse_rejects_non_text():
    with pytest.raises(MetricSyntaxError):
        parse_metric(None)  # type: ignore[arg-type]
    with pytest.raises(MetricSyntaxError):
        parse_metric(95)  # type: ignore[arg-type]


def test_metric_syntax_error_is_rtqa_and_value_error():
    with pytest.raises(RtqaError):
        parse_metric("D2Gy[Gy]")
    with pytest.raises(ValueError):
        parse_metric("D2Gy[Gy]")


# hypothesis: generated valid strings round-trip, generated invalid ones are rejected.
numbers = st.one_of(
    st.integers(0, 100000).map(str),
    st.tuples(st.integers(0, 9999), st.integers(0, 9999)).map(lambda t: f"{t[0]}.{t[1]}"),
)
pct = st.one_of(st.integers(0, 100).map(str),
                st.tuples(st.integers(0, 99), st.integers(0, 999)).map(lambda t: f"{t[0]}.{t[1]}"))
DOSE_RESULT = st.sampled_from(["Gy", "cGy"])
VOL_RESULT = st.sampled_from(["%", "cc"])


@st.composite
def valid_metric(draw):
    form = draw(st.sampled_from(["Dvol", "Vdose", "stat"]))
    if form == "Dvol":
        kind = draw(st.sampled_from(["D", "DC"]))
        unit = draw(st.sampled_from(["%", "cc"]))
        num = draw(pct if unit == "%" else numbers)
        res = draw(DOSE_RESULT)
    elif form == "Vdose":
        kind = draw(st.sampled_from(["V", "CV"]))
        unit = draw(st.sampled_from(["Gy", "cGy", "%"]))
        num = draw(numbers)
        res = draw(VOL_RESULT)
    else:
        kind = draw(st.sampled_from(["Mean", "Max", "Min"]))
        return f"{kind}[{draw(DOSE_RESULT)}]", (kind, None, None)
    return f"{kind}{num}{unit}[{res}]", (kind, float(num), unit)


@given(valid_metric())
def test_parse_round_trips_generated_valid(case):
    text, (kind, value, unit) = case
    m = parse_metric(text)
    assert (m.kind, m.value, m.value_unit) == (kind, value, unit)
    again = parse_metric(str(m))
    assert again == m and str(again) == str(m)


@st.composite
def invalid_metric(draw):
    wrong = draw(st.sampled_from(["D_dose", "V_vol", "D_volres", "V_doseres", "neg", "pct",
                                  "nobracket", "stat_vol"]))
    num = draw(numbers)
    if wrong == "D_dose":
        return f"{draw(st.sampled_from(['D', 'DC']))}{num}{draw(st.sampled_from(['Gy', 'cGy']))}[Gy]"
    if wrong == "V_vol":
        return f"{draw(st.sampled_from(['V', 'CV']))}{num}cc[{draw(VOL_RESULT)}]"
    if wrong == "D_volres":
        return f"{draw(st.sampled_from(['D', 'DC']))}{num}cc[{draw(VOL_RESULT)}]"
    if wrong == "V_doseres":
        return f"{draw(st.sampled_from(['V', 'CV']))}{num}Gy[{draw(DOSE_RESULT)}]"
    if wrong == "neg":
        return f"{draw(st.sampled_from(['D', 'DC']))}-{num}cc[Gy]"
    if wrong == "pct":
        over = draw(st.floats(min_value=100.001, max_value=1e6))
        return f"D{over:.3f}%[Gy]"
    if wrong == "nobracket":
        return f"V{num}Gy{draw(VOL_RESULT)}"
    return f"{draw(st.sampled_from(['Mean', 'Max', 'Min']))}[{draw(VOL_RESULT)}]"


@given(invalid_metric())
def test_parse_rejects_generated_invalid(text):
    with pytest.raises(MetricSyntaxError):
        parse_metric(text)


# Independent reference grammar for the fuzz test.
_NUM = r"[0-9]+(?:\.[0-9]+)?"
REFERENCE = re.compile(
    rf"(?:D|DC)(?P<p>{_NUM})%\[c?Gy\]|(?:D|DC){_NUM}cc\[c?Gy\]"
    rf"|(?:V|CV){_NUM}(?:Gy|cGy|%)\[(?:%|cc)\]|(?:Mean|Max|Min)\[c?Gy\]"
)


@given(st.text(alphabet="DVCMeanxi0123456789.-%cGy[] ", max_size=14))
@settings(max_examples=500)
def test_fuzz_accepts_exactly_the_grammar(text):
    s = text.strip()
    ref = REFERENCE.fullmatch(s)
    valid = ref is not None and (ref["p"] is None or float(ref["p"]) <= 100)
    try:
        m = parse_metric(text)
    except MetricSyntaxError:
        assert not valid, text
    else:
        assert valid, text
        assert isinstance(m, Metric)
