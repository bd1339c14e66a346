"""ContourData (DS, backslash-separated) parsing: the fast per-token path gives exactly
the values of splitting on backslashes and whitespace (the earlier path), on any input."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rtqa.reading.structures import _parse_floats


def _reference(raw: bytes) -> np.ndarray:
    return np.array(raw.replace(b"\\", b" ").split(), dtype=np.float64)


_number = st.floats(-1e5, 1e5, allow_nan=False, allow_infinity=False)
_fmt = st.sampled_from(["{:.2f}", "{:.6g}", "{!r}", "{:+.3f}", "{:.4e}", " {:.1f}", "{:.3f} "])


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.tuples(_number, _fmt), max_size=30),
       sep=st.sampled_from(["\\", "\\", "\\ ", " \\", "\\\\"]))
def test_fast_parse_equals_split_on_backslash_and_space(values, sep):
    raw = sep.join(f.format(v) for v, f in values).encode()
    want = _reference(raw)
    got = _parse_floats(raw)
    assert got.dtype == np.float64 and np.array_equal(got, want)
    assert np.array_equal(got, [float(f.format(v)) for v, f in values])


def test_analytic_values_and_refusal():
    assert np.array_equal(_parse_floats(b"1.25\\-2\\ 3.5 "), [1.25, -2.0, 3.5])
    for bad in (b"1\\x\\3", b"1,5\\2"):
        try:
            _parse_floats(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} parsed")
