/* Boundary voxels by their sub-samples (m > 1): the compiled twin of the element work of
 * rtqa.dvh.engine._Engine._partial_voxels (see rtqa/_native.py).  Each function names
 * the numpy code it replaces; the Python caller passes C-contiguous arrays allocated by
 * numpy (float64 "f8", int64 "i8") and checks their sizes; the kernels check them again
 * and every gather index (IndexError, as numpy would raise).
 *
 * bits_count(A, B, n, m, itemsize) -> (n_lower, n_upper)
 * bits_fill(A, B, n, m, itemsize, ik, iJ, iI, it, br, bc, kb, R, C)
 *     rtqa.dvh.elements._bits of the row codes A & ~B (lower) then B & ~A (upper), rows
 *     0..n-1 of the (items, m) code arrays A and B (uint32 or uint64: itemsize 4 or 8):
 *     item, row r and column c of every set bit in (item, r, c) order, the lower ones
 *     first; and the band_crossings inputs kb = ik[it], R = iJ[it] m + r, C = iI[it] m + c.
 * slot_table(ca, cb, fa, nb, wsc, mom, z, edges, C, S0)
 *     the z moments per item and bin offset of _partial_voxels (loop over offsets o:
 *     f = min(fa + o, n - 1), _ZBins.moments over [max(ca, edges[f]), min(cb, edges[f+1])],
 *     where(nb > o, c, 0) * wsc) into C (3, items, nbmax), and S0 (items, 4, nbmax) =
 *     mom[:, :, 0] * C[0].
 * items_prep(za, zb, iJ, iI, j0, j1, i0, i1, zlo, zhi, zbin, uniform, dz0, ca, cb, ing,
 *            fa, nb) -> nbmax
 *     the items' z ranges clipped to the grid (ca, cb), in the grid window with cb > ca
 *     (ing), first bin fa = _ZBins.right(ca) and number of bins nb (0 outside): as
 *     _partial_voxels; nbmax = max(nb, 0), or -1 when a z is NaN (nothing is then
 *     guaranteed written: the caller uses numpy).
 * band_prep(zc, n_lower, it, br, bc, ik, ing, m, zs, scale, sxsy, zlo, zhi, zbin,
 *           uniform, dz0, d, a, b, pw, f0, np) -> (parts, all_one, cen_parts)
 *     the band pieces (sub-samples inside on one plane of an interval, crossing at zc;
 *     the first n_lower inside on the lower plane): their volume terms d = (pzb - pza) pw
 *     with pza, pzb, pw as _partial_voxels forms them, ends clipped to the grid (a, b);
 *     for the kept pieces (item in the grid window, b > a) the first bin f0 and the
 *     number of bins np (_ZBins.right / left; np = -1: not kept). parts: their number
 *     of bins in all; all_one: every kept piece in one bin (_ZBins.cut then keeps the
 *     ends as they are, else it clips them to each bin and drops empty parts).
 * band_cen(all_one, a, b, f0, np, it, br, bc, iJ, iI, J0, I0, m, zbin, edges, dose,
 *          nx, ny, pa, pb) -> n
 *     the node doses at both t ends (pa at ta, pb at tb) of the parts of the centre
 *     sub-sample's band pieces (points for Min/Max), in part order.
 * cen_count(both, m, itemsize, ing, nb) -> (parts, all_one, items)
 * cen_fill(all_one, both, m, itemsize, ing, ca, cb, fa, nb, iJ, iI, J0, I0, zbin, edges,
 *          dose, nx, ny, pa, pb) -> n
 *     the same for the items inside at the node on both planes (bit h of row h of
 *     their codes both), over their clipped z range [ca, cb] cut into bins.
 * band_run(all_one, i, e, a, b, pw, f0, np, it, br, bc, fa, iJ, iI, J0, I0, nbmax, zbin,
 *          edges, dose, nx, ny, loc, add, dmin, dmax, mean, width, w, p0, p1)
 *     -> (n, i, e, triggered)
 *     the elements of the next len(mean) band parts from part e of piece i (the numpy
 *     path's chunk of band arrays; returns where the next chunk starts): for each part
 *     _ZBins.moments, tm, vt and weight w (cc) as _partial_voxels, the trilinear
 *     coefficients of its slot (_trilinear_cells of the engine's cells()), and
 *     rtqa.dvh.elements._sample_elements: mean and width; triggered when the part ends
 *     can widen [dmin, dmax] (numpy's test: min(mean - |gt|) < dmin or max(mean + |gt|)
 *     > dmax, a NaN making both false), and then the end doses p0 (at ta), p1 (at tb).
 * cell_chunk(dose, nx, ny, fa, iJ, iI, J0, I0, nbmax, add, slots, mom, C, S0, mean,
 *            width, w)
 *     rtqa.dvh.elements._cell_elements of one chunk of slots, with the moments of
 *     rtqa.dvh.engine._slot_moments and the coefficients of _trilinear_cells.
 *
 * Identity: every value is the same IEEE 754 double operation, on the same operands and
 * in the same order, as the numpy expression it twins (written out below, one rounding
 * per operation; compiled with -ffp-contract=off, no fast-math).  np.maximum/np.minimum
 * return the second operand on ties (+-0) and propagate NaN; np.clip keeps x on ties;
 * np.rint rounds half to even as rint() does in the default rounding mode; float to int64
 * truncates as astype.  Sums over arrays (np.sum, .min, .max of the points) stay in numpy.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef int64_t i8;

#include "_npmath.h"  /* np_max, np_min, np_clip, exact_rint, exact_floor */

static inline i8 iclip(i8 x, i8 lo, i8 hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* the number of items of a buffer of 8-byte (or size-byte) values, -1 if not whole */
static Py_ssize_t count(const Py_buffer *b, Py_ssize_t size)
{
    return b->len % size ? -1 : b->len / size;
}

static int size_error(const char *what)
{
    PyErr_Format(PyExc_ValueError, "_cpartial: wrong size of %s", what);
    return 0;
}

/* _trilinear_cells for one cell: coefficients A..H of quadrant (qx, qy) of the voxel
 * centred on node (jg, ig), frames f and f+1.  0 when an index lies outside the dose. */
/* the largest frame f whose offset f nx ny lies within a dose of nd values (-1 when the
 * sizes are bad): trilinear's bound, formed once per call (no divisions per cell) */
static inline i8 frame_max(i8 nd, i8 nx, i8 ny)
{
    if (nx < 1 || ny < 1 || nx > nd || ny > nd / nx)
        return -1;
    return nd / (nx * ny);
}

static inline int trilinear(const double *d, i8 nd, i8 nx, i8 ny, i8 fmax, i8 f, i8 jg,
                            i8 ig, i8 qx, i8 qy, double *c)
{
    /* (the frame offset f nxy is formed only when it lies within the dose: no wrap;
     * fmax = frame_max(nd, nx, ny)) */
    if (f < 0 || f > fmax)
        return 0;
    i8 nxy = nx * ny;
    i8 i_a = iclip(ig - 1 + qx, 0, nx - 1);
    i8 i_b = iclip(ig + qx, 0, nx - 1);
    i8 j_a = iclip(jg - 1 + qy, 0, ny - 1) * nx;
    i8 j_b = iclip(jg + qy, 0, ny - 1) * nx;
    i8 base = f * nxy;
    if (base + nxy + j_b + i_b >= nd)
        return 0;
    double c000 = d[base + j_a + i_a];
    double c100 = d[base + j_a + i_b];
    double c010 = d[base + j_b + i_a];
    double c110 = d[base + j_b + i_b];
    base += nxy;
    double c001 = d[base + j_a + i_a];
    double c101 = d[base + j_a + i_b];
    double c011 = d[base + j_b + i_a];
    double c111 = d[base + j_b + i_b];
    double C = c010 - c000, D = c001 - c000;
    double G = c011 - c010 - D;
    c[0] = c000;
    c[1] = c100 - c000;
    c[2] = C;
    c[3] = D;
    c[4] = c110 - c100 - C;
    c[5] = c101 - c100 - D;
    c[6] = G;
    c[7] = c111 - c110 - c101 + c100 - G;
    return 1;
}

/* _ZBins.moments of [a, b] in bin f: c0, c1, c2, ta, tb */
static inline void moments(const double *z, i8 f, double a, double b, double *c0,
                           double *c1, double *c2, double *ta, double *tb)
{
    double z0 = z[f], z1 = z[f + 1];
    double h = z1 - z0;
    double A = np_clip((a - z0) / h, 0.0, 1.0);
    double B = np_clip((b - z0) / h, 0.0, 1.0);
    double above = np_max(b - np_max(a, z1), 0.0);
    *c0 = b - a;
    *c1 = 0.5 * h * (B * B - A * A) + above;
    *c2 = h * (B * B * B - A * A * A) / 3.0 + above;
    *ta = A;
    *tb = B;
}

/* ---------------------------------------------------------------- bits */

/* the number of set bits of v (the SWAR sum of bit counts: portable, no libgcc call as
 * __builtin_popcountll makes without a popcnt target) */
static inline int popcount64(uint64_t v)
{
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
    return (int)((v * 0x0101010101010101ULL) >> 56);
}

#if defined(__GNUC__) || defined(__clang__)
#define ctz64(v) __builtin_ctzll(v)
#else  /* (portable: a few bits per row code) */
static inline int ctz64(uint64_t v)  /* v != 0 */
{
    int n = 0;
    for (; !(v & 1); v >>= 1)
        n++;
    return n;
}
#endif

static inline uint64_t code_at(const void *p, int size, Py_ssize_t k)
{
    return size == 4 ? (uint64_t)((const uint32_t *)p)[k] : ((const uint64_t *)p)[k];
}

static int bits_args(const Py_buffer *A, const Py_buffer *B, Py_ssize_t n, Py_ssize_t m,
                     int size)
{
    if (size != 4 && size != 8) {
        PyErr_SetString(PyExc_ValueError, "_cpartial: codes must be uint32 or uint64");
        return 0;
    }
    if (m < 1 || m > 63 || n < 0 || count(A, size) < n * m || count(B, size) < n * m)
        return size_error("codes");
    return 1;
}

static PyObject *bits_count(PyObject *self, PyObject *args)
{
    Py_buffer A, B;
    Py_ssize_t n, m;
    int size;
    if (!PyArg_ParseTuple(args, "y*y*nni", &A, &B, &n, &m, &size))
        return NULL;
    PyObject *res = NULL;
    if (bits_args(&A, &B, n, m, size)) {
        Py_ssize_t nl = 0, nu = 0;
        const uint64_t low = ((uint64_t)1 << m) - 1; /* (_bits: bits 0..m-1 only) */
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t k = 0; k < n * m; k++) {
            uint64_t a = code_at(A.buf, size, k) & low, b = code_at(B.buf, size, k) & low;
            nl += popcount64(a & ~b);
            nu += popcount64(b & ~a);
        }
        Py_END_ALLOW_THREADS
        res = Py_BuildValue("nn", nl, nu);
    }
    PyBuffer_Release(&A);
    PyBuffer_Release(&B);
    return res;
}

static PyObject *bits_fill(PyObject *self, PyObject *args)
{
    Py_buffer A, B, ik, iJ, iI, it, br, bc, kb, R, C;
    Py_ssize_t n, m;
    int size;
    if (!PyArg_ParseTuple(args, "y*y*nniy*y*y*w*w*w*w*w*w*", &A, &B, &n, &m, &size, &ik,
                          &iJ, &iI, &it, &br, &bc, &kb, &R, &C))
        return NULL;
    int ok = bits_args(&A, &B, n, m, size);
    Py_ssize_t tot = count(&it, 8);
    if (ok && (count(&ik, 8) < n || count(&iJ, 8) < n || count(&iI, 8) < n || tot < 0
               || count(&br, 8) != tot || count(&bc, 8) != tot || count(&kb, 8) != tot
               || count(&R, 8) != tot || count(&C, 8) != tot))
        ok = size_error("bits arrays");
    if (ok) {
        const i8 *pk = ik.buf, *pJ = iJ.buf, *pI = iI.buf;
        i8 *o_it = it.buf, *o_r = br.buf, *o_c = bc.buf, *o_k = kb.buf, *o_R = R.buf,
           *o_C = C.buf;
        Py_ssize_t j = 0;
        const uint64_t low = ((uint64_t)1 << m) - 1; /* (_bits: bits 0..m-1 only) */
        Py_BEGIN_ALLOW_THREADS
        for (int upper = 0; upper < 2 && ok; upper++) {
            i8 item = 0, r = 0; /* (k / m and k % m, stepped: no division per row code) */
            for (Py_ssize_t k = 0; k < n * m && ok; k++, r++) {
                if (r == m)
                    item++, r = 0;
                uint64_t a = code_at(A.buf, size, k) & low;
                uint64_t b = code_at(B.buf, size, k) & low;
                uint64_t v = upper ? b & ~a : a & ~b;
                while (v) {
                    i8 c = ctz64(v);
                    v &= v - 1;
                    if (j >= tot) {
                        ok = 0;
                        break;
                    }
                    o_it[j] = item;
                    o_r[j] = r;
                    o_c[j] = c;
                    o_k[j] = pk[item];
                    o_R[j] = pJ[item] * m + r;
                    o_C[j] = pI[item] * m + c;
                    j++;
                }
            }
        }
        Py_END_ALLOW_THREADS
        if (ok && j != tot)
            ok = 0;
        if (!ok)
            size_error("bits output (not the count of set bits)");
    }
    PyBuffer_Release(&A);
    PyBuffer_Release(&B);
    PyBuffer_Release(&ik);
    PyBuffer_Release(&iJ);
    PyBuffer_Release(&iI);
    PyBuffer_Release(&it);
    PyBuffer_Release(&br);
    PyBuffer_Release(&bc);
    PyBuffer_Release(&kb);
    PyBuffer_Release(&R);
    PyBuffer_Release(&C);
    if (!ok)
        return NULL;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------- slot table */

static PyObject *slot_table(PyObject *self, PyObject *args)
{
    Py_buffer ca, cb, fa, nb, wsc, mom, z, edges, Cb, S0b;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*w*w*", &ca, &cb, &fa, &nb, &wsc, &mom, &z,
                          &edges, &Cb, &S0b))
        return NULL;
    Py_ssize_t n = count(&ca, 8), nbin = count(&z, 8) - 1;
    Py_ssize_t nbmax = n > 0 ? count(&Cb, 8) / (3 * n) : 0;
    int ok = 1;
    if (n < 0 || nbin < 1 || count(&cb, 8) != n || count(&fa, 8) != n || count(&nb, 8) != n
        || count(&wsc, 8) != n || count(&mom, 8) != 24 * n || count(&edges, 8) != nbin + 1
        || count(&Cb, 8) != 3 * n * nbmax || count(&S0b, 8) != 4 * n * nbmax)
        ok = size_error("slot_table arrays");
    if (ok) {
        const double *pca = ca.buf, *pcb = cb.buf, *pw = wsc.buf, *M = mom.buf, *pz = z.buf,
                     *pe = edges.buf;
        const i8 *pfa = fa.buf, *pnb = nb.buf;
        double *Cz = Cb.buf, *S0 = S0b.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            for (Py_ssize_t o = 0; o < nbmax; o++) {
                i8 f = pfa[i] + o;
                if (f > nbin - 1)
                    f = nbin - 1;
                if (f < 0) {  /* (numpy would index from the end; never: fa >= 0) */
                    ok = 0;
                    break;
                }
                double a = np_max(pca[i], pe[f]);
                double b = np_min(pcb[i], pe[f + 1]);
                double c[3], ta, tb;
                moments(pz, f, a, np_max(a, b), &c[0], &c[1], &c[2], &ta, &tb);
                int live = pnb[i] > o;
                for (int r = 0; r < 3; r++)
                    Cz[(r * n + i) * nbmax + o] = (live ? c[r] : 0.0) * pw[i];
                double c0 = Cz[i * nbmax + o];
                for (int q = 0; q < 4; q++)
                    S0[(i * 4 + q) * nbmax + o] = M[(i * 4 + q) * 6] * c0;
            }
            if (!ok)
                break;
        }
        Py_END_ALLOW_THREADS
        if (!ok)
            PyErr_SetString(PyExc_IndexError, "_cpartial.slot_table: negative bin");
    }
    PyBuffer_Release(&ca);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&fa);
    PyBuffer_Release(&nb);
    PyBuffer_Release(&wsc);
    PyBuffer_Release(&mom);
    PyBuffer_Release(&z);
    PyBuffer_Release(&edges);
    PyBuffer_Release(&Cb);
    PyBuffer_Release(&S0b);
    if (!ok)
        return NULL;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------- band pieces */

/* x and y the same double, bit for bit */
static inline int same_bits(double x, double y)
{
    uint64_t a, b;
    memcpy(&a, &x, 8);
    memcpy(&b, &y, 8);
    return a == b;
}

/* _ZBins.right (right = 1) / left (right = 0) of v: the bin of a lower / upper end */
static inline i8 bin_of(double v, int right, const double *z, i8 nbin, int uniform,
                        double dz0)
{
    if (uniform) {
        /* r = (v - z[0]) * (1 / dz0); on a frame when |r - rint(r)| < 1e-9 */
        double r = (v - z[0]) * (1.0 / dz0);
        double ri = exact_rint(r), fl = exact_floor(r);
        int on = fabs(r - ri) < 1e-9;
        double ff = on ? (right ? ri : ri - 1.0) : fl;
        return (i8)np_clip(ff, 0.0, (double)(nbin - 1));
    }
    /* searchsorted(z, v, side) - 1: the number of z <= v (right) or < v (left), less 1 */
    i8 lo = 0, hi = nbin + 1;
    while (lo < hi) {
        i8 mid = lo + (hi - lo) / 2;
        if (right ? z[mid] <= v : z[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return iclip(lo - 1, 0, nbin - 1);
}

/* the items' z ranges clipped to the grid, their grid-window flags and bins */
static PyObject *items_prep(PyObject *self, PyObject *args)
{
    Py_buffer za, zb, iJ, iI, zbin, ca, cb, ing, fa, nb;
    Py_ssize_t j0, j1, i0, i1;
    double zlo, zhi, dz0;
    int uniform;
    if (!PyArg_ParseTuple(args, "y*y*y*y*nnnnddy*idw*w*w*w*w*", &za, &zb, &iJ, &iI, &j0,
                          &j1, &i0, &i1, &zlo, &zhi, &zbin, &uniform, &dz0, &ca, &cb, &ing,
                          &fa, &nb))
        return NULL;
    Py_ssize_t n = count(&za, 8), nbin = count(&zbin, 8) - 1;
    int ok = 1, nan = 0;
    i8 nbmax = 0;
    if (n < 0 || count(&zb, 8) != n || count(&iJ, 8) != n || count(&iI, 8) != n
        || nbin < 1 || count(&ca, 8) != n || count(&cb, 8) != n || count(&ing, 1) != n
        || count(&fa, 8) != n || count(&nb, 8) != n)
        ok = size_error("items_prep arrays");
    if (ok) {
        const double *pza = za.buf, *pzb = zb.buf, *pz = zbin.buf;
        const i8 *pJ = iJ.buf, *pI = iI.buf;
        double *oca = ca.buf, *ocb = cb.buf;
        unsigned char *og = ing.buf;
        i8 *ofa = fa.buf, *onb = nb.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            /* ing = (iJ >= j0) & (iJ < j1) & (iI >= i0) & (iI < i1) & (cb > ca);
             * fa = right(ca); nb = where(ing, left(cb) - fa + 1, 0) */
            double a = np_clip(pza[i], zlo, zhi), b = np_clip(pzb[i], zlo, zhi);
            if (isnan(a) || isnan(b)) {  /* (the caller then uses numpy) */
                nan = 1;
                break;
            }
            int g = pJ[i] >= j0 && pJ[i] < j1 && pI[i] >= i0 && pI[i] < i1 && b > a;
            i8 f = bin_of(a, 1, pz, nbin, uniform, dz0);
            i8 k = g ? bin_of(b, 0, pz, nbin, uniform, dz0) - f + 1 : 0;
            oca[i] = a;
            ocb[i] = b;
            og[i] = (unsigned char)g;
            ofa[i] = f;
            onb[i] = k;
            if (k > nbmax)
                nbmax = k;
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&za);
    PyBuffer_Release(&zb);
    PyBuffer_Release(&iJ);
    PyBuffer_Release(&iI);
    PyBuffer_Release(&zbin);
    PyBuffer_Release(&ca);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&ing);
    PyBuffer_Release(&fa);
    PyBuffer_Release(&nb);
    if (!ok)
        return NULL;
    return PyLong_FromSsize_t(nan ? -1 : (Py_ssize_t)nbmax);
}

static PyObject *band_prep(PyObject *self, PyObject *args)
{
    Py_buffer zc, it, br, bc, ik, ing, zs, scale, zbin, d, a, b, pw, f0b, npb;
    Py_ssize_t n_lower, m;
    double sxsy, zlo, zhi, dz0;
    int uniform;
    if (!PyArg_ParseTuple(args, "y*ny*y*y*y*y*ny*y*dddy*idw*w*w*w*w*w*", &zc, &n_lower, &it,
                          &br, &bc, &ik, &ing, &m, &zs, &scale, &sxsy, &zlo, &zhi, &zbin,
                          &uniform, &dz0, &d, &a, &b, &pw, &f0b, &npb))
        return NULL;
    Py_ssize_t n = count(&zc, 8), n_items = count(&ik, 8), K = count(&zs, 8);
    Py_ssize_t nbin = count(&zbin, 8) - 1;
    int ok = 1;
    if (n < 0 || n_lower < 0 || n_lower > n || count(&it, 8) != n || count(&br, 8) != n
        || count(&bc, 8) != n || n_items < 0 || count(&ing, 1) != n_items || K < 1
        || count(&scale, 8) != K || nbin < 1 || count(&d, 8) != n || count(&a, 8) != n
        || count(&b, 8) != n || count(&pw, 8) != n || count(&f0b, 8) != n
        || count(&npb, 8) != n || m < 1)
        ok = size_error("band_prep arrays");
    Py_ssize_t parts = 0, cen = 0;
    int all_one = 1;
    if (ok) {
        const double *pzc = zc.buf, *pzs = zs.buf, *psc = scale.buf, *pz = zbin.buf;
        const i8 *pit = it.buf, *pik = ik.buf, *pbr = br.buf, *pbc = bc.buf;
        const unsigned char *ping = ing.buf;
        double *od = d.buf, *oa = a.buf, *ob = b.buf, *opw = pw.buf;
        i8 *of0 = f0b.buf, *onp = npb.buf;
        i8 h = (m - 1) / 2, m_f0 = 0, m_f1 = 0;
        double m_ca = NAN, m_cb = NAN;  /* (NaN: no bits match a kept end) */
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            i8 itm = pit[i];
            if (itm < 0 || itm >= n_items) {
                ok = 0;
                break;
            }
            i8 kb = pik[itm];
            if (kb < 0 || kb >= K) {
                ok = 0;
                break;
            }
            i8 ku = kb + 1 < K - 1 ? kb + 1 : K - 1;
            /* pza = where(lower, z[kb], zc), pzb = where(lower, zc, z[ku]),
             * pw = where(lower, scale[kb], scale[ku]) * sxsy, d = (pzb - pza) * pw */
            int lower = i < n_lower;
            double za = lower ? pzs[kb] : pzc[i];
            double zb = lower ? pzc[i] : pzs[ku];
            double w = (lower ? psc[kb] : psc[ku]) * sxsy;
            od[i] = (zb - za) * w;
            opw[i] = w;
            double ca = np_clip(za, zlo, zhi), cb = np_clip(zb, zlo, zhi);
            oa[i] = ca;
            ob[i] = cb;
            i8 k = -1, f0 = 0;
            if (ping[itm] && cb > ca) {  /* kept: cut into bins f0..f1 */
                /* (one end is a plane's z, shared by the pieces before: the same bin) */
                if (!same_bits(ca, m_ca)) {
                    m_ca = ca;
                    m_f0 = bin_of(ca, 1, pz, nbin, uniform, dz0);
                }
                if (!same_bits(cb, m_cb)) {
                    m_cb = cb;
                    m_f1 = bin_of(cb, 0, pz, nbin, uniform, dz0);
                }
                f0 = m_f0;
                i8 f1 = m_f1;
                k = f1 - f0 + 1;
                if (k < 0)
                    k = 0;
                if (k != 1)
                    all_one = 0;
                parts += k;
                if (pbr[i] == h && pbc[i] == h)
                    cen += k;
            }
            of0[i] = f0;
            onp[i] = k;
        }
        Py_END_ALLOW_THREADS
        if (!ok)
            PyErr_SetString(PyExc_IndexError, "_cpartial.band_prep: index out of range");
    }
    PyBuffer_Release(&zc);
    PyBuffer_Release(&it);
    PyBuffer_Release(&br);
    PyBuffer_Release(&bc);
    PyBuffer_Release(&ik);
    PyBuffer_Release(&ing);
    PyBuffer_Release(&zs);
    PyBuffer_Release(&scale);
    PyBuffer_Release(&zbin);
    PyBuffer_Release(&d);
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    PyBuffer_Release(&pw);
    PyBuffer_Release(&f0b);
    PyBuffer_Release(&npb);
    if (!ok)
        return NULL;
    return Py_BuildValue("nin", parts, all_one, cen);
}

/* The kept band pieces after band_prep, and the parts _ZBins.cut makes of them */
typedef struct {
    int all_one;
    Py_ssize_t n;
    i8 nbin, n_items, m;
    const double *a, *b, *pw, *z, *edges;
    const i8 *f0, *np, *it, *br, *bc;
} Band;

/* part e of piece i (e < np[i]): bin f, ends x, y; 0 when the general cut drops it (the
 * one-bin shortcut keeps the ends as they are), -1 on a bad index */
static inline int band_part(const Band *B, Py_ssize_t i, i8 e, i8 *f, double *x, double *y)
{
    i8 itm = B->it[i], r = B->br[i], c = B->bc[i];
    *f = B->f0[i] + e;
    if (*f < 0 || *f >= B->nbin || itm < 0 || itm >= B->n_items || r < 0 || r >= B->m
        || c < 0 || c >= B->m)
        return -1;
    *x = B->a[i];
    *y = B->b[i];
    if (!B->all_one) {
        *x = np_max(*x, B->edges[*f]);
        *y = np_min(*y, B->edges[*f + 1]);
        return *y > *x;
    }
    return 1;
}

static int band_init(Band *B, int all_one, Py_buffer *a, Py_buffer *b, Py_buffer *pw,
                     Py_buffer *f0, Py_buffer *np_, Py_buffer *it, Py_buffer *br,
                     Py_buffer *bc, Py_buffer *z, Py_buffer *edges, Py_ssize_t n_items,
                     Py_ssize_t m)
{
    Py_ssize_t n = count(a, 8), nbin = count(z, 8) - 1;
    if (n < 0 || count(b, 8) != n || (pw && count(pw, 8) != n) || count(f0, 8) != n
        || count(np_, 8) != n || count(it, 8) != n || count(br, 8) != n
        || count(bc, 8) != n || nbin < 1 || count(edges, 8) != nbin + 1 || n_items < 0
        || m < 1)
        return size_error("band arrays");
    B->all_one = all_one;
    B->n = n;
    B->nbin = nbin;
    B->n_items = n_items;
    B->m = m;
    B->a = a->buf;
    B->b = b->buf;
    B->pw = pw ? pw->buf : NULL;
    B->z = z->buf;
    B->edges = edges->buf;
    B->f0 = f0->buf;
    B->np = np_->buf;
    B->it = it->buf;
    B->br = br->buf;
    B->bc = bc->buf;
    return 1;
}

/* The doses at t0 and t1 of the node of flat index g (frame f, f + 1: d[g], d[g + nxy])
 * into opa[j], opb[j], as the numpy va + t (vb - va); 0 when j or g is out of range. */
static int node_points(const double *d, i8 nd, i8 nxy, i8 g, double t0, double t1,
                       double *opa, double *opb, i8 j, i8 cap)
{
    if (j >= cap || g < 0 || g + nxy >= nd)
        return 0;
    double va = d[g], vb = d[g + nxy];
    opa[j] = va + t0 * (vb - va);
    opb[j] = va + t1 * (vb - va);
    return 1;
}

static PyObject *band_cen(PyObject *self, PyObject *args)
{
    Py_buffer a, b, f0, np_, it, br, bc, iJ, iI, zbin, edges, dose, pa, pb;
    int all_one;
    Py_ssize_t J0, I0, m, nx, ny;
    if (!PyArg_ParseTuple(args, "iy*y*y*y*y*y*y*y*y*nnny*y*y*nnw*w*", &all_one, &a, &b, &f0,
                          &np_, &it, &br, &bc, &iJ, &iI, &J0, &I0, &m, &zbin, &edges, &dose,
                          &nx, &ny, &pa, &pb))
        return NULL;
    Py_ssize_t n_items = count(&iJ, 8), cap = count(&pa, 8), nd = count(&dose, 8);
    Band B;
    int ok = band_init(&B, all_one, &a, &b, NULL, &f0, &np_, &it, &br, &bc, &zbin, &edges,
                       n_items, m);
    if (ok && (count(&iI, 8) != n_items || cap < 0 || count(&pb, 8) != cap || nx < 1
               || ny < 1 || nd < 0))
        ok = size_error("band_cen arrays");
    Py_ssize_t j = 0;
    if (ok) {
        const double *d = dose.buf;
        const i8 *pJ = iJ.buf, *pI = iI.buf;
        double *opa = pa.buf, *opb = pb.buf;
        i8 h = (m - 1) / 2, nxy = (i8)nx * ny;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < B.n && ok; i++) {
            if (B.np[i] <= 0 || B.br[i] != h || B.bc[i] != h)
                continue;
            for (i8 e = 0; e < B.np[i]; e++) {
                i8 f;
                double x, y, c0, c1, c2, t0, t1;
                int kept = band_part(&B, i, e, &f, &x, &y);
                if (kept < 0) {
                    ok = 0;
                    break;
                }
                if (!kept)
                    continue;
                moments(B.z, f, x, y, &c0, &c1, &c2, &t0, &t1);
                i8 itm = B.it[i];
                i8 g = f * nxy + (pJ[itm] + J0) * nx + (pI[itm] + I0);
                if (!node_points(d, nd, nxy, g, t0, t1, opa, opb, j++, cap)) {
                    ok = 0;
                    break;
                }
            }
        }
        Py_END_ALLOW_THREADS
        if (!ok)
            PyErr_SetString(PyExc_IndexError, "_cpartial.band_cen: index out of range");
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    PyBuffer_Release(&f0);
    PyBuffer_Release(&np_);
    PyBuffer_Release(&it);
    PyBuffer_Release(&br);
    PyBuffer_Release(&bc);
    PyBuffer_Release(&iJ);
    PyBuffer_Release(&iI);
    PyBuffer_Release(&zbin);
    PyBuffer_Release(&edges);
    PyBuffer_Release(&dose);
    PyBuffer_Release(&pa);
    PyBuffer_Release(&pb);
    if (!ok)
        return NULL;
    return PyLong_FromSsize_t(j);
}

/* the number of node-column parts of the items whole at the node, and whether each has
 * one bin (_ZBins.cut of their clipped z ranges; nb as the engine's) */
static PyObject *cen_count(PyObject *self, PyObject *args)
{
    Py_buffer both, ing, nb;
    Py_ssize_t m;
    int size;
    if (!PyArg_ParseTuple(args, "y*niy*y*", &both, &m, &size, &ing, &nb))
        return NULL;
    Py_ssize_t n = count(&ing, 1);
    int ok = 1, all_one = 1;
    Py_ssize_t tot = 0, n_cen = 0;
    if (size != 4 && size != 8)
        ok = size_error("codes (itemsize)");
    else if (n < 0 || m < 1 || m > 63 || count(&both, size) != n * m || count(&nb, 8) != n)
        ok = size_error("cen_count arrays");
    if (ok) {
        const unsigned char *pg = ing.buf;
        const i8 *pnb = nb.buf;
        i8 h = (m - 1) / 2;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!pg[i] || !((code_at(both.buf, size, i * m + h) >> h) & 1))
                continue;
            i8 k = pnb[i] > 0 ? pnb[i] : 0;
            n_cen++;
            if (k != 1)
                all_one = 0;
            tot += k;
        }
    }
    PyBuffer_Release(&both);
    PyBuffer_Release(&ing);
    PyBuffer_Release(&nb);
    if (!ok)
        return NULL;
    return Py_BuildValue("nin", tot, all_one, n_cen);
}

static PyObject *cen_fill(PyObject *self, PyObject *args)
{
    Py_buffer both, ing, ca, cb, fa, nb, iJ, iI, zbin, edges, dose, pa, pb;
    Py_ssize_t m, J0, I0, nx, ny;
    int size, all_one;
    if (!PyArg_ParseTuple(args, "iy*niy*y*y*y*y*y*y*nny*y*y*nnw*w*", &all_one, &both, &m,
                          &size, &ing, &ca, &cb, &fa, &nb, &iJ, &iI, &J0, &I0, &zbin,
                          &edges,
                          &dose, &nx, &ny, &pa, &pb))
        return NULL;
    Py_ssize_t n = count(&ing, 1), nbin = count(&zbin, 8) - 1, cap = count(&pa, 8);
    Py_ssize_t nd = count(&dose, 8);
    int ok = 1;
    if (size != 4 && size != 8)
        ok = size_error("codes (itemsize)");
    else if (n < 0 || m < 1 || m > 63 || count(&both, size) != n * m || count(&ca, 8) != n
             || count(&cb, 8) != n || count(&fa, 8) != n || count(&nb, 8) != n
             || count(&iJ, 8) != n || count(&iI, 8) != n || nbin < 1
             || count(&edges, 8) != nbin + 1 || cap < 0 || count(&pb, 8) != cap || nx < 1
             || ny < 1 || nd < 0)
        ok = size_error("cen_fill arrays");
    Py_ssize_t j = 0;
    if (ok) {
        const unsigned char *pg = ing.buf;
        const double *pca = ca.buf, *pcb = cb.buf, *pz = zbin.buf, *pe = edges.buf,
                     *d = dose.buf;
        const i8 *pfa = fa.buf, *pnb = nb.buf, *pJ = iJ.buf, *pI = iI.buf;
        double *opa = pa.buf, *opb = pb.buf;
        i8 h = (m - 1) / 2, nxy = (i8)nx * ny;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n && ok; i++) {
            if (!pg[i] || !((code_at(both.buf, size, i * m + h) >> h) & 1))
                continue;
            for (i8 e = 0; e < pnb[i]; e++) {
                i8 f = pfa[i] + e;
                double x = pca[i], y = pcb[i], c0, c1, c2, t0, t1;
                if (f < 0 || f >= nbin) {
                    ok = 0;
                    break;
                }
                if (!all_one) {
                    x = np_max(x, pe[f]);
                    y = np_min(y, pe[f + 1]);
                    if (!(y > x))
                        continue;
                }
                moments(pz, f, x, y, &c0, &c1, &c2, &t0, &t1);
                i8 g = f * nxy + (pJ[i] + J0) * nx + (pI[i] + I0);
                if (!node_points(d, nd, nxy, g, t0, t1, opa, opb, j++, cap)) {
                    ok = 0;
                    break;
                }
            }
        }
        Py_END_ALLOW_THREADS
        if (!ok)
            PyErr_SetString(PyExc_IndexError, "_cpartial.cen_fill: index out of range");
    }
    PyBuffer_Release(&both);
    PyBuffer_Release(&ing);
    PyBuffer_Release(&ca);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&fa);
    PyBuffer_Release(&nb);
    PyBuffer_Release(&iJ);
    PyBuffer_Release(&iI);
    PyBuffer_Release(&zbin);
    PyBuffer_Release(&edges);
    PyBuffer_Release(&dose);
    PyBuffer_Release(&pa);
    PyBuffer_Release(&pb);
    if (!ok)
        return NULL;
    return PyLong_FromSsize_t(j);
}

/* ---------------------------------------------------------------- elements */

/* the common arguments of the element kernels: the dose (flat), nx, ny, and per item
 * fa (first bin), iJ, iI (voxel), J0, I0, nbmax (slots (item * 4 + quadrant) * nbmax +
 * offset) */
typedef struct {
    const double *d;
    i8 nd, nx, ny, J0, I0, nbmax, n_items, fmax;
    const i8 *fa, *iJ, *iI;
} Cells;

/* the trilinear coefficients of slot s (the engine's cells(): frame fa + offset, node
 * (iJ + J0, iI + I0), quadrant qx = qd & 1, qy = qd >> 1) */
static inline int slot_cell(const Cells *g, i8 s, double *c)
{
    if (s < 0)
        return 0;
    /* (s >= 0: s / (4 nbmax) = (s / nbmax) / 4, one division) */
    i8 iq = s / g->nbmax, o = s - iq * g->nbmax, qd = iq & 3, itm = iq >> 2;
    if (itm >= g->n_items)
        return 0;
    return trilinear(g->d, g->nd, g->nx, g->ny, g->fmax, g->fa[itm] + o, g->iJ[itm] + g->J0,
                     g->iI[itm] + g->I0, qd & 1, qd >> 1, c);
}

static PyObject *band_run(PyObject *self, PyObject *args)
{
    Py_buffer a, b, pw, f0, np_, it, br, bc, fa, iJ, iI, zbin, edges, dose, loc, mean,
        width, w, p0, p1;
    int all_one;
    Py_ssize_t i0, e0, J0, I0, nbmax, nx, ny;
    double add, dmin, dmax;
    if (!PyArg_ParseTuple(args, "inny*y*y*y*y*y*y*y*y*y*y*nnny*y*y*nny*dddw*w*w*w*w*",
                          &all_one, &i0, &e0, &a, &b, &pw, &f0, &np_, &it, &br, &bc, &fa,
                          &iJ, &iI, &J0, &I0, &nbmax, &zbin, &edges, &dose, &nx, &ny, &loc,
                          &add, &dmin, &dmax, &mean, &width, &w, &p0, &p1))
        return NULL;
    Py_ssize_t n_items = count(&fa, 8), m = count(&loc, 8), cap = count(&mean, 8);
    Band B;
    int ok = band_init(&B, all_one, &a, &b, &pw, &f0, &np_, &it, &br, &bc, &zbin, &edges,
                       n_items, m);
    if (ok && (count(&iJ, 8) != n_items || count(&iI, 8) != n_items || cap < 0
               || count(&width, 8) != cap || count(&w, 8) != cap || count(&p0, 8) != cap
               || count(&p1, 8) != cap || nbmax < 1 || nx < 1 || ny < 1
               || count(&dose, 8) < 0 || i0 < 0 || e0 < 0))
        ok = size_error("band_run arrays");
    Py_ssize_t i = i0, j = 0;
    i8 e = e0;
    int trig = 0;
    if (ok) {
        const double *d = dose.buf, *lc = loc.buf;
        const i8 *pfa = fa.buf, *pJ = iJ.buf, *pI = iI.buf;
        double *om = mean.buf, *ow = width.buf, *oW = w.buf, *o0 = p0.buf, *o1 = p1.buf;
        i8 h = (m - 1) / 2, nd = count(&dose, 8), fmax = frame_max(nd, nx, ny);
        double lo_min = INFINITY, hi_max = -INFINITY;
        int nan_lo = 0, nan_hi = 0;
        /* the slot of the last part (item, frame, quadrant; none yet) and its trilinear
         * coefficients */
        i8 k_itm = -1, k_fc = -1, k_qd = -1;
        double k[8] = {0};
        Py_BEGIN_ALLOW_THREADS
        while (i < B.n && j < cap) {
            if (e >= B.np[i]) {  /* (np <= 0: not kept) */
                i++;
                e = 0;
                continue;
            }
            i8 f;
            double x, y;
            int kept = band_part(&B, i, e, &f, &x, &y);
            e++;
            if (kept < 0) {
                ok = 0;
                break;
            }
            if (!kept)
                continue;
            /* the band part (_partial_voxels): _ZBins.moments, tm, vt, weight, slot */
            double c0, c1, c2, ta, tb;
            moments(B.z, f, x, y, &c0, &c1, &c2, &ta, &tb);
            double t = c1 / c0;
            double vt = np_max(c2 / c0 - t * t, 0.0);
            oW[j] = c0 * B.pw[i] * 1e-3;
            i8 itm = B.it[i], r = B.br[i], c = B.bc[i];
            i8 fc = pfa[itm] + iclip(f - pfa[itm], 0, nbmax - 1);
            i8 qd = (c >= h) | (r >= h) << 1;
            /* (successive parts mostly share their slot: its coefficients, the same
             * values, are formed once for them) */
            if (itm != k_itm || fc != k_fc || qd != k_qd) {
                if (!trilinear(d, nd, nx, ny, fmax, fc, pJ[itm] + J0, pI[itm] + I0, qd & 1,
                               qd >> 1, k)) {
                    ok = 0;
                    break;
                }
                k_itm = itm, k_fc = fc, k_qd = qd;
            }
            /* _sample_elements (its in-place sequence) */
            double A = k[0], Bc = k[1], C = k[2], D = k[3], E = k[4], F = k[5], G = k[6],
                   H = k[7];
            double sv = lc[c], rv = lc[r];
            double u = H * sv;
            u += G;
            double ce = E * sv;
            ce += C;
            double gr = u * t;
            gr += ce;
            double gt = F * sv;
            gt += D;
            u *= rv;
            gt += u;
            double gs = H * rv;
            gs += F;
            gs *= t;
            double tmp = E * rv;
            tmp += Bc;
            gs += tmp;
            double mn = Bc * sv;
            mn += A;
            ce *= rv;
            mn += ce;
            tmp = gt * t;
            mn += tmp;
            double agt = fabs(gt);
            double lo = mn - agt, hi = mn + agt;
            if (isnan(lo))
                nan_lo = 1;
            else if (lo < lo_min)
                lo_min = lo;
            if (isnan(hi))
                nan_hi = 1;
            else if (hi > hi_max)
                hi_max = hi;
            om[j] = mn;
            o0[j] = gt * (ta - t);  /* p0 = mean + gt (ta - t), the sum taken below */
            o1[j] = gt * (tb - t);
            gs *= gs;
            gr *= gr;
            gs += gr;
            gs *= add;
            gt *= gt;
            gt *= vt;
            gs += gt;
            gs *= 12.0;
            ow[j] = sqrt(gs);
            j++;
        }
        /* numpy: float(min) < dmin or float(max) > dmax (a NaN min or max: false) */
        if (ok && j > 0)
            trig = (!nan_lo && lo_min < dmin) || (!nan_hi && hi_max > dmax);
        if (trig)
            for (Py_ssize_t q = 0; q < j; q++) {
                o0[q] = om[q] + o0[q];
                o1[q] = om[q] + o1[q];
            }
        Py_END_ALLOW_THREADS
        if (!ok)
            PyErr_SetString(PyExc_IndexError, "_cpartial.band_run: index out of range");
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    PyBuffer_Release(&pw);
    PyBuffer_Release(&f0);
    PyBuffer_Release(&np_);
    PyBuffer_Release(&it);
    PyBuffer_Release(&br);
    PyBuffer_Release(&bc);
    PyBuffer_Release(&fa);
    PyBuffer_Release(&iJ);
    PyBuffer_Release(&iI);
    PyBuffer_Release(&zbin);
    PyBuffer_Release(&edges);
    PyBuffer_Release(&dose);
    PyBuffer_Release(&loc);
    PyBuffer_Release(&mean);
    PyBuffer_Release(&width);
    PyBuffer_Release(&w);
    PyBuffer_Release(&p0);
    PyBuffer_Release(&p1);
    if (!ok)
        return NULL;
    return Py_BuildValue("nnnN", j, i, (Py_ssize_t)e, PyBool_FromLong(trig));
}

static PyObject *cell_chunk(PyObject *self, PyObject *args)
{
    Py_buffer dose, fa, iJ, iI, slots, mom, Cb, S0b, mean, width, w;
    Py_ssize_t nx, ny, J0, I0, nbmax;
    double add;
    if (!PyArg_ParseTuple(args, "y*nny*y*y*nnndy*y*y*y*w*w*w*", &dose, &nx, &ny, &fa, &iJ,
                          &iI, &J0, &I0, &nbmax, &add, &slots, &mom, &Cb, &S0b, &mean,
                          &width, &w))
        return NULL;
    Py_ssize_t n = count(&slots, 8), n_items = count(&fa, 8);
    int ok = 1;
    if (n < 0 || n_items < 0 || count(&iJ, 8) != n_items || count(&iI, 8) != n_items
        || nbmax < 1 || count(&mom, 8) != 24 * n_items
        || count(&Cb, 8) != 3 * n_items * nbmax
        || count(&S0b, 8) != 4 * n_items * nbmax || count(&mean, 8) != n
        || count(&width, 8) != n || count(&w, 8) != n || nx < 1 || ny < 1
        || count(&dose, 8) < 0)
        ok = size_error("cell_chunk arrays");
    if (ok) {
        Cells g = {dose.buf, count(&dose, 8), nx, ny, J0, I0, nbmax, n_items,
                   frame_max(count(&dose, 8), nx, ny), fa.buf, iJ.buf, iI.buf};
        const double *M0 = mom.buf, *Cz = Cb.buf, *S0 = S0b.buf;
        const i8 *ps = slots.buf;
        double *om = mean.buf, *ow = width.buf, *oW = w.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            double k[8];
            i8 s = ps[i];
            if (!slot_cell(&g, s, k)) {
                ok = 0;
                break;
            }
            /* _slot_moments */
            i8 iq = s / nbmax, o = s - iq * nbmax, itm = iq >> 2; /* (s >= 0) */
            const double *M = M0 + iq * 6;
            double c0 = Cz[itm * nbmax + o], c1 = Cz[(n_items + itm) * nbmax + o],
                   c2 = Cz[(2 * n_items + itm) * nbmax + o];
            double W = S0[s];
            double S1 = M[1] * c0, S2 = M[2] * c0, S3 = M[0] * c1, S4 = M[3] * c0,
                   S5 = M[4] * c0, S6 = M[0] * c2, S7 = M[5] * c0, S8 = M[1] * c1,
                   S9 = M[2] * c1;
            /* _cell_elements */
            double inv = 1.0 / W;
            double sm = S1 * inv, rm = S2 * inv, tm = S3 * inv;
            double css = S4 * inv - sm * sm + add;
            double crr = S5 * inv - rm * rm + add;
            double ctt = np_max(S6 * inv - tm * tm, 0.0);
            double csr = S7 * inv - sm * rm;
            double cst = S8 * inv - sm * tm;
            double crt = S9 * inv - rm * tm;
            double A = k[0], B = k[1], C = k[2], D = k[3], E = k[4], F = k[5], G = k[6],
                   H = k[7];
            double srm = sm * rm + csr;
            om[i] = (A + B * sm + C * rm + D * tm + E * srm + F * (sm * tm + cst)
                     + G * (rm * tm + crt) + H * (srm * tm + sm * crt + rm * cst));
            double gs = B + E * rm + (F + H * rm) * tm;
            double gr = C + E * sm + (G + H * sm) * tm;
            double gt = D + F * sm + (G + H * sm) * rm;
            double var = (gs * gs * css + gr * gr * crr + gt * gt * ctt
                          + 2.0 * (gs * gr * csr + gs * gt * cst + gr * gt * crt));
            ow[i] = sqrt(12.0 * np_max(var, 0.0));
            oW[i] = W * 1e-3;
        }
        Py_END_ALLOW_THREADS
        if (!ok)
            PyErr_SetString(PyExc_IndexError, "_cpartial.cell_chunk: index out of range");
    }
    PyBuffer_Release(&dose);
    PyBuffer_Release(&fa);
    PyBuffer_Release(&iJ);
    PyBuffer_Release(&iI);
    PyBuffer_Release(&slots);
    PyBuffer_Release(&mom);
    PyBuffer_Release(&Cb);
    PyBuffer_Release(&S0b);
    PyBuffer_Release(&mean);
    PyBuffer_Release(&width);
    PyBuffer_Release(&w);
    if (!ok)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"bits_count", bits_count, METH_VARARGS, "bits_count(A, B, n, m, itemsize)"},
    {"bits_fill", bits_fill, METH_VARARGS,
     "bits_fill(A, B, n, m, itemsize, ik, iJ, iI, it, br, bc, kb, R, C)"},
    {"slot_table", slot_table, METH_VARARGS,
     "slot_table(ca, cb, fa, nb, wsc, mom, z, edges, C, S0)"},
    {"band_prep", band_prep, METH_VARARGS,
     "band_prep(zc, n_lower, it, br, bc, ik, ing, m, zs, scale, sxsy, zlo, zhi, zbin, "
     "uniform, dz0, d, a, b, pw, f0, np) -> (parts, all_one, cen)"},
    {"items_prep", items_prep, METH_VARARGS,
     "items_prep(za, zb, iJ, iI, j0, j1, i0, i1, zlo, zhi, zbin, uniform, dz0, ca, cb, "
     "ing, fa, nb) -> nbmax (-1: a NaN z)"},
    {"band_cen", band_cen, METH_VARARGS,
     "band_cen(all_one, a, b, f0, np, it, br, bc, iJ, iI, J0, I0, m, zbin, edges, dose, "
     "nx, ny, pa, pb) -> n"},
    {"cen_count", cen_count, METH_VARARGS,
     "cen_count(both, m, itemsize, ing, nb) -> (parts, all_one, items)"},
    {"cen_fill", cen_fill, METH_VARARGS,
     "cen_fill(all_one, both, m, itemsize, ing, ca, cb, fa, nb, iJ, iI, J0, I0, zbin, "
     "edges, dose, nx, ny, pa, pb) -> n"},
    {"band_run", band_run, METH_VARARGS,
     "band_run(all_one, i, e, a, b, pw, f0, np, it, br, bc, fa, iJ, iI, J0, I0, nbmax, "
     "zbin, edges, dose, nx, ny, loc, add, dmin, dmax, mean, width, w, p0, p1) "
     "-> (n, i, e, triggered)"},
    {"cell_chunk", cell_chunk, METH_VARARGS,
     "cell_chunk(dose, nx, ny, fa, iJ, iI, J0, I0, nbmax, add, slots, mom, C, S0, mean, "
     "width, w)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cpartial",
    "Boundary-voxel (m > 1) elements of the DVH engine (rtqa._native).", -1, methods};

PyMODINIT_FUNC PyInit__cpartial(void) { return PyModule_Create(&module); }
