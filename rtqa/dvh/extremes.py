"""Min and Max of the dose over a structure: the points on its surface.

Units: dose in Gy, coordinates in mm.

Min and Max are the extremes of the dose at points of the structure: the dose nodes
inside it (at both ends of every node column piece; a trilinear dose attains its
extremes over a region at nodes or on the region's boundary), both ends of every band
piece (one on the interpolated surface), and every contour vertex on each slab face and
dose frame crossed (the structure's surface). The node and band-piece points reach the
accumulator as the elements are built (rtqa.dvh.elements, rtqa.dvh.engine); this module
gives the contour-vertex points (:func:`_surface_extremes`).
"""

from __future__ import annotations

import math

import numpy as np

from rtqa import _native
from rtqa.dvh.interpolation import _bilinear_parts, _in_grid_xy
from rtqa.dvh.tables import _Tables, _clip
from rtqa.dvh.geometry import Edges
from rtqa.reading.dose import DoseGrid


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
    d, nx, nxy = tab.flat, tab.nx, tab.nxy
    c = _native.load("rtqa.dvh._cextremes")
    if c is not None and d.dtype == np.float64 and d.flags.c_contiguous \
            and all(v.dtype == np.float64 and v.flags.c_contiguous for v in (e.x0, e.y0)) \
            and e.plane.dtype == np.int64 and e.plane.flags.c_contiguous:
        # (compiled from the vertices: the same keep, cells, weights and candidates,
        # vertex by vertex)
        fa, fb = zb.right(a), zb.left(b)
        fb = np.maximum(fb, fa)
        ta = _clip((a - zb.z[fa]) / (zb.z[fa + 1] - zb.z[fa]), 0.0, 1.0)
        tb = _clip((b - zb.z[fb]) / (zb.z[fb + 1] - zb.z[fb]), 0.0, 1.0)
        dx, dy = grid.x[1] - grid.x[0], grid.y[1] - grid.y[0]
        per_plane = (live.view(np.uint8), np.ascontiguousarray(fa, dtype=np.int64),
                     np.ascontiguousarray(fb - fa + 2, dtype=np.int64),
                     np.ascontiguousarray(ta, dtype=np.float64),
                     np.ascontiguousarray(tb, dtype=np.float64))
        r = c.surface_xy(d, e.x0, e.y0, e.plane, *per_plane,
                         (float(grid.x[0]), float(grid.y[0]), float(dx), float(dy),
                          grid.x.size, grid.y.size),
                         (float(grid.x[0] - dx / 2), float(grid.x[-1] + dx / 2),
                          float(grid.y[0] - dy / 2), float(grid.y[-1] + dy / 2)), nxy, nx)
        if r is not None:
            return r
    keep = _in_grid_xy(grid, e.x0, e.y0)
    keep &= live[e.plane]
    if keep.all():
        x, y, plane_of = e.x0, e.y0, e.plane
    else:
        keep = np.flatnonzero(keep)
        if not keep.size:
            return lo, hi
        x, y, plane_of = e.x0[keep], e.y0[keep], e.plane[keep]
    i0, j0, tx, ty = _bilinear_parts(grid, x, y)
    fa, fb = zb.right(a), zb.left(b)
    fb = np.maximum(fb, fa)
    ta = _clip((a - zb.z[fa]) / (zb.z[fa + 1] - zb.z[fa]), 0.0, 1.0)
    tb = _clip((b - zb.z[fb]) / (zb.z[fb + 1] - zb.z[fb]), 0.0, 1.0)
    w11 = tx * ty
    w10 = tx - w11
    w01 = ty - w11
    w00 = 1.0 - tx - w01
    # frames fa .. fb + 1 of each vertex's slab: the bilinear dose V[o] on frame fa + o of
    # every vertex (o < 2: all have them; beyond a vertex's frames: any valid node, unused)
    nf_p = fb - fa + 2
    nf = nf_p[plane_of]
    g0 = fa[plane_of] * nxy
    g0 += j0 * nx
    g0 += i0
    c = _native.load("rtqa.dvh._cextremes")
    if c is not None:  # (compiled: the same candidates, vertex by vertex)
        arrays = (d, g0, w00, w10, w11, w01, nf)
        if all(a.flags.c_contiguous for a in arrays) and d.dtype == np.float64 \
                and g0.dtype == nf.dtype == np.int64:
            r = c.surface(d, g0, w00, w10, w11, w01, nf, ta[plane_of], tb[plane_of], nxy,
                          nx)
            if r is not None:
                return r
    top = d.size - nx - 2  # (the last cell's lower left node)
    V = []
    for o in range(int(nf_p[live].max())):
        g = np.minimum(g0 + o * nxy, top) if o >= 2 else g0 + o * nxy
        out = w00 * d[g]
        g += 1
        out += w10 * d[g]
        g += nx
        out += w11 * d[g]
        g -= 1
        out += w01 * d[g]
        V.append(out)
    b0, b1 = V[0], V[1]
    cand = [b0 + ta[plane_of] * (b1 - b0)]  # face a
    # face b: between frames fb and fb + 1 (o = nf - 2 and nf - 1)
    if len(V) == 2:
        p0, p1 = b0, b1
    else:
        p0, p1 = b0.copy(), b1.copy()
        for o in range(3, len(V) + 1):
            at = nf == o
            p0[at] = V[o - 2][at]
            p1[at] = V[o - 1][at]
    p1 -= p0
    p1 *= tb[plane_of]
    p1 += p0
    cand.append(p1)
    lo = min(float(c.min()) for c in cand)
    hi = max(float(c.max()) for c in cand)
    for o in range(1, len(V) - 1):  # inner frames fa + 1 .. fb
        inner = nf > o + 1
        lo = min(lo, float(np.min(V[o], where=inner, initial=math.inf)))
        hi = max(hi, float(np.max(V[o], where=inner, initial=-math.inf)))
    return lo, hi
