"""Per-grid tables of the DVH engine computed per structure window in blocks of frames
(large grids, bounded memory) hold the same values, bit for bit, as the whole-grid
tables; and the tables are the analytic voxel mean offset and spread."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rtqa.dvh import tables as T


def _grid(dose):
    return SimpleNamespace(dose=dose, z=np.arange(dose.shape[0]) * 2.0)


@settings(max_examples=40, deadline=None)
@given(nz=st.integers(2, 9), ny=st.integers(2, 12), nx=st.integers(2, 12),
       seed=st.integers(0, 2**31), data=st.data())
def test_windowed_blocks_equal_whole_tables(nz, ny, nx, seed, data):
    rng = np.random.default_rng(seed)
    dose = rng.uniform(0.0, 60.0, (nz, ny, nx))
    whole = T._Tables(_grid(dose))
    assert whole.pair is not None
    block_frames = data.draw(st.integers(1, nz))
    old = T.TABLE_BLOCK_BYTES
    T.TABLE_BLOCK_BYTES = 8 * ny * nx * block_frames
    try:
        part = T._Tables(_grid(dose), budget_bytes=1, whole_bytes=0)
        assert part.pair is None
        for _ in range(3):
            j0 = data.draw(st.integers(0, ny - 1))
            j1 = data.draw(st.integers(j0 + 1, ny))
            i0 = data.draw(st.integers(0, nx - 1))
            i1 = data.draw(st.integers(i0 + 1, nx))
            part.use_window(j0, j1, i0, i1)
            f, j, i = np.meshgrid(np.arange(nz), np.arange(j0, j1), np.arange(i0, i1),
                                  indexing="ij")
            g = ((f * ny + j) * nx + i).reshape(-1)
            g = g[rng.permutation(g.size)]
            got = part.pair_at(g).view(np.float32)
            assert np.array_equal(got, whole.pair[g].view(np.float32))
            # both frames of an element at once, in any order and in frame order
            lower = g[g < (nz - 1) * ny * nx]
            for gg in (lower, np.sort(lower)):
                a, b = part.pairs_at(gg)
                assert np.array_equal(a.view(np.float32), whole.pair[gg].view(np.float32))
                assert np.array_equal(b.view(np.float32),
                                      whole.pair[gg + ny * nx].view(np.float32))
            assert len(part._cache) <= part._cap
    finally:
        T.TABLE_BLOCK_BYTES = old


def test_tables_of_a_linear_dose_are_exact():
    """A linear dose: the voxel mean equals the node dose (offset 0); the spread is that
    of a uniform distribution over the voxel, sqrt(gx^2 + gy^2) / sqrt(12) (inner nodes)."""
    z, y, x = np.meshgrid(np.arange(4.0), np.arange(6.0), np.arange(7.0), indexing="ij")
    dose = 10.0 + 0.6 * x + 0.8 * y + 0.1 * z
    for whole_bytes in (None, 0):
        t = T._Tables(_grid(dose), budget_bytes=1, whole_bytes=whole_bytes)
        t.use_window(1, 5, 1, 6)
        g = ((np.arange(4)[:, None, None] * 6 + np.arange(1, 5)[:, None]) * 7
             + np.arange(1, 6)).reshape(-1)
        ms = t.pair_at(g).view(np.float32).reshape(-1, 2)
        assert np.allclose(ms[:, 0], 0.0, atol=1e-6)
        assert np.allclose(ms[:, 1], np.sqrt(0.6**2 + 0.8**2) / np.sqrt(12.0), rtol=1e-5)


def _second_edge(a, axis):
    p = np.pad(a, [(1, 1) if k == axis else (0, 0) for k in range(a.ndim)], mode="edge")
    n = a.shape[axis]
    take = lambda s: np.take(p, np.arange(s, s + n), axis=axis)  # noqa: E731
    return take(0) - 2 * take(1) + take(2)


@settings(max_examples=30, deadline=None)
@given(shape=st.tuples(st.integers(2, 4), st.integers(2, 9), st.integers(2, 9)),
       seed=st.integers(0, 2**31))
def test_voxel_mean_offset_at_every_node_including_the_grid_edges(shape, seed):
    """The mean offset (Dx + Dy) / 8 + DxDy / 64, second differences with the dose
    constant beyond the outer nodes, at every node (the last row and column too: NumPy
    2.4's np.negative with a strided float32 out= once put other nodes' values there)."""
    dose = np.random.default_rng(seed).uniform(0.0, 60.0, shape)
    t = T._Tables(_grid(dose))
    got = t.pair.view(np.float32).reshape(-1, 2)[:, 0].reshape(shape)
    dx, dy = _second_edge(dose, 2), _second_edge(dose, 1)
    want = (dx + dy) / 8 + _second_edge(dy, 2) / 64
    assert np.allclose(got, want, rtol=1e-5, atol=1e-4)
