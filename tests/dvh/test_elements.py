"""Whole-voxel dose elements (rtqa.dvh.elements._voxel_elements, _coded_voxel_elements):
the compiled pass (rtqa.dvh._cdeposit.voxels: the elements and their deposit at once)
leaves the accumulator in the same state, bit for bit, as the numpy chunks (nodes,
total, moment, Min/Max from the node doses, deferred elements, the finished DVH), with
whole or windowed grid tables, direct or coded element data, across chunks."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtqa import _native
from rtqa.dvh import elements as EL
from rtqa.dvh import tables as T
from rtqa.dvh.accumulator import _KERNEL, _Accumulator


def _state(acc, edges, cum):
    return [acc.acc.tobytes(), edges.tobytes(), cum.tobytes(),
            np.array([acc.total, acc.moment, acc.dmin, acc.dmax, acc.hi_max]).tobytes()]


def _case(seed: int, nz: int, ny: int, nx: int, n: int, coded: bool, spiky: bool):
    """A dose grid and n whole-voxel elements on it (flat grid indices of frames 0..nz-2;
    the element data direct or as records)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    dose = 20.0 + 15.0 * np.sin(x / 3.0) * np.cos(y / 4.0) + 0.7 * z
    if spiky:  # steep gradients, exact zeros, node-multiple doses
        dose = np.where(rng.random(dose.shape) < 0.2, 0.0, dose)
        dose[rng.random(dose.shape) < 0.2] = rng.integers(0, 4000, 1)[0] * 0.01
    grid = SimpleNamespace(dose=dose, z=np.arange(nz) * 2.5)
    g = rng.integers(0, (nz - 1) * ny * nx, n).astype(np.int64)
    if rng.random() < 0.5:
        g.sort()  # (the engine's order: frames ascending)
    if coded:
        nrec = 24
        rec = np.empty(nrec, dtype=EL._REC)
        rec["w"] = rng.uniform(0.0, 0.02, nrec)
        rec["tm"] = rng.uniform(0.0, 1.0, nrec)
        rec["vt"] = rng.uniform(0.0, 1 / 12, nrec)
        tlo = rng.uniform(0.0, 0.5, nrec).astype(np.float32)
        thi = (tlo + rng.uniform(0.0, 0.5, nrec)).astype(np.float32)
        data = (rec, rng.integers(0, nrec, n).astype(np.int64), tlo, thi)
    else:
        tlo = rng.uniform(0.0, 0.5, n)
        thi = tlo + rng.uniform(0.0, 0.5, n)
        data = (rng.uniform(0.0, 0.02, n), 0.5 * (tlo + thi),
                rng.uniform(0.0, 1 / 12, n), tlo, thi)
    return grid, g, data


def _ring(tab, g, seed: int, kind: str):
    """A frame ring over the bounding box of g's nodes: spans that cover every node of
    frames f and f + 1 (``cover``, widened at random) or miss some (``partial``: those
    chunks are left to the tables)."""
    rng = np.random.default_rng(seed)
    f, rem = np.divmod(g, tab.nxy)
    j, i = np.divmod(rem, tab.nx)
    win = (int(j.min()), int(j.max()) + 1, int(i.min()), int(i.max()) + 1)
    nj, w = win[1] - win[0], win[3] - win[2]
    lo = np.full((tab.nz, nj), w, dtype=np.int32)
    hi = np.zeros((tab.nz, nj), dtype=np.int32)
    for ff in (f, f + 1):
        np.minimum.at(lo, (ff, j - win[0]), i - win[2])
        np.maximum.at(hi, (ff, j - win[0]), i - win[2] + 1)
    lo = np.maximum(lo - rng.integers(0, 3, lo.shape), 0)
    hi = np.minimum(hi + rng.integers(0, 3, hi.shape), w)
    if kind == "partial":
        hi[rng.random(hi.shape) < 0.3] = 0
    return T._FrameRing(tab, win, lo, hi, int(rng.integers(2, 9)))


def _run(monkeypatch, native: bool, grid, g, data, coded: bool, windowed: bool,
         points=None, ring=None, seed=0):
    if native:
        monkeypatch.delenv("RTQA_NATIVE", raising=False)
    else:
        monkeypatch.setenv("RTQA_NATIVE", "0")
    if windowed:  # (large grids: tables per window and block of frames)
        tab = T._Tables(grid, budget_bytes=1, whole_bytes=0)
        tab.use_window(0, tab.ny, 0, tab.nx)
    else:
        tab = T._Tables(grid)
    acc = _Accumulator(tab.max)
    if points == "grid":  # Min and Max already the grid's
        acc.points(0.0, tab.max)
    elif points == "narrow":  # most node doses outside: Min/Max widened by the elements
        acc.points(0.4 * tab.max, 0.5 * tab.max)
    if coded:
        EL._coded_voxel_elements(tab, acc, g, *data,
                                 _ring(tab, g, seed, ring) if ring and g.size else None)
    else:
        EL._voxel_elements(tab, acc, g, *data)
    deferred = [a.tobytes() for part in acc.deferred for a in part]
    return _state(acc, *acc.finish()) + deferred


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), nz=st.integers(2, 6), ny=st.integers(2, 9),
       nx=st.integers(2, 9), n=st.integers(1, 300), coded=st.booleans(),
       spiky=st.booleans(), windowed=st.booleans(), chunk=st.sampled_from([1, 7, 64, 32768]),
       points=st.sampled_from([None, "grid", "narrow"]))
def test_voxel_elements_same_as_numpy(monkeypatch, seed, nz, ny, nx, n, coded, spiky,
                                      windowed, chunk, points):
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    if _native.load(_KERNEL) is None:
        pytest.skip("compiled kernel rtqa.dvh._cdeposit not built")
    monkeypatch.setattr(EL, "CHUNK", chunk)
    grid, g, data = _case(seed, nz, ny, nx, n, coded, spiky)
    args = (grid, g, data, coded, windowed, points)
    assert _run(monkeypatch, True, *args) == _run(monkeypatch, False, *args)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), nz=st.integers(2, 6), ny=st.integers(2, 9),
       nx=st.integers(2, 9), n=st.integers(1, 300), spiky=st.booleans(),
       chunk=st.sampled_from([1, 7, 64, 32768]), ring=st.sampled_from(["cover", "partial"]),
       points=st.sampled_from([None, "grid", "narrow"]))
def test_voxel_elements_with_a_frame_ring_same_as_numpy(monkeypatch, seed, nz, ny, nx, n,
                                                        spiky, chunk, ring, points):
    """The pairs computed by the kernel in its frame ring (windowed grids, coded
    elements: the engine's whole voxels; 2 to 8 slots), in frame order or not, nodes
    outside the ring's spans left to the tables: the numpy code's state, bit for bit."""
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    if _native.load(_KERNEL) is None or _native.load(T._KERNEL) is None:
        pytest.skip("compiled kernels not built")
    monkeypatch.setattr(EL, "CHUNK", chunk)
    grid, g, data = _case(seed, nz, ny, nx, n, True, spiky)
    args = (grid, g, data, True, True, points)
    assert _run(monkeypatch, True, *args, ring=ring, seed=seed) == \
        _run(monkeypatch, False, *args)


def test_frame_ring_is_used(monkeypatch):
    """Frame order, spans covering every node: every chunk takes the ring (the windowed
    tables are never read) and computes each frame once."""
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    if _native.load(_KERNEL) is None or _native.load(T._KERNEL) is None:
        pytest.skip("compiled kernels not built")
    monkeypatch.setattr(EL, "CHUNK", 50)
    grid, g, data = _case(3, 6, 9, 8, 400, True, False)
    g.sort()
    tab = T._Tables(grid, budget_bytes=1, whole_bytes=0)
    ring = _ring(tab, g, 3, "cover")
    monkeypatch.setattr(T._Tables, "pairs_at", lambda *a: pytest.fail("tables read"))
    acc = _Accumulator(tab.max)
    EL._coded_voxel_elements(tab, acc, g, *data, ring)
    assert ring.tag.max() == g.max() // tab.nxy + 1


@pytest.mark.parametrize("coded", [False, True])
def test_index_beyond_the_grid_raises_as_numpy(monkeypatch, coded):
    """A flat index whose next frame is beyond the grid: numpy's IndexError either way
    (the kernel declines, the numpy chunk raises)."""
    grid, g, data = _case(1, 3, 4, 5, 10, coded, False)
    g[3] = grid.dose.size - 1
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    if _native.load(_KERNEL) is None:
        pytest.skip("compiled kernel rtqa.dvh._cdeposit not built")
    for native in (True, False):
        with pytest.raises(IndexError):
            _run(monkeypatch, native, grid, g, data, coded, False)


@pytest.mark.parametrize("windowed", [False, True])
def test_sample_plan_dvhs_same_either_path(monkeypatch, sample_dir, windowed):
    """Every DVH of a sample plan, either path: the same arrays (with the grid's tables
    whole, or per structure window as for large grids: the whole voxels' frame ring)."""
    from rtqa.dvh import compute_dvh
    from rtqa.reading import load_export
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    if _native.load(_KERNEL) is None:
        pytest.skip("compiled kernel rtqa.dvh._cdeposit not built")
    if windowed:
        monkeypatch.setattr(T, "WHOLE_TABLE_BYTES", 0)
    ex = load_export([sample_dir / "hcc_pass"])
    grid = ex.courses[0].grid
    structures = [s for s in ex.structure_sets[0].structures if s.has_volume]
    out = {}
    for native in (True, False):
        if native:
            monkeypatch.delenv("RTQA_NATIVE", raising=False)
        else:
            monkeypatch.setenv("RTQA_NATIVE", "0")
        T._TABLES.clear()
        out[native] = [compute_dvh(s, grid) for s in structures]
    assert structures
    for a, b in zip(out[True], out[False]):
        for name in ("edges_gy", "cum_cc"):
            assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
        for name in ("volume_cc", "min_gy", "max_gy", "mean_gy", "outside_cc"):
            assert np.float64(getattr(a, name)).tobytes() == \
                np.float64(getattr(b, name)).tobytes(), name


@pytest.mark.parametrize("g, nxy", [(2**62, 2**62), (5, 2**63 - 3), (5, -6), (9, 1)])
def test_voxels_kernel_refuses_frame_offsets_outside_the_dose(g, nxy):
    """The compiled whole-voxel kernel bounds g and g + nxy without forming a sum that
    can overflow (undefined in C): None, acc unchanged (the numpy code then raises)."""
    c = _native.load(_KERNEL) if _native.enabled() else None
    if c is None:
        pytest.skip("compiled kernel not built")
    n = 20
    acc, work = np.zeros(n), np.zeros(4 * n + 8)
    flat, pair = np.ones(10), np.zeros(10, np.complex64)
    one = np.ones(1)
    r = c.voxels(acc, work, flat, pair, np.empty(0, np.complex64), np.array([g], np.int64),
                 nxy, one, one * 0.5, one * 0.1, one * 0.0, one, np.empty(0, np.int64), 0.0,
                 1.0, 0.01)
    assert r is None
    assert not acc.any() and not work.any()
