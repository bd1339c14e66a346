"""The compiled helpers of the engine's per-structure steps (rtqa.dvh._ctables:
row_counts, quadrant_moments) give the same values, bit for bit, as the numpy code."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtqa import _native
from rtqa.dvh import elements as EL
from rtqa.dvh import geometry as G
from rtqa.dvh import tables as T

_FIXTURES = [HealthCheck.function_scoped_fixture]


def _both(monkeypatch, fn):
    """fn() compiled, then with RTQA_NATIVE=0."""
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    if _native.load(T._KERNEL) is None:
        pytest.skip("rtqa.dvh._ctables not built")
    a = fn()
    monkeypatch.setenv("RTQA_NATIVE", "0")
    b = fn()
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    return a, b


@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURES)
@given(rows=st.integers(0, 20), n=st.integers(0, 10000), p=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**32 - 1))
def test_row_counts_same_as_numpy(monkeypatch, rows, n, p, seed):
    a = np.random.default_rng(seed).random((rows, n)) < p
    got, ref = _both(monkeypatch, lambda: G.row_counts(a))
    assert got.dtype == ref.dtype == np.intp
    assert np.array_equal(got, ref)
    assert np.array_equal(ref, np.count_nonzero(a, axis=1))


@settings(max_examples=80, deadline=None, suppress_health_check=_FIXTURES)
@given(m=st.sampled_from([3, 5, 7, 9, 11, 13, 15]), n=st.integers(0, 5000),
       wide=st.booleans(), full=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
def test_quadrant_moments_same_as_numpy(monkeypatch, m, n, wide, full, seed):
    rng = np.random.default_rng(seed)
    dt = np.uint64 if wide else G.code_dtype(m)
    codes = rng.integers(0, 1 << m, size=(n, m)).astype(dt)
    codes[rng.random((n, m)) < full] = (1 << m) - 1  # (whole rows, as on the boundary)
    got, ref = _both(monkeypatch, lambda: EL._quadrant_moments(codes, m))
    assert got.shape == ref.shape == (n, 4, 6)
    assert got.tobytes() == ref.tobytes()


def test_quadrant_moments_bad_code_left_to_numpy(monkeypatch):
    codes = np.array([[1, 2, 8]], dtype=np.uint32)  # (8: a fourth bit of m = 3)
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    with pytest.raises(IndexError):
        EL._quadrant_moments(codes, 3)


@settings(max_examples=40, deadline=None, suppress_health_check=_FIXTURES)
@given(K=st.integers(1, 6), n=st.integers(3, 80), sx=st.floats(0.1, 3.0),
       x0=st.floats(-20.0, 5.0), y0=st.floats(-20.0, 5.0), nx=st.integers(1, 60),
       ny=st.integers(1, 60), swap=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_row_table_same_as_numpy(monkeypatch, K, n, sx, x0, y0, nx, ny, swap, seed):
    rng = np.random.default_rng(seed)
    planes = []
    for k in range(K):
        a = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = rng.uniform(0.2, 9.0) * (1 + 0.3 * rng.random(n))
        polys = [np.stack([rng.uniform(-3, 3) + r * np.cos(a),
                           rng.uniform(-3, 3) + r * np.sin(a)], axis=1)]
        if k % 2:
            polys.append(polys[0][::-1] * 0.5)
        planes.append(tuple(polys))
    e = G.Edges.of(planes)
    if swap:
        e = e.swapped()
    lat = G.Lattice(x0, y0, sx, sx * 0.8, nx, ny)
    got, ref = _both(monkeypatch, lambda: G.RowTable.of(e, K, lat))
    assert got.width == ref.width
    for name in ("pos", "col"):
        a, b = getattr(got, name), getattr(ref, name)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _planes(rng, K, n):
    planes = []
    for k in range(K):
        a = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = rng.uniform(0.5, 12.0) * (1 + 0.3 * rng.random(n))
        polys = [np.stack([rng.uniform(-3, 3) + r * np.cos(a),
                           rng.uniform(-3, 3) + r * np.sin(a)], axis=1)]
        if k % 2:
            polys.append(polys[0][::-1] * 0.5)
        planes.append(tuple(polys))
    return planes


@settings(max_examples=40, deadline=None, suppress_health_check=_FIXTURES)
@given(K=st.integers(1, 6), n=st.integers(3, 60), m=st.sampled_from([1, 3, 5, 9, 15]),
       d=st.floats(0.5, 4.0), seed=st.integers(0, 2**32 - 1))
def test_plane_counts_same_as_numpy(monkeypatch, K, n, m, d, seed):
    rng = np.random.default_rng(seed)
    rast = G.raster(_planes(rng, K, n), -40.0, -40.0, d, d * 0.9, m)
    if m > 1 and rng.random() < 0.5:  # (a sample added: a block of its own)
        rast.add_sample(0, float(rast.x0 + 0.3), float(rast.y0 + 0.2))
    got, ref = _both(monkeypatch, rast.plane_counts)
    assert got.dtype == ref.dtype == np.int64
    assert np.array_equal(got, ref)


@settings(max_examples=40, deadline=None, suppress_health_check=_FIXTURES)
@given(rows=st.integers(2, 20), n=st.integers(0, 10000), p=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**32 - 1))
def test_pair_counts_are_row_counts_of_the_and(rows, n, p, seed):
    if _native.load(T._KERNEL) is None:
        pytest.skip("rtqa.dvh._ctables not built")
    rng = np.random.default_rng(seed)
    a = rng.random((rows, n)) < p
    k = rng.integers(0, rows - 1, size=int(rng.integers(0, 30))).astype(np.int64)
    out = np.empty(k.size, dtype=np.intp)
    _native.load(T._KERNEL).pair_counts(a, rows, n, k, out)
    assert np.array_equal(out, np.count_nonzero(a[k] & a[k + 1], axis=1))
    with pytest.raises(ValueError):
        _native.load(T._KERNEL).pair_counts(a, rows, n, np.array([rows - 1]), out[:1])


@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURES)
@given(K=st.integers(1, 6), n=st.integers(3, 60), m=st.sampled_from([1, 3, 5, 7, 15, 33]),
       d=st.floats(0.3, 4.0), ox=st.floats(-41.0, -39.0), seed=st.integers(0, 2**32 - 1))
def test_raster_same_as_numpy(monkeypatch, K, n, m, d, ox, seed):
    planes = _planes(np.random.default_rng(seed), K, n)
    got, ref = _both(monkeypatch, lambda: G.raster(planes, ox, -40.0, d, d * 0.9, m))
    for name in ("cls", "bid", "blocks"):
        a, b = getattr(got, name), getattr(ref, name)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name


@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURES)
@given(K=st.integers(1, 5), n=st.integers(3, 300), d=st.floats(0.2, 30.0),
       ratio=st.floats(0.5, 2.0), ox=st.floats(-30.0, 0.0), seed=st.integers(0, 2**32 - 1))
def test_touched_same_as_numpy(monkeypatch, K, n, d, ratio, ox, seed):
    e = G.Edges.of(_planes(np.random.default_rng(seed), K, n))
    dx, dy = d, d * ratio
    NI, NJ = int(40 / dx) + 2, int(40 / dy) + 2
    got, ref = _both(monkeypatch, lambda: G._touched(e, K, ox, -20.0, dx, dy, NI, NJ))
    assert got.dtype == ref.dtype == np.bool_ and got.shape == ref.shape == (K, NJ, NI)
    assert np.array_equal(got, ref)


@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURES)
@given(n=st.integers(0, 400), top=st.floats(0.05, 80.0), seed=st.integers(0, 2**32 - 1))
def test_accumulator_finish_same_as_numpy(monkeypatch, n, top, seed):
    from rtqa.dvh.accumulator import _Accumulator

    def run():
        rng = np.random.default_rng(seed)
        acc = _Accumulator(top * 1.2)
        acc.points(top * rng.random() * 0.5, top)
        if n:
            mean = rng.random(n) * top * 1.1
            acc.add(mean, rng.random(n) * top * 0.3, rng.random(n))
        acc.points(0.0, top * (1 + 0.1 * rng.random()))
        return acc.finish()

    got, ref = _both(monkeypatch, run)
    for a, b in zip(got, ref):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@settings(max_examples=50, deadline=None, suppress_health_check=_FIXTURES)
@given(K=st.integers(1, 7), n=st.integers(3, 40), m=st.sampled_from([3, 5, 9, 15, 33]),
       d=st.floats(0.5, 4.0), gaps=st.integers(0, 2**6 - 1), seed=st.integers(0, 2**32 - 1))
def test_partial_items_same_as_numpy(monkeypatch, K, n, m, d, gaps, seed):
    from rtqa.dvh.engine import _Engine

    rng = np.random.default_rng(seed)
    rast = G.raster(_planes(rng, K, n), -40.0, -40.0, d, d, m)
    z = np.cumsum(rng.uniform(1.0, 3.0, K))
    gap = np.array([(gaps >> i) & 1 for i in range(K - 1)], dtype=bool)
    slabs = G.Slabs(z, z - 1.0, z + 1.0, gap)
    eng = _Engine.__new__(_Engine)
    eng.r, eng.slabs = rast, slabs
    eng.scale = rng.uniform(0.9, 1.1, K)
    eng.pair_scale = 0.5 * (eng.scale[:-1] + eng.scale[1:])
    eng.start = np.concatenate([[True], gap])
    eng.end = np.concatenate([gap, [True]])
    eng.linked = np.flatnonzero(~gap)
    sxsy = (d / m) ** 2
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    got = eng._items_native(sxsy)
    if got is None:
        pytest.skip("rtqa.dvh._ctables not built")
    ref = eng._items(sxsy)
    assert got[-1] == ref[-1]
    assert got[0].size == ref[0].size
    if not ref[0].size:
        return
    for a, b in zip(got[:-1], ref[:-1]):
        assert a.shape == b.shape and np.array_equal(a, b)
        if a.dtype.kind == "f" or a.dtype.kind == "u":
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


@settings(max_examples=80, deadline=None, suppress_health_check=_FIXTURES)
@given(n=st.integers(0, 120), nz=st.integers(2, 12), uniform=st.booleans(),
       spread=st.floats(0.1, 30.0), zero=st.floats(0.0, 0.5), seed=st.integers(0, 2**32 - 1))
def test_whole_layers_same_as_numpy(monkeypatch, n, nz, uniform, spread, zero, seed):
    from rtqa.dvh.engine import _Engine

    rng = np.random.default_rng(seed)
    z = np.cumsum(np.full(nz, 2.5) if uniform else rng.uniform(1.0, 4.0, nz)) - 3.0
    eng = _Engine.__new__(_Engine)
    eng.tab = type("T", (), {"bins": T._ZBins(z)})()
    za = rng.uniform(z[0] - 3, z[-1] + 1, n)
    on = rng.random(n) < 0.3  # (some on frames)
    za[on] = z[rng.integers(0, nz, int(on.sum()))]
    zbb = za + rng.uniform(0.0, spread, n) * (rng.random(n) > 0.05)
    wsc = rng.uniform(0.5, 2.0, n)
    counts = np.floor(rng.uniform(0, 50, n) * (rng.random(n) > zero))
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    try:
        got = eng._layers_native(za, zbb, wsc, counts)
    except ValueError:
        got = "raised"
    if _native.load(T._KERNEL) is None:
        pytest.skip("rtqa.dvh._ctables not built")
    try:
        ref = eng._layers(za, zbb, wsc, counts)
    except ValueError:
        ref = "raised"
    if got is None:  # (left to numpy)
        return
    if ref is False or got is False:
        assert got is ref
        return
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
        else:
            assert a == b


@settings(max_examples=80, deadline=None, suppress_health_check=_FIXTURES)
@given(n=st.one_of(st.integers(0, 300), st.integers(300, 70000)),
       seed=st.integers(0, 2**32 - 1))
def test_sums_are_numpys_pairwise_sums(n, seed):
    if _native.load(T._KERNEL) is None:
        pytest.skip("rtqa.dvh._ctables not built")
    rng = np.random.default_rng(seed)
    m = rng.random(n) * 10.0 ** rng.integers(-6, 6, n) * np.where(rng.random(n) < 0.2, -1, 1)
    w = rng.random(n) * 10.0 ** rng.integers(-6, 6, n)
    a, b = _native.load(T._KERNEL).sums(m, w)
    assert np.float64(a).tobytes() == np.float64(w.sum()).tobytes()
    assert np.float64(b).tobytes() == np.float64((m * w).sum()).tobytes()


def test_raster_of_contours_between_lattice_rows(monkeypatch):
    """No lattice row crosses the contours (every table entry padding): all outside, both
    paths (the numpy path's padding entries are skipped, not paired up)."""
    tri = [(np.array([[2.2, 0.48], [1.27, 1.13], [0.85, -0.36]]),)]
    got, ref = _both(monkeypatch, lambda: G.raster(tri, -39.0, -40.0, 2.0, 1.8, 1))
    for r in (got, ref):
        assert r.rows.width == 1 and not r.cls.any()
    assert got.cls.tobytes() == ref.cls.tobytes()
