"""The compiled per-grid tables (rtqa.dvh._ctables: _Tables._compute and the windowed
_Tables.pairs_at) give the same bytes as the numpy code, and leave to it what it would
treat otherwise."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtqa import _native
from rtqa.dvh import tables as T


#: (the fixtures hold for every example: _both restores RTQA_NATIVE, each example sets
#: the block size it uses)
_FIXTURES = [HealthCheck.function_scoped_fixture]


@pytest.fixture
def ct(monkeypatch):
    """The compiled module (the test is skipped when it was not built)."""
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    c = _native.load(T._KERNEL)
    if c is None:
        pytest.skip("rtqa.dvh._ctables not built")
    return c


def _grid(dose):
    return SimpleNamespace(dose=dose, z=np.arange(dose.shape[0]) * 2.0)


def _both(monkeypatch, fn):
    """fn() with the numpy code, then with the compiled kernel."""
    monkeypatch.setenv("RTQA_NATIVE", "0")
    a = fn()
    monkeypatch.delenv("RTQA_NATIVE")
    return a, fn()


def _dose(rng, kind, shape):
    if kind == 0:
        return rng.uniform(0.0, 60.0, shape)
    if kind == 1:  # steps and plateaus: many zero differences
        return np.round(rng.uniform(0.0, 3.0, shape)) * 20.0
    if kind == 2:  # uniform
        return np.full(shape, 7.3)
    z, y, x = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
    return 10.0 + 0.6 * x + 0.8 * y + 0.1 * z + rng.uniform(0, 1e-9, shape)


@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURES)
@given(nz=st.integers(2, 5), ny=st.integers(2, 11), nx=st.integers(2, 11),
       kind=st.integers(0, 3), seed=st.integers(0, 2**31), data=st.data())
def test_compute_is_identical(ct, monkeypatch, nz, ny, nx, kind, seed, data):
    rng = np.random.default_rng(seed)
    dose = _dose(rng, kind, (nz, ny, nx))
    tab = T._Tables(_grid(dose))
    j0 = data.draw(st.integers(0, ny - 1))
    j1 = data.draw(st.integers(j0 + 1, ny))
    i0 = data.draw(st.integers(0, nx - 1))
    i1 = data.draw(st.integers(i0 + 1, nx))
    f0 = data.draw(st.integers(0, nz - 1))
    f1 = data.draw(st.integers(f0, nz))
    win = (j0, j1, i0, i1)
    a, b = _both(monkeypatch, lambda: tab._compute(f0, f1, win))
    assert a.dtype == b.dtype == np.complex64
    assert a.tobytes() == b.tobytes()
    assert ct.pairs(tab.flat, nz, ny, nx, f0, f1, j0, j1, i0, i1, b) is True


def test_whole_tables_are_identical(monkeypatch):
    rng = np.random.default_rng(5)
    dose = rng.uniform(0.0, 60.0, (4, 30, 41))
    a, b = _both(monkeypatch, lambda: T._Tables(_grid(dose)).pair)
    assert a.tobytes() == b.tobytes()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_dose_is_left_to_numpy(ct, monkeypatch):
    """A NaN (or an infinity) in the dose: the kernel refuses, the numpy code answers."""
    dose = np.random.default_rng(1).uniform(0.0, 60.0, (3, 6, 7))
    for bad in (np.nan, np.inf):
        d = dose.copy()
        d[1, 3, 3] = bad
        tab = T._Tables(_grid(d), whole_bytes=0)
        out = np.empty(3 * 6 * 7, dtype=np.complex64)
        assert ct.pairs(tab.flat, 3, 6, 7, 0, 3, 0, 6, 0, 7, out) is None
        a, b = _both(monkeypatch, lambda: tab._compute(0, 3, (0, 6, 0, 7)))
        assert a.tobytes() == b.tobytes()


def test_narrow_grid_is_left_to_numpy(ct):
    flat = np.zeros(3 * 1 * 5)
    out = np.empty(15, dtype=np.complex64)
    assert ct.pairs(flat, 3, 1, 5, 0, 3, 0, 1, 0, 5, out) is None
    out = np.empty(14, dtype=np.complex64)  # (wrong size)
    assert ct.pairs(np.zeros(3 * 2 * 5), 3, 2, 5, 0, 3, 0, 1, 0, 5, out) is None


def _windowed(dose, block_frames, monkeypatch):
    nz, ny, nx = dose.shape
    monkeypatch.setattr(T, "TABLE_BLOCK_BYTES", 8 * ny * nx * block_frames)
    tab = T._Tables(_grid(dose), budget_bytes=1, whole_bytes=0)
    assert tab.pair is None
    return tab


@settings(max_examples=40, deadline=None, suppress_health_check=_FIXTURES)
@given(nz=st.integers(2, 9), ny=st.integers(2, 12), nx=st.integers(2, 12),
       seed=st.integers(0, 2**31), data=st.data())
def test_pairs_at_is_identical(ct, monkeypatch, nz, ny, nx, seed, data):
    rng = np.random.default_rng(seed)
    dose = rng.uniform(0.0, 60.0, (nz, ny, nx))
    tab = _windowed(dose, data.draw(st.integers(1, nz)), monkeypatch)
    tab._cap = data.draw(st.integers(2, 9))
    j0 = data.draw(st.integers(0, ny - 1))
    j1 = data.draw(st.integers(j0 + 1, ny))
    i0 = data.draw(st.integers(0, nx - 1))
    i1 = data.draw(st.integers(i0 + 1, nx))
    tab.use_window(j0, j1, i0, i1)
    f, j, i = np.meshgrid(np.arange(nz - 1), np.arange(j0, j1), np.arange(i0, i1),
                          indexing="ij")
    g = ((f * ny + j) * nx + i).reshape(-1)
    n = data.draw(st.integers(0, g.size))
    g = g[rng.permutation(g.size)[:n]]
    for gg in (g, np.sort(g), np.repeat(np.sort(g), 2)):
        (a0, b0), (a1, b1) = _both(monkeypatch, lambda: tab.pairs_at(gg))
        assert a1.dtype == b1.dtype == np.complex64
        assert a0.tobytes() == a1.tobytes()
        assert b0.tobytes() == b1.tobytes()
        assert len(tab._cache) <= tab._cap


def test_pairs_at_outside_is_left_to_numpy(ct, monkeypatch):
    """Nodes outside the window, on the last frame or outside the grid: the kernel
    refuses (None), so pairs_at answers (or raises) as the numpy code."""
    dose = np.random.default_rng(2).uniform(0.0, 60.0, (5, 8, 9))
    tab = _windowed(dose, 2, monkeypatch)
    tab.use_window(2, 6, 3, 7)
    nxy = 72
    inside = np.array([nxy + 2 * 9 + 3, 3 * nxy + 5 * 9 + 6], dtype=np.int64)
    for extra in (nxy + 1 * 9 + 3, nxy + 2 * 9 + 7, 4 * nxy + 2 * 9 + 3, -1, 5 * nxy):
        g = np.append(inside, extra).astype(np.int64)
        assert tab._pairs_native(ct, g) is None
        monkeypatch.setenv("RTQA_NATIVE", "0")
        try:
            a0, b0 = tab.pairs_at(g)
        except (IndexError, ValueError) as e:
            monkeypatch.delenv("RTQA_NATIVE")
            with pytest.raises(type(e)):
                tab.pairs_at(g)
            continue
        monkeypatch.delenv("RTQA_NATIVE")
        a1, b1 = tab.pairs_at(g)
        assert a0.tobytes() == a1.tobytes() and b0.tobytes() == b1.tobytes()
    a, b = tab._pairs_native(ct, inside)
    monkeypatch.setenv("RTQA_NATIVE", "0")
    a0, b0 = tab.pairs_at(inside)
    assert a.tobytes() == a0.tobytes() and b.tobytes() == b0.tobytes()
    e = tab._pairs_native(ct, np.empty(0, dtype=np.int64))
    assert e[0].size == e[1].size == 0


def test_pairs_at_beyond_the_budget_is_left_to_numpy(ct, monkeypatch):
    dose = np.random.default_rng(3).uniform(0.0, 60.0, (9, 5, 6))
    tab = _windowed(dose, 1, monkeypatch)
    tab._cap = 2
    g = np.arange(0, 8 * 30, 7, dtype=np.int64)  # frames 0..7: 9 blocks read
    assert tab._pairs_native(ct, g) is None
    (a0, b0), (a1, b1) = _both(monkeypatch, lambda: tab.pairs_at(g))
    assert a0.tobytes() == a1.tobytes() and b0.tobytes() == b1.tobytes()
    assert len(tab._cache) <= 2


# -- the frame ring's kernels (rtqa.dvh.tables._FrameRing) -------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURES)
@given(nz=st.integers(2, 4), ny=st.integers(2, 11), nx=st.integers(2, 11),
       kind=st.integers(0, 3), seed=st.integers(0, 2**31), data=st.data())
def test_pairs_at_column_spans_are_identical(ct, monkeypatch, nz, ny, nx, kind, seed, data):
    """pairs_spans: the pairs of one frame at a column span per row (window rows j0..j1-1,
    columns i0..i1-1), the same bytes as the numpy tables there; nothing else written."""
    rng = np.random.default_rng(seed)
    dose = _dose(rng, kind, (nz, ny, nx))
    tab = T._Tables(_grid(dose))
    j0 = data.draw(st.integers(0, ny - 1))
    j1 = data.draw(st.integers(j0 + 1, ny))
    i0 = data.draw(st.integers(0, nx - 1))
    i1 = data.draw(st.integers(i0 + 1, nx))
    f = data.draw(st.integers(0, nz - 1))
    w = i1 - i0
    lo = rng.integers(0, w + 1, j1 - j0).astype(np.int32)
    hi = np.clip(lo + rng.integers(-1, w + 1, j1 - j0), 0, w).astype(np.int32)
    monkeypatch.setenv("RTQA_NATIVE", "0")
    want = tab._compute(f, f + 1, (j0, j1, i0, i1)).reshape(j1 - j0, w)
    monkeypatch.delenv("RTQA_NATIVE")
    out = np.full((j1 - j0) * w, 1 + 2j, dtype=np.complex64)
    assert ct.pairs_spans(tab.flat, nz, ny, nx, f, j0, j1, lo, hi, i0, w, out) is True
    out = out.reshape(j1 - j0, w)
    for r in range(j1 - j0):
        inside = np.zeros(w, dtype=bool)
        inside[lo[r]:max(lo[r], hi[r])] = True
        assert out[r, inside].tobytes() == want[r, inside].tobytes()
        assert np.all(out[r, ~inside] == np.complex64(1 + 2j))


def test_pairs_at_column_spans_refuse_spans_outside_the_window(ct):
    flat = np.zeros(2 * 4 * 5)
    out = np.empty(4 * 3, dtype=np.complex64)
    lo, hi = np.zeros(4, np.int32), np.full(4, 4, np.int32)  # (wider than 3 columns)
    assert ct.pairs_spans(flat, 2, 4, 5, 0, 0, 4, lo, hi, 1, 3, out) is None
    assert ct.pairs_spans(flat, 2, 4, 5, 0, 0, 4, lo, hi - 1, 3, 3, out) is None


@settings(max_examples=40, deadline=None, suppress_health_check=_FIXTURES)
@given(K=st.integers(0, 4), NJ=st.integers(1, 7), NI=st.integers(1, 9),
       seed=st.integers(0, 2**31), data=st.data())
def test_row_spans_are_the_first_and_last_set_column(ct, K, NJ, NI, seed, data):
    rng = np.random.default_rng(seed)
    mask = rng.random((K, NJ, NI)) < data.draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    j0 = data.draw(st.integers(0, NJ))
    j1 = data.draw(st.integers(j0, NJ))
    i0 = data.draw(st.integers(0, NI))
    i1 = data.draw(st.integers(i0, NI))
    lo = np.empty((K, j1 - j0), np.int32)
    hi = np.empty((K, j1 - j0), np.int32)
    ct.row_spans(mask.view(np.uint8), K, NJ, NI, j0, j1, i0, i1, lo, hi)
    for k in range(K):
        for j in range(j0, j1):
            cols = np.flatnonzero(mask[k, j, i0:i1])
            want = (cols[0], cols[-1] + 1) if cols.size else (0, 0)
            assert (lo[k, j - j0], hi[k, j - j0]) == want


def test_node_spans_widen_both_frames(ct):
    lo = np.full((4, 3), 9, np.int32)
    hi = np.zeros((4, 3), np.int32)
    f, j, i = (np.array(x, np.int64) for x in ([0, 0, 2], [1, 1, 2], [4, 2, 7]))
    assert ct.node_spans(f, j, i, 4, 3, lo, hi) is True
    assert lo[0, 1] == lo[1, 1] == 2 and hi[0, 1] == hi[1, 1] == 5
    assert lo[2, 2] == lo[3, 2] == 7 and hi[2, 2] == hi[3, 2] == 8
    assert (lo == 9).sum() == 12 - 4
    # a frame without a next one, a row outside: refused
    assert ct.node_spans(np.array([3]), np.array([0]), np.array([0]), 4, 3, lo, hi) is None
    assert ct.node_spans(np.array([0]), np.array([3]), np.array([0]), 4, 3, lo, hi) is None
