"""Dose elements: the parts of a structure in one dose voxel (or trilinear cell) and one
frame interval, each reduced to a uniform dose distribution for the accumulator.

Units: dose in Gy, element weights in cc (moments in mm^3, times 1e-3); in-cell
coordinates s, r (in-plane) and t (between frames) run from 0 to 1.

Each element is a uniform dose distribution with the exact mean and the variance of the
dose over its part of the structure (exact for a linear dose when the gradient lies along
one axis; otherwise the same variance):

* whole voxels (all m x m sub-samples inside over the same z part,
  :func:`_voxel_elements`): one element per voxel and frame interval. The mean and spread
  of the in-plane dose over the voxel on every frame are tabulated once per grid
  (rtqa.dvh.tables), so the element's mean is the exact mean of the trilinear dose over
  the voxel and its z part; pieces of one column within a frame interval are merged
  (their exact t moments).
* partial voxels (:func:`_cell_elements`): the sub-samples inside over the same z part,
  per trilinear cell (quadrant of the voxel), by the moments of their positions
  (:func:`_quadrant_moments`): exact mean (to the third central moment), variance of the
  linearised dose; each sub-sample stands for its sub-cell.
* band pieces (:func:`_sample_elements`): one element per sub-sample column (their z
  extents differ), with the exact mean and the variance of the linearised dose.

With m = 1 every sample is its whole voxel (band pieces too, with their own z part).
The dose of every sample is thus represented at least as finely as by the m x m
sub-samples of earlier versions for partial voxels and band pieces, and exactly in mean
(rather than by the node dose) for whole voxels. Node doses at the ends of whole-voxel
pieces and the doses at both ends of band pieces are points of the structure, passed to
the accumulator for Min/Max.
"""

from __future__ import annotations

import numpy as np

from rtqa import _native
from rtqa.dvh.accumulator import _KERNEL, _Accumulator, _plain, _sums
from rtqa.dvh.data import BIN_GY
from rtqa.dvh.tables import _KERNEL as _TAB_KERNEL, _Tables


#: Elements processed at once (bounds the engine's temporary memory and keeps it in cache).
CHUNK = 32768


#: Per (layer, code) record of whole-voxel elements built by the engine: weight (cc), t
#: mean and t variance (one gather per element instead of three).
_REC = np.dtype([("w", np.float64), ("tm", np.float32), ("vt", np.float32)])


def _voxel_elements(tab: _Tables, acc: _Accumulator, g, w, tm, vt, tlo, thi,
                    ring=None) -> None:
    """Whole-voxel elements: the dose voxel centred on the node of flat grid index g
    (frame f), over a z part of bin f with t mean ``tm`` and variance ``vt`` (t range
    [tlo, thi]); weight w (cc).

    The in-plane dose over the voxel has mean A and standard deviation s (from the grid
    tables) on frame f, B and s' on frame f+1; the element is uniform with the exact mean
    A + tm (B - A) and the variance vt ((B - A)^2 + (s' - s)^2) + (s + tm (s' - s))^2
    (exact for a linear dose; the in-plane spread is interpolated between the frames).
    Node doses at the ends of the t range are points of the structure (for Min/Max).
    ``ring``: as for :func:`_coded_voxel_elements`."""
    c = _native.load(_KERNEL)
    f8 = np.float64
    if c is not None and not (_plain(g, np.int64)
                              and all(_plain(x, f8) for x in (w, tm, vt, tlo, thi))):
        c = None
    for s in range(0, g.size, CHUNK):
        sl = slice(s, s + CHUNK)
        if c is not None and _voxel_chunk_native(c, tab, acc, g[sl], w[sl], tm[sl], vt[sl],
                                                 tlo[sl], thi[sl], _NO_ROW, ring):
            continue
        _voxel_chunk(tab, acc, g[sl], w[sl], tm[sl], vt[sl], lambda: (tlo[sl], thi[sl]))


def _coded_voxel_elements(tab: _Tables, acc: _Accumulator, g, rec, row, tlo, thi,
                          ring=None) -> None:
    """:func:`_voxel_elements` with the weight, t mean and t variance of element i in
    record ``rec[row[i]]`` (:data:`_REC`) and its t range in ``tlo[row[i]]``,
    ``thi[row[i]]`` (looked up only where the node doses can widen [Min, Max]).
    ``ring``: a :class:`rtqa.dvh.tables._FrameRing` covering g (compiled kernel only:
    the pairs computed as the elements need them, the same values)."""
    c = _native.load(_KERNEL)
    if c is not None and not (_plain(g, np.int64) and _plain(row, np.int64)
                              and _plain(rec, _REC) and _plain(tlo, np.float32)
                              and _plain(thi, np.float32)):
        c = None
    for s in range(0, g.size, CHUNK):
        r = row[s:s + CHUNK]
        if c is not None and _voxel_chunk_native(c, tab, acc, g[s:s + CHUNK], rec, _NO_F8,
                                                 _NO_F8, tlo, thi, r, ring):
            continue
        e = rec.take(r)
        _voxel_chunk(tab, acc, g[s:s + CHUNK], np.ascontiguousarray(e["w"]), e["tm"],
                     e["vt"], lambda: (tlo.take(r), thi.take(r)))


_NO_ROW = np.empty(0, dtype=np.int64)
_NO_F8 = np.empty(0)
_NO_PAIR = np.empty(0, dtype=np.complex64)


def _voxel_chunk_native(c, tab: _Tables, acc: _Accumulator, g, w, t, vt, tlo, thi,
                        row, ring=None) -> bool:
    """:func:`_voxel_chunk` compiled (``_cdeposit.voxels``: the elements and their
    deposit in one pass, the same values); w, t, vt, tlo, thi per element (float64) or,
    with ``row`` not empty, records ``w`` (:data:`_REC`) and t ranges (float32) at
    ``row``; the pairs from the whole tables, from ``ring`` (:class:`_FrameRing`:
    computed by the kernel as it needs them) or gathered (:meth:`_Tables.pairs_at`).
    False when the kernel leaves the chunk to the numpy code (nothing done)."""
    flat = tab.flat
    if not _plain(flat, np.float64) or not _plain(acc.acc, np.float64):
        return False
    n = g.size
    r = None
    if ring is not None and tab.pair is None:
        work = acc._scratch(n)
        r = c.voxels(acc.acc, work, flat, _NO_PAIR, _NO_PAIR, g, tab.nxy, w, t, vt, tlo, thi,
                     row, acc.dmin, acc.dmax, BIN_GY, ring.args)
    if r is None:  # (no ring, or a node it does not cover: the tables)
        if tab.pair is not None:  # (whole tables)
            pa, pb = tab.pair, _NO_PAIR
            if not _plain(pa, np.complex64):
                return False
        else:
            pa, pb = tab.pairs_at(g)
            pa, pb = np.ascontiguousarray(pa), np.ascontiguousarray(pb)
        work = acc._scratch(n)
        r = c.voxels(acc.acc, work, flat, pa, pb, g, tab.nxy, w, t, vt, tlo, thi, row,
                     acc.dmin, acc.dmax, BIN_GY)
    if r is None:
        return False
    acc.dmin, acc.dmax, nd, hi_max = r
    # acc.add's sums (numpy's pairwise sums, as there; the means and weights in work)
    b = 4 * acc.n_acc + 6 * n
    mean, wout = work[b:b + n], work[b + n:b + 2 * n]
    _sums(acc, mean, wout)
    acc._kept(nd, hi_max, work, n)
    return True


def _voxel_chunk(tab: _Tables, acc: _Accumulator, g, w, t, vt, ends) -> None:
    """:func:`_voxel_elements` of one chunk (``ends()``: the t range ends)."""
    f32 = np.float32
    gn = g + tab.nxy
    if tab.pair is not None:  # (whole tables)
        pa, pb = tab.pair.take(g), tab.pair.take(gn)
    else:
        pa, pb = tab.pairs_at(g)
    pa, pb = pa.view(f32), pb.view(f32)
    va = tab.flat.take(g)
    vb = tab.flat.take(gn)
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
    d2 *= vt
    sd *= sd
    d2 += sd
    d2 *= f32(12.0)
    width = np.sqrt(d2, out=d2)
    # node doses at the ends of the t range (only where they can widen [Min, Max])
    lo_v = min(float(va.min()), float(vb.min()))
    hi_v = max(float(va.max()), float(vb.max()))
    if lo_v < acc.dmin or hi_v > acc.dmax:
        tlo, thi = ends()
        vb -= va
        p0 = tlo * vb
        p0 += va
        vb *= thi
        vb += va
        acc.points(float(min(p0.min(), vb.min())), float(max(p0.max(), vb.max())))
    acc.add(mean, width, w)


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
        c = _native.load(_TAB_KERNEL)
        if c is not None and codes.ndim == 2 and codes.shape[1] == m \
                and codes.dtype in (np.uint32, np.uint64) and codes.dtype.isnative:
            # (compiled: the same lookups and sums in the same order)
            out = np.empty((n, 4, 6))
            if c.quadrant_moments(np.ascontiguousarray(codes), n, m, codes.dtype.itemsize,
                                  tab, rho, out):
                return out
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
    flat = np.flatnonzero(codes)  # (rows with a bit set, in row-major order)
    dt = codes.dtype.type
    b = (codes.reshape(-1)[flat][:, None] >> np.arange(m, dtype=dt)) & dt(1)
    fi = np.flatnonzero(b)
    i = fi // m
    row = flat[i]
    it = row // m
    return it, row - it * m, fi - i * m


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
    cT = np.ascontiguousarray(coef.T)  # (rows of 8: one gather per piece, not 8)
    for s in range(0, slot.size, CHUNK):
        sl = slice(s, s + CHUNK)
        sv = loc[cc[sl]]
        rv = loc[rr[sl]]
        t = tm[sl]
        A, B, C, D, E, F, G, H = np.take(cT, slot[sl], axis=0).T
        # gs = B + E rv + (F + H rv) t, gr = C + E sv + (G + H sv) t,
        # gt = D + F sv + (G + H sv) rv, mean = A + B sv + (C + E sv) rv + gt t
        # (in place; the same operations in the same order)
        u = H * sv
        u += G
        ce = E * sv
        ce += C
        gr = u * t
        gr += ce
        gt = F * sv
        gt += D
        u *= rv
        gt += u
        gs = H * rv
        gs += F
        gs *= t
        tmp = E * rv
        tmp += B
        gs += tmp
        mean = B * sv
        mean += A
        ce *= rv
        mean += ce
        np.multiply(gt, t, out=tmp)
        mean += tmp
        agt = np.abs(gt, out=u)  # the ends differ from the mean by less than |gt|
        if (float(np.subtract(mean, agt, out=tmp).min()) < acc.dmin
                or float(np.add(mean, agt, out=tmp).max()) > acc.dmax):
            p0 = mean + gt * (ta[sl] - t)
            p1 = mean + gt * (tb[sl] - t)
            acc.points(float(min(p0.min(), p1.min())), float(max(p0.max(), p1.max())))
        gs *= gs  # var = (gs^2 + gr^2) add + gt^2 vt; width = sqrt(12 var)
        gr *= gr
        gs += gr
        gs *= add
        gt *= gt
        gt *= vt[sl]
        gs += gt
        gs *= 12.0
        acc.add(mean, np.sqrt(gs, out=gs), w[sl])
