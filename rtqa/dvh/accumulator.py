"""Exact accumulation of dose elements into a cumulative DVH on 0.01 Gy nodes.

Units: dose in Gy (node spacing ``rtqa.dvh.data.BIN_GY`` = 0.01 Gy); element weights and
the DVH in cc.

An element is a volume spread uniformly over a dose interval [mean - width/2, mean +
width/2]. Elements are accumulated exactly onto 0.01 Gy nodes (piecewise-linear
cumulative deposit, double cumulative sum), giving the cumulative DVH in cc at every
node, in chunks; each element is kept within the structure's [Min, Max] (an element
reaching beyond the extremes known so far is deposited at the end, after that clip).
The streaming accumulator also keeps Min and Max (the points of the structure it is
given) and the dose moment of the Mean: the volume-weighted mean of the element means.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from rtqa import _native
from rtqa.dvh.data import BIN_GY

#: The compiled twin of the deposit (``_cdeposit.c``; rtqa._native).
_KERNEL = "rtqa.dvh._cdeposit"
#: The compiled twin of :meth:`_Accumulator.finish`'s sums (``_ctables.c``: finish_cum).
_TAB_KERNEL = "rtqa.dvh._ctables"
#: Elements per compiled call the kernel's work array is first sized for (the engine's
#: chunk, rtqa.dvh.elements.CHUNK).
_WORK_ITEMS = 32768
#: The kernel's work array of each thread (:meth:`_Accumulator._scratch`).
_WORK = threading.local()


def _plain(a: np.ndarray, dtype) -> bool:
    """``a`` can cross to the compiled kernel as a buffer of ``dtype``."""
    return a.dtype == dtype and a.flags.c_contiguous


def accumulate(mean: np.ndarray, width: np.ndarray, weight: np.ndarray,
               top_gy: float, floor_gy: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Exact cumulative DVH of uniform dose elements on 0.01 Gy nodes.

    Element i is ``weight[i]`` cc spread uniformly over [mean - width/2, mean + width/2],
    kept within [floor_gy, top_gy] (the structure's Min and Max: a linear spread must not
    overshoot a dose peak); widths below one bin are widened to one bin. Returns (edges_gy, cum_cc) with
    cum_cc = volume receiving >= each edge. The volume below a node is a sum of ramp
    functions; each ramp is written exactly at the nodes by splitting its two kinks
    linearly between neighbouring nodes, then integrating twice (cumulative sums)."""
    h = BIN_GY
    lo = np.clip(mean - width / 2, floor_gy, top_gy)
    hi = np.clip(mean + width / 2, floor_gy, top_gy)
    w = np.maximum(hi - lo, h)
    lo = np.maximum(np.minimum(lo, hi - h), 0.0)
    hi = lo + w
    n = int(math.ceil(max(top_gy, float(hi.max(initial=0.0))) / h)) + 3
    rate = weight / w
    acc = np.zeros(n + 2)
    for pos, sign in ((lo / h, 1.0), (hi / h, -1.0)):
        j = np.floor(pos).astype(np.int64)
        t = pos - j
        acc += np.bincount(j, sign * rate * (1 - t), minlength=n + 2)[: n + 2]
        acc += np.bincount(j + 1, sign * rate * t, minlength=n + 2)[: n + 2]
    slope = np.cumsum(acc)
    below = h * np.concatenate([[0.0], np.cumsum(slope)[:-1]])[:n]
    total = float(weight.sum())
    cum = np.clip(total - below, 0.0, total)
    cum = np.minimum.accumulate(cum)
    cum[-1] = 0.0
    return np.arange(n) * h, cum


def _sums(acc: "_Accumulator", mean: np.ndarray, weight: np.ndarray) -> None:
    """Adds the elements' weight and dose moment to acc's totals (numpy's pairwise sums:
    np.sum; compiled, ``_ctables.sums``, the same sums without the product array)."""
    c = _native.load(_TAB_KERNEL)
    if c is not None and _plain(mean, np.float64) and _plain(weight, np.float64) \
            and mean.shape == weight.shape:
        sw, smw = c.sums(mean, weight)
        acc.total += sw
        acc.moment += smw
        return
    acc.total += float(weight.sum())
    acc.moment += float((mean * weight).sum())  # (no BLAS: its threads spin)


class _Accumulator:
    """The cumulative DVH of uniform dose elements fed in chunks (see :func:`accumulate`;
    the same deposit). Elements are clipped to the structure's [Min, Max]; as those are
    known only at the end, an element reaching beyond the extremes seen so far is kept
    aside and deposited at the end (the extremes only widen, so every other element is
    unaffected by the clip)."""

    def __init__(self, top_bound: float):
        self.n_acc = int(math.ceil(max(top_bound, BIN_GY) / BIN_GY)) + 8
        self.acc = np.zeros(self.n_acc)
        self.dmin, self.dmax = math.inf, -math.inf
        self.total = 0.0
        self.moment = 0.0
        self.hi_max = 0.0
        self.deferred: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def points(self, lo: float, hi: float) -> None:
        # The dose grid is non-negative (rtqa.reading.dose refuses negative values), so
        # an interpolated value below 0 is floating-point rounding (seen: -3e-17 Gy).
        self.dmin = min(self.dmin, max(lo, 0.0))
        self.dmax = max(self.dmax, hi)

    def add(self, mean: np.ndarray, width: np.ndarray, weight: np.ndarray) -> None:
        """Elements (mean, width in Gy; weight in cc). ``width`` is overwritten."""
        if not mean.size:
            return
        _sums(self, mean, weight)
        c = _native.load(_KERNEL)
        if c is not None and self._add_native(c, mean, width, weight):
            return
        width *= 0.5
        lo = mean - width
        hi = mean + width
        if float(lo.min()) < self.dmin or float(hi.max()) > self.dmax:
            out = lo < self.dmin
            out |= hi > self.dmax
            self.deferred.append((lo[out], hi[out], weight[out]))
            keep = ~out
            lo, hi, weight = lo[keep], hi[keep], weight[keep]
        self._deposit(lo, hi, weight)

    def _scratch(self, m: int) -> np.ndarray:
        """The compiled kernel's work array for m elements (``_cdeposit.c``: four
        bincounts over the nodes, zero, then 8 arrays of m): one per thread, kept
        between calls and accumulators (a fresh one per structure would cost its page
        faults); its bincount part is zeroed when the node count changes (the kernel
        leaves it zero)."""
        n4 = 4 * self.n_acc
        work = getattr(_WORK, "array", None)
        if work is None or work.size < n4 + 8 * m:
            work = _WORK.array = np.zeros(n4 + 8 * max(m, _WORK_ITEMS))
        elif _WORK.n4 != n4:
            work[:n4] = 0.0
        _WORK.n4 = n4
        return work

    def _add_native(self, c, mean, width, weight) -> bool:
        """:meth:`add` after its sums, compiled (the same values); False when the kernel
        leaves these elements to the numpy code (nothing done)."""
        f8 = np.float64
        if not (_plain(mean, f8) and (_plain(width, f8) or _plain(width, np.float32))
                and _plain(weight, f8)):
            return False
        work = self._scratch(mean.size)
        r = c.add(self.acc, work, mean, width, weight, self.dmin, self.dmax, BIN_GY)
        if r is None:
            return False
        self._kept(*r, work, mean.size)
        return True

    def _kept(self, nd: int, hi_max: float, work: np.ndarray, m: int) -> None:
        """The outcome of a compiled :meth:`add` of m elements: ``nd`` deferred (in
        ``work``), the others deposited up to ``hi_max`` (-inf: none)."""
        if nd:
            b = 4 * self.n_acc + 3 * m
            self.deferred.append(tuple(work[b + k * m:b + k * m + nd].copy()
                                       for k in range(3)))
        self.hi_max = max(self.hi_max, hi_max)

    def _deposit(self, lo, hi, weight) -> None:
        """The deposit of :func:`accumulate` (without its clip)."""
        if not lo.size:
            return
        c = _native.load(_KERNEL)
        if c is not None and _plain(lo, np.float64) and _plain(hi, np.float64) \
                and _plain(weight, np.float64):
            hi_max = c.deposit(self.acc, self._scratch(lo.size), lo, hi, weight, BIN_GY)
            if hi_max is not None:
                self.hi_max = max(self.hi_max, hi_max)
                return
        h = BIN_GY
        w = hi - lo
        if float(w.min()) < h or float(lo.min()) < 0.0:  # widen to one bin (as accumulate)
            np.maximum(w, h, out=w)
            hi -= h
            np.minimum(lo, hi, out=lo)
            np.maximum(lo, 0, out=lo)
            np.add(lo, w, out=hi)
        self.hi_max = max(self.hi_max, float(hi.max()))
        rate = weight / w
        n = self.n_acc
        for pos, sign in ((lo, 1.0), (hi, -1.0)):
            pos *= 1.0 / h
            j = pos.astype(np.intp)
            pos -= j
            pos *= rate  # rate * t
            r1 = rate - pos
            if sign > 0:
                self.acc += np.bincount(j, r1, minlength=n)
                self.acc[1:] += np.bincount(j, pos, minlength=n)[:-1]
            else:
                self.acc -= np.bincount(j, r1, minlength=n)
                self.acc[1:] -= np.bincount(j, pos, minlength=n)[:-1]

    def finish(self):
        top, floor = self.dmax, self.dmin
        for lo, hi, weight in self.deferred:
            np.clip(lo, floor, top, out=lo)
            np.clip(hi, floor, top, out=hi)
            self._deposit(lo, hi, weight)
        h = BIN_GY
        n = int(math.ceil(max(top, self.hi_max) / h)) + 3
        c = _native.load(_TAB_KERNEL)
        if c is not None and _plain(self.acc, np.float64):  # (compiled: the same sums,
            edges, cum = np.empty(n), np.empty(n)             # clip and running minimum)
            if c.finish_cum(self.acc, n, h, float(self.total), float(top), edges, cum):
                return edges, cum
        slope = np.cumsum(self.acc[: n + 2])
        below = h * np.concatenate([[0.0], np.cumsum(slope)[:-1]])[:n]
        total = self.total
        cum = np.clip(total - below, 0.0, total)
        cum = np.minimum.accumulate(cum)
        edges = np.arange(n) * h
        cum[edges > top] = 0.0  # every element lies below the Max: rounding residue only
        cum[-1] = 0.0
        return edges, cum
