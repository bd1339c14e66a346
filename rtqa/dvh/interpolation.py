"""The dose at points: trilinear interpolation of a dose grid.

Units: coordinates in mm (patient coordinates), dose in Gy.

Conventions: a dose grid covers its nodes and half a voxel beyond the outer nodes (in z,
half the outer frame spacing). Within that outer half voxel the interpolated dose is
constant (cell indices and fractions are clamped). Points beyond it are outside the
grid: ``trilinear`` returns a mask of the points inside, and the DVH engine gives the
part of a structure outside the grid no dose.
"""

from __future__ import annotations

import numpy as np

from rtqa.reading.dose import DoseGrid


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
