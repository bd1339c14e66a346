"""ContourData parsed in one vectorised pass (rtqa.reading.structures.parse_decimals):
the same float64 values, bit for bit, as Python's correctly rounded float(token); anything
that is not a plain decimal is left to the token-by-token parse."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtqa.reading.structures import parse_decimals

_DECIMAL = st.builds(
    lambda sign, whole, frac, dot: (sign + whole + ("." + frac if dot else "")).encode(),
    st.sampled_from(["", "-", "+"]), st.text("0123456789", min_size=0, max_size=8),
    st.text("0123456789", min_size=0, max_size=7), st.booleans(),
).filter(lambda t: any(c in b"0123456789" for c in t))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # env switch only
@given(st.lists(st.lists(_DECIMAL, min_size=1, max_size=12), min_size=1, max_size=6),
       st.sampled_from([b"", b" "]))
def test_plain_decimals_equal_float_bit_for_bit(kernels, values, pad):
    raw = [b"\\".join(v) + pad for v in values]
    got = parse_decimals(raw)
    assert got is not None and len(got) == len(values)
    for tokens, arr in zip(values, got):
        want = np.array([float(t) for t in tokens], dtype=np.float64)
        assert arr.tobytes() == want.tobytes()   # bit for bit, -0.0 included


def test_worked_values(kernels):
    got = parse_decimals([b"170\\0\\-117\\169.9\\.5\\5.\\-0", b"0.1\\-2.675\\123456.789012345"])
    assert got[0].tolist() == [170.0, 0.0, -117.0, 169.9, 0.5, 5.0, -0.0]
    assert np.signbit(got[0][-1])
    assert got[1].tolist() == [0.1, -2.675, 123456.789012345]


def test_unusual_tokens_are_left_to_the_token_parse(kernels):
    for raw in ([b"1.5e-05\\2"], [b"1\\\\2"], [b"1.0 \\2"], [b"1.2.3"], [b"-\\1"],
                [b"1-2"], [b"1234567890123456"], [b""], [b"1\\x"], [b"+"], [b"1\\."],
                [b"1..2"], [b"--1"], [b"1\\ 2"], [b"1", b""], [b"1\\2\\"]):
        assert parse_decimals(raw) is None, raw


@pytest.mark.parametrize("chunk", [1 << 18, 100])
def test_structure_set_same_through_either_parse(kernels, sample_dir, monkeypatch, chunk):
    import rtqa.reading.structures as structures
    path = sample_dir / "hcc_pass" / "RS.hcc_pass.dcm"
    monkeypatch.setattr(structures, "_PARSE_CHUNK", chunk)  # one pass per few contours
    fast = structures.read_structure_set(path)
    monkeypatch.setattr(structures, "_parse_all", lambda items: None)
    slow = structures.read_structure_set(path)
    assert [s.name for s in fast.structures] == [s.name for s in slow.structures]
    n = 0
    for a, b in zip(fast.structures, slow.structures):
        assert [z for z, _ in a.planes] == [z for z, _ in b.planes]
        for (_, pa), (_, pb) in zip(a.planes, b.planes):
            for u, v in zip(pa, pb, strict=True):
                assert u.tobytes() == v.tobytes()
                n += 1
    assert n > 500
