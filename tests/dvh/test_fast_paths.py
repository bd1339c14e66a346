"""The faster formulations of issue 16 (whole voxels, raster, tables, surface extremes)
give the same values, bit for bit, as the formulas they replace (kept here as the
reference)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rtqa.dvh.tables as T
from rtqa.dvh.accumulator import _Accumulator
from rtqa.dvh.elements import _REC, _coded_voxel_elements, _voxel_elements
from rtqa.dvh.extremes import _surface_extremes
from rtqa.dvh.geometry import (Edges, Lattice, RowTable, _touched, row_counts, row_crossings,
                               slabs_for)
from rtqa.dvh.interpolation import _bilinear_parts, _in_grid_xy


def _grid(dose, spacing=(2.5, 2.5, 3.0)):
    nz, ny, nx = dose.shape
    sx, sy, sz = spacing
    return SimpleNamespace(x=np.arange(nx) * sx - 7.0, y=np.arange(ny) * sy - 4.0,
                           z=np.arange(nz) * sz - 2.0, dose=dose)


# -- tables: the former strided axis-view formulation ------------------------------------
def _voxel_mean_sd_axes(d, delta, sd):
    f32 = np.float32

    def second(a, axis, dtype=None):
        a = np.moveaxis(a, axis, -1)
        g = np.diff(a, axis=-1)
        out = np.empty_like(a, dtype=dtype or a.dtype)
        out[..., 0] = g[..., 0]
        np.subtract(g[..., 1:], g[..., :-1], out=out[..., 1:-1])
        out[..., -1] = -g[..., -1]
        return np.moveaxis(out, -1, axis)

    def add_var(var, a, axis):
        a = np.moveaxis(a, axis, -1)
        v = np.moveaxis(var, axis, -1)
        g = np.diff(a, axis=-1)
        g2 = g * g
        v[..., 1:] += g2
        v[..., :-1] += g2
        g2 = np.multiply(g[..., :-1], g[..., 1:], out=g2[..., 1:])
        g2 *= f32(1.2)
        v[..., 1:-1] += g2

    dx2 = second(d, 2, f32)
    dy2 = second(d, 1, f32)
    off = second(dy2, 2)
    off *= f32(1.0 / 64.0)
    off += (dx2 + dy2) * f32(0.125)
    delta[...] = off
    var = np.zeros(d.shape, dtype=f32)
    d32 = d.astype(f32)
    prof = dy2.copy()
    prof *= f32(0.125)
    prof += d32
    add_var(var, prof, 2)
    prof = dx2
    prof *= f32(0.125)
    prof += d32
    add_var(var, prof, 1)
    var *= f32(5.0 / 192.0)
    np.maximum(var, 0, out=var)
    np.sqrt(var, out=sd)


@settings(max_examples=40, deadline=None)
@given(shape=st.tuples(st.integers(1, 4), st.integers(2, 9), st.integers(2, 9)),
       seed=st.integers(0, 2**31), kind=st.sampled_from(["smooth", "rough", "flat"]))
def test_voxel_mean_sd_flat_matches_the_axis_views(shape, seed, kind):
    rng = np.random.default_rng(seed)
    if kind == "flat":
        d = np.full(shape, 7.25)
    elif kind == "rough":
        d = rng.uniform(0.0, 70.0, shape)
    else:
        z, y, x = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
        d = 40.0 * np.exp(-((x - 3.3) ** 2 + (y - 2.1) ** 2) / 9.0) + 0.1 * z
    want = np.empty(shape + (2,), np.float32)
    got = np.empty(shape + (2,), np.float32)
    _voxel_mean_sd_axes(d, want[..., 0], want[..., 1])
    T._voxel_mean_sd(d, got[..., 0], got[..., 1])
    assert got.tobytes() == want.tobytes()
    # a window of a larger grid (not contiguous)
    view = np.pad(d, ((0, 0), (1, 1), (1, 1)), mode="edge")[:, 1:-1, 1:-1]
    assert not view.flags.c_contiguous
    T._voxel_mean_sd(view, got[..., 0], got[..., 1])
    assert got.tobytes() == want.tobytes()


# -- raster: touched voxels and the row table ---------------------------------------------
def _touched_3d(e, K, x0, y0, dx, dy, NI, NJ):
    ex, ey = e.x1 - e.x0, e.y1 - e.y0
    n = np.maximum(np.ceil(np.hypot(ex, ey) / (0.5 * min(dx, dy))).astype(np.int64), 1)
    i = np.repeat(np.arange(e.x0.size), n)
    t0 = (np.arange(i.size) - np.repeat(np.cumsum(n) - n, n)) / n[i]
    t1 = t0 + 1.0 / n[i]
    out = np.zeros((K, NJ, NI), dtype=bool)
    bx, by, ex, ey = e.x0[i] - x0, e.y0[i] - y0, ex[i], ey[i]
    fx0 = np.floor((bx + t0 * ex) / dx + 0.5).astype(np.int64)
    fx1 = np.floor((bx + t1 * ex) / dx + 0.5).astype(np.int64)
    fy0 = np.floor((by + t0 * ey) / dy + 0.5).astype(np.int64)
    fy1 = np.floor((by + t1 * ey) / dy + 0.5).astype(np.int64)
    k = e.plane[i]
    for ii in (fx0, fx1):
        for jj in (fy0, fy1):
            out[k, np.clip(jj, 0, NJ - 1), np.clip(ii, 0, NI - 1)] = True
    return out


def _polys(rng, K, n, r=9.0):
    """K planes of a wobbly ring (n vertices) and, on some planes, a hole."""
    planes = []
    for k in range(K):
        a = np.sort(rng.uniform(0, 2 * np.pi, n))
        rr = r * (1 + 0.3 * rng.random(n))
        outer = np.stack([3 + rr * np.cos(a), -2 + rr * np.sin(a)], axis=1)
        polys = [outer]
        if k % 3 == 1:
            b = np.linspace(0, 2 * np.pi, 7, endpoint=False)
            polys.append(np.stack([3 + 2 * np.cos(b), -2 + 2 * np.sin(b)], axis=1))
        planes.append(tuple(polys))
    return planes


@pytest.mark.parametrize("n", [5, 40, 400])
def test_touched_flat_matches_the_3d_scatter(n):
    rng = np.random.default_rng(n)
    planes = _polys(rng, 6, n)
    e = Edges.of(planes)
    for dx, dy, x0, y0, NI, NJ in ((2.5, 2.5, -10.0, -14.0, 12, 11), (1.0, 0.7, -4.0, -6.0, 9, 8)):
        want = _touched_3d(e, 6, x0, y0, dx, dy, NI, NJ)
        got = _touched(e, 6, x0, y0, dx, dy, NI, NJ)
        assert got.shape == want.shape and np.array_equal(got, want)


def test_row_table_holds_every_crossing_of_each_row():
    rng = np.random.default_rng(3)
    planes = _polys(rng, 5, 60)
    e = Edges.of(planes)
    lat = Lattice(-9.0, -13.0, 0.5, 0.5, 44, 48)
    rt = RowTable.of(e, 5, lat)
    rid, xc = row_crossings([], lat, sort=False, edges=e)
    n_rows = 5 * lat.ny
    assert rt.pos.shape == (rt.width, n_rows)
    col = np.clip(np.ceil((xc - lat.x0) / lat.sx), 0, lat.nx)
    for r in range(n_rows):
        have = rt.pos[:, r]
        mine = np.sort(xc[rid == r])
        assert np.array_equal(np.sort(have[np.isfinite(have)]), mine)
        assert np.array_equal(np.sort(rt.col[:, r][rt.col[:, r] < np.iinfo(np.int32).max]),
                              np.sort(col[rid == r]).astype(np.int64))


def test_row_counts():
    a = np.random.default_rng(1).random((7, 33)) < 0.4
    assert np.array_equal(row_counts(a), np.count_nonzero(a, axis=1))
    assert row_counts(a[:0]).shape == (0,)


# -- surface extremes: the former per-offset selections -----------------------------------
def _surface_extremes_select(e, slabs, grid, tab):
    zb = tab.bins
    lo, hi = math.inf, -math.inf
    a = np.maximum(slabs.lo, zb.lo)
    b = np.minimum(slabs.hi, zb.hi)
    live = b >= a
    if not np.any(live):
        return lo, hi
    keep = np.flatnonzero(_in_grid_xy(grid, e.x0, e.y0) & live[e.plane])
    if not keep.size:
        return lo, hi
    i0, j0, tx, ty = _bilinear_parts(grid, e.x0[keep], e.y0[keep])
    base = j0 * tab.nx + i0
    plane_of = e.plane[keep]
    fa, fb = zb.right(a), zb.left(b)
    fb = np.maximum(fb, fa)
    ta = np.clip((a - zb.z[fa]) / (zb.z[fa + 1] - zb.z[fa]), 0.0, 1.0)
    tb = np.clip((b - zb.z[fb]) / (zb.z[fb + 1] - zb.z[fb]), 0.0, 1.0)
    d, nx, nxy = tab.flat, tab.nx, tab.nxy
    w11 = tx * ty
    w10 = tx - w11
    w01 = ty - w11
    w00 = 1.0 - tx - w01
    f0 = fa[plane_of]
    nf = (fb - fa)[plane_of] + 2
    vals = []
    for o in range(int(nf.max())):
        sel = np.arange(keep.size) if o < 2 else np.flatnonzero(nf > o)
        g = f0[sel] * nxy + base[sel] + o * nxy
        out = w00[sel] * d[g]
        out += w10[sel] * d[g + 1]
        out += w11[sel] * d[g + 1 + nx]
        out += w01[sel] * d[g + nx]
        vals.append((sel, out))
    b0, b1 = vals[0][1], vals[1][1]
    cand = [b0 + ta[plane_of] * (b1 - b0)]
    last = nf == 2
    cand.append(b0[last] + tb[plane_of[last]] * (b1[last] - b0[last]))
    if not last.all():
        cand.append(b1[~last])
        for o in range(2, len(vals)):
            sel, v = vals[o]
            n_sel = nf[sel]
            cand.append(v[n_sel > o + 1])
            end = n_sel == o + 1
            psel, pv = vals[o - 1]
            prev = pv[np.searchsorted(psel, sel[end])]
            cand.append(prev + tb[plane_of[sel[end]]] * (v[end] - prev))
    return (min(float(c.min()) for c in cand if c.size),
            max(float(c.max()) for c in cand if c.size))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), spacing=st.sampled_from([0.7, 2.0, 3.0, 7.5]),
       caps=st.sampled_from(["half", "none"]), shift=st.floats(-30.0, 30.0))
def test_surface_extremes_match_the_per_offset_selections(seed, spacing, caps, shift):
    rng = np.random.default_rng(seed)
    dose = rng.uniform(0.0, 60.0, (9, 10, 11))
    grid = _grid(dose)
    tab = T._Tables(grid)
    K = 6
    planes = _polys(rng, K, 25, r=rng.uniform(2.0, 16.0))
    planes = [tuple(p + [shift * 0.3, 0.0] for p in pp) for pp in planes]
    e = Edges.of(planes)
    z = shift + np.cumsum(np.full(K, spacing)) + rng.uniform(-0.2, 0.2, K)
    z = np.sort(z)
    slabs = slabs_for(z, 0.0, None, caps)
    want = _surface_extremes_select(e, slabs, grid, tab)
    assert _surface_extremes(e, slabs, grid, tab) == want


# -- whole voxels: coded elements -------------------------------------------------------
def test_coded_voxel_elements_match_the_gathered_arrays():
    rng = np.random.default_rng(11)
    dose = rng.uniform(0.0, 50.0, (6, 9, 10))
    tab = T._Tables(_grid(dose))
    n = 70000  # more than one chunk
    g = np.sort(rng.integers(0, 5 * tab.nxy, n))
    n_rows = 300
    rec = np.empty(n_rows, dtype=_REC)
    rec["w"] = rng.uniform(0.0, 0.02, n_rows)
    rec["tm"] = rng.random(n_rows)
    rec["vt"] = rng.random(n_rows) / 12
    tlo = rng.random(n_rows).astype(np.float32) * 0.5
    thi = (0.5 + rng.random(n_rows) / 2).astype(np.float32)
    row = rng.integers(0, n_rows, n)
    accs = []
    for coded in (True, False):
        acc = _Accumulator(tab.max)
        acc.points(20.0, 30.0)  # some chunks widen Min/Max, some do not
        if coded:
            _coded_voxel_elements(tab, acc, g, rec, row, tlo, thi)
        else:
            r = rec[row]
            _voxel_elements(tab, acc, g, np.ascontiguousarray(r["w"]), r["tm"], r["vt"],
                            tlo[row], thi[row])
        accs.append(acc)
    a, b = accs
    assert (a.total, a.moment, a.dmin, a.dmax) == (b.total, b.moment, b.dmin, b.dmax)
    ea, ca = a.finish()
    eb, cb = b.finish()
    assert ea.tobytes() == eb.tobytes() and ca.tobytes() == cb.tobytes()
