"""``compute_dvh``: the cumulative DVH of one structure on one dose grid.

Units: dose in Gy, coordinates in mm, volumes in cc (the result, ``rtqa.dvh.data.DVHData``).

The steps (overview in the package docstring, ``rtqa.dvh``):

* slabs from the contour planes (``rtqa.dvh.geometry.slabs_for``; with ``Settings.interpolate``
  False, pure slabs: faces half-way between neighbouring planes, :func:`_half_way`);
* in-plane sampling (``rtqa.dvh.geometry.raster``): each dose voxel (centred on a dose node) is
  divided into m x m sub-cells (m from rtqa.dvh.settings). Samples are classified with
  the even-odd rule. Sampling is adaptive: a voxel that no contour edge touches lies
  wholly inside or outside (the even-odd state cannot change within it), so only the
  voxels a contour passes through are classified sub-sample by sub-sample; the result is
  the same set of inside samples. Each plane's sample weights are rescaled so the plane's
  area equals the exact contour area (volumes therefore follow the slab convention
  exactly);
* Min/Max seeded with the surface extremes (rtqa.dvh.extremes), then the column pieces
  turned into dose elements (rtqa.dvh.engine, rtqa.dvh.elements) and accumulated
  (rtqa.dvh.accumulator).

Parts of a structure outside the dose grid (beyond half a voxel from the outer nodes)
get no dose: their volume is reported as ``outside_cc`` and left out of the DVH, never
counted as 0 Gy.
"""

from __future__ import annotations

import numpy as np

from rtqa.dvh.accumulator import _Accumulator
from rtqa.dvh.engine import _Engine
from rtqa.dvh.extremes import _surface_extremes
from rtqa.dvh.settings import DEFAULT, Settings, _subdivision
from rtqa.dvh.tables import _tables
from rtqa.dvh.data import DVHData
from rtqa.errors import RtqaError
from rtqa.dvh.geometry import Edges, Slabs, plane_areas, raster, slabs_for
from rtqa.reading.dose import DoseGrid
from rtqa.reading.structures import Structure


def _half_way(z, lo, hi, ct_z):
    """Pure slab faces: half-way between neighbouring planes, end caps as given."""
    lo, hi = lo.copy(), hi.copy()
    if z.size > 1:
        mid = 0.5 * (z[1:] + z[:-1])
        linked = slabs_for(z, 0.0, ct_z).gap == 0
        hi[:-1] = np.where(linked, mid, hi[:-1])
        lo[1:] = np.where(linked, mid, lo[1:])
    return lo, hi


def compute_dvh(structure: Structure, grid: DoseGrid, *, ct_z: np.ndarray | None = None,
                settings: Settings = DEFAULT, single_plane_mm: float | None = None) -> DVHData:
    """The cumulative DVH of ``structure`` on ``grid`` (Gy, cc). See ``rtqa.dvh``."""
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
    slabs = slabs_for(zs, single_plane_mm or 0.0, ct_z, settings.end_caps)
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
