"""The DVH engine: structure slabs x dose grid → cumulative DVH with exact metrics.

Method (vectorised numpy, one structure at a time)
--------------------------------------------------
1. Slabs: each contour plane is a slab (rtqa.geometry.slabs_for: half-way boundaries,
   half-slice end caps).
2. In-plane sampling: a lattice of points at the centres of m x m sub-cells of each dose
   voxel (m odd, so the lattice contains the dose nodes), m chosen per structure so that
   the sample spacing is at most 1/40 of the structure's size (cube root of its volume):
   small SBRT targets are sampled finely, organs coarsely. Points are classified with the
   even-odd rule; each plane's sample weights are rescaled so the plane's area equals the
   exact contour area (volumes therefore follow the slab convention exactly).
3. Each sample's column through its slab is cut at the dose frames; on each piece the
   trilinear dose is linear in z, so the piece's dose distribution is uniform between its
   end doses. The in-plane extent of the sample cell adds the spread of the local
   in-plane gradient; the three spreads are combined into one uniform element of the
   same variance (exact when the gradient lies along one axis).
4. Elements are accumulated exactly onto 0.01 Gy nodes (piecewise-linear cumulative
   deposit, double cumulative sum), giving the cumulative DVH in cc at every node.
5. Min and Max are the extremes of the dose at the sample points and at every contour
   vertex on each slab face and dose frame crossed (the structure's surface); Mean is the
   volume-weighted mean of the elements.
Parts of a structure outside the dose grid (beyond half a voxel from the outer nodes)
get no dose: their volume is reported as ``outside_cc`` and left out of the DVH, never
counted as 0 Gy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rtqa.dvhdata import BIN_GY, DVHData
from rtqa.errors import RtqaError
from rtqa.geometry import Lattice, Slabs, columns, fill, plane_areas, slabs_for
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
    return (grid.z[0] - (grid.z[1] - grid.z[0]) / 2, grid.z[-1] + (grid.z[-1] - grid.z[-2]) / 2)


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


def _cut_at_frames(za: np.ndarray, zb: np.ndarray, grid: DoseGrid):
    """Cut z intervals at the inner dose frames: (interval index, start, end) of each
    piece; within a piece the trilinear dose is linear in z."""
    inner = grid.z[1:-1]
    c0 = np.searchsorted(inner, za, side="right")
    c1 = np.searchsorted(inner, zb, side="left")
    n = np.maximum(c1 - c0, 0) + 1
    q = np.repeat(np.arange(za.size), n)
    p = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    last = p == n[q] - 1
    cut_lo = inner[np.clip(c0[q] + p - 1, 0, max(inner.size - 1, 0))] if inner.size else za[q]
    cut_hi = inner[np.clip(c0[q] + p, 0, max(inner.size - 1, 0))] if inner.size else zb[q]
    start = np.where(p == 0, za[q], cut_lo)
    end = np.where(last, zb[q], cut_hi)
    return q, start, end


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


#: Column pieces processed at once (bounds the engine's temporary memory).
CHUNK = 250_000


def _elements(grid: DoseGrid, x, y, area, za, zb, sx: float, sy: float):
    """Dose elements of column pieces: (mean Gy, spread Gy, volume cc, min Gy, max Gy).

    Each piece is cut at the dose frames; on each part the dose is linear in z between
    its end doses; the in-plane gradient over the sample cell adds to the spread."""
    q, za, zb = _cut_at_frames(za, zb, grid)
    xs, ys, aw = x[q], y[q], area[q]
    dx, dy = float(grid.x[1] - grid.x[0]), float(grid.y[1] - grid.y[0])

    i0, j0, tx, ty = _bilinear_parts(grid, xs, ys)
    f, _ = _frame_parts(grid, 0.5 * (za + zb))
    zf0, zf1 = grid.z[f], grid.z[f + 1]
    ta = np.clip((za - zf0) / (zf1 - zf0), 0, 1)
    tb = np.clip((zb - zf0) / (zf1 - zf0), 0, 1)
    flat = grid.dose.reshape(-1)
    nx, nxy = grid.x.size, grid.x.size * grid.y.size
    base = f * nxy + j0 * nx + i0

    def plane_terms(b):
        c00, c10 = flat[b], flat[b + 1]
        c01, c11 = flat[b + nx], flat[b + nx + 1]
        val = (1 - ty) * ((1 - tx) * c00 + tx * c10) + ty * ((1 - tx) * c01 + tx * c11)
        gx = ((1 - ty) * (c10 - c00) + ty * (c11 - c01)) / dx
        gy = ((1 - tx) * (c01 - c00) + tx * (c11 - c10)) / dy
        return val, gx, gy

    v0, gx0, gy0 = plane_terms(base)
    v1, gx1, gy1 = plane_terms(base + nxy)
    da = v0 + ta * (v1 - v0)
    db = v0 + tb * (v1 - v0)
    tm = 0.5 * (ta + tb)
    gx = gx0 + tm * (gx1 - gx0)
    gy = gy0 + tm * (gy1 - gy0)
    mean = 0.5 * (da + db)
    width = np.sqrt((gx * sx) ** 2 + (gy * sy) ** 2 + (db - da) ** 2)
    weight = aw * (zb - za) / 1000.0  # cc
    if weight.size == 0:
        return mean, width, weight, np.inf, -np.inf
    return (mean, width, weight, float(np.min(np.minimum(da, db))),
            float(np.max(np.maximum(da, db))))


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
    if zs.size == 1:
        if single_plane_mm is None:
            single_plane_mm = float(np.min(np.diff(grid.z)))
            warnings.append(f"drawn on one plane only: given a slab of {single_plane_mm:.2f} mm "
                            "(the dose frame spacing)")
    slabs = slabs_for(zs, single_plane_mm or 0.0, ct_z)
    areas = plane_areas(planes)
    thick = slabs.thickness
    vol_est = float(np.nansum(areas * thick))
    m = _subdivision(vol_est, dx, dy, float(np.nansum(areas)), settings)
    sx, sy = dx / m, dy / m

    allpts = np.concatenate([p for _, polys in planes for p in polys])
    bx0, by0 = allpts.min(axis=0)
    bx1, by1 = allpts.max(axis=0)
    ox, oy = grid.x[0] - dx / 2 + sx / 2, grid.y[0] - dy / 2 + sy / 2  # lattice origin
    i_min, j_min = math.floor((bx0 - ox) / sx) - 1, math.floor((by0 - oy) / sy) - 1
    i_max, j_max = math.ceil((bx1 - ox) / sx) + 1, math.ceil((by1 - oy) / sy) + 1
    lat = Lattice(ox + i_min * sx, oy + j_min * sy, sx, sy, i_max - i_min + 1,
                  j_max - j_min + 1)
    k, j, i = fill([polys for _, polys in planes], lat)

    # Per-plane weights: rescale sample areas to the exact contour area.
    counts = np.bincount(k, minlength=len(planes)).astype(float)
    sampled = counts * sx * sy
    scale = np.ones(len(planes))
    ok = (counts > 0) & np.isfinite(areas)
    scale[ok] = areas[ok] / sampled[ok]
    bad = ok & (np.abs(sampled - areas) > 0.25 * areas + 8 * (sx + sy) * np.sqrt(areas))
    if np.any(bad):
        scale[bad] = 1.0
        warnings.append(f"{int(bad.sum())} plane(s) with self-intersecting or inconsistent "
                        "contours: their area is taken from the even-odd fill")
    # Planes whose contours are smaller than one sample cell: one sample at the centroid.
    tiny = np.flatnonzero((counts == 0) & np.isfinite(areas) & (areas > 0))
    if tiny.size:
        cx = np.array([np.mean(planes[t][1][0][:, 0]) for t in tiny])
        cy = np.array([np.mean(planes[t][1][0][:, 1]) for t in tiny])
        ti = np.clip(np.rint((cx - lat.x0) / sx).astype(np.int64), 0, lat.nx - 1)
        tj = np.clip(np.rint((cy - lat.y0) / sy).astype(np.int64), 0, lat.ny - 1)
        k, j, i = np.concatenate([k, tiny]), np.concatenate([j, tj]), np.concatenate([i, ti])
        scale[tiny] = areas[tiny] / (sx * sy)
    # A between-plane cell takes the scale of its plane(s); a one-sample plane's scale
    # describes that sample only, so it does not dilute its neighbours.
    if not settings.interpolate:
        slabs = Slabs(slabs.z, slabs.lo, slabs.hi, np.ones(max(len(planes) - 1, 0), bool))
        slabs = Slabs(slabs.z, *_half_way(slabs.z, slabs.lo, slabs.hi, ct_z), slabs.gap)
    cols = columns(planes, slabs, lat, scale, (k, j, i))
    total_cc = float(np.sum(cols.area * (cols.zb - cols.za))) / 1000.0

    # Keep the parts inside the grid, cut them at the dose frames.
    zmin, zmax = z_extent(grid)
    inxy = _in_grid_xy(grid, cols.x, cols.y)
    za, zb = np.clip(cols.za, zmin, zmax), np.clip(cols.zb, zmin, zmax)
    keep = inxy & (zb > za)
    cx, cy, carea = cols.x[keep], cols.y[keep], cols.area[keep]
    za, zb = za[keep], zb[keep]
    parts = [_elements(grid, cx[c:c + CHUNK], cy[c:c + CHUNK], carea[c:c + CHUNK],
                       za[c:c + CHUNK], zb[c:c + CHUNK], sx, sy)
             for c in range(0, max(cx.size, 1), CHUNK)]
    mean, width, weight = (np.concatenate([p[i] for p in parts]) for i in range(3))
    lo_d = min(p[3] for p in parts)
    hi_d = max(p[4] for p in parts)
    covered_cc = float(weight.sum())
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

    # Surface: contour vertices on every slab face and dose frame crossed.
    vmin, vmax = _surface_extremes(planes, slabs, grid)
    dmin = float(min(lo_d, vmin))
    dmax = float(max(hi_d, vmax))
    edges, cum = accumulate(mean, width, weight, dmax, dmin)
    return DVHData(
        name=structure.name, edges_gy=edges, cum_cc=cum, volume_cc=covered_cc,
        min_gy=dmin, max_gy=dmax, mean_gy=float(np.dot(mean, weight) / covered_cc),
        outside_cc=outside_cc, warnings=tuple(warnings))


def _surface_extremes(planes, slabs, grid: DoseGrid) -> tuple[float, float]:
    zmin, zmax = z_extent(grid)
    pts, zz = [], []
    for kk, (_, polys) in enumerate(planes):
        a, b = max(slabs.lo[kk], zmin), min(slabs.hi[kk], zmax)
        if b < a:
            continue
        levels = np.concatenate([[a], grid.z[(grid.z > a) & (grid.z < b)], [b]])
        xy = np.concatenate(polys)
        pts.append(np.tile(xy, (levels.size, 1)))
        zz.append(np.repeat(levels, len(xy)))
    if not pts:
        return math.inf, -math.inf
    p = np.concatenate(pts)
    d, inside = trilinear(grid, p[:, 0], p[:, 1], np.concatenate(zz))
    d = d[inside]
    return (float(d.min()), float(d.max())) if d.size else (math.inf, -math.inf)
