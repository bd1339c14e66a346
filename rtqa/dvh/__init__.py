"""The DVH engine: structure slabs x dose grid → cumulative DVH with exact metrics.

Method (vectorised numpy, one structure at a time)
--------------------------------------------------
1. Slabs and cross-sections (rtqa.geometry): each contour plane is a slab (half-way
   boundaries, half-slice end caps); between two planes of a run the cross-section is
   interpolated (circular arc of the signed distance through neighbouring planes).
2. In-plane sampling (rtqa.geometry.raster): each dose voxel (centred on a dose node) is
   divided into m x m sub-cells (m odd, so the centre sub-sample is the node), m chosen
   per structure so that the sample spacing is at most 1/120 (small targets) to 1/40
   (large organs) of the structure's size (cube root of its volume). Samples are
   classified with the even-odd rule. Sampling is adaptive: a voxel that no contour
   edge touches lies wholly inside or outside (the even-odd state cannot change within
   it), so only the voxels a contour passes through are classified sub-sample by
   sub-sample; the result is the same set of inside samples. Each plane's sample
   weights are rescaled so the plane's area equals the exact contour area (volumes
   therefore follow the slab convention exactly).
3. Columns: a sample inside on both planes of an interval is inside over the whole
   interval; one inside on only one of them up to the interpolated surface (a "band"
   piece); end caps extend the run's end planes by half a slice. Every piece is cut at
   the dose frames: within a frame interval the trilinear dose is linear in z.
4. Elements, each a uniform dose distribution with the exact mean and the variance of
   the dose over its part of the structure (exact for a linear dose when the gradient
   lies along one axis; otherwise the same variance):
   * whole voxels (all m x m sub-samples inside over the same z part): one element per
     voxel and frame interval. The mean and spread of the in-plane dose over the voxel
     on every frame are tabulated once per grid, so the element's mean is the exact
     mean of the trilinear dose over the voxel and its z part; pieces of one column
     within a frame interval are merged (their exact t moments).
   * partial voxels: the sub-samples inside over the same z part, per trilinear cell
     (quadrant of the voxel), by the moments of their positions: exact mean (to the
     third central moment), variance of the linearised dose; each sub-sample stands for
     its sub-cell.
   * band pieces: one element per sub-sample column (their z extents differ), with the
     exact mean and the variance of the linearised dose.
   With m = 1 every sample is its whole voxel (band pieces too, with their own z part).
   The dose of every sample is thus represented at least as finely as by the m x m
   sub-samples of earlier versions for partial voxels and band pieces, and exactly in
   mean (rather than by the node dose) for whole voxels.
5. Elements are accumulated exactly onto 0.01 Gy nodes (piecewise-linear cumulative
   deposit, double cumulative sum), giving the cumulative DVH in cc at every node, in
   chunks; each element is kept within the structure's [Min, Max] (an element reaching
   beyond the extremes known so far is deposited at the end, after that clip).
6. Min and Max are the extremes of the dose at points of the structure: the dose nodes
   inside it (at both ends of every node column piece; a trilinear dose attains its
   extremes over a region at nodes or on the region's boundary), both ends of every
   band piece (one on the interpolated surface), and every contour vertex on each slab
   face and dose frame crossed (the structure's surface). Mean is the volume-weighted
   mean of the element means.
Parts of a structure outside the dose grid (beyond half a voxel from the outer nodes)
get no dose: their volume is reported as ``outside_cc`` and left out of the DVH, never
counted as 0 Gy.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np

from rtqa.dvhdata import BIN_GY, DVHData
from rtqa.errors import RtqaError
from rtqa.geometry import (Edges, Raster, Slabs, band_crossings, nonzero, plane_areas, raster,
                           slabs_for)
from rtqa.reading.dose import DoseGrid
from rtqa.reading.structures import Structure


@dataclass(frozen=True)
class Settings:
    """Accuracy settings. The defaults are rtqa's accurate defaults."""

    #: sample spacing <= structure size (cube root of volume) / this, for structures up
    #: to ``small_cc``; falls (log-linearly in volume) to ``samples_per_size_large`` at
    #: ``large_cc`` and above: SBRT targets are sampled finely, large organs as a TPS does.
    samples_per_size: float = 120.0
    samples_per_size_large: float = 40.0
    small_cc: float = 50.0
    large_cc: float = 500.0
    #: finest in-plane subdivision of a dose voxel (odd)
    max_subdivision: int = 15
    #: bound on the number of in-plane samples of one structure (memory)
    max_samples: int = 6_000_000
    #: interpolate the cross-section between contour planes (False: pure slabs)
    interpolate: bool = True


DEFAULT = Settings()


def _subdivision(volume_mm3: float, dx: float, dy: float, area_sum: float,
                 s: Settings) -> int:
    size = max(volume_mm3, 1e-9) ** (1.0 / 3.0)
    cc = volume_mm3 / 1000.0
    f = np.clip(np.log(max(cc, 1e-9) / s.small_cc) / np.log(s.large_cc / s.small_cc), 0, 1)
    target = size / (s.samples_per_size + f * (s.samples_per_size_large - s.samples_per_size))
    m = max(1, math.ceil(max(dx, dy) / max(target, 1e-6)))
    # memory bound: samples ~ sum of plane areas / (sx*sy)
    while m > 1 and area_sum * m * m / (dx * dy) > s.max_samples:
        m -= 1
    m = min(m, s.max_subdivision)
    return m if m % 2 else m + 1 if m + 1 <= s.max_subdivision else m - 1


def _bilinear_parts(grid: DoseGrid, x: np.ndarray, y: np.ndarray):
    """Cell indices and fractions (clamped: constant within the outer half voxel)."""
    dx, dy = grid.x[1] - grid.x[0], grid.y[1] - grid.y[0]
    fx = (x - grid.x[0]) / dx
    fy = (y - grid.y[0]) / dy
    i0 = np.clip(np.floor(fx), 0, grid.x.size - 2).astype(np.int64)
    j0 = np.clip(np.floor(fy), 0, grid.y.size - 2).astype(np.int64)
    tx = np.clip(fx - i0, 0.0, 1.0)
    ty = np.clip(fy - j0, 0.0, 1.0)
    return i0, j0, tx, ty


def _frame_parts(grid: DoseGrid, z: np.ndarray):
    f = np.clip(np.searchsorted(grid.z, z, side="right") - 1, 0, grid.z.size - 2)
    tz = np.clip((z - grid.z[f]) / (grid.z[f + 1] - grid.z[f]), 0.0, 1.0)
    return f, tz


def _in_grid_xy(grid: DoseGrid, x, y):
    dx, dy = grid.x[1] - grid.x[0], grid.y[1] - grid.y[0]
    return ((x >= grid.x[0] - dx / 2) & (x <= grid.x[-1] + dx / 2)
            & (y >= grid.y[0] - dy / 2) & (y <= grid.y[-1] + dy / 2))


def _half_way(z, lo, hi, ct_z):
    """Pure slab faces: half-way between neighbouring planes, end caps as given."""
    lo, hi = lo.copy(), hi.copy()
    if z.size > 1:
        mid = 0.5 * (z[1:] + z[:-1])
        linked = slabs_for(z, 0.0, ct_z).gap == 0
        hi[:-1] = np.where(linked, mid, hi[:-1])
        lo[1:] = np.where(linked, mid, lo[1:])
    return lo, hi


def z_extent(grid: DoseGrid) -> tuple[float, float]:
    """The z range (mm) the grid covers: outer frames +/- half their spacing."""
    return _z_extent(grid.z)


def _z_extent(z: np.ndarray) -> tuple[float, float]:
    return (z[0] - (z[1] - z[0]) / 2, z[-1] + (z[-1] - z[-2]) / 2)


def trilinear(grid: DoseGrid, x, y, z) -> tuple[np.ndarray, np.ndarray]:
    """Dose (Gy) at points, and a mask of the points inside the grid."""
    x, y, z = (np.asarray(v, dtype=float) for v in (x, y, z))
    z0, z1 = z_extent(grid)
    inside = _in_grid_xy(grid, x, y) & (z >= z0) & (z <= z1)
    i0, j0, tx, ty = _bilinear_parts(grid, x, y)
    f, tz = _frame_parts(grid, z)
    d = grid.dose
    lo = ((1 - ty) * ((1 - tx) * d[f, j0, i0] + tx * d[f, j0, i0 + 1])
          + ty * ((1 - tx) * d[f, j0 + 1, i0] + tx * d[f, j0 + 1, i0 + 1]))
    hi = ((1 - ty) * ((1 - tx) * d[f + 1, j0, i0] + tx * d[f + 1, j0, i0 + 1])
          + ty * ((1 - tx) * d[f + 1, j0 + 1, i0] + tx * d[f + 1, j0 + 1, i0 + 1]))
    return (1 - tz) * lo + tz * hi, inside


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


#: Elements processed at once (bounds the engine's temporary memory and keeps it in cache).
CHUNK = 32768


# ---------------------------------------------------------------------------------------
# Dose grid tables (cached per grid)
# ---------------------------------------------------------------------------------------

def _voxel_mean_sd(d: np.ndarray, delta: np.ndarray, sd: np.ndarray) -> None:
    """Mean (as its offset ``delta`` from the node dose) and standard deviation of the
    bilinear in-plane dose over the dose voxel centred on each node, for frames ``d``
    (nf, ny, nx); results stored (as float32) into ``delta`` and ``sd``.

    Along one axis the interpolant is linear on each side of the node (slopes gl, gr per
    voxel width; constant beyond the outer nodes), so over the voxel its mean is
    (v- + 6 v + v+) / 8 = v + (gr - gl) / 8 and its variance (gl^2 + gr^2) / 24 -
    (gr - gl)^2 / 64 = 5 (gl^2 + gr^2) / 192 + gl gr / 32. In-plane the two averages
    compose: offset (Dx + Dy) / 8 + Dx Dy / 64 with D the second differences (exactly 0 for
    a uniform dose); the variance is that of the y-averaged profile along x plus that of
    the x-averaged profile along y (exact for a linear dose; the twist term of a bilinear
    cell is neglected)."""

    def second(a, axis):  # v- - 2 v + v+, constant beyond the outer nodes
        a = np.moveaxis(a, axis, -1)
        g = np.diff(a, axis=-1)
        out = np.empty_like(a)
        out[..., 0] = g[..., 0]
        np.subtract(g[..., 1:], g[..., :-1], out=out[..., 1:-1])
        np.negative(g[..., -1], out=out[..., -1])
        return np.moveaxis(out, -1, axis)

    def add_var(var, a, axis):  # 5 (gl^2 + gr^2) / 192 + gl gr / 32 along axis
        a = np.moveaxis(a, axis, -1)
        v = np.moveaxis(var, axis, -1)
        g = np.diff(a, axis=-1)
        g2 = g * g
        v[..., 1:] += g2
        v[..., :-1] += g2
        g2 = np.multiply(g[..., :-1], g[..., 1:], out=g2[..., 1:])
        g2 *= f32(1.2)  # (1/32) / (5/192)
        v[..., 1:-1] += g2

    # second differences from the float64 dose (exactly 0 for a uniform dose), the rest
    # in float32 (relative precision suffices for the offset and the spread)
    f32 = np.float32
    dx2 = second(d, 2).astype(f32)
    dy2 = second(d, 1).astype(f32)
    off = second(dy2, 2)
    off *= f32(1.0 / 64.0)
    off += (dx2 + dy2) * f32(0.125)
    delta[...] = off
    var = np.zeros(d.shape, dtype=f32)
    d32 = d.astype(f32)
    prof = dy2.copy()
    prof *= f32(0.125)
    prof += d32  # the y-averaged profile
    add_var(var, prof, 2)
    prof = dx2
    prof *= f32(0.125)
    prof += d32  # the x-averaged profile
    add_var(var, prof, 1)
    var *= f32(5.0 / 192.0)
    np.maximum(var, 0, out=var)
    np.sqrt(var, out=sd)


class _Tables:
    """Per-grid data, computed once per grid: for every node and frame the mean (as its
    offset from the node dose, so that a uniform or linear dose stays exact in float64)
    and the standard deviation of the in-plane (bilinear) dose over the dose voxel
    centred on the node (float32 pairs), and the z bins."""

    def __init__(self, grid: DoseGrid):
        d = self.dose = grid.dose
        nz, ny, nx = d.shape
        self.nx, self.ny, self.nz = nx, ny, nz
        self.nxy = nx * ny
        self.flat = d.reshape(-1)
        self.ms = np.empty((nz, ny, nx, 2), dtype=np.float32)
        step = max(1, 131072 // self.nxy)
        for f in range(0, nz, step):
            _voxel_mean_sd(d[f:f + step], self.ms[f:f + step, ..., 0],
                           self.ms[f:f + step, ..., 1])
        self.pair = self.ms.reshape(-1, 2).view(np.complex64).reshape(-1)
        self.max = float(d.max()) if d.size else 0.0
        self.bins = _ZBins(np.asarray(grid.z, dtype=float))


_TABLES: "weakref.WeakKeyDictionary[DoseGrid, _Tables]" = weakref.WeakKeyDictionary()


def _tables(grid: DoseGrid) -> _Tables:
    """The tables of ``grid`` (cached while the grid lives; a grid's dose is not changed
    in place)."""
    t = _TABLES.get(grid)
    if t is None or t.dose is not grid.dose:
        t = _TABLES[grid] = _Tables(grid)
    return t


class _ZBins:
    """The z bins of a dose grid: the grid's z range cut at its inner frames. In bin f the
    trilinear dose is linear in t = (z - z[f]) / (z[f+1] - z[f]), clamped to [0, 1]
    (constant in the outer half frames)."""

    def __init__(self, z: np.ndarray):
        self.z = z
        self.n = z.size - 1
        lo, hi = _z_extent(z)
        self.edges = np.concatenate([[lo], z[1:-1], [hi]])
        self.lo, self.hi = lo, hi
        dz = np.diff(z)
        self.uniform = bool(np.all(np.abs(dz - dz[0]) <= 1e-9 * abs(dz[0])))
        self.dz0 = float(dz[0])

    def _frames(self, v: np.ndarray):
        """Frame coordinate of v (uniform frames): (floor, nearest, on a frame)."""
        r = (v - self.z[0]) * (1.0 / self.dz0)
        ri = np.rint(r)
        return np.floor(r), ri, np.abs(r - ri) < 1e-9

    def right(self, v: np.ndarray) -> np.ndarray:
        """Bin containing v, a lower piece end (a frame position starts the next bin)."""
        if self.uniform:
            fl, ri, on = self._frames(v)
            f = np.where(on, ri, fl)
        else:
            f = np.searchsorted(self.z, v, side="right") - 1
        return np.clip(f, 0, self.n - 1).astype(np.int64)

    def left(self, v: np.ndarray) -> np.ndarray:
        """Bin containing v, an upper piece end (a frame position ends the previous bin)."""
        if self.uniform:
            fl, ri, on = self._frames(v)
            f = np.where(on, ri - 1, fl)
        else:
            f = np.searchsorted(self.z, v, side="left") - 1
        return np.clip(f, 0, self.n - 1).astype(np.int64)

    def cut(self, za: np.ndarray, zb: np.ndarray):
        """Cut intervals (clipped to the grid, zb > za) into bins: (interval index, bin,
        start, end) of each part (parts shorter than the frame tolerance are dropped)."""
        fa, fb = self.right(za), self.left(zb)
        n = np.maximum(fb - fa + 1, 0)
        if np.all(n == 1):
            return np.arange(za.size), fa, za, zb
        q = np.repeat(np.arange(za.size), n)
        f = fa[q] + (np.arange(q.size) - np.repeat(np.cumsum(n) - n, n))
        a = np.maximum(za[q], self.edges[f])
        b = np.minimum(zb[q], self.edges[f + 1])
        ok = b > a
        if not ok.all():
            q, f, a, b = q[ok], f[ok], a[ok], b[ok]
        return q, f, a, b

    def moments(self, f: np.ndarray, a: np.ndarray, b: np.ndarray):
        """Length and the integrals of t and t^2 over [a, b] inside bin f; and the t range."""
        z0, z1 = self.z[f], self.z[f + 1]
        h = z1 - z0
        ta = np.clip((a - z0) / h, 0.0, 1.0)
        tb = np.clip((b - z0) / h, 0.0, 1.0)
        above = np.maximum(b - np.maximum(a, z1), 0.0)  # beyond the last frame: t = 1
        c1 = 0.5 * h * (tb * tb - ta * ta) + above
        c2 = h * (tb * tb * tb - ta * ta * ta) / 3.0 + above
        return b - a, c1, c2, ta, tb


# ---------------------------------------------------------------------------------------
# Streaming exact accumulation
# ---------------------------------------------------------------------------------------

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
        self.total += float(weight.sum())
        self.moment += float((mean * weight).sum())  # (no BLAS: its threads spin)
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

    def _deposit(self, lo, hi, weight) -> None:
        """The deposit of :func:`accumulate` (without its clip)."""
        if not lo.size:
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
        slope = np.cumsum(self.acc[: n + 2])
        below = h * np.concatenate([[0.0], np.cumsum(slope)[:-1]])[:n]
        total = self.total
        cum = np.clip(total - below, 0.0, total)
        cum = np.minimum.accumulate(cum)
        edges = np.arange(n) * h
        cum[edges > top] = 0.0  # every element lies below the Max: rounding residue only
        cum[-1] = 0.0
        return edges, cum


# ---------------------------------------------------------------------------------------
# Elements
# ---------------------------------------------------------------------------------------

def _voxel_elements(tab: _Tables, acc: _Accumulator, g, w, tm, vt, tlo, thi) -> None:
    """Whole-voxel elements: the dose voxel centred on the node of flat grid index g
    (frame f), over a z part of bin f with t mean ``tm`` and variance ``vt`` (t range
    [tlo, thi]); weight w (cc).

    The in-plane dose over the voxel has mean A and standard deviation s (from the grid
    tables) on frame f, B and s' on frame f+1; the element is uniform with the exact mean
    A + tm (B - A) and the variance vt ((B - A)^2 + (s' - s)^2) + (s + tm (s' - s))^2
    (exact for a linear dose; the in-plane spread is interpolated between the frames).
    Node doses at the ends of the t range are points of the structure (for Min/Max)."""
    nxy = tab.nxy
    f32 = np.float32
    gg = g
    for s in range(0, gg.size, CHUNK):
        sl = slice(s, s + CHUNK)
        g = gg[sl]
        gn = g + nxy
        pa = tab.pair[g].view(f32)
        pb = tab.pair[gn].view(f32)
        va = tab.flat[g]
        vb = tab.flat[gn]
        t = tm[sl]
        a = va + pa[0::2]
        dab = vb + pb[0::2]
        dab -= a
        mean = t * dab
        mean += a
        # spread (float32 suffices)
        sa, sb = pa[1::2], pb[1::2]
        t = t.astype(f32)
        dsd = sb - sa
        sd = t * dsd
        sd += sa
        d2 = dab.astype(f32)
        d2 *= d2
        dsd *= dsd
        d2 += dsd
        d2 *= vt[sl]
        sd *= sd
        d2 += sd
        d2 *= f32(12.0)
        width = np.sqrt(d2, out=d2)
        # node doses at the ends of the t range (only where they can widen [Min, Max])
        lo_v = min(float(va.min()), float(vb.min()))
        hi_v = max(float(va.max()), float(vb.max()))
        if lo_v < acc.dmin or hi_v > acc.dmax:
            vb -= va
            p0 = tlo[sl] * vb
            p0 += va
            vb *= thi[sl]
            vb += va
            acc.points(float(min(p0.min(), vb.min())), float(max(p0.max(), vb.max())))
        acc.add(mean, width, w[sl])


def _row_table(m: int) -> np.ndarray:
    """(2^m, 2, 3): for every pattern of inside flags along one sub-sample row of a voxel
    (bit c: sub-sample c), per half (qx: the dose cell left or right of the node; the node
    column goes right) the sums of 1, s and s^2 over the inside sub-samples, s in that
    cell's coordinates (0..1). Built by doubling: codes with bit c set add sub-sample c."""
    h = (m - 1) // 2
    v = (np.arange(m) - h) / m
    s = np.where(v >= 0, v, 1.0 + v)
    out = np.zeros((1 << m, 2, 3))
    for c in range(m):
        n = 1 << c
        out[n:2 * n] = out[:n]
        out[n:2 * n, int(v[c] >= 0)] += (1.0, s[c], s[c] * s[c])
    return out


_ROW_TABLES: dict[int, np.ndarray] = {}
#: Finest subdivision with a lookup table per row pattern (2^m rows of 6 sums).
_ROW_TABLE_MAX_M = 15


def _quadrant_moments(codes: np.ndarray, m: int) -> np.ndarray:
    """In-plane moments (n, 4, 6) of inside flags given as row codes (n, m) (bit c of row
    r: sub-sample (r, c)) per quadrant q = 2 qy + qx (the four dose cells the voxel
    overlaps): the sums of (1, s, r, s^2, r^2, s r) over the inside sub-samples in cell
    coordinates. Each row is looked up by its code (sums over the row per half,
    ``_row_table``)."""
    n = codes.shape[0]
    h = (m - 1) // 2
    v = (np.arange(m) - h) / m
    rho = np.where(v >= 0, v, 1.0 + v)
    if m <= _ROW_TABLE_MAX_M:
        tab = _ROW_TABLES.get(m)
        if tab is None:
            tab = _ROW_TABLES[m] = _row_table(m).reshape(1 << m, 6)
        P = tab[codes]  # (n, m rows, 6): per half qx, sums of (1, s, s^2)
    else:  # (fine subdivisions: sum the bits directly)
        bits = ((codes[:, :, None] >> np.arange(m, dtype=codes.dtype)) & 1).astype(float)
        half = v >= 0
        P = np.empty((n, m, 6))
        for qx in (0, 1):
            w = np.where(half == bool(qx), 1.0, 0.0)
            P[:, :, 3 * qx] = np.einsum("nrc,c->nr", bits, w)
            P[:, :, 3 * qx + 1] = np.einsum("nrc,c->nr", bits, w * rho)
            P[:, :, 3 * qx + 2] = np.einsum("nrc,c->nr", bits, w * rho * rho)
    out = np.empty((n, 4, 6))
    for qy, rows in ((0, slice(0, h)), (1, slice(h, m))):
        rr = rho[rows]
        Pr = P[:, rows]
        R0 = np.einsum("nrk->nk", Pr)  # (n, 6); einsum: no BLAS (its threads spin)
        R1 = np.einsum("nrk,r->nk", Pr, rr)
        R2 = np.einsum("nrk,r->nk", Pr, rr * rr)
        for qx in (0, 1):
            q, o = 2 * qy + qx, 3 * qx
            out[:, q, 0] = R0[:, o]
            out[:, q, 1] = R0[:, o + 1]
            out[:, q, 2] = R1[:, o]
            out[:, q, 3] = R0[:, o + 2]
            out[:, q, 4] = R2[:, o]
            out[:, q, 5] = R1[:, o + 1]
    return out


def _bits(codes: np.ndarray, m: int):
    """(item, r, c) of the set bits of row codes (n, m)."""
    it, r = nonzero(codes)
    dt = codes.dtype.type
    b = (codes[it, r][:, None] >> np.arange(m, dtype=dt)) & dt(1)
    i, c = nonzero(b)
    return it[i], r[i], c


def _trilinear_cells(tab: _Tables, f, jg, ig, qx, qy):
    """Coefficients (A..H) of the trilinear dose on cell quadrant (qx, qy) of the voxels
    centred on nodes (jg, ig), between frames f and f+1: dose = A + B s + C r + D t
    + E s r + F s t + G r t + H s r t with s, r, t in [0, 1] (constant beyond the outer
    nodes)."""
    nx, ny, nxy, d = tab.nx, tab.ny, tab.nxy, tab.flat
    i_a = np.clip(ig - 1 + qx, 0, nx - 1)
    i_b = np.clip(ig + qx, 0, nx - 1)
    j_a = np.clip(jg - 1 + qy, 0, ny - 1) * nx
    j_b = np.clip(jg + qy, 0, ny - 1) * nx
    base = f * nxy
    c000 = d[base + j_a + i_a]
    c100 = d[base + j_a + i_b]
    c010 = d[base + j_b + i_a]
    c110 = d[base + j_b + i_b]
    base += nxy
    c001 = d[base + j_a + i_a]
    c101 = d[base + j_a + i_b]
    c011 = d[base + j_b + i_a]
    c111 = d[base + j_b + i_b]
    B = c100 - c000
    C = c010 - c000
    D = c001 - c000
    E = c110 - c100 - C
    F = c101 - c100 - D
    G = c011 - c010 - D
    H = c111 - c110 - c101 + c100 - G
    return np.stack([c000, B, C, D, E, F, G, H])


def _cell_elements(acc: _Accumulator, m: int, coef: np.ndarray, S: np.ndarray) -> None:
    """Partial-voxel elements: the part of the structure inside one quadrant of a dose
    voxel (one trilinear cell, coefficients ``coef`` (8, n) from :func:`_trilinear_cells`)
    over a z part of one frame interval with a common z extent, given by its moments
    S = (W, Ss, Sr, St, Sss, Srr, Stt, Ssr, Sst, Srt) in cell coordinates (s, r, t) in
    [0, 1]^3 (W in mm^3). Uniform element with the exact mean of the trilinear dose over
    the part (up to the third central moment) and the variance of its linearisation at
    the centroid; each sub-sample stands for its sub-cell (variance 1/(12 m^2))."""
    add = 1.0 / (12.0 * m * m)
    for s in range(0, S.shape[1], CHUNK):
        sl = slice(s, s + CHUNK)
        W = S[0, sl]
        inv = 1.0 / W
        sm, rm, tm = S[1, sl] * inv, S[2, sl] * inv, S[3, sl] * inv
        css = S[4, sl] * inv - sm * sm + add
        crr = S[5, sl] * inv - rm * rm + add
        ctt = np.maximum(S[6, sl] * inv - tm * tm, 0.0)
        csr = S[7, sl] * inv - sm * rm
        cst = S[8, sl] * inv - sm * tm
        crt = S[9, sl] * inv - rm * tm
        A, B, C, D, E, F, G, H = coef[:, sl]
        srm = sm * rm + csr
        mean = (A + B * sm + C * rm + D * tm + E * srm + F * (sm * tm + cst)
                + G * (rm * tm + crt) + H * (srm * tm + sm * crt + rm * cst))
        gs = B + E * rm + (F + H * rm) * tm
        gr = C + E * sm + (G + H * sm) * tm
        gt = D + F * sm + (G + H * sm) * rm
        var = (gs * gs * css + gr * gr * crr + gt * gt * ctt
               + 2.0 * (gs * gr * csr + gs * gt * cst + gr * gt * crt))
        width = np.sqrt(12.0 * np.maximum(var, 0.0))
        acc.add(mean, width, W * 1e-3)


def _sample_elements(acc: _Accumulator, m: int, coef: np.ndarray, slot, rr, cc, w, tm, vt,
                     ta, tb) -> None:
    """Elements of single sub-sample column pieces: sub-sample (rr, cc) of a voxel, over a
    z part of one frame interval with t mean tm, variance vt and range [ta, tb], in the
    trilinear cell ``coef[:, slot]``; w in cc. Exact mean of the trilinear dose over the
    piece and its sub-cell; variance of its linearisation (sub-cell spread 1/(12 m^2) in s
    and r, vt in t). The doses at the two ends of each piece are points of the structure
    (Min/Max; one end lies on the interpolated surface)."""
    h = (m - 1) // 2
    v = (np.arange(m) - h) / m
    loc = np.where(v >= 0, v, 1.0 + v)  # in-cell coordinate of each sub-sample row/column
    add = 1.0 / (12.0 * m * m)
    for s in range(0, slot.size, CHUNK):
        sl = slice(s, s + CHUNK)
        sv = loc[cc[sl]]
        rv = loc[rr[sl]]
        t = tm[sl]
        A, B, C, D, E, F, G, H = coef[:, slot[sl]]
        gs = B + E * rv + (F + H * rv) * t
        gr = C + E * sv + (G + H * sv) * t
        gt = D + F * sv + (G + H * sv) * rv
        mean = A + B * sv + (C + E * sv) * rv + gt * t
        agt = np.abs(gt)  # the ends differ from the mean by less than |gt|
        if float((mean - agt).min()) < acc.dmin or float((mean + agt).max()) > acc.dmax:
            p0 = mean + gt * (ta[sl] - t)
            p1 = mean + gt * (tb[sl] - t)
            acc.points(float(min(p0.min(), p1.min())), float(max(p0.max(), p1.max())))
        var = (gs * gs + gr * gr) * add + gt * gt * vt[sl]
        acc.add(mean, np.sqrt(12.0 * var), w[sl])


def compute_dvh(structure: Structure, grid: DoseGrid, *, ct_z: np.ndarray | None = None,
                settings: Settings = DEFAULT, single_plane_mm: float | None = None) -> DVHData:
    """The cumulative DVH of ``structure`` on ``grid`` (Gy, cc). See the module docstring."""
    if not structure.has_volume:
        raise RtqaError(f"structure '{structure.name}' has no closed contours (no volume)")
    if grid.x.size < 2 or grid.y.size < 2 or grid.z.size < 2:
        raise RtqaError("dose grid needs at least 2 nodes along each axis", grid.path)
    dx, dy = float(grid.x[1] - grid.x[0]), float(grid.y[1] - grid.y[0])
    warnings: list[str] = list(structure.warnings)
    planes = structure.planes
    zs = structure.z_planes
    K = len(planes)
    if zs.size == 1:
        if single_plane_mm is None:
            single_plane_mm = float(np.min(np.diff(grid.z)))
            warnings.append(f"drawn on one plane only: given a slab of {single_plane_mm:.2f} mm "
                            "(the dose frame spacing)")
    slabs = slabs_for(zs, single_plane_mm or 0.0, ct_z)
    polys = [p for _, p in planes]
    edges = Edges.of(polys)
    areas = plane_areas(planes, edges)
    thick = slabs.thickness
    vol_est = float(np.nansum(areas * thick))
    m = _subdivision(vol_est, dx, dy, float(np.nansum(areas)), settings)
    sx, sy = dx / m, dy / m
    rast = raster(polys, float(grid.x[0]), float(grid.y[0]), dx, dy, m, edges)

    # Per-plane weights: rescale sample areas to the exact contour area.
    counts = rast.plane_counts().astype(float)
    sampled = counts * sx * sy
    scale = np.ones(K)
    ok = (counts > 0) & np.isfinite(areas)
    scale[ok] = areas[ok] / sampled[ok]
    bad = ok & (np.abs(sampled - areas) > 0.25 * areas + 8 * (sx + sy) * np.sqrt(areas))
    if np.any(bad):
        scale[bad] = 1.0
        warnings.append(f"{int(bad.sum())} plane(s) with self-intersecting or inconsistent "
                        "contours: their area is taken from the even-odd fill")
    # Planes whose contours are smaller than one sample cell: one sample at the centroid.
    for t in np.flatnonzero((counts == 0) & np.isfinite(areas) & (areas > 0)):
        rast.add_sample(int(t), float(np.mean(planes[t][1][0][:, 0])),
                        float(np.mean(planes[t][1][0][:, 1])))
        scale[t] = areas[t] / (sx * sy)
    if not settings.interpolate:
        slabs = Slabs(slabs.z, slabs.lo, slabs.hi, np.ones(max(K - 1, 0), bool))
        slabs = Slabs(slabs.z, *_half_way(slabs.z, slabs.lo, slabs.hi, ct_z), slabs.gap)

    tab = _tables(grid)
    acc = _Accumulator(tab.max)
    vmin, vmax = _surface_extremes(edges, slabs, grid, tab)
    acc.points(vmin, vmax)
    eng = _Engine(rast, slabs, scale, tab, acc, grid)
    eng.run()
    total_cc = eng.total_mm3 / 1000.0
    covered_cc = acc.total
    outside_cc = total_cc - covered_cc
    if outside_cc < 1e-9 * max(total_cc, 1.0):  # rounding, not geometry
        outside_cc = 0.0
    if covered_cc <= 0.0:
        raise RtqaError(f"structure '{structure.name}' lies entirely outside the dose grid "
                        f"({grid.path.name})")
    if outside_cc > 0.0:
        warnings.append(
            f"{outside_cc:.3f} cc ({100 * outside_cc / total_cc:.1f}%) lies outside "
            f"the dose grid: no dose there; the DVH covers the remaining {covered_cc:.3f} cc")
    dmin, dmax = float(acc.dmin), float(acc.dmax)
    edges, cum = acc.finish()
    return DVHData(
        name=structure.name, edges_gy=edges, cum_cc=cum, volume_cc=covered_cc,
        min_gy=dmin, max_gy=dmax, mean_gy=float(acc.moment / covered_cc),
        outside_cc=outside_cc, warnings=tuple(warnings))


class _Engine:
    """The column pieces of one structure turned into dose elements (module docstring,
    steps 3-4); ``total_mm3`` sums the volume of every piece, in the grid or not."""

    def __init__(self, rast: Raster, slabs: Slabs, scale: np.ndarray, tab: _Tables,
                 acc: _Accumulator, grid: DoseGrid):
        self.r, self.slabs, self.scale, self.tab, self.acc = rast, slabs, scale, tab, acc
        self.grid = grid
        self.total_mm3 = 0.0
        r = rast
        K = r.K
        # the part of the voxel box inside the grid (in-plane)
        self.iw = (max(0, -r.I0), min(r.NI, tab.nx - r.I0))
        self.jw = (max(0, -r.J0), min(r.NJ, tab.ny - r.J0))
        self.in_plane = self.iw[1] > self.iw[0] and self.jw[1] > self.jw[0]
        start = np.ones(K, dtype=bool)
        end = np.ones(K, dtype=bool)
        start[1:] = slabs.gap
        end[:-1] = slabs.gap
        self.start, self.end = start, end
        self.linked = np.flatnonzero(~slabs.gap)  # intervals k <-> k+1
        self.pair_scale = 0.5 * (scale[:-1] + scale[1:])

    def run(self) -> None:
        self._whole_voxels()
        if self.r.m == 1:
            self._node_bands()
        else:
            self._partial_voxels()

    # -- whole voxels ----------------------------------------------------------------
    def _whole_voxels(self) -> None:
        """Slab pieces of whole voxels: every interval between linked planes (voxels whole
        on both planes) and every end cap (whole on its plane). Within one dose bin a
        voxel column holds some of the (at most a few) pieces that overlap the bin; the
        set is coded in the bits of a small integer per voxel and bin, and the weight and
        t moments of each code are tabulated (exactly: sums over the pieces)."""
        r, s, tab, zb = self.r, self.slabs, self.tab, self.tab.bins
        full = r.cls == 2
        K = r.K
        lk = self.linked
        st, en = np.flatnonzero(self.start), np.flatnonzero(self.end)
        # sources: intervals, lower caps, upper caps
        src_plane = np.concatenate([lk, st, en])
        za = np.concatenate([s.z[lk], s.lo[st], s.z[en]])
        zbb = np.concatenate([s.z[lk + 1], s.z[st], s.hi[en]])
        wsc = np.concatenate([self.pair_scale[lk], self.scale[st], self.scale[en]]) \
            * (r.dx * r.dy)
        n_int = lk.size
        if not src_plane.size:
            return
        nv = r.NJ * r.NI
        per_plane = np.count_nonzero(full.reshape(K, nv), axis=1)
        both = np.count_nonzero((full[1:] & full[:-1]).reshape(K - 1, nv), axis=1)[lk]
        counts = np.concatenate([both, per_plane[st], per_plane[en]]).astype(float)
        self.total_mm3 += float(np.sum(counts * (zbb - za) * wsc))
        if not self.in_plane:
            return
        ca, cb = np.clip(za, zb.lo, zb.hi), np.clip(zbb, zb.lo, zb.hi)
        live = np.flatnonzero((cb > ca) & (counts > 0))
        if not live.size:
            return
        q, f, a, b = zb.cut(ca[live], cb[live])
        q = live[q]
        c0, c1, c2, ta, tb = zb.moments(f, a, b)
        # layers: the pieces of a bin, at most 8 to a layer (one bit each)
        order = np.argsort(f, kind="stable")
        q, f, c0, c1, c2, ta, tb = (x[order] for x in (q, f, c0, c1, c2, ta, tb))
        new_bin = np.flatnonzero(np.diff(f, prepend=-1))
        rank = np.arange(f.size) - np.repeat(new_bin, np.diff(np.append(new_bin, f.size)))
        lay_id, layer = np.unique(f * 65536 + rank // 8, return_inverse=True)
        bit = rank % 8
        n_lay = lay_id.size
        lay_f = np.empty(n_lay, dtype=np.int64)
        lay_f[layer] = f
        # tables per layer and code: weight (cc), t mean, t variance, t range
        nbit = int(bit.max()) + 1
        P = np.zeros((4, n_lay, nbit))
        tlo_p = np.ones((n_lay, nbit))
        thi_p = np.zeros((n_lay, nbit))
        w = wsc[q]
        P[0, layer, bit] = w * c0
        P[1, layer, bit] = w * c1
        P[2, layer, bit] = w * c2
        tlo_p[layer, bit] = ta
        thi_p[layer, bit] = tb
        codes = np.arange(1 << nbit)
        bits = ((codes[:, None] >> np.arange(nbit)) & 1).astype(bool)  # (codes, nbit)
        W = (P[0][:, None, :] * bits).sum(axis=2)  # (n_lay, codes)
        S1 = (P[1][:, None, :] * bits).sum(axis=2)
        S2 = (P[2][:, None, :] * bits).sum(axis=2)
        Wd = np.where(W > 0, W, 1.0)
        TM = S1 / Wd
        VT = np.maximum(S2 / Wd - TM * TM, 0.0)
        TLO = np.where(bits, tlo_p[:, None, :], 1.0).min(axis=2)
        THI = np.where(bits, thi_p[:, None, :], 0.0).max(axis=2)
        W = (W * 1e-3).reshape(-1)
        TM, VT, TLO, THI = (x.reshape(-1).astype(np.float32) for x in (TM, VT, TLO, THI))
        # the code of every voxel of the window in every layer (layers in bin order)
        (j0, j1), (i0, i1) = self.jw, self.iw
        flat2d = ((np.arange(j0, j1)[:, None] + r.J0) * tab.nx
                  + (np.arange(i0, i1) + r.I0)).reshape(-1)
        stride = 1 << nbit
        nJ, nI = j1 - j0, i1 - i0
        nw = nJ * nI
        # the window masks of the sources in use (one row each)
        used, src_row = np.unique(q, return_inverse=True)
        M = np.empty((used.size, nw), dtype=np.uint8)
        ints = used < n_int
        ki = lk[used[ints]]
        M[ints] = (full[ki, j0:j1, i0:i1] & full[ki + 1, j0:j1, i0:i1]).reshape(-1, nw)
        M[~ints] = full[src_plane[used[~ints]], j0:j1, i0:i1].reshape(-1, nw)
        group = max(1, 131072 // nw)
        for g0 in range(0, n_lay, group):
            g1 = min(n_lay, g0 + group)
            code = np.zeros((g1 - g0, nw), dtype=np.uint8)
            sel = np.flatnonzero((layer >= g0) & (layer < g1))
            for p in range(nbit):  # the pieces with bit p (at most one per layer)
                sp = sel[bit[sel] == p]
                if sp.size:
                    code[layer[sp] - g0] |= M[src_row[sp]] << np.uint8(p)
            lay, cell = nonzero(code)
            row = code[lay, cell].astype(np.intp)
            lay += g0
            row += lay * stride
            _voxel_elements(tab, self.acc, lay_f[lay] * tab.nxy + flat2d[cell], W[row],
                            TM[row], VT[row], TLO[row], THI[row])

    # -- m = 1: node samples between planes ---------------------------------------------
    def _node_bands(self) -> None:
        """Band pieces of node samples (inside on one plane of an interval only)."""
        r, s = self.r, self.slabs
        if not self.linked.size:
            return
        ins = r.cls == 2
        diff = ins[1:] ^ ins[:-1]
        diff[s.gap] = False  # no interpolation across a gap
        k, J, I = nonzero(diff)
        if not k.size:
            return
        lower = ins[k, J, I]
        zc = band_crossings(r, s, k, lower, J, I)
        za = np.where(lower, s.z[k], zc)
        zb = np.where(lower, zc, s.z[k + 1])
        wsc = np.where(lower, self.scale[k], self.scale[np.minimum(k + 1, r.K - 1)]) \
            * r.dx * r.dy
        self.total_mm3 += float(np.sum((zb - za) * wsc))
        self._voxel_pieces(J, I, za, zb, wsc)

    def _voxel_pieces(self, J, I, za, zb, wsc) -> None:
        """Whole-voxel elements of individual column pieces (node J, I; z za..zb)."""
        r, tab, zb_ = self.r, self.tab, self.tab.bins
        (j0, j1), (i0, i1) = self.jw, self.iw
        a, b = np.clip(za, zb_.lo, zb_.hi), np.clip(zb, zb_.lo, zb_.hi)
        keep = np.flatnonzero((b > a) & (J >= j0) & (J < j1) & (I >= i0) & (I < i1))
        if not keep.size:
            return
        q, f, a, b = zb_.cut(a[keep], b[keep])
        q = keep[q]
        c0, c1, c2, ta, tb = zb_.moments(f, a, b)
        with np.errstate(invalid="ignore", divide="ignore"):
            tm = np.where(c0 > 0, c1 / c0, 0.5 * (ta + tb))
            vt = np.maximum(np.where(c0 > 0, c2 / c0, 0.0) - tm * tm, 0.0)
        g = f * tab.nxy + (J[q] + r.J0) * tab.nx + (I[q] + r.I0)
        _voxel_elements(tab, self.acc, g, c0 * wsc[q] * 1e-3, tm, vt, ta, tb)

    # -- m > 1: boundary voxels by sub-samples -------------------------------------------
    def _partial_voxels(self) -> None:
        """Voxels not whole over an interval or cap: their sub-samples inside on both
        planes (on the cap plane) as moments per trilinear cell and frame interval, those
        inside on one plane only as band pieces."""
        r, s, zb_ = self.r, self.slabs, self.tab.bins
        m = r.m
        h = (m - 1) // 2
        sxsy = (r.dx / m) * (r.dy / m)
        cls, bid, blocks = r.cls, r.bid, r.blocks
        # items: (plane k, voxel J, I, flags a and b, z range, weight scale)
        lk = self.linked
        a, b = cls[lk], cls[lk + 1]
        sel = (a == 1) | (b == 1) | (a != b)  # not whole on both, not empty on both
        kx, J1, I1 = nonzero(sel)
        k1 = lk[kx]
        parts = [(k1, J1, I1, bid[k1, J1, I1], bid[k1 + 1, J1, I1], s.z[k1], s.z[k1 + 1],
                  self.pair_scale[k1])]
        n_int = k1.size
        # end caps: boundary voxels of run-end planes
        for flag, lo_of, hi_of in ((self.start, s.lo, s.z), (self.end, s.z, s.hi)):
            kc = np.flatnonzero(flag)
            kx, J1, I1 = nonzero(cls[kc] == 1)
            k1 = kc[kx]
            ids = bid[k1, J1, I1]
            parts.append((k1, J1, I1, ids, ids, lo_of[k1], hi_of[k1], self.scale[k1]))
        ik, iJ, iI, ba, bb, za, zbb, wsc = (np.concatenate(x) for x in zip(*parts))
        if not ik.size:
            return
        wsc = wsc * sxsy
        n_items = ik.size
        both = blocks[ba] & blocks[bb]  # (row codes) caps: ba == bb, the plane's flags
        # in-plane moments per quadrant
        mom = np.empty((n_items, 4, 6))
        for c in range(0, n_items, 4096):
            mom[c:c + 4096] = _quadrant_moments(both[c:c + 4096], m)
        area = mom[:, :, 0].sum(axis=1)
        self.total_mm3 += float(np.sum(area * (zbb - za) * wsc))
        # band sub-samples (intervals only)
        it_l, rl, cl = _bits(blocks[ba[:n_int]] & ~blocks[bb[:n_int]], m)
        it_u, ru, cu = _bits(blocks[bb[:n_int]] & ~blocks[ba[:n_int]], m)
        it = np.concatenate([it_l, it_u])
        br = np.concatenate([rl, ru])
        bc = np.concatenate([cl, cu])
        lower = np.arange(it.size) < it_l.size
        if it.size:
            kb = ik[it]
            zc = band_crossings(r, s, kb, lower, iJ[it] * m + br, iI[it] * m + bc)
            ku = np.minimum(kb + 1, r.K - 1)
            pza = np.where(lower, s.z[kb], zc)
            pzb = np.where(lower, zc, s.z[ku])
            pw = np.where(lower, self.scale[kb], self.scale[ku]) * sxsy
            self.total_mm3 += float(np.sum((pzb - pza) * pw))
        if not self.in_plane:
            return
        (j0, j1), (i0, i1) = self.jw, self.iw
        ing = (iJ >= j0) & (iJ < j1) & (iI >= i0) & (iI < i1)
        ca, cb = np.clip(za, zb_.lo, zb_.hi), np.clip(zbb, zb_.lo, zb_.hi)
        ing &= cb > ca
        fa = zb_.right(ca)
        nb = np.where(ing, zb_.left(cb) - fa + 1, 0)
        nbmax = int(nb.max(initial=0))
        if nbmax == 0:
            return
        # slots (item, quadrant, bin offset): 10 moments
        S = np.zeros((10, n_items, 4, nbmax))
        A, Ss, Sr, Sss, Srr, Ssr = (mom[:, :, i] for i in range(6))
        for o in range(nbmax):
            live = nb > o
            f = np.minimum(fa + o, zb_.n - 1)
            a = np.maximum(ca, zb_.edges[f])
            b = np.minimum(cb, zb_.edges[f + 1])
            c0, c1, c2, _, _ = zb_.moments(f, a, np.maximum(a, b))
            c0, c1, c2 = (np.where(live, c, 0.0) * wsc for c in (c0, c1, c2))
            S[0, :, :, o] = A * c0[:, None]
            S[1, :, :, o] = Ss * c0[:, None]
            S[2, :, :, o] = Sr * c0[:, None]
            S[3, :, :, o] = A * c1[:, None]
            S[4, :, :, o] = Sss * c0[:, None]
            S[5, :, :, o] = Srr * c0[:, None]
            S[6, :, :, o] = A * c2[:, None]
            S[7, :, :, o] = Ssr * c0[:, None]
            S[8, :, :, o] = Ss * c1[:, None]
            S[9, :, :, o] = Sr * c1[:, None]
        S = S.reshape(10, -1)
        # band pieces: each its own element (the extent of each column matters there)
        node_parts = []
        band = None
        used = S[0] > 0
        if it.size:
            a, b = np.clip(pza, zb_.lo, zb_.hi), np.clip(pzb, zb_.lo, zb_.hi)
            keep = np.flatnonzero(ing[it] & (b > a))
            if keep.size:
                qq, f, a, b = zb_.cut(a[keep], b[keep])
                qq = keep[qq]
                c0, c1, c2, ta, tb = zb_.moments(f, a, b)
                tm = c1 / c0
                vt = np.maximum(c2 / c0 - tm * tm, 0.0)
                rr, cc = br[qq], bc[qq]
                itb = it[qq]
                q = 2 * (rr >= h) + (cc >= h)
                slot = (itb * 4 + q) * nbmax + np.clip(f - fa[itb], 0, nbmax - 1)
                used[slot] = True
                band = (slot, rr, cc, c0 * pw[qq] * 1e-3, tm, vt, ta, tb)
                cen = (rr == h) & (cc == h)
                if np.any(cen):
                    node_parts.append((itb[cen], f[cen], ta[cen], tb[cen]))
        # node (centre sub-sample) extremes: points of the structure
        dt = both.dtype.type
        cen_items = np.flatnonzero(ing & ((both[:, h] >> dt(h)) & dt(1)).astype(bool))
        if cen_items.size:
            qq, f, a, b = zb_.cut(ca[cen_items], cb[cen_items])
            _, _, _, ta, tb = zb_.moments(f, a, b)
            node_parts.append((cen_items[qq], f, ta, tb))
        tab = self.tab
        for itm, f, ta, tb in node_parts:
            g = f * tab.nxy + (iJ[itm] + r.J0) * tab.nx + (iI[itm] + r.I0)
            va, vb = tab.flat[g], tab.flat[g + tab.nxy]
            p = np.concatenate([va + ta * (vb - va), va + tb * (vb - va)])
            if p.size:
                self.acc.points(float(p.min()), float(p.max()))
        # the trilinear cells in use: (item, quadrant, bin offset)
        slots = np.flatnonzero(used)
        if not slots.size:
            return
        index = np.empty(used.size, dtype=np.intp)
        index[slots] = np.arange(slots.size)
        o = slots % nbmax
        qd = (slots // nbmax) % 4
        itm = slots // (4 * nbmax)
        coef = _trilinear_cells(tab, fa[itm] + o, iJ[itm] + r.J0, iI[itm] + r.I0, qd & 1,
                                qd >> 1)
        if band is not None:
            _sample_elements(self.acc, m, coef, index[band[0]], *band[1:])
        sl = np.flatnonzero(S[0] > 0)
        if sl.size:
            _cell_elements(self.acc, m, coef[:, index[sl]], S[:, sl])


def _surface_extremes(e: Edges, slabs, grid: DoseGrid, tab: _Tables) -> tuple[float, float]:
    """Extreme doses at the contour vertices on both faces of every slab and on every dose
    frame in between (the structure's surface)."""
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
    plane_of = e.plane
    i0, j0, tx, ty = _bilinear_parts(grid, e.x0[keep], e.y0[keep])
    base = j0 * tab.nx + i0
    plane_of = plane_of[keep]
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
    nf = (fb - fa)[plane_of] + 2  # frames fa .. fb + 1 of each vertex's slab
    vals = []  # dose at frames fa + o of the vertices with nf > o

    def bilinear(sel, o):
        if sel is None:  # every vertex
            g, c00, c10, c01, c11 = f0 * nxy + base, w00, w10, w01, w11
        else:
            g, c00, c10, c01, c11 = (f0[sel] * nxy + base[sel], w00[sel], w10[sel],
                                     w01[sel], w11[sel])
        g += o * nxy
        out = c00 * d[g]
        g += 1
        out += c10 * d[g]
        g += nx
        out += c11 * d[g]
        g -= 1
        out += c01 * d[g]
        return out

    every = np.arange(keep.size)
    for o in range(int(nf.max())):
        sel = None if o < 2 else np.flatnonzero(nf > o)
        vals.append((every if sel is None else sel, bilinear(sel, o)))
    b0, b1 = vals[0][1], vals[1][1]
    cand = [b0 + ta[plane_of] * (b1 - b0)]  # face a
    last = nf == 2  # face b in the same frame interval
    cand.append(b0[last] + tb[plane_of[last]] * (b1[last] - b0[last]))
    if not last.all():
        # frames fa+1 .. fb are inner levels; face b lies between frames fb and fb + 1
        mid = ~last
        cand.append(b1[mid])
        for o in range(2, len(vals)):
            sel, v = vals[o]
            n_sel = nf[sel]
            inner = n_sel > o + 1
            cand.append(v[inner])
            end = n_sel == o + 1
            prev = _lookup(vals[o - 1], sel[end])
            cand.append(prev + tb[plane_of[sel[end]]] * (v[end] - prev))
    lo = min(float(c.min()) for c in cand if c.size)
    hi = max(float(c.max()) for c in cand if c.size)
    return lo, hi


def _lookup(layer, idx):
    """Values of a (vertex indices, values) layer at vertex indices ``idx`` (present)."""
    sel, v = layer
    return v[np.searchsorted(sel, idx)]
