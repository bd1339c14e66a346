"""The engine's chunked steps (issue 16, peak memory) give the same arrays, bit for bit,
as the whole-array formulas they replace."""

import numpy as np
import pytest

from rtqa.dvh.engine import PLANES, _band_nodes, _slot_moments
from rtqa.dvh.geometry import nonzero


@pytest.mark.parametrize("step", [1, 5, PLANES, 100])
def test_band_nodes_in_plane_steps_match_the_whole_raster(step):
    rng = np.random.default_rng(step)
    K = 41
    ins = rng.random((K, 7, 9)) < 0.5
    gap = rng.random(K - 1) < 0.2
    # the whole-raster formula
    diff = ins[1:] ^ ins[:-1]
    diff[gap] = False
    k, J, I = nonzero(diff)
    lower = ins[k, J, I]
    got = [np.concatenate(x) for x in zip(*(_band_nodes(ins.view(np.uint8).view(np.bool_),
                                                         gap, k0, min(k0 + step, K - 1))
                                            for k0 in range(0, K - 1, step)))]
    for a, b in zip(got, (k, J, I, lower)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert k.size > 0 and lower.any() and not lower.all()


def test_slot_moments_match_the_whole_moment_table():
    rng = np.random.default_rng(7)
    n, nbmax = 53, 3
    mom = rng.random((n, 4, 6))
    C = rng.random((3, n, nbmax))
    C[:, rng.random(n) < 0.3, 2] = 0.0  # items spanning fewer bins
    # the whole table as the engine built it before: (10, item, quadrant, offset)
    A, Ss, Sr, Sss, Srr, Ssr = (mom[:, :, i] for i in range(6))
    S = np.zeros((10, n, 4, nbmax))
    for o in range(nbmax):
        c0, c1, c2 = C[0, :, o], C[1, :, o], C[2, :, o]
        for row, (x, c) in enumerate(((A, c0), (Ss, c0), (Sr, c0), (A, c1), (Sss, c0),
                                      (Srr, c0), (A, c2), (Ssr, c0), (Ss, c1), (Sr, c1))):
            S[row, :, :, o] = x * c[:, None]
    S = S.reshape(10, -1)
    slots = np.flatnonzero(S[0] > 0)
    assert slots.size < S.shape[1]
    for part in (slots, slots[::3], slots[5:17]):
        got = _slot_moments(part, nbmax, mom, C, S[0])
        assert got.tobytes() == S[:, part].tobytes()


@pytest.mark.parametrize("m", [3, 11, 15])
def test_bits_lists_every_set_bit_in_item_row_column_order(m):
    from rtqa.dvh.elements import _bits
    from rtqa.dvh.geometry import code_dtype
    rng = np.random.default_rng(m)
    codes = rng.integers(0, 1 << m, size=(37, m)).astype(code_dtype(m))
    codes[rng.random((37, m)) < 0.4] = 0
    codes[5] = 0  # an item without bits
    want = [(i, r, c) for i in range(37) for r in range(m) for c in range(m)
            if (int(codes[i, r]) >> c) & 1]
    it, r, c = _bits(codes, m)
    assert [x.dtype for x in (it, r, c)] == [np.intp] * 3
    assert list(zip(it.tolist(), r.tolist(), c.tolist())) == want
    empty = _bits(np.zeros((0, m), dtype=code_dtype(m)), m)
    assert all(x.size == 0 for x in empty)
