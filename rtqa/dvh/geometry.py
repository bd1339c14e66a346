"""Structure geometry: slabs, polygon areas, even-odd rasterisation, and columns.

Convention (that of the Nelms 2015 benchmark's analytic truth): between two neighbouring
contour planes the cross-section changes continuously (linear interpolation of the signed
distance to the contours, so a circle of radius r1 blends into one of radius r2); beyond
the first and last planes of a run the end contours are extruded by half a contour
spacing (half-slice end caps). For prismatic shapes this equals the slab convention
(volume = sum of area x slab thickness). A gap is a step between planes where the
planning CT has a slice in between (or, without CT, a step larger than twice the median
spacing): no interpolation across a gap, end caps on both sides.

Even-odd rule: on each plane, a lattice point is inside when a ray from it crosses the
plane's contours an odd number of times, so inner contours are holes and keyhole contours
work. Coordinates are patient mm.

Rasterisation (:func:`raster`): the sample lattice is tied to the dose grid: m x m
sub-samples per dose voxel. A voxel that no contour edge touches has one even-odd state
throughout (the state of its node), so only touched voxels are classified sample by
sample, from the crossings of each lattice row (:class:`RowTable`); the inside samples
are exactly those of :func:`fill` on the same lattice. Between planes, a sample inside on
one plane only crosses the surface where the interpolated signed distance vanishes
(:func:`band_crossings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import shapely

from rtqa import _native

#: A step larger than this multiple of the median contour spacing is a gap (without CT).
GAP_FACTOR = 2.0


@dataclass(frozen=True, eq=False)
class Slabs:
    z: np.ndarray   # plane positions, mm (ascending)
    lo: np.ndarray  # lower slab face, mm
    hi: np.ndarray  # upper slab face, mm
    gap: np.ndarray  # gap[k]: no interpolation between plane k and k+1 (len K-1)

    @property
    def thickness(self) -> np.ndarray:
        return self.hi - self.lo


#: End-cap conventions: how far a run's first and last contour planes are extruded.
#: ``half``: half a contour spacing (the Nelms 2015 analytic truth; rtqa's default);
#: ``none``: not at all, the structure ends on its outermost planes (what several
#: planning systems do; see docs/dicom-conventions.md). A run of a single plane keeps a
#: slab of one spacing under both (it has no volume otherwise).
END_CAPS = ("half", "none")


def slabs_for(z: np.ndarray, single_plane_mm: float, ct_z: np.ndarray | None = None,
              end_caps: str = "half") -> Slabs:
    """Slab faces for sorted plane positions ``z`` (mm).

    ``single_plane_mm`` is the thickness given to a structure drawn on one plane only
    (the CT slice spacing when known). ``end_caps``: see :data:`END_CAPS`. A plane at
    -0.0 mm (ContourData "-0.0") is taken as +0.0: the two are the same position, and
    numpy's and the compiled kernels' clip may pick either zero on a tie (rtqa._native)."""
    if end_caps not in END_CAPS:
        raise ValueError(f"end_caps must be one of {END_CAPS}, not {end_caps!r}")
    z = np.asarray(z, dtype=float) + 0.0  # (a copy, with -0.0 as +0.0)
    if z.size == 1:
        h = single_plane_mm / 2.0
        return Slabs(z, z - h, z + h, np.zeros(0, dtype=bool))
    d = np.diff(z)
    typical = _median(d)
    if ct_z is not None and len(ct_z) > 1:
        ct = np.sort(np.asarray(ct_z, dtype=float))
        # number of CT slices strictly between neighbouring planes
        between = (np.searchsorted(ct, z[1:] - 1e-3, side="left")
                   - np.searchsorted(ct, z[:-1] + 1e-3, side="right"))
        gap = between > 0
    else:
        gap = d > GAP_FACTOR * typical
    half = np.where(gap, typical / 2.0, d / 2.0)
    lo = z - np.concatenate([[typical / 2.0], half])
    hi = z + np.concatenate([half, [typical / 2.0]])
    if end_caps == "none":
        start = np.concatenate([[True], gap])  # first plane of a run
        end = np.concatenate([gap, [True]])    # last plane of a run
        multi = ~(start & end)                 # runs of one plane keep their slab
        lo = np.where(start & multi, z, lo)
        hi = np.where(end & multi, z, hi)
    return Slabs(z, lo, hi, gap)


def _median(d: np.ndarray) -> float:
    """``float(np.median(d))`` of a 1-D float64 array (not empty), bit for bit, without
    np.median's overhead: np.mean of the middle value of the sorted values, or of the
    two middle ones (its sum from +0.0, then its division: a -0.0 median is +0.0); NaN
    when any is NaN."""
    s = np.sort(d).tolist()
    n = len(s)
    if s[-1] != s[-1]:  # (NaN sorts last)
        return float("nan")
    h = n // 2
    if n % 2:
        return (0.0 + s[h]) / 1
    return ((0.0 + s[h - 1]) + s[h]) / 2


@dataclass(frozen=True, eq=False)
class Edges:
    """All contour edges of a structure as flat arrays: edge i runs from (x0, y0) to
    (x1, y1) on plane ``plane[i]``; polygon p's edges start at ``start[p]``."""

    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    plane: np.ndarray
    start: np.ndarray
    poly_plane: np.ndarray

    @classmethod
    def of(cls, planes_polys) -> "Edges":
        polys = [p for pp in planes_polys for p in pp]
        poly_plane = np.repeat(np.arange(len(planes_polys)), [len(pp) for pp in planes_polys])
        if not polys:
            e = np.empty(0)
            return cls(e, e, e, e, e.astype(np.int64), e.astype(np.int64), poly_plane)
        pts = np.concatenate(polys)
        n = np.array([len(p) for p in polys])
        start = np.cumsum(n) - n
        nxt = np.arange(len(pts)) + 1
        nxt[start + n - 1] = start  # close each polygon
        x0 = np.ascontiguousarray(pts[:, 0])
        y0 = np.ascontiguousarray(pts[:, 1])
        return cls(x0, y0, x0[nxt], y0[nxt], np.repeat(poly_plane, n), start, poly_plane)

    def swapped(self) -> "Edges":
        """The same edges with x and y exchanged."""
        return Edges(self.y0, self.x0, self.y1, self.x1, self.plane, self.start,
                     self.poly_plane)


def plane_areas(planes: tuple[tuple[float, tuple[np.ndarray, ...]], ...],
                edges: Edges | None = None) -> np.ndarray:
    """Even-odd area (mm^2) of each plane's contours.

    One contour: |shoelace|. Several: symmetric difference with shapely (invalid rings are
    repaired with make_valid first). NaN where the geometry cannot be measured."""
    out = np.empty(len(planes))
    e = Edges.of([p for _, p in planes]) if edges is None else edges
    if e.x0.size:
        cross = e.x0 * e.y1 - e.y0 * e.x1
        per_poly = 0.5 * np.abs(np.add.reduceat(cross, e.start))
        n_polys = np.bincount(e.poly_plane, minlength=len(planes))
        single = n_polys == 1
        out[e.poly_plane[single[e.poly_plane]]] = per_poly[single[e.poly_plane]]
    for k, (_, polys) in enumerate(planes):
        if len(polys) == 1:
            continue
        try:
            geoms = [shapely.make_valid(shapely.Polygon(p)) for p in polys if len(p) >= 3]
            acc = geoms[0]
            for g in geoms[1:]:
                acc = shapely.symmetric_difference(acc, g)
            out[k] = float(shapely.area(acc))
        except Exception:  # GEOS errors on degenerate input
            out[k] = np.nan
    return out


@dataclass(frozen=True, eq=False)
class Lattice:
    """Axis-aligned point lattice x = x0 + i*sx, y = y0 + j*sy (mm)."""

    x0: float
    y0: float
    sx: float
    sy: float
    nx: int
    ny: int


def row_crossings(planes_polys: list[tuple[np.ndarray, ...]], lat: Lattice,
                  sort: bool = True, edges: "Edges | None" = None):
    """Where the contours cross each lattice row, sorted by (row, x) (``sort``; else in
    no particular order).

    A row is identified by ``row_id = plane * ny + j``. Each edge is crossed with the rows
    it spans, half-open in y so a vertex is counted once; every row therefore has an even
    number of crossings (even-odd rule)."""
    e = Edges.of(planes_polys) if edges is None else edges
    ylo, yhi = np.minimum(e.y0, e.y1), np.maximum(e.y0, e.y1)
    j0 = np.clip(np.ceil((ylo - lat.y0) / lat.sy), 0, lat.ny).astype(np.int64)
    count = np.clip(np.ceil((yhi - lat.y0) / lat.sy), 0, lat.ny).astype(np.int64) - j0
    keep = np.flatnonzero(count > 0)
    count = count[keep]
    first = np.cumsum(count) - count
    edge = np.repeat(keep, count)
    j = np.repeat(j0[keep] - first, count) + np.arange(edge.size)
    ax, ay, bx, by = e.x0[edge], e.y0[edge], e.x1[edge], e.y1[edge]
    xc = ax + (lat.y0 + j * lat.sy - ay) * (bx - ax) / (by - ay)
    row_id = e.plane[edge] * lat.ny + j
    if not sort:
        return row_id, xc
    order = np.lexsort((xc, row_id))
    return row_id[order], xc[order]


def fill(planes_polys: list[tuple[np.ndarray, ...]], lat: Lattice):
    """Lattice points inside each plane's contours (even-odd).

    Returns (plane index, j, i) integer arrays, sorted by plane then row: crossings of
    each row are paired and the points between each pair are inside."""
    row_id, xc = row_crossings(planes_polys, lat)
    if row_id.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    col = np.clip(np.ceil((xc - lat.x0) / lat.sx), 0, lat.nx).astype(np.int64)
    start, stop, rows = col[0::2], col[1::2], row_id[0::2]
    length = np.maximum(stop - start, 0)
    total = int(length.sum())
    rep_rows = np.repeat(rows, length)
    i = np.repeat(start, length) + (np.arange(total) - np.repeat(np.cumsum(length) - length,
                                                                  length))
    return rep_rows // lat.ny, rep_rows % lat.ny, i


def _plain(a: np.ndarray, dtype) -> bool:
    """``a`` can cross to a compiled kernel as a buffer of ``dtype``."""
    return a.dtype == dtype and a.dtype.isnative and a.flags.c_contiguous


def nonzero(a: np.ndarray) -> tuple[np.ndarray, ...]:
    """``np.nonzero`` (numpy's own is slow for arrays of more than one dimension)."""
    return np.unravel_index(np.flatnonzero(a), a.shape)


def row_counts(a: np.ndarray) -> np.ndarray:
    """``np.count_nonzero(a, axis=1)`` of a 2-D array, row by row (a few hundred rows at
    most: numpy's count along an axis sums a converted copy, several times slower)."""
    c = _native.load("rtqa.dvh._ctables")
    if c is not None and a.dtype == np.bool_ and a.flags.c_contiguous:  # (compiled: exact)
        out = np.empty(a.shape[0], dtype=np.intp)
        c.row_counts(a, a.shape[0], a.shape[1], out)
        return out
    return np.fromiter((np.count_nonzero(r) for r in a), dtype=np.intp, count=a.shape[0])


def code_dtype(m: int):
    """Integer type of the row codes (one bit per sub-sample of a voxel row)."""
    if m > 63:
        raise ValueError("at most 63 sub-samples per voxel row")
    return np.uint32 if m <= 31 else np.uint64


def _full(m: int) -> int:
    return (1 << m) - 1


class RowTable:
    """The crossings of each lattice row as a padded table (rank, row) -> position and
    lattice column (the first lattice point at or after the crossing), from
    :func:`row_crossings` output in any order (a row has few crossings). ``query`` gives,
    for points on the rows, the distance along the row to the nearest crossing (inf when
    the row meets no contour) and the even-odd inside flag (an odd number of crossings at
    or before the point, as :func:`fill` decides); ``segment_codes`` the inside flags of
    runs of lattice points."""

    def __init__(self, row_id: np.ndarray, pos: np.ndarray, n_rows: int, origin: float,
                 step: float, n_cols: int):
        counts = np.bincount(row_id, minlength=n_rows)
        self.width = w = max(int(counts.max(initial=0)), 1)
        key = row_id.astype(np.uint16) if n_rows <= 65536 else row_id
        order = np.argsort(key, kind="stable")  # radix sort for 16-bit keys
        # one row of the table per rank (crossing w of every lattice row, in no order):
        # flat table index rank * n_rows + row of each crossing, in sorted order
        at = np.arange(row_id.size) - np.repeat(np.cumsum(counts) - counts, counts)
        at *= n_rows
        at += row_id[order]
        pos = pos[order]
        self.pos = np.full((w, n_rows), np.inf)
        self.pos.reshape(-1)[at] = pos
        self.col = np.full((w, n_rows), np.iinfo(np.int32).max, dtype=np.int64)
        self.col.reshape(-1)[at] = np.clip(np.ceil((pos - origin) / step), 0, n_cols)

    @classmethod
    def of(cls, edges: Edges, n_planes: int, lat: Lattice) -> "RowTable":
        c = _native.load("rtqa.dvh._cbands")
        if c is not None:
            t = cls._of_native(c, edges, n_planes, lat)
            if t is not None:
                return t
        rid, xc = row_crossings([], lat, sort=False, edges=edges)
        return cls(rid, xc, n_planes * lat.ny, lat.x0, lat.sx, lat.nx)

    @classmethod
    def _of_native(cls, c, e: Edges, n_planes: int, lat: Lattice) -> "RowTable | None":
        """:meth:`of` with the positions table from ``_cbands.crossing_table`` (the same
        crossings, computed as :func:`row_crossings` computes them, in the same places:
        edge order within a row); the columns as ``__init__`` forms them. None where the
        kernel refuses the input (the numpy code then decides)."""
        n_rows = n_planes * lat.ny
        args = (*(np.ascontiguousarray(a, dtype=np.float64)
                  for a in (e.x0, e.y0, e.x1, e.y1)),
                np.ascontiguousarray(e.plane, dtype=np.int64),
                (float(lat.y0), float(lat.sy), int(lat.ny)), n_planes,
                np.empty(n_rows, dtype=np.int64))
        try:
            w = c.crossing_table(*args, None)
            pos = np.full((w, n_rows), np.inf)
            c.crossing_table(*args, pos)
        except ValueError:
            return None
        t = cls.__new__(cls)
        t.width = w
        t.pos = pos
        col = np.ceil((pos - lat.x0) / lat.sx)
        np.clip(col, 0, lat.nx, out=col)
        t.col = col.astype(np.int64)
        t.col[pos == np.inf] = np.iinfo(np.int32).max
        return t

    def query(self, rid: np.ndarray, p: np.ndarray, inside: bool = True, d=None, ins=None):
        """Distance along the row from points at position p (mm) of rows ``rid`` to the
        nearest crossing (inf when the row meets no contour) and, with ``inside``, whether
        an odd number of crossings lies at or before each point (the even-odd rule);
        into ``d``, ``ins`` when given."""
        diff = self.pos[0][rid] - p
        d = np.abs(diff, out=d)
        if inside:
            ins = np.less_equal(diff, 0, out=ins)
        for w in range(1, self.width):
            diff = self.pos[w][rid] - p
            np.minimum(d, np.abs(diff), out=d)
            if inside:
                ins ^= diff <= 0
        return d, ins

    def segment_codes(self, rid: np.ndarray, c0: np.ndarray, m: int) -> np.ndarray:
        """Inside flags of the m lattice points c0 .. c0 + m - 1 of rows ``rid`` as bit
        codes (bit c: point c0 + c): every crossing toggles the points at or after it."""
        dt = code_dtype(m)
        full = dt(_full(m))
        code = np.zeros(rid.size, dtype=dt)
        one = dt(1)
        for w in range(self.width):
            rel = np.clip(self.col[w][rid] - c0, 0, m).astype(dt)
            code ^= full ^ ((one << rel) - one)
        return code


@dataclass(eq=False)
class Raster:
    """A structure's planes on the dose-voxel lattice, with m x m sub-samples per voxel.

    Voxel (J, I) is centred on dose node (J0 + J, I0 + I) (node indices of the grid, which
    may lie outside it) and is dx x dy; its sub-sample (r, c) lies at x = x0 + I dx +
    (c - h) sx, y = y0 + J dy + (r - h) sy with h = (m - 1) / 2, so the sub-samples are the
    centres of the m x m sub-cells and (m odd) the centre one is the dose node. The
    sub-samples form the ``fine`` lattice (column C = I m + c, row R = J m + r).

    ``cls[k, J, I]``: 0 no sub-sample of the voxel inside plane k's contours, 2 all of them
    (a whole voxel), 1 some (a boundary voxel: its inside flags are ``blocks[bid[k, J,
    I]]``, m row codes with bit c of row r set when sub-sample (r, c) is inside; blocks 0
    and 1 are all-outside and all-inside). A voxel that no contour edge touches has one
    even-odd state throughout, the state of its node; only touched voxels are
    sub-sampled. With m = 1 the voxel is its node sample (cls 0 or 2)."""

    m: int
    I0: int
    J0: int
    NI: int
    NJ: int
    x0: float
    y0: float
    dx: float
    dy: float
    fine: Lattice
    cls: np.ndarray
    bid: np.ndarray
    blocks: np.ndarray
    polys: list
    edges: Edges

    @property
    def K(self) -> int:
        return len(self.polys)

    @cached_property
    def rows(self) -> RowTable:
        return RowTable.of(self.edges, self.K, self.fine)

    @cached_property
    def cols(self) -> RowTable:
        f = self.fine
        return RowTable.of(self.edges.swapped(), self.K,
                           Lattice(f.y0, f.x0, f.sy, f.sx, f.ny, f.nx))

    def plane_counts(self) -> np.ndarray:
        """Number of sub-samples inside each plane's contours."""
        m2 = self.m * self.m
        K = self.K
        c = _native.load("rtqa.dvh._ctables")
        if c is not None and self.cls.dtype == np.uint8 and self.cls.flags.c_contiguous \
                and self.bid.dtype in (np.int32, np.uint8) and self.bid.dtype.isnative \
                and self.bid.flags.c_contiguous:  # (compiled: the same integer counts)
            pc = np.bitwise_count(self.blocks).sum(axis=1, dtype=np.int64)
            out = np.empty(K, dtype=np.int64)
            if c.plane_counts(self.cls, self.bid, self.bid.dtype.itemsize, pc, K,
                              self.NJ * self.NI, m2, out):
                return out
        cls = self.cls.reshape(K, -1)
        whole = np.empty(K, dtype=np.intp)
        n_in = np.zeros(K)
        for k0 in range(0, K, 16):  # 16 planes at a time: no temporary of the raster's size
            c = cls[k0:k0 + 16]
            whole[k0:k0 + 16] = row_counts(c == 2)
            sel = c == 1
            if np.any(sel):
                k = nonzero(sel)[0]
                ids = self.bid.reshape(K, -1)[k0:k0 + 16][sel]
                n_in += np.bincount(k + k0, np.bitwise_count(self.blocks[ids]).sum(axis=1),
                                    minlength=K)
        return whole * m2 + n_in.astype(np.int64)

    def add_sample(self, k: int, x: float, y: float) -> None:
        """Mark the sub-sample nearest (x, y) inside plane k (contours smaller than a cell)."""
        f = self.fine
        C = int(np.clip(np.rint((x - f.x0) / f.sx), 0, f.nx - 1))
        R = int(np.clip(np.rint((y - f.y0) / f.sy), 0, f.ny - 1))
        J, r, I, c = R // self.m, R % self.m, C // self.m, C % self.m
        if self.cls[k, J, I] == 2:
            return
        dt = code_dtype(self.m)
        if self.cls[k, J, I] == 0:
            block = np.zeros((1, self.m), dtype=dt)
        else:
            block = self.blocks[self.bid[k, J, I]][None].copy()
        block[0, r] |= dt(1 << c)
        if np.all(block == _full(self.m)):
            self.cls[k, J, I], self.bid[k, J, I] = 2, 1
            return
        self.blocks = np.concatenate([self.blocks, block])
        self.bid[k, J, I] = len(self.blocks) - 1
        self.cls[k, J, I] = 1


def _touched(e: Edges, K: int, x0: float, y0: float, dx: float, dy: float, NI: int,
             NJ: int) -> np.ndarray:
    """Voxels (K, NJ, NI) that a contour edge passes through (or touches)."""
    c = _native.load("rtqa.dvh._ctables")
    if c is not None and all(_plain(a, np.float64) for a in (e.x0, e.y0, e.x1, e.y1)) \
            and _plain(e.plane, np.int64) and K * NJ * NI > 0:  # (compiled: the same pieces)
        out = np.zeros((K, NJ, NI), dtype=bool)
        if c.touched(e.x0, e.y0, e.x1, e.y1, e.plane, float(x0), float(y0), float(dx),
                     float(dy), 0.5 * min(dx, dy), K, NJ, NI, out):
            return out
    ex, ey = e.x1 - e.x0, e.y1 - e.y0
    # split edges into pieces at most half a voxel long: each spans at most 2 x 2 voxels
    n = np.maximum(np.ceil(np.hypot(ex, ey) / (0.5 * min(dx, dy))).astype(np.int64), 1)
    out = np.zeros(K * NJ * NI, dtype=bool)
    bx, by = e.x0 - x0, e.y0 - y0
    k = e.plane
    if int(n.max(initial=1)) == 1:  # one piece per edge: t0 = 0, t1 = 1
        fx0 = np.floor(bx / dx + 0.5)
        fx1 = np.floor((bx + ex) / dx + 0.5)
        fy0 = np.floor(by / dy + 0.5)
        fy1 = np.floor((by + ey) / dy + 0.5)
    else:
        i = np.repeat(np.arange(e.x0.size), n)
        ni = np.repeat(n, n)
        t0 = (np.arange(i.size) - np.repeat(np.cumsum(n) - n, n)) / ni
        t1 = t0 + 1.0 / ni
        bx, by, ex, ey, k = bx[i], by[i], ex[i], ey[i], k[i]
        fx0 = np.floor((bx + t0 * ex) / dx + 0.5)
        fx1 = np.floor((bx + t1 * ex) / dx + 0.5)
        fy0 = np.floor((by + t0 * ey) / dy + 0.5)
        fy1 = np.floor((by + t1 * ey) / dy + 0.5)
    ix0, ix1 = (np.clip(v.astype(np.int64), 0, NI - 1) for v in (fx0, fx1))
    r0, r1 = ((np.clip(v.astype(np.int64), 0, NJ - 1) + k * NJ) * NI for v in (fy0, fy1))
    for r in (r0, r1):
        for ii in (ix0, ix1):
            out[r + ii] = True
    return out.reshape(K, NJ, NI)


def _parity_rows(rows: RowTable, rid: np.ndarray, m: int, h: int, n: int) -> np.ndarray:
    """Even-odd states (len(rid), n) of the lattice points h, h + m, ..., h + (n-1) m of
    rows ``rid``: runs between the sorted crossings, alternately outside and inside."""
    stride = n + 1
    pad = np.iinfo(np.int32).max  # (a table entry without a crossing)
    pos = []
    for w in range(rows.width):  # first point at or after each crossing
        cw = rows.col[w][rid]
        at = np.flatnonzero(cw != pad)
        pos.append(at * stride + (cw[at] + (m - 1 - h)) // m)
    pos = np.sort(np.concatenate(pos))
    pos = pos[pos % stride < n]  # (crossings after the last point: none)
    # an even number of crossings at one point cancels
    first = np.flatnonzero(np.diff(pos, prepend=-1))
    odd = np.diff(np.append(first, pos.size)) % 2 == 1
    flips = pos[first[odd]]
    lengths = np.diff(np.concatenate([[0], flips, [rid.size * stride]]))
    state = np.repeat(np.arange(lengths.size, dtype=np.uint8) & 1, lengths)
    return state.reshape(rid.size, stride)[:, :n]


def raster(planes_polys: list[tuple[np.ndarray, ...]], node_x0: float, node_y0: float,
           dx: float, dy: float, m: int, edges: Edges | None = None) -> Raster:
    """The :class:`Raster` of a structure on a dose grid whose node (0, 0) is at
    (node_x0, node_y0) with spacings dx, dy; m (odd) sub-samples per voxel and axis."""
    K = len(planes_polys)
    e = Edges.of(planes_polys) if edges is None else edges
    I0 = int(np.floor((float(e.x0.min()) - node_x0) / dx + 0.5)) - 1
    J0 = int(np.floor((float(e.y0.min()) - node_y0) / dy + 0.5)) - 1
    NI = int(np.floor((float(e.x0.max()) - node_x0) / dx + 0.5)) + 1 - I0 + 1
    NJ = int(np.floor((float(e.y0.max()) - node_y0) / dy + 0.5)) + 1 - J0 + 1
    x0, y0 = node_x0 + I0 * dx, node_y0 + J0 * dy
    h = (m - 1) // 2
    sx, sy = dx / m, dy / m
    fine = Lattice(x0 - h * sx, y0 - h * sy, sx, sy, NI * m, NJ * m)
    rows = RowTable.of(e, K, fine)
    # node states: the centre sub-sample of each voxel (fine row J m + h, column I m + h)
    rid = (np.arange(K)[:, None] * fine.ny + np.arange(NJ) * m + h).reshape(-1)
    c = _native.load("rtqa.dvh._ctables")
    if c is not None and not (_plain(rows.col, np.int64)
                              and fine.nx < np.iinfo(np.int32).max):
        c = None
    if c is not None:  # (compiled: the same states)
        cls = np.empty((K, NJ, NI), dtype=np.uint8)
        c.parity_rows(rows.col, rows.width, K * fine.ny, rid, m, h, NI, cls)
    else:
        cls = _parity_rows(rows, rid, m, h, NI).reshape(K, NJ, NI) * np.uint8(2)
    rast = Raster(m, I0, J0, NI, NJ, x0, y0, dx, dy, fine, cls,
                  cls // 2 if m == 1 else (cls // 2).astype(np.int32),
                  np.zeros((2, m), dtype=code_dtype(m)),
                  list(planes_polys), e)
    rast.__dict__["rows"] = rows
    rast.blocks[1] = _full(m)
    if m == 1:
        return rast
    touched = _touched(e, K, x0, y0, dx, dy, NI, NJ)
    if c is not None:  # (compiled: the same codes, classes, block ids and blocks)
        blocks = np.empty((2 + np.count_nonzero(touched), m), dtype=rast.blocks.dtype)
        blocks[:2] = rast.blocks
        nb = c.refine(touched, rows.col, rows.width, K * fine.ny, fine.ny, m, K, NJ, NI,
                      cls, rast.bid, blocks[2:], blocks.dtype.itemsize)
        rast.blocks = blocks[:2 + nb].copy()
        return rast
    kb, jb, ib = nonzero(touched)
    if kb.size:
        rid = ((kb * fine.ny + jb * m)[:, None] + np.arange(m)).reshape(-1)
        flags = rast.rows.segment_codes(rid, np.repeat(ib * m, m), m).reshape(kb.size, m)
        n_in = np.bitwise_count(flags).sum(axis=1)
        cls[kb, jb, ib] = np.where(n_in == m * m, 2, np.where(n_in == 0, 0, 1))
        part = (n_in > 0) & (n_in < m * m)
        rast.bid[kb, jb, ib] = cls[kb, jb, ib] // 2
        rast.bid[kb[part], jb[part], ib[part]] = 2 + np.arange(int(part.sum()))
        rast.blocks = np.concatenate([rast.blocks, flags[part]])
    return rast


#: Point-edge pairs at a time in :func:`_euclid` (temporaries of 256 kB: in cache; 2.4x
#: faster than 1M pairs).
_EUCLID_PAIRS = 32768


def _euclid(rast: Raster, kp: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """In-plane distance (mm) from points to the contours of plane ``kp`` (exact, to the
    polygon edges)."""
    out = np.empty(kp.size)
    order = np.argsort(kp, kind="stable")
    bounds = np.flatnonzero(np.diff(kp[order], prepend=-1, append=-1))
    e = rast.edges
    pstart = np.searchsorted(e.plane, np.arange(rast.K + 1))  # edges are in plane order
    for s, t in zip(bounds[:-1], bounds[1:]):
        idx = order[s:t]
        k = kp[idx[0]]
        sl = slice(pstart[k], pstart[k + 1])
        a0, a1 = e.x0[sl], e.y0[sl]
        ab = np.stack([e.x1[sl] - a0, e.y1[sl] - a1], axis=1)
        ab0, ab1 = ab[:, 0].copy(), ab[:, 1].copy()
        l2 = np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-300)
        step = max(1, _EUCLID_PAIRS // a0.size)  # (temporaries that stay in cache)
        xs, ys = x[idx], y[idx]
        for c in range(0, idx.size, step):
            q = idx[c:c + step]
            px = xs[c:c + step][:, None] - a0
            py = ys[c:c + step][:, None] - a1
            tt = px * ab0
            tmp = py * ab1
            tt += tmp
            tt /= l2
            np.clip(tt, 0.0, 1.0, out=tt)
            np.multiply(tt, ab0, out=tmp)
            px -= tmp
            px *= px
            np.multiply(tt, ab1, out=tmp)
            py -= tmp
            py *= py
            px += py
            out[q] = np.sqrt(np.min(px, axis=1))
    return out


def _circle_root(z3, p3, lo, hi) -> np.ndarray:
    """Where the circle through three (z, phi) points crosses phi = 0 within [lo, hi]
    (the lower root first).

    NaN where the points are (nearly) collinear or no root lies in the interval."""
    (x1, x2, x3), (y1, y2, y3) = z3, p3
    a, b, c = y2 - y3, y3 - y1, y1 - y2
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # s_i = x_i^2 + y_i^2; inv = 0.5 / (x1 a + x2 b + x3 c); ux = (s1 a + s2 b + s3 c)
        # inv; uy = (s1 (x3 - x2) + s2 (x1 - x3) + s3 (x2 - x1)) inv; h = sqrt(dx^2 + y1
        # (y1 - 2 uy)) with dx = x1 - ux (in place: the same operations in the same order)
        tmp = np.multiply(y1, y1)
        s1 = np.multiply(x1, x1)
        s1 += tmp
        s2 = np.multiply(x2, x2)
        s2 += np.multiply(y2, y2, out=tmp)
        s3 = np.multiply(x3, x3)
        s3 += np.multiply(y3, y3, out=tmp)
        inv = np.multiply(x1, a)
        inv += np.multiply(x2, b, out=tmp)
        inv += np.multiply(x3, c, out=tmp)
        np.divide(0.5, inv, out=inv)
        ux = np.multiply(s1, a)
        ux += np.multiply(s2, b, out=tmp)
        ux += np.multiply(s3, c, out=tmp)
        ux *= inv
        uy = np.subtract(x3, x2, out=a)
        uy *= s1
        uy += np.multiply(s2, np.subtract(x1, x3, out=b), out=b)
        uy += np.multiply(s3, np.subtract(x2, x1, out=c), out=c)
        uy *= inv
        h = np.subtract(x1, ux, out=b)
        h *= h
        uy *= 2
        np.subtract(y1, uy, out=uy)
        uy *= y1
        h += uy
        h = np.sqrt(h, out=h)  # sqrt(r^2 - uy^2)
        r0 = np.subtract(ux, h, out=c)
        r1 = np.add(ux, h, out=ux)
        r1 = np.where((r1 >= lo) & (r1 <= hi), r1, np.nan)
        return np.where((r0 >= lo) & (r0 <= hi), r0, r1)


def band_crossings(rast: Raster, slabs: Slabs, k: np.ndarray, lower: np.ndarray,
                   R: np.ndarray, C: np.ndarray) -> np.ndarray:
    """z (mm) where the column through fine lattice point (R, C) crosses the structure's
    surface between planes k and k + 1 (``lower``: inside on plane k only, else inside on
    plane k + 1 only).

    The signed in-plane distance phi to the contours (negative inside) is measured on
    planes k-1..k+2 (where they belong to the same run); the crossing is the root of the
    circular arc through (z, phi) of three neighbouring planes (the mean of the two arcs
    where both exist), which is exact for spheres, cylinders and cones and linear for
    straight walls. Without a third plane the crossing is linear in phi. phi is the
    distance along the lattice row or column (the axis in which the boundary is nearest on
    the plane where the point lies outside), or the Euclidean distance where that scan line
    misses the contours of plane k or k + 1 (e.g. next to a pole contour smaller than a row
    spacing)."""
    c = _native.load("rtqa.dvh._cbands")
    if c is not None:  # the same values, bit for bit, compiled
        return _band_crossings_c(c, rast, slabs, k, lower, R, C)
    K = rast.K
    f = rast.fine
    z = slabs.z
    rows, cols = rast.rows, rast.cols
    nr, nc = f.ny, f.nx
    linked = np.concatenate([[False], ~slabs.gap, [False]])  # linked[k+1]: k <-> k+1
    x, y = f.x0 + C * f.sx, f.y0 + R * f.sy
    k_out = np.where(lower, k + 1, k)
    d_ox, _ = rows.query(k_out * nr + R, x, inside=False)
    d_oy, _ = cols.query(k_out * nc + C, y, inside=False)
    # Work in an order with the points scanned along x first, then those along y.
    use_x = d_ox <= d_oy
    perm = np.concatenate([np.flatnonzero(use_x), np.flatnonzero(~use_x)])
    nx_ = int(np.count_nonzero(use_x))
    k, lower, R, C, x, y = k[perm], lower[perm], R[perm], C[perm], x[perm], y[perm]
    d_out = np.where(use_x, d_ox, d_oy)[perm]
    n = k.size
    line_x, pos_x = R[:nx_], x[:nx_]  # rows of the x-scanned points
    line_y, pos_y = C[nx_:], y[nx_:]  # columns of the y-scanned points

    def directional(kp):
        """Distance along the scan axis on planes kp, and the inside flag there."""
        d = np.empty(n)
        ins = np.empty(n, dtype=bool)
        rows.query(kp[:nx_] * nr + line_x, pos_x, d=d[:nx_], ins=ins[:nx_])
        cols.query(kp[nx_:] * nc + line_y, pos_y, d=d[nx_:], ins=ins[nx_:])
        return d, ins

    k_in = np.where(lower, k, k + 1)
    d_in, _ = directional(k_in)
    use_dir = np.isfinite(d_in) & np.isfinite(d_out)
    e_idx = np.flatnonzero(~use_dir)
    if e_idx.size:
        # Euclidean distances on planes k_in, k_out, k-1 and k+2 (clipped) at once, each
        # (plane, point) once (a column near a pole is a band in several intervals)
        ne = e_idx.size
        ke = k[e_idx]
        kp = np.concatenate([k_in[e_idx], k_out[perm][e_idx], np.clip(ke - 1, 0, K - 1),
                             np.clip(ke + 2, 0, K - 1)])
        Re, Ce = np.tile(R[e_idx], 4), np.tile(C[e_idx], 4)
        _, first, inv = np.unique((kp * nr + Re) * nc + Ce, return_index=True,
                                  return_inverse=True)
        de = _euclid(rast, kp[first], f.x0 + Ce[first] * f.sx,
                     f.y0 + Re[first] * f.sy)[inv].reshape(4, ne)
        d_in[e_idx] = de[0]
        d_out[e_idx] = de[1]
    p1 = np.where(lower, -d_in, d_out)  # plane k: inside when lower
    p2 = np.where(lower, d_out, -d_in)
    z1, z2 = z[k], z[k + 1]
    span = z2 - z1
    lin = z1 + (p1 / np.where(p1 == p2, 1.0, p1 - p2)) * span

    def phi(kp, i):
        """Signed distance on planes kp (inf where the scan line misses their contours:
        no root); the Euclidean ones from row i of de."""
        d, ins = directional(kp)
        if e_idx.size:
            ke = kp[e_idx]
            d[e_idx] = de[i]
            _, ins[e_idx] = rows.query(ke * nr + R[e_idx], x[e_idx])
        np.negative(d, out=d, where=ins)
        return d

    total = np.zeros(n)
    n_roots = np.zeros(n)
    zero = np.zeros(n)
    for off in (-1, 2):
        kk = k + off
        ok = (kk >= 0) & (kk <= K - 1)
        ok &= linked[np.clip(kk + (off < 0), 0, K)]
        if not ok.any():
            continue
        kk = np.clip(kk, 0, K - 1)
        p = phi(kk, 2 if off < 0 else 3)
        u = z[kk] - z1
        if off < 0:
            r = _circle_root((u, zero, span), (p, p1, p2), 0.0, span)
        else:
            r = _circle_root((zero, span, u), (p1, p2, p), 0.0, span)
        ok &= r == r  # a root in [z1, z2] (not NaN)
        total += np.where(ok, r, 0.0)
        n_roots += ok
    out = np.where(n_roots > 0, z1 + total / np.maximum(n_roots, 1), lin)
    np.clip(out, z1, z2, out=out)
    res = np.empty_like(out)
    res[perm] = out
    return res


def _band_crossings_c(c, rast: Raster, slabs: Slabs, k: np.ndarray, lower: np.ndarray,
                      R: np.ndarray, C: np.ndarray, simd: bool = True) -> np.ndarray:
    """:func:`band_crossings` by the compiled kernel ``rtqa.dvh._cbands`` (its head
    comment says why the values are the same): scan-axis distances, then the Euclidean
    ones where a scan line misses the contours, then the roots. The squared edge lengths
    (np.einsum) are computed here, as :func:`_euclid` computes them. ``simd``: the SSE2
    loops where built (False: the scalar C loops; the tests compare both)."""
    K = rast.K
    f = rast.fine
    n = np.size(k)
    out = np.empty(n)
    if n == 0:
        return out
    rows = rast.rows
    e = rast.edges
    lat = (float(f.x0), float(f.y0), float(f.sx), float(f.sy), int(f.nx), int(f.ny))
    k = np.ascontiguousarray(k, dtype=np.int64)
    lower = np.ascontiguousarray(lower, dtype=np.bool_)
    R = np.ascontiguousarray(R, dtype=np.int64)
    C = np.ascontiguousarray(C, dtype=np.int64)
    x0, y0, x1, y1 = (np.ascontiguousarray(a, dtype=np.float64) for a in (e.x0, e.y0, e.x1,
                                                                           e.y1))
    cols = rast.__dict__.get("cols")  # (cached when built before)
    if cols is not None:
        cpos = cols.pos
    else:  # rast.cols.pos (the crossings of the lattice columns), compiled
        swapped = (y0, x0, y1, x1, np.ascontiguousarray(e.plane, dtype=np.int64),
                   (float(f.x0), float(f.sx), int(f.nx)), K,
                   np.empty(K * int(f.nx), dtype=np.int64))
        cpos = np.full((c.crossing_table(*swapped, None), K * int(f.nx)), np.inf)
        c.crossing_table(*swapped, cpos)
    tabs = (np.ascontiguousarray(rows.pos), rows.width, np.ascontiguousarray(cpos),
            cpos.shape[0], K, lat)
    d_in, d_out = np.empty(n), np.empty(n)
    flags = np.empty(n, dtype=np.uint8)  # bit 0: scanned along the row; bit 1: both finite
    c.prepare(*tabs, k, lower, R, C, d_in, d_out, flags)
    n_e = n - int(np.count_nonzero(flags & 2))
    de = np.empty((2, n_e))
    if n_e:
        pstart = np.searchsorted(e.plane, np.arange(K + 1)).astype(np.int64)
        # squared edge lengths, as _euclid (row by row: the same einsum per row)
        ab = np.stack([e.x1 - e.x0, e.y1 - e.y0], axis=1)
        l2 = np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-300)
        c.euclid(x0, y0, x1, y1, l2, pstart, lat, k, lower, R, C, flags, d_in, d_out, de,
                 simd)
    linked = np.concatenate([[False], ~slabs.gap, [False]]).astype(np.bool_)
    c.finish(*tabs, np.ascontiguousarray(slabs.z, dtype=np.float64), linked, k, lower, R, C,
             d_in, d_out, flags, de, out, simd)
    return out
