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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from scipy.spatial import cKDTree

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


def slabs_for(z: np.ndarray, single_plane_mm: float, ct_z: np.ndarray | None = None) -> Slabs:
    """Slab faces for sorted plane positions ``z`` (mm).

    ``single_plane_mm`` is the thickness given to a structure drawn on one plane only
    (the CT slice spacing when known)."""
    z = np.asarray(z, dtype=float)
    if z.size == 1:
        h = single_plane_mm / 2.0
        return Slabs(z, z - h, z + h, np.zeros(0, dtype=bool))
    d = np.diff(z)
    typical = float(np.median(d))
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
    return Slabs(z, lo, hi, gap)


def _edges(polys: list[np.ndarray]):
    """Edge start and end points (implicitly closed polygons) and the polygon of each."""
    pts = np.concatenate(polys)
    n = np.array([len(p) for p in polys])
    start = np.cumsum(n) - n
    nxt = np.arange(len(pts)) + 1
    nxt[start + n - 1] = start  # close each polygon
    return pts, pts[nxt], np.repeat(np.arange(len(polys)), n)


def plane_areas(planes: tuple[tuple[float, tuple[np.ndarray, ...]], ...]) -> np.ndarray:
    """Even-odd area (mm^2) of each plane's contours.

    One contour: |shoelace|. Several: symmetric difference with shapely (invalid rings are
    repaired with make_valid first). NaN where the geometry cannot be measured."""
    out = np.empty(len(planes))
    for k, (_, polys) in enumerate(planes):
        if len(polys) == 1:
            p = polys[0]
            x, y = p[:, 0], p[:, 1]
            out[k] = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
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


def row_crossings(planes_polys: list[tuple[np.ndarray, ...]], lat: Lattice):
    """Where the contours cross each lattice row, sorted by (row, x).

    A row is identified by ``row_id = plane * ny + j``. Each edge is crossed with the rows
    it spans, half-open in y so a vertex is counted once; every row therefore has an even
    number of crossings (even-odd rule)."""
    polys, plane_of = [], []
    for k, pp in enumerate(planes_polys):
        polys.extend(pp)
        plane_of.extend([k] * len(pp))
    if not polys:
        return np.empty(0, dtype=np.int64), np.empty(0)
    a, b, poly_id = _edges(polys)
    plane = np.asarray(plane_of)[poly_id]
    ylo, yhi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    j0 = np.clip(np.ceil((ylo - lat.y0) / lat.sy), 0, lat.ny).astype(np.int64)
    count = np.clip(np.ceil((yhi - lat.y0) / lat.sy), 0, lat.ny).astype(np.int64) - j0
    keep = count > 0
    a, b, plane, j0, count = a[keep], b[keep], plane[keep], j0[keep], count[keep]
    edge = np.repeat(np.arange(len(count)), count)
    j = j0[edge] + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
    yrow = lat.y0 + j * lat.sy
    ax, ay, bx, by = a[edge, 0], a[edge, 1], b[edge, 0], b[edge, 1]
    xc = ax + (yrow - ay) * (bx - ax) / (by - ay)
    row_id = plane[edge].astype(np.int64) * lat.ny + j
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


class _AxisDistance:
    """Distance (mm) along lattice rows from a point to the nearest contour crossing."""

    def __init__(self, planes_polys, lat: Lattice):
        self.lat = lat
        row_id, xc = row_crossings(planes_polys, lat)
        self.span = (lat.nx + 4) * lat.sx + 1.0
        self.origin = lat.x0 - 2 * lat.sx
        self.key = row_id * self.span + (xc - self.origin)
        self.row = row_id
        self.xc = xc

    def __call__(self, plane: np.ndarray, j: np.ndarray, x: np.ndarray) -> np.ndarray:
        rid = plane * self.lat.ny + j
        pos = np.searchsorted(self.key, rid * self.span + (x - self.origin))
        n = self.key.size
        out = np.full(x.shape, np.inf)
        for cand in (pos - 1, pos):
            c = np.clip(cand, 0, max(n - 1, 0))
            ok = (cand >= 0) & (cand < n) & (self.row[c] == rid) if n else np.zeros(x.shape, bool)
            out = np.where(ok, np.minimum(out, np.abs(self.xc[c] - x)), out)
        return out


def _densify(polys: list[np.ndarray], step: float) -> np.ndarray:
    """Points along the closed polygons, at most ``step`` mm apart."""
    a, b, _ = _edges(polys)
    n = np.maximum(np.ceil(np.hypot(*(b - a).T) / step).astype(np.int64), 1)
    e = np.repeat(np.arange(len(a)), n)
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / n[e]
    return a[e] + t[:, None] * (b[e] - a[e])


class _EuclidDistance:
    """In-plane distance (mm) from points to the nearest contour of a given plane."""

    def __init__(self, planes_polys, step: float):
        pts = [_densify(list(p), step) for p in planes_polys]
        lab = np.concatenate([np.full(len(p), k) for k, p in enumerate(pts)])
        pts = np.concatenate(pts)
        self.big = 1e3 * (np.ptp(pts[:, 0]) + np.ptp(pts[:, 1]) + 1.0)
        self.tree = cKDTree(np.column_stack([pts, lab * self.big]))

    def __call__(self, plane: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.tree.query(np.column_stack([x, y, plane * self.big]))[0]


@dataclass(frozen=True, eq=False)
class Columns:
    """Pieces of vertical lattice columns inside the structure.

    Piece q is the segment x[q], y[q], z in [za[q], zb[q]] (mm) with cross-section weight
    ``area[q]`` (mm^2); its volume is area * (zb - za)."""

    x: np.ndarray
    y: np.ndarray
    za: np.ndarray
    zb: np.ndarray
    area: np.ndarray


def columns(planes, slabs: Slabs, lat: Lattice, area_scale: np.ndarray,
            mask: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Columns:
    """Column pieces of a structure on a lattice.

    ``mask`` is (plane, j, i) of the lattice points inside each plane (from :func:`fill`),
    ``area_scale[k]`` rescales plane k's sample area to its exact contour area."""
    kk, jj, ii = mask
    K = len(planes)
    cell = lat.sx * lat.sy
    nxy = lat.nx * lat.ny
    flat = jj * lat.nx + ii
    key = kk * nxy + flat
    z = slabs.z
    parts = []

    # End caps: run starts extrude downwards, run ends upwards.
    start = np.ones(K, dtype=bool)
    end = np.ones(K, dtype=bool)
    start[1:] = slabs.gap
    end[:-1] = slabs.gap
    sel = start[kk]
    parts.append((flat[sel], slabs.lo[kk[sel]], z[kk[sel]], area_scale[kk[sel]]))
    sel = end[kk]
    parts.append((flat[sel], z[kk[sel]], slabs.hi[kk[sel]], area_scale[kk[sel]]))

    # Between neighbouring planes of a run.
    if K > 1:
        linked = ~slabs.gap
        inside = np.zeros(K * nxy + nxy, dtype=bool)
        inside[key] = True
        sel = linked[np.minimum(kk, K - 2)] & (kk < K - 1)
        both = sel & inside[key + nxy]
        k_b = kk[both]
        pair_area = 0.5 * (area_scale[:-1] + area_scale[1:])
        parts.append((flat[both], z[k_b], z[k_b + 1], pair_area[k_b]))
        # only on the lower plane: inside from z_k up to the interpolated crossing
        lower = sel & ~inside[key + nxy]
        # only on the upper plane: from the crossing up to z_{k+1}
        sel_u = (kk > 0) & linked[np.maximum(kk - 1, 0)]
        upper = sel_u & ~inside[key - nxy]
        band_k = np.concatenate([kk[lower], kk[upper] - 1])
        band_flat = np.concatenate([flat[lower], flat[upper]])
        is_lower = np.arange(band_k.size) < int(lower.sum())
        if band_k.size:
            zc = _crossings(planes, slabs, lat, inside, band_k, band_flat)
            own = np.where(is_lower, area_scale[band_k], area_scale[band_k + 1])
            parts.append((band_flat, np.where(is_lower, z[band_k], zc),
                          np.where(is_lower, zc, z[band_k + 1]), own))

    flat_all = np.concatenate([p[0] for p in parts])
    za = np.concatenate([p[1] for p in parts])
    zb = np.concatenate([p[2] for p in parts])
    area = cell * np.concatenate([p[3] for p in parts])
    keep = zb > za
    flat_all, za, zb, area = flat_all[keep], za[keep], zb[keep], area[keep]
    return Columns(lat.x0 + (flat_all % lat.nx) * lat.sx, lat.y0 + (flat_all // lat.nx) * lat.sy,
                   za, zb, area)


def _circle_root(z3: np.ndarray, p3: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Where the circle through three (z, phi) points crosses phi = 0 within [lo, hi].

    NaN where the points are (nearly) collinear or no root lies in the interval."""
    (x1, x2, x3), (y1, y2, y3) = z3, p3
    d = 2 * (x1 * (y2 - y3) + x2 * (y3 - y1) + x3 * (y1 - y2))
    s1, s2, s3 = x1 * x1 + y1 * y1, x2 * x2 + y2 * y2, x3 * x3 + y3 * y3
    with np.errstate(divide="ignore", invalid="ignore"):
        ux = (s1 * (y2 - y3) + s2 * (y3 - y1) + s3 * (y1 - y2)) / d
        uy = (s1 * (x3 - x2) + s2 * (x1 - x3) + s3 * (x2 - x1)) / d
        r2 = (x1 - ux) ** 2 + (y1 - uy) ** 2
        h = np.sqrt(r2 - uy * uy)
        out = np.full(lo.shape, np.nan)
        for root in (ux - h, ux + h):
            ok = np.isfinite(root) & (root >= lo) & (root <= hi) & np.isnan(out)
            out[ok] = root[ok]
    return out


def _crossings(planes, slabs: Slabs, lat: Lattice, inside: np.ndarray,
               band_k: np.ndarray, band_flat: np.ndarray) -> np.ndarray:
    """z where a column inside on exactly one of planes k, k+1 crosses the surface.

    The signed in-plane distance phi to the contours is measured on planes k-1..k+2
    (where they belong to the same run); the crossing is the root of the circular arc
    through (z, phi) of three neighbouring planes (the mean of the two arcs where both
    exist), which is exact for spheres, cylinders and cones and linear for straight
    walls. Without a third plane the crossing is linear in phi."""
    K = len(planes)
    nxy = lat.nx * lat.ny
    z = slabs.z
    polys = [p for _, p in planes]
    along_x = _AxisDistance(polys, lat)
    flipped = [tuple(q[:, ::-1] for q in p) for p in polys]
    along_y = _AxisDistance(flipped, Lattice(lat.y0, lat.x0, lat.sy, lat.sx, lat.ny, lat.nx))
    bi, bj = band_flat % lat.nx, band_flat // lat.nx
    bx, by = lat.x0 + bi * lat.sx, lat.y0 + bj * lat.sy
    linked = np.concatenate([[False], ~slabs.gap, [False]])  # linked[k+1]: k <-> k+1
    # Axis per cell: the one in which the boundary is nearest on the plane where the cell
    # lies outside (the boundary that sweeps over it between the planes).
    k_out = np.where(inside[band_k * nxy + band_flat], band_k + 1, band_k)
    use_x = along_x(k_out, bj, bx) <= along_y(k_out, bi, by)
    use_x = np.asarray(use_x)

    euclid = _EuclidDistance(polys, 0.5 * min(lat.sx, lat.sy))

    def directional(kc, idx):
        ux = use_x[idx]
        out = np.empty(idx.size)
        out[ux] = along_x(kc[ux], bj[idx][ux], bx[idx][ux])
        out[~ux] = along_y(kc[~ux], bi[idx][~ux], by[idx][~ux])
        return out

    # Directional distances where the scan line meets the contours on both planes (e.g.
    # flat-ended shapes); the Euclidean distance elsewhere (e.g. next to a pole contour
    # smaller than a row spacing).
    every = np.arange(band_k.size)
    use_dir = np.isfinite(directional(band_k, every)) & np.isfinite(
        directional(band_k + 1, every))
    d_idx, e_idx = np.flatnonzero(use_dir), np.flatnonzero(~use_dir)

    def phi(k: np.ndarray) -> np.ndarray:
        valid = (k >= 0) & (k < K)
        kc = np.clip(k, 0, K - 1)
        dist = np.empty(k.size)
        dist[d_idx] = directional(kc[d_idx], d_idx)
        dist[e_idx] = euclid(kc[e_idx], bx[e_idx], by[e_idx])
        sign = np.where(inside[kc * nxy + band_flat], -1.0, 1.0)
        return np.where(valid & np.isfinite(dist), sign * dist, np.nan)

    p1, p2 = phi(band_k), phi(band_k + 1)
    z1, z2 = z[band_k], z[band_k + 1]
    p1 = np.where(np.isfinite(p1), p1, 0.0)
    p2 = np.where(np.isfinite(p2), p2, 0.0)
    lin = z1 + (p1 / np.where(p1 == p2, 1.0, p1 - p2)) * (z2 - z1)
    roots = []
    has0 = (band_k >= 1) & linked[np.clip(band_k, 0, K)]
    if np.any(has0):
        k0 = np.clip(band_k - 1, 0, K - 1)
        p0 = np.where(has0, phi(band_k - 1), np.nan)
        roots.append(_circle_root((z[k0] - z1, z1 - z1, z2 - z1), (p0, p1, p2),
                                  np.zeros_like(z1), z2 - z1) + z1)
    has3 = (band_k + 2 <= K - 1) & linked[np.clip(band_k + 2, 0, K)]
    if np.any(has3):
        k3 = np.clip(band_k + 2, 0, K - 1)
        p3 = np.where(has3, phi(band_k + 2), np.nan)
        roots.append(_circle_root((z1 - z1, z2 - z1, z[k3] - z1), (p1, p2, p3),
                                  np.zeros_like(z1), z2 - z1) + z1)
    if not roots:
        return np.clip(lin, z1, z2)
    stack = np.vstack(roots)
    n = np.sum(np.isfinite(stack), axis=0)
    mean = np.where(n > 0, np.nansum(stack, axis=0) / np.maximum(n, 1), lin)
    return np.clip(mean, z1, z2)
