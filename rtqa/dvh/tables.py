"""Per-grid tables of the DVH engine, computed once per dose grid and cached while the
grid lives.

Units: dose in Gy, z in mm; t is the position between two dose frames (0 on frame f,
1 on frame f+1).

* :class:`_Tables`: for every node and frame the mean (as its offset from the node dose)
  and the standard deviation of the in-plane (bilinear) dose over the dose voxel centred
  on the node (:func:`_voxel_mean_sd`), so that the mean of a whole-voxel element is the
  exact mean of the trilinear dose over the voxel and its z part;
* :class:`_ZBins`: the grid's z range cut at its inner frames. Every column piece is cut
  at the dose frames: within a frame interval the trilinear dose is linear in t.
"""

from __future__ import annotations

import weakref

import numpy as np

from rtqa.dvh.interpolation import _z_extent
from rtqa.reading.dose import DoseGrid


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
