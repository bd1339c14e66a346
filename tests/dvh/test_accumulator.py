"""The streaming accumulator (rtqa.dvh.accumulator._Accumulator): its compiled deposit
(rtqa.dvh._cdeposit: add, deposit) leaves the same state, bit for bit, as the numpy code
(nodes, total, moment, Min/Max, deferred elements, the finished DVH), on the same
chunks; inputs the kernel does not take (NaN, a node beyond the array) go to the numpy
code with its result or error."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtqa import _native
from rtqa.dvh.accumulator import _KERNEL, _Accumulator

def _env(n):  # (the fixture only switches RTQA_NATIVE: fine across examples)
    return settings(max_examples=n, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _native_only(monkeypatch):
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    if _native.load(_KERNEL) is None:
        pytest.skip("compiled kernel rtqa.dvh._cdeposit not built")


def _state(acc: _Accumulator, deferred=True):
    """Every value the accumulator keeps, as bytes (deferred elements included, until
    finish uses them up)."""
    out = [acc.acc.tobytes(), np.array([acc.total, acc.moment, acc.dmin, acc.dmax,
                                        acc.hi_max]).tobytes(), len(acc.deferred)]
    for part in acc.deferred if deferred else ():
        out += [a.tobytes() for a in part]
    return out


def _run(monkeypatch, native: bool, top: float, steps, finish=True):
    """Replay steps on a fresh accumulator: ("points", lo, hi) or ("add", mean, width,
    weight) (copied: add overwrites width). Returns the states after each step and the
    finished DVH."""
    if native:
        monkeypatch.delenv("RTQA_NATIVE", raising=False)
    else:
        monkeypatch.setenv("RTQA_NATIVE", "0")
    acc = _Accumulator(top)
    states = []
    for step in steps:
        if step[0] == "points":
            acc.points(*step[1:])
        else:
            acc.add(*(np.array(a, copy=True) for a in step[1:]))
        states.append(_state(acc))
    if finish:
        edges, cum = acc.finish()
        states.append([edges.tobytes(), cum.tobytes()] + _state(acc, deferred=False))
    return states


def _outcome(monkeypatch, native, top, steps, finish=True):
    """_run's states, or the type and message of its error."""
    try:
        return _run(monkeypatch, native, top, steps, finish)
    except Exception as e:  # noqa: BLE001 - compared: the same error either way
        return (type(e), str(e))


def _both(monkeypatch, top, steps, finish=True):
    _native_only(monkeypatch)
    assert _outcome(monkeypatch, True, top, steps, finish) == \
        _outcome(monkeypatch, False, top, steps, finish)


_DOSE = st.one_of(st.floats(0.0, 60.0), st.integers(0, 6000).map(lambda k: k * 0.01),
                  st.floats(-0.02, 0.02))
_WIDTH = st.one_of(st.floats(0.0, 5.0), st.just(0.0), st.floats(0.0, 0.012),
                   st.integers(0, 300).map(lambda k: k * 0.01))


@st.composite
def _chunk(draw):
    n = draw(st.integers(0, 40))
    mean = np.array(draw(st.lists(_DOSE, min_size=n, max_size=n)), dtype=np.float64)
    width = np.array(draw(st.lists(_WIDTH, min_size=n, max_size=n)),
                     dtype=draw(st.sampled_from([np.float32, np.float64])))
    weight = np.array(draw(st.lists(st.floats(0.0, 2.0), min_size=n, max_size=n)))
    return ("add", mean, width, weight)


_POINTS = st.tuples(st.just("points"), st.floats(-1e-3, 30.0), st.floats(10.0, 66.0))


@_env(200)
@given(st.lists(st.one_of(_chunk(), _POINTS), min_size=1, max_size=8))
def test_add_same_state_as_numpy(monkeypatch, steps):
    _both(monkeypatch, 70.0, steps)


@_env(20)
@given(st.integers(0, 2**31), st.integers(1, 40000))
def test_large_random_chunks(monkeypatch, seed, n):
    rng = np.random.default_rng(seed)
    steps = [("points", 5.0, 40.0)]
    for _ in range(3):
        mean = rng.uniform(0.0, 50.0, n)
        width = rng.uniform(0.0, 3.0, n).astype(np.float32)
        steps.append(("add", mean, width, rng.uniform(0.0, 0.05, n)))
    _both(monkeypatch, 60.0, steps)


def test_edge_cases(monkeypatch):
    one = np.ones(1)
    steps = [
        ("add", np.array([1.0]), np.array([0.5]), one),  # before any point: deferred
        ("points", 0.0, 2.0),
        ("add", np.array([1.0]), np.array([0.5], np.float32), one),  # one element
        ("add", np.zeros(0), np.zeros(0), np.zeros(0)),  # empty
        ("add", np.array([0.0, 0.004, 1.995]), np.zeros(3), np.ones(3)),  # narrow, at 0
        ("add", np.array([0.01, 0.02, 1.0]), np.array([0.0, 0.02, 0.0]), np.ones(3)),
        ("add", np.array([1.0, 1.0]), np.array([1.0, 2.0]), np.ones(2)),  # on [Min, Max]
        ("add", np.array([1.0, 2.5]), np.array([0.2, 0.2]), np.ones(2)),  # one outside
        ("points", -3e-17, 3.0),
    ]
    _both(monkeypatch, 3.0, steps)


def test_node_beyond_the_array_raises_as_numpy(monkeypatch):
    """An element beyond the accumulator's nodes: numpy's error (the kernel declines)."""
    steps = [("points", 0.0, 100.0), ("add", np.array([50.0]), np.array([1.0]), np.ones(1))]
    _native_only(monkeypatch)
    for native in (False, True):
        with pytest.raises(ValueError):
            _run(monkeypatch, native, 1.0, steps, finish=False)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("k", [0, 1, 2])
def test_nan_and_infinity_go_to_numpy(monkeypatch, bad, k):
    parts = [np.array([1.0, 2.0, 3.0]), np.full(3, 0.1), np.ones(3)]
    parts[k] = parts[k].copy()
    parts[k][1] = bad
    with np.errstate(all="ignore"):
        _both(monkeypatch, 5.0, [("points", 0.0, 5.0), ("add", *parts)], finish=False)


def test_deposit_of_deferred_elements(monkeypatch):
    """finish deposits the deferred elements (clipped to [Min, Max]) through the kernel."""
    rng = np.random.default_rng(3)
    steps = [("add", rng.uniform(0, 20, 5000), rng.uniform(0, 4, 5000), rng.random(5000))
             for _ in range(2)]
    steps.insert(1, ("points", 2.0, 18.0))
    _both(monkeypatch, 25.0, steps)


def test_the_work_array_is_shared_across_node_counts(monkeypatch):
    """Accumulators of different node counts in turn (one work array per thread, its
    bincounts zeroed when the count changes) give what each gives alone."""
    _native_only(monkeypatch)
    rng = np.random.default_rng(5)
    chunks = [("add", rng.uniform(0, 9, 300), rng.uniform(0, 2, 300), rng.random(300))
              for _ in range(4)]
    alone = [_run(monkeypatch, True, top, [("points", 0.0, 10.0)] + chunks)
             for top in (10.0, 30.0)]
    monkeypatch.delenv("RTQA_NATIVE", raising=False)
    accs = [_Accumulator(10.0), _Accumulator(30.0)]
    for a in accs:
        a.points(0.0, 10.0)
    for c in chunks:
        for a in accs:
            a.add(*(np.array(x, copy=True) for x in c[1:]))
    for a, want in zip(accs, alone):
        edges, cum = a.finish()
        assert [edges.tobytes(), cum.tobytes()] + _state(a, deferred=False) == want[-1]
