"""The whole-voxel element indices of the engine (rtqa.dvh.engine._Engine._whole_voxels):
the compiled pass (rtqa.dvh._cdeposit.codes) gives the same flat grid indices and record
rows as the numpy formulation (flatnonzero, per-layer and per-row offsets)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtqa import _native
from rtqa.dvh.accumulator import _KERNEL


def _numpy_codes(code, nJ, nI, lay_f, nxy, nx, base, g0, stride):
    """The engine's numpy formulation (window rows at base + j nx)."""
    L = lay_f.size
    nw = nJ * nI
    row_g = base + np.arange(nJ) * nx - np.arange(nJ) * nI
    idx = np.flatnonzero(code != 0)
    n_lay_el = np.diff(np.searchsorted(idx, np.arange(L + 1) * nw))
    n_row_el = np.diff(np.searchsorted(idx, np.arange(L * nJ + 1) * nI))
    row = code.take(idx).astype(np.intp)
    row += np.repeat(np.arange(g0, g0 + L) * stride, n_lay_el)
    off = (lay_f[:, None] * nxy - (np.arange(L) * nw)[:, None] + row_g).reshape(-1)
    idx += np.repeat(off, n_row_el)
    return idx, row


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**31), L=st.integers(0, 6), nJ=st.integers(1, 7),
       nI=st.integers(1, 9), density=st.sampled_from([0.0, 0.1, 0.7, 1.0]),
       nbit=st.integers(1, 8))
def test_codes_same_as_numpy(seed, L, nJ, nI, density, nbit):
    c = _native.load(_KERNEL)
    if c is None:
        pytest.skip("compiled kernel rtqa.dvh._cdeposit not built")
    rng = np.random.default_rng(seed)
    nx = nI + int(rng.integers(0, 5))
    ny = nJ + int(rng.integers(0, 5))
    nxy = nx * ny
    code = (rng.integers(1, 1 << nbit, (L, nJ * nI)) * (rng.random((L, nJ * nI)) < density))
    code = code.astype(np.uint8).reshape(-1)
    lay_f = np.sort(rng.integers(0, 50, L)).astype(np.int64)
    base = int(rng.integers(0, ny - nJ + 1)) * nx + int(rng.integers(0, nx - nI + 1))
    g0, stride = int(rng.integers(0, 9)), 1 << nbit
    want = _numpy_codes(code, nJ, nI, lay_f, nxy, nx, base, g0, stride)
    idx = np.empty(np.count_nonzero(code), dtype=np.int64)
    row = np.empty(idx.size, dtype=np.int64)
    c.codes(code, nJ, nI, lay_f, nxy, nx, base, g0, stride, idx, row)
    assert idx.tobytes() == want[0].astype(np.int64).tobytes()
    assert row.tobytes() == want[1].astype(np.int64).tobytes()


def test_codes_refuses_a_wrong_count():
    c = _native.load(_KERNEL)
    if c is None:
        pytest.skip("compiled kernel rtqa.dvh._cdeposit not built")
    code = np.array([0, 3, 1, 0], dtype=np.uint8)
    for n in (1, 3):
        with pytest.raises(ValueError):
            c.codes(code, 2, 2, np.zeros(1, np.int64), 4, 2, 0, 0, 4,
                    np.empty(n, np.int64), np.empty(n, np.int64))


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**31), K=st.integers(1, 6), NJ=st.integers(1, 7),
       NI=st.integers(1, 9), L=st.integers(1, 4), n=st.integers(0, 12),
       density=st.sampled_from([0.0, 0.3, 0.8, 1.0]))
def test_layer_codes_same_as_numpy(seed, K, NJ, NI, L, n, density):
    """layer_codes: each piece's window mask (its plane, or both planes of an interval)
    shifted to its bit and or-ed into its layer, as the engine's numpy loop (masks)."""
    c = _native.load(_KERNEL)
    if c is None:
        pytest.skip("compiled kernel rtqa.dvh._cdeposit not built")
    rng = np.random.default_rng(seed)
    full = rng.random((K, NJ, NI)) < density
    j0 = int(rng.integers(0, NJ))
    j1 = int(rng.integers(j0 + 1, NJ + 1))
    i0 = int(rng.integers(0, NI))
    i1 = int(rng.integers(i0 + 1, NI + 1))
    lay, bit = rng.integers(0, L, n), rng.integers(0, 8, n)
    pa = rng.integers(0, K, n)
    pb = np.where(rng.random(n) < 0.5, rng.integers(0, K, n), -1)
    want = np.zeros((L, j1 - j0, i1 - i0), dtype=np.uint8)
    for s in range(n):
        mk = full[pa[s], j0:j1, i0:i1]
        if pb[s] >= 0:
            mk = mk & full[pb[s], j0:j1, i0:i1]
        want[lay[s]] |= mk.astype(np.uint8) << np.uint8(bit[s])
    code = np.full(want.size, 77, dtype=np.uint8)
    i8 = np.int64
    c.layer_codes(full.view(np.uint8), K, NJ, NI, j0, j1, i0, i1, lay.astype(i8),
                  bit.astype(i8), pa.astype(i8), pb.astype(i8), code)
    assert code.tobytes() == want.tobytes()
    with pytest.raises(ValueError):  # (a plane outside the raster)
        c.layer_codes(full.view(np.uint8), K, NJ, NI, j0, j1, i0, i1, np.zeros(1, i8),
                      np.zeros(1, i8), np.full(1, K, i8), np.full(1, -1, i8), code)
