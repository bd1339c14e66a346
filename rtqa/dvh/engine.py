"""The column pieces of one structure turned into dose elements (:class:`_Engine`).

Units: z in mm, volumes in mm^3 (``total_mm3``), element weights in cc.

Columns: a sample inside on both planes of an interval is inside over the whole
interval; one inside on only one of them up to the interpolated surface (a "band"
piece, ``rtqa.dvh.geometry.band_crossings``); end caps extend the run's end planes by half a
slice. Every piece is cut at the dose frames (rtqa.dvh.tables._ZBins): within a frame
interval the trilinear dose is linear in z.

The engine builds whole-voxel elements for the voxels whole over an interval or end cap
(:meth:`_Engine._whole_voxels`); then, with m = 1, the band pieces of node samples
(:meth:`_Engine._node_bands`), or with m > 1 the boundary voxels by their sub-samples
(:meth:`_Engine._partial_voxels`). The elements themselves are in rtqa.dvh.elements.
``total_mm3`` sums the volume of every piece, inside the dose grid or not.
"""

from __future__ import annotations

import numpy as np

from rtqa import _native
from rtqa.dvh.accumulator import _KERNEL, _Accumulator, _plain
from rtqa.dvh.elements import (_REC, _ROW_TABLE_MAX_M, CHUNK, _bits, _cell_elements,
                               _coded_voxel_elements, _quadrant_moments, _sample_elements,
                               _trilinear_cells, _voxel_elements)
from rtqa.dvh.tables import _KERNEL as _TAB_KERNEL, _FrameRing, _Tables, _clip
from rtqa.dvh.geometry import Raster, Slabs, band_crossings, nonzero, row_counts
from rtqa.reading.dose import DoseGrid


#: Planes at a time in the raster-sized steps (temporaries of this many planes, not of
#: the whole raster: issue 16, peak memory of the dose grid plus a fixed amount).
PLANES = 16


def _band_nodes(ins: np.ndarray, gap: np.ndarray, k0: int, k1: int):
    """(k, J, I, inside on plane k) of the nodes inside on exactly one plane of the
    linked intervals k0..k1-1 (k <-> k+1; none across a gap), in (k, J, I) order."""
    diff = ins[k0 + 1:k1 + 1] ^ ins[k0:k1]
    diff[gap[k0:k1]] = False  # no interpolation across a gap
    k, J, I = nonzero(diff)
    lower = ins[k0:k1][k, J, I]
    k += k0
    return k, J, I, lower


class _Engine:
    """The column pieces of one structure turned into dose elements (``rtqa.dvh``,
    steps 3-4); ``total_mm3`` sums the volume of every piece, in the grid or not."""

    def __init__(self, rast: Raster, slabs: Slabs, scale: np.ndarray, tab: _Tables,
                 acc: _Accumulator, grid: DoseGrid):
        self.r, self.slabs, self.scale, self.tab, self.acc = rast, slabs, scale, tab, acc
        self.grid = grid
        self.total_mm3 = 0.0
        r = rast
        K = r.K
        # the part of the voxel box inside the grid (in-plane)
        self.iw = (max(0, -r.I0), min(r.NI, tab.nx - r.I0))
        self.jw = (max(0, -r.J0), min(r.NJ, tab.ny - r.J0))
        self.in_plane = self.iw[1] > self.iw[0] and self.jw[1] > self.jw[0]
        if self.in_plane:  # the nodes whose tables the whole-voxel elements look up
            tab.use_window(r.J0 + self.jw[0], r.J0 + self.jw[1], r.I0 + self.iw[0],
                           r.I0 + self.iw[1])
        start = np.ones(K, dtype=bool)
        end = np.ones(K, dtype=bool)
        start[1:] = slabs.gap
        end[:-1] = slabs.gap
        self.start, self.end = start, end
        self.linked = np.flatnonzero(~slabs.gap)  # intervals k <-> k+1
        self.pair_scale = 0.5 * (scale[:-1] + scale[1:])

    def run(self) -> None:
        self._whole_voxels()
        if self.r.m == 1:
            self._node_bands()
        else:
            self._partial_voxels()

    # -- whole voxels ----------------------------------------------------------------
    def _whole_voxels(self) -> None:
        """Slab pieces of whole voxels: every interval between linked planes (voxels whole
        on both planes) and every end cap (whole on its plane). Within one dose bin a
        voxel column holds some of the (at most a few) pieces that overlap the bin; the
        set is coded in the bits of a small integer per voxel and bin, and the weight and
        t moments of each code are tabulated (exactly: sums over the pieces). Compiled, on
        a large grid, the voxel tables' pairs come from a frame ring (:meth:`_ring`)."""
        r, s, tab, zb = self.r, self.slabs, self.tab, self.tab.bins
        # whole voxels (with m = 1, bid is cls // 2 as 0/1 bytes: a view, no copy)
        full = r.bid.view(np.bool_) if r.m == 1 else r.cls == 2
        K = r.K
        lk = self.linked
        st, en = np.flatnonzero(self.start), np.flatnonzero(self.end)
        # sources: intervals, lower caps, upper caps
        src_plane = np.concatenate([lk, st, en])
        za = np.concatenate([s.z[lk], s.lo[st], s.z[en]])
        zbb = np.concatenate([s.z[lk + 1], s.z[st], s.hi[en]])
        wsc = np.concatenate([self.pair_scale[lk], self.scale[st], self.scale[en]]) \
            * (r.dx * r.dy)
        n_int = lk.size
        if not src_plane.size:
            return
        nv = r.NJ * r.NI
        per_plane = row_counts(full.reshape(K, nv))
        both = np.empty(lk.size, dtype=np.intp)  # whole on both planes
        ct = _native.load(_TAB_KERNEL)
        if ct is not None and full.dtype == np.bool_ and full.flags.c_contiguous:
            ct.pair_counts(full, K, nv, lk.astype(np.int64), both)  # (compiled: exact)
        else:
            for c in range(0, lk.size, 16):  # (16 planes at once: no temporary of the
                kk = lk[c:c + 16]             # raster's size)
                both[c:c + 16] = row_counts((full[kk] & full[kk + 1]).reshape(kk.size, nv))
        counts = np.concatenate([both, per_plane[st], per_plane[en]]).astype(float)
        self.total_mm3 += float(np.sum(counts * (zbb - za) * wsc))
        if not self.in_plane:
            return
        lay = self._layers_native(za, zbb, wsc, counts)
        if lay is None:
            lay = self._layers(za, zbb, wsc, counts)
        if lay is False:  # (no live source)
            return
        q, f, layer, bit, lay_f, n_lay, nbit, rec, TLO, THI = lay
        # the code of every voxel of the window in every layer (layers in bin order)
        (j0, j1), (i0, i1) = self.jw, self.iw
        stride = 1 << nbit
        nJ, nI = j1 - j0, i1 - i0
        nw = nJ * nI
        # flat grid index of window row j of layer l, less its offset in the code array
        row_g = ((r.J0 + j0 + np.arange(nJ)) * tab.nx + (r.I0 + i0)
                 - np.arange(nJ) * nI)  # (nJ,)
        def masks(src):  # the window masks of sources src (whole over the source)
            out = np.empty((src.size, nw), dtype=np.uint8)
            it = src < n_int
            if it.any():
                ki = lk[src[it]]
                out[it] = (full[ki, j0:j1, i0:i1] & full[ki + 1, j0:j1, i0:i1]).reshape(-1, nw)
            if not it.all():
                out[~it] = full[src_plane[src[~it]], j0:j1, i0:i1].reshape(-1, nw)
            return out

        group = max(1, 131072 // nw)
        c = _native.load(_KERNEL)
        if c is not None and not _plain(lay_f, np.int64):
            c = None
        # (compiled, large grids: the pairs of each frame computed once, as needed)
        ring = self._ring(full, st, en, q, f) if c is not None and tab.pair is None else None
        if c is not None:  # (compiled codes: the planes of each piece, caps -1 second)
            m8 = full.view(np.uint8) if full.dtype == np.bool_ and full.flags.c_contiguous \
                else np.ascontiguousarray(full, dtype=np.uint8)
            i8 = np.int64
            p_a = src_plane.astype(i8)
            p_b = np.concatenate([lk + 1, np.full(src_plane.size - n_int, -1)]).astype(i8)
            pc_l, pc_b = layer.astype(i8), bit.astype(i8)
            pc_a, pc_b2 = p_a[q], p_b[q]
            bounds = np.searchsorted(layer, np.arange(0, n_lay + group, group)) \
                if np.all(layer[1:] >= layer[:-1]) else None
        for g0 in range(0, n_lay, group):
            g1 = min(n_lay, g0 + group)
            L = g1 - g0
            if c is not None:
                if bounds is not None:
                    sel = slice(bounds[g0 // group], bounds[g0 // group + 1])
                else:
                    sel = np.flatnonzero((layer >= g0) & (layer < g1))
                code = np.empty(L * nw, dtype=np.uint8)
                c.layer_codes(m8, K, r.NJ, r.NI, j0, j1, i0, i1, pc_l[sel] - g0, pc_b[sel],
                              pc_a[sel], pc_b2[sel], code)
            else:
                code = np.zeros((L, nw), dtype=np.uint8)
                sel = np.flatnonzero((layer >= g0) & (layer < g1))
                for p in range(nbit):  # the pieces with bit p (at most one per layer)
                    sp = sel[bit[sel] == p]
                    if sp.size:
                        mk = masks(q[sp])
                        if p:
                            mk <<= np.uint8(p)
                        code[layer[sp] - g0] |= mk
                code = code.reshape(-1)
            if c is not None:  # (compiled: the same indices and rows in one pass)
                idx = np.empty(np.count_nonzero(code), dtype=np.int64)
                row = np.empty(idx.size, dtype=np.int64)
                c.codes(code, nJ, nI, lay_f[g0:g1], tab.nxy, tab.nx,
                        (r.J0 + j0) * tab.nx + (r.I0 + i0), g0, stride, idx, row)
                _coded_voxel_elements(tab, self.acc, idx, rec, row, TLO, THI, ring)
                continue
            idx = np.flatnonzero(code != 0)  # (layer, cell) order
            # elements per layer and per window row (idx is sorted)
            n_lay_el = np.diff(np.searchsorted(idx, np.arange(L + 1) * nw))
            n_row_el = np.diff(np.searchsorted(idx, np.arange(L * nJ + 1) * nI))
            row = code.take(idx).astype(np.intp)
            row += np.repeat(np.arange(g0, g1) * stride, n_lay_el)
            off = (lay_f[g0:g1, None] * tab.nxy - (np.arange(L) * nw)[:, None]
                   + row_g).reshape(-1)
            idx += np.repeat(off, n_row_el)  # the flat grid index
            _coded_voxel_elements(tab, self.acc, idx, rec, row, TLO, THI)

    def _layers(self, za, zbb, wsc, counts):
        """The layers of :meth:`_whole_voxels`' pieces (sources: z range za..zbb, weight
        scale wsc, whole voxels counts): the pieces' sources q and bins f (in bin order),
        layer and bit, the layers' bins, their number and bits, and per layer and code the
        records (weight, t mean, t variance) and t ranges; False when no source is live."""
        zb = self.tab.bins
        ca, cb = _clip(za, zb.lo, zb.hi), _clip(zbb, zb.lo, zb.hi)
        live = np.flatnonzero((cb > ca) & (counts > 0))
        if not live.size:
            return False
        q, f, a, b = zb.cut(ca[live], cb[live])
        q = live[q]
        c0, c1, c2, ta, tb = zb.moments(f, a, b)
        # layers: the pieces of a bin, at most 8 to a layer (one bit each)
        order = np.argsort(f, kind="stable")
        q, f, c0, c1, c2, ta, tb = (x[order] for x in (q, f, c0, c1, c2, ta, tb))
        new_bin = np.flatnonzero(np.diff(f, prepend=-1))
        rank = np.arange(f.size) - np.repeat(new_bin, np.diff(np.append(new_bin, f.size)))
        lay_id, layer = np.unique(f * 65536 + rank // 8, return_inverse=True)
        bit = rank % 8
        n_lay = lay_id.size
        lay_f = np.empty(n_lay, dtype=np.int64)
        lay_f[layer] = f
        # tables per layer and code: weight (cc), t mean, t variance, t range
        nbit = int(bit.max()) + 1
        P = np.zeros((4, n_lay, nbit))
        tlo_p = np.ones((n_lay, nbit))
        thi_p = np.zeros((n_lay, nbit))
        w = wsc[q]
        P[0, layer, bit] = w * c0
        P[1, layer, bit] = w * c1
        P[2, layer, bit] = w * c2
        tlo_p[layer, bit] = ta
        thi_p[layer, bit] = tb
        codes = np.arange(1 << nbit)
        bits = ((codes[:, None] >> np.arange(nbit)) & 1).astype(bool)  # (codes, nbit)
        W = (P[0][:, None, :] * bits).sum(axis=2)  # (n_lay, codes)
        S1 = (P[1][:, None, :] * bits).sum(axis=2)
        S2 = (P[2][:, None, :] * bits).sum(axis=2)
        Wd = np.where(W > 0, W, 1.0)
        TM = S1 / Wd
        VT = np.maximum(S2 / Wd - TM * TM, 0.0)
        TLO = np.where(bits, tlo_p[:, None, :], 1.0).min(axis=2)
        THI = np.where(bits, thi_p[:, None, :], 0.0).max(axis=2)
        # per layer and code: weight (cc), t mean and variance (one record: one gather per
        # element), t range (looked up only where node doses can widen [Min, Max])
        rec = np.empty(W.size, dtype=_REC)
        rec["w"] = (W * 1e-3).reshape(-1)
        rec["tm"], rec["vt"] = TM.reshape(-1), VT.reshape(-1)
        TLO, THI = (x.reshape(-1).astype(np.float32) for x in (TLO, THI))
        return q, f, layer, bit, lay_f, n_lay, nbit, rec, TLO, THI

    def _layers_native(self, za, zbb, wsc, counts):
        """:meth:`_layers` by ``_ctables.whole_layers`` (the same values, bit for bit);
        None where the numpy code is to decide."""
        c = _native.load(_TAB_KERNEL)
        if c is None:
            return None
        zb = self.tab.bins
        f8, i8 = np.float64, np.int64
        r = c.whole_layers(*(np.ascontiguousarray(x, dtype=f8)
                             for x in (za, zbb, wsc, counts)),
                           float(zb.lo), float(zb.hi), np.ascontiguousarray(zb.z, dtype=f8),
                           np.ascontiguousarray(zb.edges, dtype=f8), bool(zb.uniform),
                           float(zb.dz0))
        if r is None or r == 0:
            return None if r is None else False
        n_lay, nbit, q, f, layer, bit, lay_f, rec, tlo, thi = r
        q, f, layer, bit, lay_f = (np.frombuffer(x, dtype=i8) for x in (q, f, layer, bit,
                                                                         lay_f))
        return (q, f, layer, bit, lay_f, n_lay, nbit, np.frombuffer(rec, dtype=_REC),
                np.frombuffer(tlo, dtype=np.float32), np.frombuffer(thi, dtype=np.float32))

    def _ring(self, full: np.ndarray, st: np.ndarray, en: np.ndarray, q: np.ndarray,
              f: np.ndarray) -> _FrameRing | None:
        """The frame ring of the whole-voxel pieces (sources q: intervals, lower caps,
        upper caps; bins f): each source's voxels lie within the column spans of its
        plane's rows (an interval: of both planes')."""
        ct = _native.load(_TAB_KERNEL)
        if ct is None:
            return None
        r = self.r
        (j0, j1), (i0, i1) = self.jw, self.iw
        K, NJ, NI = full.shape
        m8 = full.view(np.uint8) if full.dtype == np.bool_ and full.flags.c_contiguous \
            else np.ascontiguousarray(full, dtype=np.uint8)
        plo = np.empty((K, j1 - j0), dtype=np.int32)
        phi = np.empty((K, j1 - j0), dtype=np.int32)
        ct.row_spans(m8, K, NJ, NI, j0, j1, i0, i1, plo, phi)
        lk = self.linked
        src_lo = np.concatenate([np.maximum(plo[lk], plo[lk + 1]), plo[st], plo[en]])
        src_hi = np.concatenate([np.minimum(phi[lk], phi[lk + 1]), phi[st], phi[en]])
        win = (r.J0 + j0, r.J0 + j1, r.I0 + i0, r.I0 + i1)
        return _FrameRing.of_pieces(self.tab, win, src_lo, src_hi, q, f)

    # -- m = 1: node samples between planes ---------------------------------------------
    def _node_bands(self) -> None:
        """Band pieces of node samples (inside on one plane of an interval only)."""
        r, s = self.r, self.slabs
        if not self.linked.size:
            return
        ins = r.bid.view(np.bool_)  # (m = 1: cls // 2 as 0/1 bytes, a view)
        k, J, I, lower = (np.concatenate(x) for x in zip(*(
            _band_nodes(ins, s.gap, k0, min(k0 + PLANES, r.K - 1))
            for k0 in range(0, r.K - 1, PLANES))))
        if not k.size:
            return
        zc = band_crossings(r, s, k, lower, J, I)
        za = np.where(lower, s.z[k], zc)
        zb = np.where(lower, zc, s.z[k + 1])
        wsc = np.where(lower, self.scale[k], self.scale[np.minimum(k + 1, r.K - 1)]) \
            * r.dx * r.dy
        self.total_mm3 += float(np.sum((zb - za) * wsc))
        self._voxel_pieces(J, I, za, zb, wsc)

    def _voxel_pieces(self, J, I, za, zb, wsc) -> None:
        """Whole-voxel elements of individual column pieces (node J, I; z za..zb)."""
        r, tab, zb_ = self.r, self.tab, self.tab.bins
        (j0, j1), (i0, i1) = self.jw, self.iw
        a, b = _clip(za, zb_.lo, zb_.hi), _clip(zb, zb_.lo, zb_.hi)
        keep = np.flatnonzero((b > a) & (J >= j0) & (J < j1) & (I >= i0) & (I < i1))
        if not keep.size:
            return
        q, f, a, b = zb_.cut(a[keep], b[keep])
        q = keep[q]
        c0, c1, c2, ta, tb = zb_.moments(f, a, b)
        with np.errstate(invalid="ignore", divide="ignore"):
            tm = np.where(c0 > 0, c1 / c0, 0.5 * (ta + tb))
            vt = np.maximum(np.where(c0 > 0, c2 / c0, 0.0) - tm * tm, 0.0)
        g = f * tab.nxy + (J[q] + r.J0) * tab.nx + (I[q] + r.I0)
        ring = None
        if tab.pair is None and _native.load(_KERNEL) is not None:  # (large grids: the
            # pairs of the few nodes the pieces reach, in a ring of frames)
            win = (r.J0 + j0, r.J0 + j1, r.I0 + i0, r.I0 + i1)
            ring = _FrameRing.of_nodes(tab, win, f, J[q] - j0, I[q] - i0)
        _voxel_elements(tab, self.acc, g, c0 * wsc[q] * 1e-3, tm, vt, ta, tb, ring)

    # -- m > 1: boundary voxels by sub-samples -------------------------------------------
    def _partial_voxels(self) -> None:
        """Voxels not whole over an interval or cap: their sub-samples inside on both
        planes (on the cap plane) as moments per trilinear cell and frame interval, those
        inside on one plane only as band pieces."""
        r, s, zb_ = self.r, self.slabs, self.tab.bins
        m = r.m
        h = (m - 1) // 2
        sxsy = (r.dx / m) * (r.dy / m)
        items = self._items_native(sxsy)
        if items is None:
            items = self._items(sxsy)
        ik, iJ, iI, za, zbb, wsc, Ba, Bb, both, n_int = items
        if not ik.size:
            return
        n_items = ik.size
        # in-plane moments per quadrant
        if m <= _ROW_TABLE_MAX_M and _native.load(_TAB_KERNEL) is not None:  # (compiled:
            # all at once, no temporaries)
            mom = _quadrant_moments(both, m)
        else:
            mom = np.empty((n_items, 4, 6))
            for c in range(0, n_items, 4096):
                mom[c:c + 4096] = _quadrant_moments(both[c:c + 4096], m)
        area = mom[:, :, 0].sum(axis=1)
        self.total_mm3 += float(np.sum(area * (zbb - za) * wsc))
        c = _native.load("rtqa.dvh._cpartial")
        if c is not None and self.tab.flat.dtype == np.float64 \
                and self.tab.flat.flags.c_contiguous:
            self._partial_native(c, ik, iJ, iI, Ba, Bb, both, mom, za, zbb, wsc, n_int)
            return
        # band sub-samples (intervals only)
        it_l, rl, cl = _bits(Ba[:n_int] & ~Bb[:n_int], m)
        it_u, ru, cu = _bits(Bb[:n_int] & ~Ba[:n_int], m)
        del Ba, Bb
        it = np.concatenate([it_l, it_u])
        br = np.concatenate([rl, ru])
        bc = np.concatenate([cl, cu])
        lower = np.arange(it.size) < it_l.size
        if it.size:
            kb = ik[it]
            zc = band_crossings(r, s, kb, lower, iJ[it] * m + br, iI[it] * m + bc)
            ku = np.minimum(kb + 1, r.K - 1)
            pza = np.where(lower, s.z[kb], zc)
            pzb = np.where(lower, zc, s.z[ku])
            pw = np.where(lower, self.scale[kb], self.scale[ku]) * sxsy
            self.total_mm3 += float(np.sum((pzb - pza) * pw))
        if not self.in_plane:
            return
        (j0, j1), (i0, i1) = self.jw, self.iw
        ing = (iJ >= j0) & (iJ < j1) & (iI >= i0) & (iI < i1)
        ca, cb = _clip(za, zb_.lo, zb_.hi), _clip(zbb, zb_.lo, zb_.hi)
        ing &= cb > ca
        fa = zb_.right(ca)
        nb = np.where(ing, zb_.left(cb) - fa + 1, 0)
        nbmax = int(nb.max(initial=0))
        if nbmax == 0:
            return
        # slots (item, quadrant, bin offset), flat (item * 4 + quadrant) * nbmax + offset:
        # 10 moments each, products of an in-plane moment (mom) and a z moment per item
        # and offset (C). Only the weights (S0) are kept whole; the other rows are
        # formed for each chunk of elements (:meth:`_slot_moments`), the same products.
        C = np.zeros((3, n_items, nbmax))
        S0 = np.empty((n_items, 4, nbmax))
        A = mom[:, :, 0]
        for o in range(nbmax):
            live = nb > o
            f = np.minimum(fa + o, zb_.n - 1)
            a = np.maximum(ca, zb_.edges[f])
            b = np.minimum(cb, zb_.edges[f + 1])
            c0, c1, c2, _, _ = zb_.moments(f, a, np.maximum(a, b))
            for i, c in enumerate((c0, c1, c2)):
                C[i, :, o] = np.where(live, c, 0.0) * wsc
            S0[:, :, o] = A * C[0, :, o][:, None]
        del live, f, a, b, c0, c1, c2
        S0 = S0.reshape(-1)
        # band pieces: each its own element (the extent of each column matters there)
        node_parts = []
        band = None
        if it.size:
            a, b = _clip(pza, zb_.lo, zb_.hi), _clip(pzb, zb_.lo, zb_.hi)
            keep = np.flatnonzero(ing[it] & (b > a))
            if keep.size == a.size:  # (all of them: no gathers)
                qq, f, a, b = zb_.cut(a, b)
            elif keep.size:
                qq, f, a, b = zb_.cut(a[keep], b[keep])
                qq = keep[qq]
            if keep.size:
                del keep
                c0, c1, c2, ta, tb = zb_.moments(f, a, b)
                del a, b
                tm = c1 / c0
                vt = np.maximum(c2 / c0 - tm * tm, 0.0)
                del c1, c2
                rr, cc = br[qq], bc[qq]
                itb = it[qq]
                q = 2 * (rr >= h) + (cc >= h)
                slot = (itb * 4 + q) * nbmax + np.clip(f - fa[itb], 0, nbmax - 1)
                del q
                band = (slot, rr, cc, c0 * pw[qq] * 1e-3, tm, vt, ta, tb)
                del c0, tm, vt
                cen = (rr == h) & (cc == h)
                if np.any(cen):
                    node_parts.append((itb[cen], f[cen], ta[cen], tb[cen]))
                del qq, itb, f, cen, ta, tb
            del pza, pzb, pw
        del it, br, bc
        # node (centre sub-sample) extremes: points of the structure
        dt = both.dtype.type
        cen_items = np.flatnonzero(ing & ((both[:, h] >> dt(h)) & dt(1)).astype(bool))
        if cen_items.size:
            qq, f, a, b = zb_.cut(ca[cen_items], cb[cen_items])
            _, _, _, ta, tb = zb_.moments(f, a, b)
            node_parts.append((cen_items[qq], f, ta, tb))
        tab = self.tab
        for itm, f, ta, tb in node_parts:
            g = f * tab.nxy + (iJ[itm] + r.J0) * tab.nx + (iI[itm] + r.I0)
            va, vb = tab.flat[g], tab.flat[g + tab.nxy]
            p = np.concatenate([va + ta * (vb - va), va + tb * (vb - va)])
            if p.size:
                self.acc.points(float(p.min()), float(p.max()))
        del node_parts
        # elements, CHUNK at a time (the trilinear cells of each chunk's slots)
        def cells(slots):
            o = slots % nbmax
            qd = (slots // nbmax) % 4
            itm = slots // (4 * nbmax)
            return _trilinear_cells(tab, fa[itm] + o, iJ[itm] + r.J0, iI[itm] + r.I0,
                                    qd & 1, qd >> 1)
        if band is not None:
            # the cells of each slot once (many band pieces share a slot): slots in use,
            # numbered in slot order
            for c in range(0, band[0].size, CHUNK):
                part = [x[c:c + CHUNK] for x in band]
                used = np.zeros(S0.size, dtype=np.intp)
                used[part[0]] = 1
                sid = np.flatnonzero(used)
                used[sid] = np.arange(sid.size)
                _sample_elements(self.acc, m, cells(sid), used[part[0]], *part[1:])
        sl = np.flatnonzero(S0 > 0)
        for c in range(0, sl.size, CHUNK):
            part = sl[c:c + CHUNK]
            _cell_elements(self.acc, m, cells(part),
                           _slot_moments(part, nbmax, mom, C, S0))

    def _items(self, sxsy: float):
        """The items of :meth:`_partial_voxels`: (plane k, voxel J, I, z range, weight
        scale times sxsy, the block rows of the two planes and their and, the number of
        interval items), intervals first, then the start and the end caps."""
        r, s = self.r, self.slabs
        cls, bid, blocks = r.cls, r.bid, r.blocks
        # items: (plane k, voxel J, I, flags a and b, z range, weight scale)
        lk = self.linked
        a, b = cls[lk], cls[lk + 1]
        sel = (a == 1) | (b == 1) | (a != b)  # not whole on both, not empty on both
        kx, J1, I1 = nonzero(sel)
        k1 = lk[kx]
        parts = [(k1, J1, I1, bid[k1, J1, I1], bid[k1 + 1, J1, I1], s.z[k1], s.z[k1 + 1],
                  self.pair_scale[k1])]
        n_int = k1.size
        # end caps: boundary voxels of run-end planes
        for flag, lo_of, hi_of in ((self.start, s.lo, s.z), (self.end, s.z, s.hi)):
            kc = np.flatnonzero(flag)
            kx, J1, I1 = nonzero(cls[kc] == 1)
            k1 = kc[kx]
            ids = bid[k1, J1, I1]
            parts.append((k1, J1, I1, ids, ids, lo_of[k1], hi_of[k1], self.scale[k1]))
        ik, iJ, iI, ba, bb, za, zbb, wsc = (np.concatenate(x) for x in zip(*parts))
        if not ik.size:
            return ik, iJ, iI, za, zbb, wsc, None, None, None, n_int
        wsc = wsc * sxsy
        Ba, Bb = blocks[ba], blocks[bb]
        both = Ba & Bb  # (row codes) caps: ba == bb, the plane's flags
        return ik, iJ, iI, za, zbb, wsc, Ba, Bb, both, n_int

    def _items_native(self, sxsy: float):
        """:meth:`_items` by ``_ctables.partial_items`` (the same items in the same
        order, the same values); None where the numpy code is to decide."""
        c = _native.load(_TAB_KERNEL)
        r, s = self.r, self.slabs
        blocks = r.blocks
        if c is None or not (_plain(r.cls, np.uint8) and _plain(r.bid, np.int32)
                             and blocks.ndim == 2 and blocks.dtype in (np.uint32, np.uint64)
                             and blocks.dtype.isnative and blocks.flags.c_contiguous):
            return None
        f8, i8 = np.float64, np.int64
        m = r.m
        args = [r.cls, r.bid, r.K, r.NJ, r.NI, *(np.ascontiguousarray(x, dtype=i8) for x in (
                    self.linked, np.flatnonzero(self.start), np.flatnonzero(self.end))),
                *(np.ascontiguousarray(x, dtype=f8) for x in (
                    s.z, s.lo, s.hi, self.pair_scale, self.scale)),
                float(sxsy), blocks, m, blocks.dtype.itemsize]
        n_int, n = c.partial_items(*args, None)
        outs = (*(np.empty(n, dtype=i8) for _ in range(3)), *(np.empty(n) for _ in range(3)),
                *(np.empty((n, m), dtype=blocks.dtype) for _ in range(3)))
        if c.partial_items(*args, outs) is None:
            return None
        return (*outs, n_int)

    def _partial_native(self, c, ik, iJ, iI, Ba, Bb, both, mom, za, zbb, wsc,
                        n_int: int) -> None:
        """The rest of :meth:`_partial_voxels` (after the in-plane moments) with the
        compiled kernels of rtqa.dvh._cpartial: the same values, bit for bit, the same
        calls of band_crossings and the same accumulator calls (points, then elements
        in the same chunks and order). The trilinear coefficients are gathered per
        element instead of once per slot (the same values)."""
        r, s, zb_, tab, acc = self.r, self.slabs, self.tab.bins, self.tab, self.acc
        m = r.m
        h = (m - 1) // 2
        sxsy = (r.dx / m) * (r.dy / m)
        i8 = np.int64
        ik, iJ, iI = (np.ascontiguousarray(x, dtype=i8) for x in (ik, iJ, iI))
        (j0, j1), (i0, i1) = self.jw, self.iw
        # the items' clipped z ranges, in-window flags, first bins and numbers of bins
        n_items = ik.size
        ca, cb = np.empty(n_items), np.empty(n_items)
        ing = np.empty(n_items, dtype=bool)
        fa, nb = np.empty(n_items, dtype=i8), np.empty(n_items, dtype=i8)
        nbmax = c.items_prep(np.ascontiguousarray(za, dtype=np.float64),
                             np.ascontiguousarray(zbb, dtype=np.float64), iJ, iI, j0, j1,
                             i0, i1, float(zb_.lo), float(zb_.hi), zb_.z, bool(zb_.uniform),
                             float(zb_.dz0), ca, cb, ing, fa, nb)
        if nbmax < 0:  # (a NaN z: numpy's conversions)
            ing = (iJ >= j0) & (iJ < j1) & (iI >= i0) & (iI < i1)
            ca, cb = _clip(za, zb_.lo, zb_.hi), _clip(zbb, zb_.lo, zb_.hi)
            ing &= cb > ca
            fa = zb_.right(ca)
            nb = np.ascontiguousarray(np.where(ing, zb_.left(cb) - fa + 1, 0), dtype=i8)
            fa = np.ascontiguousarray(fa, dtype=i8)
            nbmax = int(nb.max(initial=0))
        # band sub-samples (intervals only): item, row, column of each (lower ones first)
        nl, nu = c.bits_count(Ba, Bb, n_int, m, Ba.dtype.itemsize)
        n_band = nl + nu
        it, br, bc, kb, R, C = (np.empty(n_band, dtype=i8) for _ in range(6))
        c.bits_fill(Ba, Bb, n_int, m, Ba.dtype.itemsize, ik, iJ, iI, it, br, bc, kb, R, C)
        del Ba, Bb
        parts = 0
        if n_band:
            zc = band_crossings(r, s, kb, np.arange(n_band) < nl, R, C)
            del kb, R, C
            d, pa, pb, pw = (np.empty(n_band) for _ in range(4))
            f0, nps = np.empty(n_band, dtype=i8), np.empty(n_band, dtype=i8)
            parts, all_one, n_cen = c.band_prep(
                np.ascontiguousarray(zc, dtype=np.float64), nl, it, br, bc, ik, ing, m,
                np.ascontiguousarray(s.z, dtype=np.float64),
                np.ascontiguousarray(self.scale, dtype=np.float64), sxsy, float(zb_.lo),
                float(zb_.hi), zb_.z, bool(zb_.uniform), float(zb_.dz0), d, pa, pb, pw, f0,
                nps)
            self.total_mm3 += float(np.sum(d))
            del zc, d
        if not self.in_plane or nbmax == 0:
            return
        Cz = np.empty((3, n_items, nbmax))
        S0 = np.empty(n_items * 4 * nbmax)
        c.slot_table(ca, cb, fa, nb, np.ascontiguousarray(wsc, dtype=np.float64), mom,
                     zb_.z, zb_.edges, Cz, S0)
        flat = tab.flat
        J0, I0 = int(r.J0), int(r.I0)
        if parts:  # node (centre sub-sample) doses at the ends of its band parts: points
            band = (all_one, pa, pb, f0, nps, it, br, bc)
            pca, pcb = np.empty(n_cen), np.empty(n_cen)
            n_c = c.band_cen(*band, iJ, iI, J0, I0, m, zb_.z, zb_.edges, flat, tab.nx,
                             tab.ny, pca, pcb)
            if n_c:
                p = np.concatenate([pca[:n_c], pcb[:n_c]])
                acc.points(float(p.min()), float(p.max()))
            del pca, pcb
        # node extremes of the items inside at the node: points
        n_cp, cen_one, n_ci = c.cen_count(both, m, both.dtype.itemsize, ing, nb)
        if n_ci:
            pca, pcb = np.empty(n_cp), np.empty(n_cp)
            n_c = c.cen_fill(cen_one, both, m, both.dtype.itemsize, ing, ca, cb, fa, nb, iJ,
                             iI, J0, I0, zb_.z, zb_.edges, flat, tab.nx, tab.ny, pca, pcb)
            p = np.concatenate([pca[:n_c], pcb[:n_c]])
            if p.size:
                acc.points(float(p.min()), float(p.max()))
            del pca, pcb
        del nb
        add = 1.0 / (12.0 * m * m)
        cells = (fa, iJ, iI, J0, I0, nbmax)
        if parts:  # band parts, CHUNK at a time: each its own element
            v = (np.arange(m) - h) / m
            loc = np.where(v >= 0, v, 1.0 + v)  # in-cell coordinate of a row/column
            band = (all_one, pa, pb, pw, f0, nps, it, br, bc)
            i = e = 0
            while True:
                mean, width, w, p0, p1 = (np.empty(CHUNK) for _ in range(5))
                n, i, e, hit = c.band_run(all_one, i, e, *band[1:], *cells, zb_.z,
                                          zb_.edges, flat, tab.nx, tab.ny, loc, add,
                                          acc.dmin, acc.dmax, mean, width, w, p0, p1)
                if not n:
                    break
                if n < CHUNK:
                    mean, width, w, p0, p1 = (x[:n] for x in (mean, width, w, p0, p1))
                if hit:  # the ends of the pieces can widen [Min, Max]
                    acc.points(float(min(p0.min(), p1.min())),
                               float(max(p0.max(), p1.max())))
                acc.add(mean, width, w)
            del band
        if n_band:
            del pa, pb, pw, f0, nps
        del it, br, bc
        sl = np.flatnonzero(S0 > 0)
        for c0 in range(0, sl.size, CHUNK):
            part = sl[c0:c0 + CHUNK]
            mean, width, w = (np.empty(part.size) for _ in range(3))
            c.cell_chunk(flat, tab.nx, tab.ny, *cells, add, part, mom, Cz, S0, mean, width,
                         w)
            acc.add(mean, width, w)


def _slot_moments(slots, nbmax: int, mom: np.ndarray, C: np.ndarray,
                  S0: np.ndarray) -> np.ndarray:
    """The moments (W, Ss, Sr, St, Sss, Srr, Stt, Ssr, Sst, Srt) (10, n) of flat slots
    (item * 4 + quadrant) * nbmax + offset: in-plane moments ``mom`` (item, quadrant:
    1, s, r, s^2, r^2, s r) times z moments ``C`` (c0, c1, c2 per item and offset, with
    their weight scale); ``S0`` the weights (flat slots)."""
    o = slots % nbmax
    iq = slots // nbmax
    itm = iq // 4
    M = mom.reshape(-1, 6)[iq]  # (n, 6)
    c0, c1, c2 = C[0, itm, o], C[1, itm, o], C[2, itm, o]
    S = np.empty((10, slots.size))
    S[0] = S0[slots]
    S[1] = M[:, 1] * c0
    S[2] = M[:, 2] * c0
    S[3] = M[:, 0] * c1
    S[4] = M[:, 3] * c0
    S[5] = M[:, 4] * c0
    S[6] = M[:, 0] * c2
    S[7] = M[:, 5] * c0
    S[8] = M[:, 1] * c1
    S[9] = M[:, 2] * c1
    return S
