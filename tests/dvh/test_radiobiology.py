"""LQ model against the worked values of constraints.md and algebraic properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtqa.dvh.radiobiology import (
    bed, bed_grid, bed_to_eqd2, eqd2, eqd2_grid, fractions_needed, total_dose_for_bed,
)

# (total dose Gy, fractions, BED10 Gy) from constraints.md ("Worked BED10").
BED10_WORKED = [
    (60, 4, 150.0), (30, 3, 60.0), (45, 15, 58.5), (50, 10, 75.0),
    (40, 5, 72.0), (24, 3, 43.2), (35, 5, 59.5), (54, 3, 151.2),
]


@pytest.mark.parametrize("dose, n, expected", BED10_WORKED)
def test_bed10_worked_values(dose, n, expected):
    assert bed(dose, n, 10) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("dose, n, expected", [(40, 5, 88.0), (30, 3, 78.0)])
def test_eqd2_ab3_worked_values(dose, n, expected):
    assert eqd2(dose, n, 3) == pytest.approx(expected, rel=1e-12)


def test_numpy_integer_fractions_accepted():
    assert bed(60.0, np.int64(4), 10) == pytest.approx(150.0, rel=1e-12)


def test_eqd2_ab10_and_bed_to_eqd2():
    # 60 Gy / 4 fx: BED10 150, EQD2 = 150 / 1.2 = 125
    assert eqd2(60, 4, 10) == pytest.approx(125.0, rel=1e-12)
    assert bed_to_eqd2(150.0, 10) == pytest.approx(125.0, rel=1e-12)
    # 2 Gy fractions are their own EQD2 for any alpha/beta
    for ab in (2, 3, 10, 1.5):
        assert eqd2(70, 35, ab) == pytest.approx(70.0, rel=1e-12)


def test_scalar_returns_float_and_array_returns_array():
    assert isinstance(bed(60, 4, 10), float)
    out = bed(np.array([60.0, 30.0]), 4, 10)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, [150.0, 30 * (1 + 30 / 40)], rtol=1e-12)


def test_grids_voxelwise():
    dose = np.array([[0.0, 15.0], [30.0, 60.0]])
    n, ab = 4, 10.0
    expected_bed = dose * (1 + dose / (n * ab))
    got = bed_grid(dose, n, ab)
    assert got.shape == dose.shape and got.dtype == float
    np.testing.assert_allclose(got, expected_bed, rtol=1e-12)
    np.testing.assert_allclose(eqd2_grid(dose, n, ab), expected_bed / 1.2, rtol=1e-12)
    assert got[1, 1] == pytest.approx(150.0)
    assert dose[1, 1] == 60.0  # input not modified


def test_total_dose_for_bed_worked():
    # 150 Gy BED10 in 4 fractions is 60 Gy; 60 Gy in 3 fractions is 30 Gy.
    assert total_dose_for_bed(150.0, 4, 10) == pytest.approx(60.0, rel=1e-12)
    assert total_dose_for_bed(60.0, 3, 10) == pytest.approx(30.0, rel=1e-12)
    # BED10 60 in 5 fx: D^2/50 + D - 60 = 0  ->  D = 25(-1 + sqrt(1 + 240/50))
    assert total_dose_for_bed(60.0, 5, 10) == pytest.approx(25 * (math.sqrt(5.8) - 1), rel=1e-12)
    assert total_dose_for_bed(0.0, 5, 10) == 0.0


def test_fractions_needed_worked():
    assert fractions_needed(10.0, 60.0, 10) == 3     # 3 x 10 Gy is exactly BED10 60
    assert fractions_needed(15.0, 150.0, 10) == 4    # 4 x 15 Gy is exactly BED10 150
    assert fractions_needed(15.0, 150.01, 10) == 5
    assert fractions_needed(7.0, 100.0, 10) == 9     # 7 x 1.7 = 11.9 per fx; 8 -> 95.2
    assert fractions_needed(2.0, 0.0, 10) == 1


@pytest.mark.parametrize("call", [
    lambda: bed(60, 0, 10),
    lambda: bed(60, -1, 10),
    lambda: bed(60, 4.5, 10),
    lambda: bed(60, 4.0, 10),
    lambda: bed(60, True, 10),
    lambda: bed(60, "4", 10),
    lambda: bed(-1, 4, 10),
    lambda: bed(np.array([10.0, -0.1]), 4, 10),
    lambda: bed(float("nan"), 4, 10),
    lambda: bed(float("inf"), 4, 10),
    lambda: bed(60, 4, 0),
    lambda: bed(60, 4, -3),
    lambda: bed(60, 4, float("nan")),
    lambda: bed(60, 4, float("inf")),
    lambda: bed(60, 4, None),
    lambda: bed("sixty", 4, 10),
    lambda: eqd2(60, 4, 0),
    lambda: bed_to_eqd2(-5, 3),
    lambda: bed_grid(np.array([1.0, np.nan]), 3, 3),
    lambda: total_dose_for_bed(-1, 3, 10),
    lambda: total_dose_for_bed(60, 0, 10),
    lambda: fractions_needed(0.0, 60, 10),
    lambda: fractions_needed(-2.0, 60, 10),
    lambda: fractions_needed(2.0, -60, 10),
    lambda: fractions_needed(2.0, 60, 0),
])
def test_invalid_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_error_messages_are_specific():
    with pytest.raises(ValueError, match="fractions must be a positive integer"):
        bed(60, 0, 10)
    with pytest.raises(ValueError, match=">= 0 Gy"):
        bed(-1, 4, 10)
    with pytest.raises(ValueError, match="alpha_beta"):
        bed(60, 4, 0)


def test_alpha_beta_has_no_default():
    with pytest.raises(TypeError):
        bed(60, 4)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        eqd2(60, 4)  # type: ignore[call-arg]


doses = st.floats(min_value=0, max_value=200, allow_nan=False)
fx = st.integers(min_value=1, max_value=40)
abs_ = st.floats(min_value=0.5, max_value=20, allow_nan=False)


@given(doses, doses, fx, abs_)
def test_bed_monotone_in_dose(d1, d2, n, ab):
    lo, hi = sorted((d1, d2))
    assert bed(lo, n, ab) <= bed(hi, n, ab)
    assert eqd2(lo, n, ab) <= eqd2(hi, n, ab)


@given(doses, fx, abs_)
def test_bed_matches_per_fraction_form(d, n, ab):
    per = d / n
    assert bed(d, n, ab) == pytest.approx(n * per * (1 + per / ab), rel=1e-12, abs=1e-12)


@given(doses, fx, abs_)
def test_total_dose_for_bed_inverts_bed(d, n, ab):
    assert total_dose_for_bed(bed(d, n, ab), n, ab) == pytest.approx(d, rel=1e-9, abs=1e-9)


@given(st.floats(min_value=0, max_value=500, allow_nan=False), fx, abs_)
def test_bed_inverts_total_dose_for_bed(b, n, ab):
    assert bed(total_dose_for_bed(b, n, ab), n, ab) == pytest.approx(b, rel=1e-9, abs=1e-9)


@given(st.floats(min_value=0.1, max_value=30), st.floats(min_value=0, max_value=300), abs_)
def test_fractions_needed_is_minimal(d, target, ab):
    n = fractions_needed(d, target, ab)
    per_fx = d * (1 + d / ab)
    assert n >= 1
    assert n * per_fx >= target * (1 - 1e-9)
    if n > 1:
        assert (n - 1) * per_fx < target


@given(st.lists(doses, min_size=1, max_size=20), fx, abs_)
@settings(max_examples=50)
def test_grid_equals_scalar(values, n, ab):
    grid = np.array(values).reshape(-1, 1)
    got_bed = bed_grid(grid, n, ab)
    got_eqd2 = eqd2_grid(grid, n, ab)
    for k, v in enumerate(values):
        assert got_bed[k, 0] == pytest.approx(bed(v, n, ab), rel=1e-12, abs=1e-12)
        assert got_eqd2[k, 0] == pytest.approx(eqd2(v, n, ab), rel=1e-12, abs=1e-12)
