"""Per-grid tables of the DVH engine, computed once per dose grid and cached while the
grid lives.

Units: dose in Gy, z in mm; t is the position between two dose frames (0 on frame f,
1 on frame f+1).

* :class:`_Tables`: for every node and frame the mean (as its offset from the node dose)
  and the standard deviation of the in-plane (bilinear) dose over the dose voxel centred
  on the node (:func:`_voxel_mean_sd`), so that the mean of a whole-voxel element is the
  exact mean of the trilinear dose over the voxel and its z part;
* :class:`_ZBins`: the grid's z range cut at its inner frames. Every column piece is cut
  at the dose frames: within a frame interval the trilinear dose is linear in t;
* :class:`_FrameRing`: with the compiled kernels on a large grid, the same pairs computed
  by the whole-voxel kernel frame by frame, only where a structure's elements reach.

The tables and their windowed look-up (:meth:`_Tables._compute`, :meth:`_Tables.pairs_at`)
have a compiled twin, ``rtqa.dvh._ctables`` (the same values, bit for bit; the numpy code
here is the reference and the fallback: rtqa._native).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict

import numpy as np

from rtqa import _native
from rtqa.dvh.interpolation import _z_extent

try:  # np.clip's ufunc without np.clip's Python wrapper (the same values; float bounds)
    from numpy._core.umath import clip as _clip
except ImportError:  # (numpy < 2)
    from numpy.core.umath import clip as _clip
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

    # Every step runs over the frames flattened to one dimension (x differences) or to
    # (frame, y x) (y differences): contiguous operations. Along x, the flat differences
    # include one across each row end (not a difference of the row); those entries are
    # overwritten or set to zero (adding zero leaves a sum unchanged), so each value is the
    # same operation on the same operands as along the axis.
    f32 = np.float32
    d = np.ascontiguousarray(d)
    nf, ny, nx = d.shape

    def second_x(a, dtype=None):  # v- - 2 v + v+ along x, constant beyond the outer nodes
        # (into float32 directly: each value computed in a's type, then rounded once,
        # as a float64 result then cast)
        a1 = a.reshape(-1)
        g = a1[1:] - a1[:-1]
        out = np.empty(a.shape, dtype=dtype or a.dtype)
        o1 = out.reshape(-1)
        np.subtract(g[1:], g[:-1], out=o1[1:-1])
        o1[0::nx] = g[0::nx]
        o1[nx - 1::nx] = -g[nx - 2::nx]
        return out

    def second_y(a, dtype=None):  # the same along y
        a2 = a.reshape(nf, ny * nx)
        g = a2[:, nx:] - a2[:, :-nx]
        out = np.empty(a.shape, dtype=dtype or a.dtype)
        o2 = out.reshape(nf, ny * nx)
        np.subtract(g[:, nx:], g[:, :-nx], out=o2[:, nx:-nx])
        o2[:, :nx] = g[:, :nx]
        o2[:, -nx:] = -g[:, -nx:]
        return out

    def add_var_x(var, a):  # 5 (gl^2 + gr^2) / 192 + gl gr / 32 along x
        a1 = a.reshape(-1)
        v = var.reshape(-1)
        g = a1[1:] - a1[:-1]
        g[nx - 1::nx] = 0  # (across row ends)
        g2 = g * g
        v[1:] += g2
        v[:-1] += g2
        g2 = np.multiply(g[:-1], g[1:], out=g2[1:])
        g2 *= f32(1.2)  # (1/32) / (5/192)
        v[1:-1] += g2

    def add_var_y(var, a):  # the same along y
        a2 = a.reshape(nf, ny * nx)
        v = var.reshape(nf, ny * nx)
        g = a2[:, nx:] - a2[:, :-nx]
        g2 = g * g
        v[:, nx:] += g2
        v[:, :-nx] += g2
        g2 = np.multiply(g[:, :-nx], g[:, nx:], out=g2[:, nx:])
        g2 *= f32(1.2)
        v[:, nx:-nx] += g2

    # second differences from the float64 dose (exactly 0 for a uniform dose), the rest
    # in float32 (relative precision suffices for the offset and the spread)
    dx2 = second_x(d, f32)
    dy2 = second_y(d, f32)
    off = second_x(dy2)
    off *= f32(1.0 / 64.0)
    off += (dx2 + dy2) * f32(0.125)
    delta[...] = off
    var = np.zeros(d.shape, dtype=f32)
    d32 = d.astype(f32)
    prof = dy2.copy()
    prof *= f32(0.125)
    prof += d32  # the y-averaged profile
    add_var_x(var, prof)
    prof = dx2
    prof *= f32(0.125)
    prof += d32  # the x-averaged profile
    add_var_y(var, prof)
    var *= f32(5.0 / 192.0)
    np.maximum(var, 0, out=var)
    np.sqrt(var, out=sd)


#: Grids whose tables (two float32 per node) take at most this many bytes get them
#: computed whole, once per grid (a fixed amount of memory: 6 M nodes).
WHOLE_TABLE_BYTES = 48_000_000
#: Larger grids get them per structure window, in blocks of frames on first use, keeping
#: at most this many bytes (issue 16: the engine's peak memory at fine grids is the dose
#: grid plus a fixed amount, not twice the grid).
TABLE_BUDGET_BYTES = 8_000_000
#: Bytes per block of frames (large grids).
TABLE_BLOCK_BYTES = 1_000_000
#: The compiled twin of :meth:`_Tables._compute` and :meth:`_Tables.pairs_at`.
_KERNEL = "rtqa.dvh._ctables"


class _Tables:
    """Per-grid data: for every node and frame the mean (as its offset from the node dose,
    so that a uniform or linear dose stays exact in float64) and the standard deviation of
    the in-plane (bilinear) dose over the dose voxel centred on the node (float32 pairs,
    :meth:`pair_at`), and the z bins.

    A grid whose pairs fit in ``WHOLE_TABLE_BYTES`` gets them once, whole. A larger grid
    gets them for the in-plane window of the structure at hand (:meth:`use_window`), in
    blocks of frames computed on first use; at most the budget is kept (least recently
    used blocks are dropped and recomputed if needed again). A node's pair depends only on
    its 3 x 3 in-plane neighbourhood of its own frame, so a window computed with a
    one-node margin gives the same values, bit for bit, as the whole grid."""

    def __init__(self, grid: DoseGrid, budget_bytes: int | None = None,
                 whole_bytes: int | None = None):
        d = self.dose = grid.dose
        nz, ny, nx = d.shape
        self.nx, self.ny, self.nz = nx, ny, nz
        self.nxy = nx * ny
        self.flat = d.reshape(-1)
        self.budget = TABLE_BUDGET_BYTES if budget_bytes is None else budget_bytes
        self.pair = None
        self._win: tuple[int, int, int, int] | None = None
        if d.size * 8 <= (WHOLE_TABLE_BYTES if whole_bytes is None else whole_bytes):
            self.pair = self._compute(0, nz, (0, ny, 0, nx))
        else:
            self._cache: "OrderedDict[int, np.ndarray]" = OrderedDict()
            self.use_window(0, ny, 0, nx)
        self.max = float(d.max()) if d.size else 0.0
        self.bins = _ZBins(np.asarray(grid.z, dtype=float))

    def use_window(self, j0: int, j1: int, i0: int, i1: int) -> None:
        """The node rows j0..j1-1 and columns i0..i1-1 that the next :meth:`pair_at`
        calls look up (large grids only; whole tables cover every node)."""
        if self.pair is not None:
            return
        j0, j1 = max(0, j0), min(self.ny, max(j1, j0 + 1))
        i0, i1 = max(0, i0), min(self.nx, max(i1, i0 + 1))
        if (j0, j1, i0, i1) == self._win:
            return
        self._win = (j0, j1, i0, i1)
        self._cache.clear()
        area = (j1 - j0) * (i1 - i0)
        self.block = max(1, min(self.nz, TABLE_BLOCK_BYTES // (8 * area)))
        self._cap = max(2, self.budget // (8 * area * self.block))

    def _compute(self, f0: int, f1: int, win) -> np.ndarray:
        """The (mean offset, sd) pairs of frames f0..f1-1 over the window (node rows
        j0..j1-1, columns i0..i1-1) as complex64, flat (frame, row, column)."""
        j0, j1, i0, i1 = win
        c = _native.load(_KERNEL)
        if c is not None and _plain(self.flat, np.float64):
            out = np.empty((f1 - f0) * (j1 - j0) * (i1 - i0), dtype=np.complex64)
            if c.pairs(self.flat, self.nz, self.ny, self.nx, f0, f1, j0, j1, i0, i1, out):
                return out
        ja, jb = max(j0 - 1, 0), min(j1 + 1, self.ny)
        ia, ib = max(i0 - 1, 0), min(i1 + 1, self.nx)
        d = self.dose
        ms = np.empty((f1 - f0, j1 - j0, i1 - i0, 2), dtype=np.float32)
        whole = (ja, jb, ia, ib) == (j0, j1, i0, i1)
        step = max(1, 131072 // ((jb - ja) * (ib - ia)))
        for f in range(f0, f1, step):
            e = min(f + step, f1)
            if whole:
                _voxel_mean_sd(d[f:e, j0:j1, i0:i1], ms[f - f0:e - f0, ..., 0],
                               ms[f - f0:e - f0, ..., 1])
                continue
            tmp = np.empty((e - f, jb - ja, ib - ia, 2), dtype=np.float32)
            _voxel_mean_sd(d[f:e, ja:jb, ia:ib], tmp[..., 0], tmp[..., 1])
            ms[f - f0:e - f0] = tmp[:, j0 - ja:j1 - ja, i0 - ia:i1 - ia]
        return ms.reshape(-1, 2).view(np.complex64).reshape(-1)

    def _block(self, b: int) -> np.ndarray:
        t = self._cache.get(b)
        if t is None:
            f0 = b * self.block
            t = self._cache[b] = self._compute(f0, min(f0 + self.block, self.nz), self._win)
            while len(self._cache) > self._cap:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(b)
        return t

    def pair_at(self, g: np.ndarray) -> np.ndarray:
        """The (mean offset, sd) pairs (complex64: view as float32 pairs) at flat node
        indices ``g`` (inside the window of :meth:`use_window` for large grids)."""
        if self.pair is not None:
            return self.pair[g]
        f, rem = np.divmod(g, self.nxy)
        return self._gather(f, self._local2d(rem))

    def pairs_at(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`pair_at` at ``g`` and at ``g + nxy`` (the same nodes on the next frame),
        the node position worked out once and each block of frames visited once (a
        visit per frame would sweep the blocks twice and, beyond the budget, compute
        them twice)."""
        if self.pair is not None:
            return self.pair[g], self.pair[g + self.nxy]
        c = _native.load(_KERNEL)
        if c is not None and _plain(g, np.int64):
            r = self._pairs_native(c, g)
            if r is not None:
                return r
        f, rem = np.divmod(g, self.nxy)
        in_order = bool(np.all(f[1:] >= f[:-1]))  # frame order (whole-voxel elements)
        loc = self._local2d(rem)
        j0, j1, i0, i1 = self._win
        area = (j1 - j0) * (i1 - i0)
        ba = f // self.block
        la = (f - ba * self.block) * area + loc
        f += 1
        bb = f // self.block
        lb = (f - bb * self.block) * area + loc
        lo, hi = int(ba.min(initial=0)), int(bb.max(initial=0))
        if lo == hi:
            t = self._block(lo)
            return t[la], t[lb]
        out_a = np.empty(g.size, dtype=np.complex64)
        out_b = np.empty(g.size, dtype=np.complex64)
        if in_order:
            order = None
        else:
            order = np.argsort(f, kind="stable")
            ba, bb, la, lb = ba[order], bb[order], la[order], lb[order]
        blocks = np.arange(lo, hi + 2)
        ca = np.searchsorted(ba, blocks)
        cb = np.searchsorted(bb, blocks)
        # visit from the end nearer the most recently used block (still cached: a second
        # sweep over a structure's frames then recomputes only what the budget dropped)
        last = next(reversed(self._cache), lo)
        visit = range(hi, lo - 1, -1) if 2 * last > lo + hi else range(lo, hi + 1)
        for blk in visit:
            n = blk - lo
            sa, sb = slice(ca[n], ca[n + 1]), slice(cb[n], cb[n + 1])
            if sa.stop == sa.start and sb.stop == sb.start:
                continue
            t = self._block(blk)
            if order is None:
                out_a[sa] = t[la[sa]]
                out_b[sb] = t[lb[sb]]
            else:
                out_a[order[sa]] = t[la[sa]]
                out_b[order[sb]] = t[lb[sb]]
        return out_a, out_b

    def _pairs_native(self, c, g: np.ndarray):
        """:meth:`pairs_at` compiled (``_ctables.blocks``, then ``gather``: the same
        values); None when the kernel leaves ``g`` to the numpy code (a node outside the
        window or the frames, or more blocks than the budget keeps)."""
        j0, j1, i0, i1 = self._win
        args = (self.nxy, self.nx, self.nz, self.block, j0, j1, i0, i1)
        mask = np.zeros(-(-self.nz // self.block), dtype=np.uint8)
        if not c.blocks(g, *args, mask):
            return None
        used = np.flatnonzero(mask).tolist()
        if len(used) > self._cap:
            return None
        if not used:  # (no node)
            return np.empty(0, dtype=np.complex64), np.empty(0, dtype=np.complex64)
        lo, hi = used[0], used[-1]
        # visit from the end nearer the most recently used block, as the numpy code
        last = next(reversed(self._cache), lo)
        if 2 * last > lo + hi:
            used.reverse()
        tabs = [None] * (hi - lo + 1)
        for b in used:  # (at most the cap: none of them is dropped meanwhile)
            tabs[b - lo] = self._block(b)
        out_a = np.empty(g.size, dtype=np.complex64)
        out_b = np.empty(g.size, dtype=np.complex64)
        if not c.gather(g, *args, lo, tuple(tabs), out_a, out_b):
            return None
        return out_a, out_b

    def _local2d(self, rem: np.ndarray) -> np.ndarray:
        """In-window in-plane index of in-plane flat indices ``rem`` (row j, column i)."""
        j0, j1, i0, i1 = self._win
        j, i = np.divmod(rem, self.nx)
        j -= j0
        j *= i1 - i0
        i -= i0
        j += i
        return j

    def _gather(self, f: np.ndarray, loc: np.ndarray) -> np.ndarray:
        """Pairs at frames ``f`` and in-window in-plane indices ``loc``."""
        j0, j1, i0, i1 = self._win
        area = (j1 - j0) * (i1 - i0)
        b = f // self.block
        local = (f - b * self.block) * area + loc
        lo, hi = int(b.min(initial=0)), int(b.max(initial=0))
        if lo == hi:
            return self._block(lo)[local]
        out = np.empty(f.size, dtype=np.complex64)
        if bool(np.all(b[1:] >= b[:-1])):  # in frame order (whole-voxel elements): runs
            cuts = np.searchsorted(b, np.arange(lo + 1, hi + 1))
            for blk, s, e in zip(range(lo, hi + 1), np.concatenate([[0], cuts]),
                                 np.concatenate([cuts, [b.size]])):
                if e > s:
                    out[s:e] = self._block(blk)[local[s:e]]
            return out
        order = np.argsort(b, kind="stable")
        bs = b[order]
        cuts = np.flatnonzero(np.diff(bs)) + 1
        for s, e in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [bs.size]])):
            sel = order[s:e]
            out[sel] = self._block(int(bs[s]))[local[sel]]
        return out


class _FrameRing:
    """The pairs of a few frames over a window, computed by the compiled whole-voxel
    kernel (``_cdeposit.voxels``) as its elements reach them, in place of the windowed
    tables' blocks and their gather: elements in frame order need frames f and f + 1
    only, and each frame is computed once, at the column spans of its rows that the
    elements can reach (``lo``, ``hi``: int32 (nz, rows), window columns). A pair
    depends only on its node's neighbourhood: the same values as :meth:`_Tables._compute`.
    A node outside the spans makes the kernel leave the chunk to the tables. Elements
    nearly in frame order (band pieces) get more slots (the least recently used is
    computed over; at most 8).

    Memory: ``slots`` frames of the window (complex64) and the spans."""

    def __init__(self, tab: _Tables, win: tuple[int, int, int, int], lo: np.ndarray,
                 hi: np.ndarray, slots: int = 2):
        j0, j1, i0, i1 = win
        self.win = win
        self.lo = np.ascontiguousarray(lo, dtype=np.int32)
        self.hi = np.ascontiguousarray(hi, dtype=np.int32)
        self.buf = np.empty(slots * (j1 - j0) * (i1 - i0), dtype=np.complex64)
        self.tag = np.full(slots, -1, dtype=np.int64)
        self.args = (self.buf, self.tag, self.lo, self.hi, tab.nz, tab.ny, tab.nx, j0, j1,
                     i0, i1)

    @classmethod
    def of_pieces(cls, tab: _Tables, win, src_lo: np.ndarray, src_hi: np.ndarray,
                  q: np.ndarray, f: np.ndarray) -> "_FrameRing | None":
        """The ring for pieces of sources q in bins f, source s whole at most at window
        columns src_lo[s, j]..src_hi[s, j]-1 of window row j (the nodes of frames f and
        f + 1 there); None when a kernel is missing or the grid is too small."""
        if (_native.load(_KERNEL) is None or tab.ny < 2 or tab.nx < 2
                or not _plain(tab.flat, np.float64)):
            return None
        j0, j1, i0, i1 = win
        nj, wlen = j1 - j0, i1 - i0
        empty = src_lo >= src_hi
        src_lo = np.where(empty, wlen, src_lo).astype(np.int32)
        src_hi = np.where(empty, 0, src_hi).astype(np.int32)
        lo = np.full((tab.nz, nj), wlen, dtype=np.int32)
        hi = np.zeros((tab.nz, nj), dtype=np.int32)
        # the spans of the pieces reaching each frame (as frame f or f + 1 of their bin)
        at = np.concatenate([f, f + 1])
        order = np.argsort(at, kind="stable")
        at = at[order]
        src = np.concatenate([q, q])[order]
        first = np.flatnonzero(np.diff(at, prepend=-1))
        frames = at[first]
        lo[frames] = np.minimum.reduceat(src_lo[src], first, axis=0)
        hi[frames] = np.maximum.reduceat(src_hi[src], first, axis=0)
        return cls(tab, win, lo, hi)

    @classmethod
    def of_nodes(cls, tab: _Tables, win, f: np.ndarray, j: np.ndarray, i: np.ndarray,
                 slots: int = 4) -> "_FrameRing | None":
        """The ring for elements at frames f, window rows j, window columns i (the
        nodes of frames f and f + 1 there)."""
        if (_native.load(_KERNEL) is None or tab.ny < 2 or tab.nx < 2
                or not _plain(tab.flat, np.float64)):
            return None
        j0, j1, i0, i1 = win
        nj, wlen = j1 - j0, i1 - i0
        lo = np.full((tab.nz, nj), wlen, dtype=np.int32)
        hi = np.zeros((tab.nz, nj), dtype=np.int32)
        i8 = np.int64
        if not _native.load(_KERNEL).node_spans(
                *(np.ascontiguousarray(x, dtype=i8) for x in (f, j, i)), tab.nz, nj, lo, hi):
            return None
        return cls(tab, win, lo, hi, slots)


def _plain(a: np.ndarray, dtype) -> bool:
    """``a`` is a C-contiguous array of ``dtype`` in native byte order (a kernel buffer)."""
    return (isinstance(a, np.ndarray) and a.dtype == dtype and a.dtype.isnative
            and a.flags.c_contiguous)


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
        return _clip(f, 0.0, float(self.n - 1)).astype(np.int64)

    def left(self, v: np.ndarray) -> np.ndarray:
        """Bin containing v, an upper piece end (a frame position ends the previous bin)."""
        if self.uniform:
            fl, ri, on = self._frames(v)
            f = np.where(on, ri - 1, fl)
        else:
            f = np.searchsorted(self.z, v, side="left") - 1
        return _clip(f, 0.0, float(self.n - 1)).astype(np.int64)

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
        ta = _clip((a - z0) / h, 0.0, 1.0)
        tb = _clip((b - z0) / h, 0.0, 1.0)
        above = np.maximum(b - np.maximum(a, z1), 0.0)  # beyond the last frame: t = 1
        c1 = 0.5 * h * (tb * tb - ta * ta) + above
        c2 = h * (tb * tb * tb - ta * ta * ta) / 3.0 + above
        return b - a, c1, c2, ta, tb
