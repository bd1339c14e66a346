"""rtqa.dvh.geometry.band_crossings compiled (rtqa.dvh._cbands) gives the numpy values,
bit for bit: on structures with poles smaller than a row spacing (the Euclidean
distances), holes, gaps between runs and contours on lattice lines, for band points and
arbitrary lattice points; in its SSE2 and its scalar loops; and in whole DVHs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtqa import _native
from rtqa.dvh import geometry as G


def _cbands():
    c = _native.load("rtqa.dvh._cbands")
    if c is None:
        pytest.skip("rtqa.dvh._cbands not built (or RTQA_NATIVE=0)")
    return c


def _ring(cx, cy, r, n, phase=0.0):
    t = phase + np.arange(n) * (2 * np.pi / n)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def _structure(seed: int, m: int, gap: bool):
    """Planes of a sphere-like structure: rings whose radius changes from plane to plane,
    a pole contour smaller than a row spacing at each end, sometimes a hole or a second
    contour, a rectangle with vertices on lattice lines; a gap between runs."""
    rng = np.random.default_rng(seed)
    K = int(rng.integers(4, 10))
    dz = float(rng.choice([2.0, 2.5, 3.0]))
    z = np.arange(K) * dz
    if gap:
        z[K // 2:] += 3 * dz  # a step larger than twice the median spacing: a gap
    cx, cy = rng.uniform(-3, 3, size=2)
    planes = []
    for p in range(K):
        if p in (0, K - 1):  # pole: smaller than a row spacing (2.5 / m mm)
            polys = (_ring(cx, cy, 0.3 / m * rng.uniform(0.5, 1.5), 8),)
        else:
            r = rng.uniform(4, 12)
            polys = [_ring(cx, cy, r, int(rng.integers(12, 70)), rng.uniform(0, 1))]
            u = rng.random()
            if u < 0.25:  # a hole (even-odd)
                polys.append(_ring(cx, cy, r * 0.4, 16)[::-1])
            elif u < 0.5:  # a second contour
                polys.append(_ring(cx + r + 4, cy, 2.0, 12))
            elif u < 0.7:  # a rectangle with its vertices on dose nodes (lattice lines)
                polys.append(np.array([[-20.0, -20.0], [-15.0, -20.0], [-15.0, -12.5],
                                       [-20.0, -12.5]]))
            polys = tuple(polys)
        planes.append(polys)
    rast = G.raster(planes, -30.0, -30.0, 2.5, 2.5, m)
    slabs = G.slabs_for(z, dz)
    assert slabs.gap.any() == gap
    return rast, slabs, rng


def _band_points(rast, slabs):
    """The engine's band points: sub-samples inside on exactly one plane of a linked
    interval."""
    K = rast.K
    ks, lows, Rs, Cs = [], [], [], []
    for k in np.flatnonzero(~slabs.gap):
        a, b = (_inside(rast, kk) for kk in (k, k + 1))
        for low, sel in ((True, a & ~b), (False, b & ~a)):
            R, C = np.nonzero(sel)
            ks.append(np.full(R.size, k))
            lows.append(np.full(R.size, low))
            Rs.append(R)
            Cs.append(C)
    assert K >= 2
    return tuple(np.concatenate(a) for a in (ks, lows, Rs, Cs))


def _inside(rast, k):
    """Sub-sample inside flags (ny, nx) of plane k from the raster."""
    m = rast.m
    cls, bid = rast.cls[k], rast.bid[k]
    out = np.repeat(np.repeat(cls == 2, m, axis=0), m, axis=1)
    for J, I in zip(*np.nonzero(cls == 1)):
        codes = rast.blocks[bid[J, I]]
        bits = (codes[:, None] >> np.arange(m, dtype=codes.dtype)) & 1
        out[J * m:(J + 1) * m, I * m:(I + 1) * m] = bits.astype(bool)
    return out


def _random_points(rast, rng, n):
    f = rast.fine
    return (rng.integers(0, rast.K - 1, n), rng.random(n) < 0.5, rng.integers(0, f.ny, n),
            rng.integers(0, f.nx, n))


def _numpy(monkeypatch, rast, slabs, pts):
    monkeypatch.setenv("RTQA_NATIVE", "0")
    try:
        return G.band_crossings(rast, slabs, *pts)
    finally:
        monkeypatch.delenv("RTQA_NATIVE")


def _same_all_ways(monkeypatch, c, rast, slabs, pts):
    rast.__dict__.pop("cols", None)  # the compiled column table first
    got = [G._band_crossings_c(c, rast, slabs, *pts, simd=s) for s in (True, False)]
    want = _numpy(monkeypatch, rast, slabs, pts)  # (caches rast.cols)
    got += [G._band_crossings_c(c, rast, slabs, *pts, simd=s) for s in (True, False)]
    assert np.isfinite(want).all()
    for g in got:
        assert g.dtype == want.dtype and g.shape == want.shape
        assert g.tobytes() == want.tobytes()
    return want


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 3, 5, 7]), st.booleans())
def test_band_points_bit_for_bit(monkeypatch, seed, m, gap):
    c = _cbands()
    rast, slabs, rng = _structure(seed, m, gap)
    pts = _band_points(rast, slabs)
    want = _same_all_ways(monkeypatch, c, rast, slabs, pts)
    k = pts[0]
    assert np.all((want >= slabs.z[k]) & (want <= slabs.z[k + 1]))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 3, 5]), st.booleans(),
       st.integers(1, 400))
def test_arbitrary_points_bit_for_bit(monkeypatch, seed, m, gap, n):
    """Any lattice point of any interval (most scan lines miss the contours there: the
    Euclidean distances), in other integer types."""
    c = _cbands()
    rast, slabs, rng = _structure(seed, m, gap)
    k, low, R, C = _random_points(rast, rng, n)
    _same_all_ways(monkeypatch, c, rast, slabs, (k, low, R, C))
    _same_all_ways(monkeypatch, c, rast, slabs,
                   (k.astype(np.int32), low, R.astype(np.int32), C.astype(np.uint16)))


def _wavy(seed: int, m: int, offset: float):
    """Planes of wavy rings of many edges (blocks of edges nearer and farther than the
    nearest one: the pruned Euclidean minimum), poles smaller than a row spacing, at
    patient coordinates offset from the origin; its raster and slabs."""
    rng = np.random.default_rng(seed)
    K = int(rng.integers(4, 8))
    z = np.arange(K) * 2.5
    planes = []
    for p in range(K):
        if p in (0, K - 1):
            planes.append((_ring(offset, offset, 0.3 / m, 8),))
            continue
        n = int(rng.integers(80, 400))
        t = np.arange(n) * (2 * np.pi / n)
        r = rng.uniform(5, 12) * (1 + 0.3 * np.sin(int(rng.integers(2, 9)) * t))
        ring = np.stack([offset + r * np.cos(t), offset + r * np.sin(t)], axis=1)
        polys = [ring]
        if rng.random() < 0.5:  # a hole
            polys.append(_ring(offset, offset, 1.5, 40)[::-1])
        planes.append(tuple(polys))
    rast = G.raster(planes, offset - 30.0, offset - 30.0, 2.5, 2.5, m)
    return rast, G.slabs_for(z, 2.5), rng


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 3, 5]),
       st.sampled_from([0.0, -417.3, 2.5e4]), st.integers(1, 400))
def test_many_edges_bit_for_bit(monkeypatch, seed, m, offset, n):
    """The Euclidean distances of the compiled kernel skip blocks of edges provably
    farther than the nearest found: the same values as numpy's full minimum, for band
    points and arbitrary lattice points."""
    c = _cbands()
    rast, slabs, rng = _wavy(seed, m, offset)
    _same_all_ways(monkeypatch, c, rast, slabs, _band_points(rast, slabs))
    _same_all_ways(monkeypatch, c, rast, slabs, _random_points(rast, rng, n))


def test_edge_cases(monkeypatch):
    c = _cbands()
    rast, slabs, rng = _structure(7, 3, False)
    f = rast.fine
    K = rast.K
    empty = np.empty(0, dtype=np.intp)
    assert G._band_crossings_c(c, rast, slabs, empty, empty.astype(bool), empty,
                               empty).size == 0
    none = (empty, empty.astype(bool), empty, empty)
    assert _numpy(monkeypatch, rast, slabs, none).size == 0
    corners = [(0, 0), (0, f.nx - 1), (f.ny - 1, 0), (f.ny - 1, f.nx - 1)]
    for kk in (0, K - 2):
        for low in (True, False):
            for R, C in corners:  # one point at a time, at the lattice corners
                one = (np.array([kk]), np.array([low]), np.array([R]), np.array([C]))
                _same_all_ways(monkeypatch, c, rast, slabs, one)
    # the lattice rows and columns of the centre, both planes of every interval
    R, C = np.meshgrid(np.arange(f.ny), np.arange(f.nx), indexing="ij")
    R, C = R.reshape(-1), C.reshape(-1)
    for kk in range(K - 1):
        for low in (True, False):
            pts = (np.full(R.size, kk), np.full(R.size, low), R, C)
            _same_all_ways(monkeypatch, c, rast, slabs, pts)


def test_points_off_the_planes_or_lattice_raise():
    c = _cbands()
    rast, slabs, _ = _structure(3, 1, False)
    f = rast.fine
    for k, R, C in ((rast.K - 1, 0, 0), (-1, 0, 0), (0, f.ny, 0), (0, 0, f.nx), (0, -1, 0)):
        with pytest.raises(ValueError):
            G._band_crossings_c(c, rast, slabs, np.array([k]), np.array([True]),
                                np.array([R]), np.array([C]))


def test_inconsistent_arguments_raise():
    """The kernels check what they index with (no read or write outside the buffers)."""
    c = _cbands()
    rast, slabs, _ = _structure(5, 3, False)
    f, e, K = rast.fine, rast.edges, rast.K
    y0 = np.ascontiguousarray(e.y0).copy()
    y0[3] = np.nan
    args = (np.ascontiguousarray(e.x0), y0, np.ascontiguousarray(e.x1),
            np.ascontiguousarray(e.y1), e.plane.astype(np.int64),
            (float(f.y0), float(f.sy), int(f.ny)), K, np.empty(K * f.ny, dtype=np.int64))
    with pytest.raises(ValueError):
        c.crossing_table(*args, None)
    n = 3
    pts = (np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool), np.zeros(n, dtype=np.int64),
           np.zeros(n, dtype=np.int64))
    lat = (float(f.x0), float(f.y0), float(f.sx), float(f.sy), int(f.nx), int(f.ny))
    tabs = (rast.rows.pos, rast.rows.width, rast.cols.pos, rast.cols.width, K, lat)
    linked = np.concatenate([[False], ~slabs.gap, [False]])
    flags = np.zeros(n, dtype=np.uint8)  # three Euclidean points, but no distances for them
    with pytest.raises(ValueError):
        c.finish(*tabs, slabs.z, linked, *pts, np.zeros(n), np.zeros(n), flags,
                 np.empty((2, 1)), np.empty(n))
    with pytest.raises(ValueError):  # a table of the wrong size
        c.prepare(rast.rows.pos[:, 1:].copy(), *tabs[1:], *pts, np.empty(n), np.empty(n),
                  flags)


def test_degenerate_tables_raise_not_crash():
    """No rows (was a division by zero: SIGFPE) is an empty table; an infinite row
    spacing (a NaN cast to an integer) and tables of width 0 (rank 0 read beyond the
    buffer) are refused."""
    c = _cbands()
    e, i8 = np.empty(0), np.int64
    # 0 planes: 0 rows, an empty pos (was a division by zero)
    assert c.crossing_table(e, e, e, e, np.empty(0, i8), (0.0, 1.0, 4), 0, np.empty(0, i8),
                            np.empty((1, 0))) is None
    a, b = np.array([0.0]), np.array([1.0])
    with pytest.raises(ValueError):
        c.crossing_table(a, a, b, b, np.zeros(1, i8), (0.0, float("inf"), 4), 1,
                         np.empty(4, i8), None)
    lat = (0.0, 0.0, 1.0, 1.0, 2, 2)
    pts = (np.zeros(1, i8), np.zeros(1, bool), np.zeros(1, i8), np.zeros(1, i8))
    with pytest.raises(ValueError):  # tables of width 0 (a RowTable is at least 1 wide)
        c.prepare(e, 0, e, 0, 2, lat, *pts, np.empty(1), np.empty(1),
                  np.empty(1, np.uint8))
    with pytest.raises(ValueError):
        c.finish(e, 0, e, 0, 2, lat, np.zeros(2), np.zeros(3, bool), *pts, np.zeros(1),
                 np.zeros(1), np.full(1, 2, np.uint8), np.empty((2, 0)), np.empty(1))


@pytest.mark.parametrize("seed", range(6))
def test_column_table_is_the_row_table_of_the_columns(seed):
    c = _cbands()
    rast, _, _ = _structure(seed, 1 + 2 * (seed % 3), seed % 2 == 1)
    f, e, K = rast.fine, rast.edges, rast.K
    args = (np.ascontiguousarray(e.y0), np.ascontiguousarray(e.x0),
            np.ascontiguousarray(e.y1), np.ascontiguousarray(e.x1),
            e.plane.astype(np.int64),
            (float(f.x0), float(f.sx), int(f.nx)), K, np.empty(K * f.nx, dtype=np.int64))
    pos = np.full((c.crossing_table(*args, None), K * f.nx), np.inf)
    c.crossing_table(*args, pos)
    assert pos.tobytes() == rast.cols.pos.tobytes()


def test_dvhs_same_both_paths(monkeypatch, sample_dir):
    """Whole DVHs of a sample plan (every band piece of its structures) through the
    numpy and the compiled band crossings."""
    _cbands()
    from rtqa.dvh import compute_dvh
    from rtqa.reading import load_export
    ex = load_export([sample_dir / "hcc_pass"])
    grid = ex.courses[0].grid
    structures = [s for s in ex.structure_sets[0].structures if s.has_volume]
    assert structures
    calls = []
    real = G.band_crossings

    def spy(*a):
        calls.append(a[2].size)
        return real(*a)

    monkeypatch.setattr("rtqa.dvh.engine.band_crossings", spy)
    out = {}
    for native in ("0", "1"):
        monkeypatch.setenv("RTQA_NATIVE", native)
        out[native] = [compute_dvh(s, grid) for s in structures]
    assert sum(calls) > 0
    for a, b in zip(out["0"], out["1"]):
        assert a.cum_cc.tobytes() == b.cum_cc.tobytes()
        assert a.edges_gy.tobytes() == b.edges_gy.tobytes()
        assert (a.volume_cc, a.min_gy, a.max_gy, a.mean_gy) == \
            (b.volume_cc, b.min_gy, b.max_gy, b.mean_gy)


def test_plane_at_minus_zero_is_plus_zero():
    """ContourData "-0.0" gives a plane at -0.0 mm; the slabs hold +0.0 (np.clip and the
    compiled clip may return either zero on a tie: with +0.0 only, both give the same
    bits)."""
    from rtqa.dvh.geometry import slabs_for
    z = np.array([-2.0, -0.0, 2.0])
    s = slabs_for(z, 2.0)
    assert s.z.tolist() == [-2.0, 0.0, 2.0] and not np.signbit(s.z[1])
    assert np.signbit(z[1])  # (the caller's array is left alone)
    one = slabs_for(np.array([-0.0]), 2.0)
    assert not np.signbit(one.z[0])
