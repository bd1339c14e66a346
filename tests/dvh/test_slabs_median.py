"""rtqa.dvh.geometry._median (the typical contour spacing of slabs_for) is
float(np.median(d)), bit for bit: odd and even counts, ties, infinities, NaN and sums
that overflow."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rtqa.dvh.geometry import _median, slabs_for


def _same(a: float, b: float) -> bool:
    return np.array(a).tobytes() == np.array(b).tobytes() or (a != a and b != b)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1,
                max_size=12))
def test_median_is_numpys(values):
    d = np.array(values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _same(_median(d), float(np.median(d)))


def test_spacings():
    for d in ([2.5], [2.5, 3.0], [3.0, 2.5, 2.5], [1.0, 2.0, 3.0, 4.0], [2.4999999999999996,
                                                                           2.5]):
        d = np.array(d)
        assert _same(_median(d), float(np.median(d)))
    z = np.array([0.0, 2.5, 5.0, 12.5, 15.0])  # a gap: 7.5 > 2 x 2.5
    s = slabs_for(z, 2.5)
    assert s.gap.tolist() == [False, False, True, False]
