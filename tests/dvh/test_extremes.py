"""Min and Max at the contour vertices (rtqa.dvh.extremes._surface_extremes): the compiled
vertex pass (rtqa.dvh._cextremes.surface) gives the same two values, bit for bit, as the
numpy code, on the structures of a sample plan with its dose and with random doses on
frames finer and coarser than the slabs (slabs across several frames)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rtqa import _native
from rtqa.dvh import compute as C
from rtqa.dvh import extremes as X
from rtqa.dvh import tables as T


@pytest.fixture(scope="module")
def calls(sample_dir):
    """The arguments of every _surface_extremes call of the hcc_pass DVHs."""
    from rtqa.dvh import compute_dvh
    from rtqa.reading import load_export
    ex = load_export([sample_dir / "hcc_pass"])
    grid = ex.courses[0].grid
    seen = []
    orig = C._surface_extremes
    C._surface_extremes = lambda *a: (seen.append(a), orig(*a))[1]
    try:
        for s in ex.structure_sets[0].structures:
            if s.has_volume:
                compute_dvh(s, grid)
    finally:
        C._surface_extremes = orig
    assert seen
    return seen


def _both(monkeypatch, args):
    out = []
    for env in ("1", "0"):
        monkeypatch.setenv("RTQA_NATIVE", env)
        out.append(np.array(X._surface_extremes(*args)).tobytes())
    return out


def _native_only(monkeypatch):
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    if _native.load("rtqa.dvh._cextremes") is None:
        pytest.skip("compiled kernel rtqa.dvh._cextremes not built")


def test_sample_plan_same_as_numpy(monkeypatch, calls):
    _native_only(monkeypatch)
    for args in calls:
        got, want = _both(monkeypatch, args)
        assert got == want


@pytest.mark.parametrize("frames", [2, 5, 40, 200])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_doses_and_frames_same_as_numpy(monkeypatch, calls, frames, seed):
    _native_only(monkeypatch)
    rng = np.random.default_rng(seed)
    for e, slabs, grid, _ in calls:
        z = np.linspace(grid.z[0] - 3.0, grid.z[-1] + 3.0, frames)
        dose = rng.uniform(0.0, 70.0, (frames, grid.y.size, grid.x.size))
        dose[rng.random(dose.shape) < 0.3] = 0.0
        g = SimpleNamespace(x=grid.x, y=grid.y, z=z, dose=dose)
        got, want = _both(monkeypatch, (e, slabs, g, T._Tables(g)))
        assert got == want


def test_kernel_refuses_indices_outside_the_dose(monkeypatch):
    """The compiled vertex loop reads only inside the dose array, whatever its integer
    arguments: a negative row or frame stride is refused, and a frame count whose offset
    overflows gives None (the numpy code then runs), not a wrapped index."""
    _native_only(monkeypatch)
    c = _native.load("rtqa.dvh._cextremes")
    d = np.zeros(100)
    one = np.ones(1)

    def call(g0, nf, nxy, nx):
        return c.surface(d, np.array([g0], np.int64), one, one, one, one,
                         np.array([nf], np.int64), one, one, nxy, nx)

    assert call(0, 2, 10, 5) == (0.0, 0.0)
    with pytest.raises(ValueError):
        call(50, 2, -40, 0)
    with pytest.raises(ValueError):
        call(10, 2, 10, -5)
    assert call(0, 2**62, 4, 1) is None
    assert call(2**62, 2, 4, 1) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grids_partly_off_the_structures_same_as_numpy(monkeypatch, calls, seed):
    """Vertices beyond the grid's in-plane extent and slabs beyond its frames are left
    out (the compiled pass from the vertices, rtqa.dvh._cextremes.surface_xy, decides
    that and the cells and weights itself): the same two values as numpy."""
    _native_only(monkeypatch)
    rng = np.random.default_rng(seed)
    for e, slabs, grid, _ in calls:
        nx, ny = (int(rng.integers(2, 12)) for _ in range(2))
        span_x = float(e.x0.max() - e.x0.min()) + 1.0
        span_y = float(e.y0.max() - e.y0.min()) + 1.0
        x = float(e.x0.min()) + rng.uniform(-0.3, 0.7) * span_x \
            + np.arange(nx) * rng.uniform(0.5, 4.0)
        y = float(e.y0.min()) + rng.uniform(-0.3, 0.7) * span_y \
            + np.arange(ny) * rng.uniform(0.5, 4.0)
        zlo, zhi = float(slabs.lo.min()), float(slabs.hi.max())
        z = np.sort(rng.uniform(zlo - 5.0, zhi + 5.0, int(rng.integers(2, 9))))
        z = np.unique(z) if np.unique(z).size >= 2 else np.array([zlo, zhi])
        dose = rng.uniform(0.0, 70.0, (z.size, ny, nx))
        g = SimpleNamespace(x=x, y=y, z=z, dose=dose)
        got, want = _both(monkeypatch, (e, slabs, g, T._Tables(g)))
        assert got == want


def test_surface_xy_refuses_bad_arguments(monkeypatch):
    _native_only(monkeypatch)
    c = _native.load("rtqa.dvh._cextremes")
    d = np.zeros(2 * 4 * 4)
    one, i1 = np.ones(1), np.ones(1, np.int64)
    live = np.ones(1, np.uint8)
    geo = ((0.0, 0.0, 1.0, 1.0, 4, 4), (-0.5, 3.5, -0.5, 3.5))

    def call(x, plane, nf=2, nxy=16, nx=4):
        return c.surface_xy(d, np.array([x]), np.array([1.0]), np.array([plane], np.int64),
                            live, i1 * 0, i1 * nf, one, one, *geo, nxy, nx)

    assert call(1.0, 0) == (0.0, 0.0)
    assert call(9.0, 0) == (float("inf"), float("-inf"))  # off the grid: no vertex
    assert call(1.0, 1) is None  # a plane out of range
    assert call(1.0, 0, nf=3) is None  # a frame beyond the dose
    with pytest.raises(ValueError):
        call(1.0, 0, nxy=0)
    with pytest.raises(ValueError):
        c.surface_xy(d, np.ones(2), one, i1, live, i1, i1, one, one, *geo, 16, 4)
