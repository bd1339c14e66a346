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

from rtqa.dvh.interpolation import _bilinear_parts, _in_grid_xy
from rtqa.dvh.tables import _Tables
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
