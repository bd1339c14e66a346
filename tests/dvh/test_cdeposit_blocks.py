"""rtqa.dvh._cdeposit's deposit in blocks (deposit_loop: the ends and rates of a block
of elements first, then the scatter into interleaved bincounts): a node out of range in
a later block leaves the nodes and the work array's bincounts as they were (all zero),
and deposits before and after it give the numpy values, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from rtqa import _native
from rtqa.dvh.accumulator import _KERNEL, _Accumulator


@pytest.fixture
def kernel(monkeypatch):
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    c = _native.load(_KERNEL)
    if c is None:
        pytest.skip("compiled kernel rtqa.dvh._cdeposit not built")
    return c


def _numpy_deposit(monkeypatch, top, lo, hi, w):
    monkeypatch.setenv("RTQA_NATIVE", "0")
    acc = _Accumulator(top)
    acc._deposit(lo.copy(), hi.copy(), w.copy())
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    return acc.acc


@pytest.mark.parametrize("bad_at", [0, 255, 256, 600, 699])
def test_out_of_range_in_a_later_block_declines_and_leaves_work_zero(kernel, bad_at):
    rng = np.random.default_rng(bad_at)
    n, m, h = 1001, 700, 0.01
    lo = rng.uniform(0.0, 9.0, m)
    hi = lo + rng.uniform(0.0, 0.5, m)
    w = rng.random(m)
    hi[bad_at] = 50.0  # beyond the nodes (10 Gy)
    acc = np.zeros(n)
    acc[::7] = 1.5
    before = acc.copy()
    work = np.zeros(4 * n + 8 * m)
    assert kernel.deposit(acc, work, lo, hi, w, h) is None
    assert acc.tobytes() == before.tobytes()
    assert not work[:4 * n].any()


@pytest.mark.parametrize("m", [1, 255, 256, 257, 513, 3000])
@pytest.mark.parametrize("narrow", [False, True])
def test_blocks_give_the_numpy_nodes(kernel, monkeypatch, m, narrow):
    """Element counts around the block size; narrow: some elements narrower than a bin
    (the widening of every element)."""
    rng = np.random.default_rng(m + narrow)
    top = 10.0
    lo = rng.uniform(0.0, 9.0, m)
    hi = lo + rng.uniform(0.0, 0.004 if narrow else 0.8, m)
    w = rng.random(m)
    want = _numpy_deposit(monkeypatch, top, lo, hi, w)
    acc = _Accumulator(top)
    n = acc.acc.size
    work = np.zeros(4 * n + 8 * m)
    assert kernel.deposit(acc.acc, work, lo, hi, w, 0.01) is not None
    assert acc.acc.tobytes() == want.tobytes()
    assert not work[:4 * n].any()
