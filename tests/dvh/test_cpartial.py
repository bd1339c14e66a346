"""The compiled boundary-voxel kernels (rtqa.dvh._cpartial) give the same values, bit for
bit, as the numpy code of rtqa.dvh.engine._Engine._partial_voxels and rtqa.dvh.elements
they twin: the same accumulator calls (points and elements, in the same chunks and order)
for whole structures, and the same arrays kernel by kernel."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtqa import _native
from rtqa.dvh import compute_dvh
from rtqa.dvh.accumulator import _Accumulator
from rtqa.dvh.elements import _bits, _cell_elements, _trilinear_cells
from rtqa.dvh.engine import _slot_moments
from rtqa.dvh.geometry import code_dtype
from rtqa.dvh.settings import Settings
from rtqa.dvh.tables import _ZBins
from rtqa.reading.dose import DoseGrid
from rtqa.reading.structures import Structure


@pytest.fixture
def cp(monkeypatch):
    """The compiled module (the test is skipped when it was not built)."""
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    c = _native.load("rtqa.dvh._cpartial")
    if c is None:
        pytest.skip("rtqa.dvh._cpartial not built")
    return c


# -- whole structures: every accumulator call, both paths --------------------------------
def _grid(nx=24, ny=22, z=None, seed=0, x0=-30.0, y0=-27.5, d=2.5):
    rng = np.random.default_rng(seed)
    z = np.arange(16) * 3.0 - 20.0 if z is None else np.asarray(z, dtype=float)
    x, y = x0 + d * np.arange(nx), y0 + d * np.arange(ny)
    Z, Y, X = np.meshgrid(z, y, x, indexing="ij")
    dose = 40.0 * np.exp(-((X - 3) ** 2 + (Y + 2) ** 2 + (Z - 1) ** 2) / 300.0)
    dose += rng.random(dose.shape) * 0.5
    dose[:, :3] = 0.0  # a zero region (exact zeros; Min 0)
    dose[2] = dose[3]  # equal frames (t gradient 0)
    return DoseGrid(path=Path("RD.dcm"), sop_instance_uid="1", frame_of_reference_uid="1",
                    patient_id="P", x=x, y=y, z=z, dose=np.ascontiguousarray(dose),
                    summation_type="PLAN", dose_type="PHYSICAL", referenced_plan_uid=None,
                    referenced_beam_numbers=())


def _ring(cx, cy, rx, ry, n=40, phase=0.0):
    t = 2 * np.pi * np.arange(n) / n + phase
    return np.column_stack([cx + rx * np.cos(t), cy + ry * np.sin(t)])


def _structure(planes) -> Structure:
    return Structure(roi_number=1, name="S", interpreted_type="ORGAN",
                     planes=tuple((float(z), tuple(p)) for z, p in planes),
                     points=np.empty((0, 3)))


def _ellipsoid(c, r, zs, hole=False):
    cx, cy, cz = c
    out = []
    for k, z in enumerate(zs):
        u = 1 - ((z - cz) / r[2]) ** 2
        if u <= 0.01:
            continue
        s = math.sqrt(u)
        polys = [_ring(cx, cy, r[0] * s, r[1] * s, phase=0.1 * k)]
        if hole and s > 0.6:  # an inner contour (even-odd hole)
            polys.append(_ring(cx + 1.0, cy, 0.3 * r[0] * s, 0.3 * r[1] * s))
        out.append((z, polys))
    return out


def _record(monkeypatch, calls):
    add0, points0 = _Accumulator.add, _Accumulator.points

    def add(self, mean, width, weight):
        calls.append(("add", mean.tobytes(), width.tobytes(), weight.tobytes()))
        add0(self, mean, width, weight)

    def points(self, lo, hi):
        calls.append(("points", float(lo).hex(), float(hi).hex()))
        points0(self, lo, hi)

    monkeypatch.setattr(_Accumulator, "add", add)
    monkeypatch.setattr(_Accumulator, "points", points)


def _both_paths(monkeypatch, structure, grid, m, **kw):
    st_ = Settings(max_subdivision=m, samples_per_size=1e5, samples_per_size_large=1e5,
                   **kw)
    out = []
    real_load = _native.load
    for native in ("0", "1"):
        # only _cpartial on or off: the other kernels (the compiled deposit of whole
        # voxels bypasses _Accumulator.add) run the same way in both
        monkeypatch.delenv("RTQA_NATIVE", raising=False)
        calls: list = []
        with monkeypatch.context() as mp:
            if native == "0":
                mp.setattr(_native, "load", lambda name: None if name == "rtqa.dvh._cpartial"
                           else real_load(name))
            _record(mp, calls)
            d = compute_dvh(structure, grid, settings=st_)
        out.append((calls, d))
    (ca, da), (cb, db) = out
    assert len(ca) == len(cb)
    for x, y in zip(ca, cb):
        assert x == y
    for f in ("edges_gy", "cum_cc"):
        assert getattr(da, f).tobytes() == getattr(db, f).tobytes()
    for f in ("volume_cc", "min_gy", "max_gy", "mean_gy", "outside_cc"):
        assert float(getattr(da, f)).hex() == float(getattr(db, f)).hex()
    return ca


@pytest.mark.parametrize("m", [3, 5, 9, 15, 17, 33])
def test_structures_give_the_same_accumulator_calls(cp, monkeypatch, m):
    grid = _grid(seed=m)
    zs = np.arange(-14.0, 16.0, 2.0)
    s = _structure(_ellipsoid((2.3, -1.1, 0.7), (9.0, 7.0, 12.0), zs, hole=True))
    calls = _both_paths(monkeypatch, s, grid, m)
    # band and cell elements at least (whole voxels deposit in C, not through add)
    assert sum(c[0] == "add" for c in calls) >= 2


@pytest.mark.parametrize("chunk", [1, 37, 1000])
def test_chunks_resume_inside_a_band_piece(cp, monkeypatch, chunk):
    """Small chunks: band pieces cut into several bins split across chunks (the compiled
    walk resumes inside a piece), with the same chunks as the numpy path."""
    import rtqa.dvh.elements as E
    import rtqa.dvh.engine as G
    monkeypatch.setattr(E, "CHUNK", chunk)
    monkeypatch.setattr(G, "CHUNK", chunk)
    grid = _grid(seed=3, z=np.arange(20) * 1.0 - 8.0)  # frames 1 mm apart: pieces span bins
    zs = np.arange(-6.0, 8.0, 3.0)
    s = _structure(_ellipsoid((0.4, 0.2, 0.3), (5.0, 4.0, 7.0), zs))
    calls = _both_paths(monkeypatch, s, grid, 3)
    assert sum(c[0] == "add" for c in calls) >= (2 if chunk == 1000 else 10)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.sampled_from([3, 5, 7, 11]),
       uneven=st.booleans(), caps=st.sampled_from(["half", "none"]),
       interpolate=st.booleans(), gap=st.booleans())
def test_random_structures_give_the_same_accumulator_calls(seed, m, uneven, caps,
                                                           interpolate, gap):
    c = _native.load("rtqa.dvh._cpartial") if _native.enabled() else None
    if c is None:
        pytest.skip("rtqa.dvh._cpartial not built")
    rng = np.random.default_rng(seed)
    z = np.arange(14) * 3.0 - 20.0
    if uneven:
        z = np.cumsum(np.r_[-20.0, rng.uniform(1.5, 4.0, 13)])
    grid = _grid(seed=seed, z=z)
    # a structure partly outside the grid in-plane and in z (planes off the frames)
    c0 = (rng.uniform(-30, 30), rng.uniform(-30, 25), rng.uniform(-25, 15))
    r = (rng.uniform(2, 12), rng.uniform(2, 12), rng.uniform(3, 14))
    zs = np.arange(-40.0, 40.0, rng.choice([1.0, 2.0, 2.5, 3.0])) + rng.uniform(0, 1)
    planes = _ellipsoid(c0, r, zs, hole=bool(seed % 2))
    if gap and len(planes) > 4:  # two runs
        del planes[len(planes) // 2:len(planes) // 2 + 2]
    if not planes:
        return
    with pytest.MonkeyPatch.context() as mp:
        try:
            _both_paths(mp, _structure(planes), grid, m, end_caps=caps,
                        interpolate=interpolate)
        except Exception as e:  # (outside the grid: both paths raise the same error)
            if "outside the dose grid" not in str(e):
                raise


# -- kernels one by one -------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(m=st.sampled_from([3, 5, 15, 31, 33, 63]), n=st.integers(0, 40),
       seed=st.integers(0, 1000))
def test_bits_match_numpy(m, n, seed):
    c = _native.load("rtqa.dvh._cpartial") if _native.enabled() else None
    if c is None:
        pytest.skip("rtqa.dvh._cpartial not built")
    rng = np.random.default_rng(seed)
    dt = code_dtype(m)
    n_items = n + 3
    A = (rng.integers(0, 1 << min(m, 62), size=(n_items, m), dtype=np.int64)
         .astype(dt))
    B = A.copy()
    flip = rng.random((n_items, m)) < 0.5
    B[flip] = rng.integers(0, 1 << min(m, 62), size=int(flip.sum())).astype(dt)
    if m == 63 and n_items:
        A[0, 0] = np.uint64(1 << 62) | np.uint64(1)
        B[0, 0] = 0
    ik, iJ, iI = (rng.integers(0, 50, n_items) for _ in range(3))
    want = [_bits(A[:n] & ~B[:n], m), _bits(B[:n] & ~A[:n], m)]
    nl, nu = c.bits_count(A, B, n, m, A.dtype.itemsize)
    assert (nl, nu) == (want[0][0].size, want[1][0].size)
    out = [np.empty(nl + nu, dtype=np.int64) for _ in range(6)]
    c.bits_fill(A, B, n, m, A.dtype.itemsize, ik, iJ, iI, *out)
    it, r, col = (np.concatenate([w[i] for w in want]) for i in range(3))
    for got, ref in zip(out, (it, r, col, ik[it], iJ[it] * m + r, iI[it] * m + col)):
        assert got.tobytes() == ref.astype(np.int64).tobytes()
    with pytest.raises(ValueError):
        c.bits_fill(A, B, n, m, A.dtype.itemsize, ik, iJ, iI,
                    *[np.empty(nl + nu + 1, dtype=np.int64) for _ in range(6)])


@pytest.mark.parametrize("m", [3, 31, 33])
def test_bits_beyond_m_are_ignored_as_numpy_does(cp, m):
    """_bits looks at bits 0..m-1 of a row code only; so do the kernels (a bit beyond m
    would give a column >= m: another count, and a sub-sample outside the voxel)."""
    dt = code_dtype(m)
    A = np.zeros((2, m), dtype=dt)
    A[0, 1] = dt(1) << dt(m) | dt(1)
    A[1, 0] = ~dt(0)  # every bit
    B = np.zeros_like(A)
    want = [_bits(A & ~B, m), _bits(B & ~A, m)]
    nl, nu = cp.bits_count(A, B, 2, m, A.dtype.itemsize)
    assert (nl, nu) == (want[0][0].size, want[1][0].size)
    out = [np.empty(nl + nu, dtype=np.int64) for _ in range(6)]
    ik = iJ = iI = np.zeros(2, dtype=np.int64)
    cp.bits_fill(A, B, 2, m, A.dtype.itemsize, ik, iJ, iI, *out)
    assert out[2].tobytes() == want[0][2].astype(np.int64).tobytes()


def _zbins(uneven, seed=0):
    rng = np.random.default_rng(seed)
    z = np.arange(9) * 2.5 - 7.0
    if uneven:
        z = np.cumsum(np.r_[-7.0, rng.uniform(1.0, 4.0, 8)])
    return _ZBins(z)


@pytest.mark.parametrize("uneven", [False, True])
def test_slot_table_matches_the_offset_loop(cp, uneven):
    zb = _zbins(uneven, 3)
    rng = np.random.default_rng(5)
    n = 200
    ca = rng.uniform(zb.lo, zb.hi, n)
    cb = np.minimum(ca + rng.choice([0.0, 0.3, 2.0, 6.0], n), zb.hi)
    ca[:5] = zb.z[1:6]  # on frames
    cb[5:10] = zb.z[2:7]
    ca[10], cb[10] = zb.lo, zb.hi
    ing = (cb > ca) & (rng.random(n) < 0.9)
    fa = zb.right(ca)
    nb = np.where(ing, zb.left(cb) - fa + 1, 0)
    nbmax = int(nb.max())
    wsc = rng.uniform(0.5, 2.0, n)
    mom = rng.random((n, 4, 6))
    mom[:7, 1] = 0.0
    # the numpy loop of _partial_voxels
    C = np.zeros((3, n, nbmax))
    S0 = np.empty((n, 4, nbmax))
    A = mom[:, :, 0]
    for o in range(nbmax):
        live = nb > o
        f = np.minimum(fa + o, zb.n - 1)
        a = np.maximum(ca, zb.edges[f])
        b = np.minimum(cb, zb.edges[f + 1])
        c0, c1, c2, _, _ = zb.moments(f, a, np.maximum(a, b))
        for i, c in enumerate((c0, c1, c2)):
            C[i, :, o] = np.where(live, c, 0.0) * wsc
        S0[:, :, o] = A * C[0, :, o][:, None]
    Cz, S = np.empty((3, n, nbmax)), np.empty(n * 4 * nbmax)
    cp.slot_table(ca, cb, fa, nb, wsc, mom, zb.z, zb.edges, Cz, S)
    assert Cz.tobytes() == C.tobytes()
    assert S.tobytes() == S0.reshape(-1).tobytes()


@pytest.mark.parametrize("uneven", [False, True])
def test_items_prep_matches_numpy(cp, uneven):
    zb = _zbins(uneven, 7)
    rng = np.random.default_rng(2)
    n = 400
    za = rng.uniform(zb.lo - 5, zb.hi + 5, n)
    zbb = za + rng.choice([0.0, 0.5, 3.0, 9.0, -1.0], n)
    za[:9] = zb.z
    zbb[9:18] = zb.z
    za[18:26] = zb.z[:8] + np.array([1e-10, -1e-10, 2e-9, -2e-9] * 2)
    iJ, iI = rng.integers(-3, 12, n), rng.integers(-3, 12, n)
    j0, j1, i0, i1 = 0, 9, 1, 7
    out = [np.empty(n), np.empty(n), np.empty(n, dtype=bool), np.empty(n, dtype=np.int64),
           np.empty(n, dtype=np.int64)]
    nbmax = cp.items_prep(za, zbb, iJ, iI, j0, j1, i0, i1, float(zb.lo), float(zb.hi),
                          zb.z, zb.uniform, zb.dz0, *out)
    ing = (iJ >= j0) & (iJ < j1) & (iI >= i0) & (iI < i1)
    ca, cb = np.clip(za, zb.lo, zb.hi), np.clip(zbb, zb.lo, zb.hi)
    ing &= cb > ca
    fa = zb.right(ca)
    nb = np.where(ing, zb.left(cb) - fa + 1, 0)
    for got, want in zip(out, (ca, cb, ing, fa, nb)):
        assert got.tobytes() == want.tobytes()
    assert nbmax == int(nb.max(initial=0)) > 1
    za[5] = np.nan
    assert cp.items_prep(za, zbb, iJ, iI, j0, j1, i0, i1, float(zb.lo), float(zb.hi),
                         zb.z, zb.uniform, zb.dz0, *out) == -1


@pytest.mark.parametrize("uneven", [False, True])
def test_band_prep_bins_match_zbins(cp, uneven):
    zb = _zbins(uneven, 4)
    rng = np.random.default_rng(11)
    n = 300
    zs = np.arange(6) * 2.0 - 6.0  # contour planes
    scale = rng.uniform(0.8, 1.2, zs.size)
    n_items = 40
    ik = rng.integers(0, zs.size, n_items)
    ing = rng.random(n_items) < 0.8
    it = rng.integers(0, n_items, n)
    nl = 170
    zc = rng.uniform(-12.0, 22.0, n)
    # crossings on and next to frames (the 1e-9 tolerance), NaN (no crossing)
    zc[:8] = zb.z[np.arange(8) % zb.z.size]
    zc[8:16] = zb.z[np.arange(8) % zb.z.size] + np.array([1e-10, -1e-10, 2e-9, -2e-9] * 2)
    zc[16] = np.nan
    zc[nl:nl + 8] = zb.z[np.arange(8) % zb.z.size]
    m = 5
    br, bc = rng.integers(0, m, n), rng.integers(0, m, n)
    sxsy = 0.25
    out = [np.empty(n) for _ in range(4)] + [np.empty(n, dtype=np.int64) for _ in range(2)]
    parts, all_one, n_cen = cp.band_prep(zc, nl, it, br, bc, ik, ing, m, zs, scale, sxsy,
                                         float(zb.lo), float(zb.hi), zb.z, zb.uniform,
                                         zb.dz0, *out)
    d, a, b, pw, f0, nps = out
    # the numpy formulas
    lower = np.arange(n) < nl
    kb = ik[it]
    ku = np.minimum(kb + 1, zs.size - 1)
    pza = np.where(lower, zs[kb], zc)
    pzb = np.where(lower, zc, zs[ku])
    pw_ = np.where(lower, scale[kb], scale[ku]) * sxsy
    with np.errstate(invalid="ignore"):
        assert d.tobytes() == ((pzb - pza) * pw_).tobytes()
    assert pw.tobytes() == pw_.tobytes()
    a_, b_ = np.clip(pza, zb.lo, zb.hi), np.clip(pzb, zb.lo, zb.hi)
    assert a.tobytes() == a_.tobytes() and b.tobytes() == b_.tobytes()
    keep = np.flatnonzero(ing[it] & (b_ > a_))
    k = np.maximum(zb.left(b_[keep]) - zb.right(a_[keep]) + 1, 0)
    assert nps[keep].tolist() == k.tolist()
    assert f0[keep].tolist() == zb.right(a_[keep]).tolist()
    assert np.all(nps[np.setdiff1d(np.arange(n), keep)] == -1)
    assert parts == k.sum() and all_one == bool(np.all(k == 1))
    cen = (br[keep] == 2) & (bc[keep] == 2)
    assert n_cen == k[cen].sum()


def _cells_case(seed, n_items=60, nbmax=2):
    rng = np.random.default_rng(seed)
    grid = _grid(nx=9, ny=7, z=np.arange(6) * 2.0, seed=seed)
    from rtqa.dvh.tables import _Tables
    tab = _Tables(grid)
    fa = rng.integers(0, tab.nz - nbmax, n_items)
    # nodes on and next to the grid border (clipped cells)
    iJ, iI = rng.integers(-1, tab.ny + 1, n_items), rng.integers(-1, tab.nx + 1, n_items)
    mom = rng.random((n_items, 4, 6))
    C = rng.random((3, n_items, nbmax)) * 2.0
    C[:, rng.random(n_items) < 0.2, -1] = 0.0
    S0 = (mom[:, :, 0][:, :, None] * C[0][:, None, :]).reshape(-1)
    S0[rng.random(S0.size) < 0.1] = 0.0
    return tab, fa, iJ, iI, mom, C, S0


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("m", [3, 7])
def test_cell_chunk_matches_cell_elements(cp, seed, m):
    tab, fa, iJ, iI, mom, C, S0 = _cells_case(seed)
    nbmax = C.shape[2]
    J0, I0 = 0, 0
    sl = np.flatnonzero(S0 > 0)
    for part in (sl, sl[:1], sl[3:40]):
        o = part % nbmax
        qd = (part // nbmax) % 4
        itm = part // (4 * nbmax)
        coef = _trilinear_cells(tab, fa[itm] + o, iJ[itm] + J0, iI[itm] + I0, qd & 1,
                                qd >> 1)
        want = []

        class Acc:
            def add(self, mean, width, w):
                want.append((mean.tobytes(), width.tobytes(), w.tobytes()))

        _cell_elements(Acc(), m, coef, _slot_moments(part, nbmax, mom, C, S0))
        mean, width, w = (np.empty(part.size) for _ in range(3))
        cp.cell_chunk(tab.flat, tab.nx, tab.ny, fa, iJ, iI, J0, I0, nbmax,
                      1.0 / (12.0 * m * m), part, mom, C, S0, mean, width, w)
        assert want == [(mean.tobytes(), width.tobytes(), w.tobytes())]


def test_kernels_refuse_wrong_sizes_and_indices(cp):
    tab, fa, iJ, iI, mom, C, S0 = _cells_case(0)
    nbmax = C.shape[2]
    part = np.flatnonzero(S0 > 0)[:10]
    mean, width, w = (np.empty(part.size) for _ in range(3))
    args = (tab.flat, tab.nx, tab.ny, fa, iJ, iI, 0, 0, nbmax, 0.01)
    with pytest.raises(ValueError):
        cp.cell_chunk(*args, part, mom, C, S0, mean[:-1], width, w)
    with pytest.raises(IndexError):
        bad = part.copy()
        bad[3] = S0.size * 10
        cp.cell_chunk(*args, bad, mom, C, S0, mean, width, w)
    with pytest.raises(IndexError):  # a frame beyond the grid
        cp.cell_chunk(tab.flat, tab.nx, tab.ny, fa + tab.nz, iJ, iI, 0, 0, nbmax, 0.01,
                      part, mom, C, S0, mean, width, w)
    for far in (2**62, 2**62 + 1):  # f nxy wraps to a small offset: refused, not read
        with pytest.raises(IndexError):
            cp.cell_chunk(tab.flat, 2, 2, fa * 0 + far, iJ, iI, 0, 0, nbmax, 0.01,
                          part, mom, C, S0, mean, width, w)
    with pytest.raises(ValueError):
        cp.slot_table(np.zeros(3), np.zeros(3), np.zeros(3, np.int64),
                      np.zeros(3, np.int64), np.zeros(3), np.zeros((3, 4, 6)),
                      np.arange(4.0), np.arange(4.0), np.empty((3, 3, 2)),
                      np.empty(3 * 4 * 2 + 1))


def test_kernels_take_empty_inputs(cp):
    f8, i8 = (lambda n: np.empty(n)), (lambda n: np.empty(n, dtype=np.int64))
    zb = _zbins(False)
    e8, ei = f8(0), i8(0)
    assert cp.items_prep(e8, e8, ei, ei, 0, 5, 0, 5, float(zb.lo), float(zb.hi), zb.z,
                         True, zb.dz0, e8, e8, np.empty(0, dtype=bool), ei, ei) == 0
    codes = np.empty((0, 5), dtype=np.uint32)
    assert cp.bits_count(codes, codes, 0, 5, 4) == (0, 0)
    cp.bits_fill(codes, codes, 0, 5, 4, ei, ei, ei, *[i8(0) for _ in range(6)])
    assert cp.band_prep(e8, 0, ei, ei, ei, ei, np.empty(0, dtype=bool), 5, np.zeros(3),
                        np.ones(3), 0.25, float(zb.lo), float(zb.hi), zb.z, True, zb.dz0,
                        e8, e8, e8, e8, ei, ei) == (0, 1, 0)
    cp.slot_table(e8, e8, ei, ei, e8, np.empty((0, 4, 6)), zb.z, zb.edges,
                  np.empty((3, 0, 1)), e8)
    assert cp.cen_count(codes, 5, 4, np.empty(0, dtype=bool), ei) == (0, 1, 0)
    tab, fa, iJ, iI, mom, C, S0 = _cells_case(0)
    cp.cell_chunk(tab.flat, tab.nx, tab.ny, fa, iJ, iI, 0, 0, C.shape[2], 0.01, ei, mom, C,
                  S0, e8, e8, e8)
