/* The accumulator deposit and the whole-voxel dose elements: the compiled twins of
 * rtqa.dvh.accumulator._Accumulator.add / _deposit and of
 * rtqa.dvh.elements._voxel_chunk followed by its add (see rtqa/_native.py).
 *
 * Common arguments: acc, the accumulator's nodes (float64, n, updated in place); work,
 * a float64 scratch of at least 4 n + 8 m items for m elements, laid out as
 * [4 n: the four bincounts, zero on entry and left zero][m: lo][m: hi][m: weight]
 * [m: deferred lo][m: deferred hi][m: deferred weight][m: mean][m: weight] (the last
 * two: voxels only); h the node spacing (Gy).
 *
 * deposit(acc, work, lo, hi, weight, h) -> hi_max | None
 *   _Accumulator._deposit of elements [lo, hi] (Gy) of weight (cc): widening to one
 *   bin h (all elements, when any is narrower than h or starts below 0, as the numpy
 *   code), then the piecewise-linear deposit onto the nodes. Returns the largest hi
 *   after widening (-inf when there is no element).
 * add(acc, work, mean, width, weight, dmin, dmax, h) -> (n_deferred, hi_max) | None
 *   _Accumulator.add without its two sums (total, moment: numpy pairwise sums, left to
 *   the caller): width float32 or float64 (halved in its own type), lo/hi = mean -/+
 *   half width; when any element reaches outside [dmin, dmax] those that do are
 *   written, in order, to the first n_deferred items of the deferred parts of work, and
 *   the others deposited.
 * voxels(acc, work, flat, pair, pb, g, nxy, w, t, vt, tlo, thi, row, dmin, dmax, h[,
 *        ring]) -> (dmin, dmax, n_deferred, hi_max) | None
 *   _voxel_chunk, then add: the whole-voxel elements of flat grid indices g (int64):
 *   the doses flat[g], flat[g + nxy] and the (mean offset, sd) float32 pairs, from the
 *   table pair (complex64) at g and g + nxy, or pre-gathered: pair[i], pb[i] when pb is
 *   not empty, or (ring given: a tuple (buf, tag, lo, hi, nz, ny, nx, j0, j1, i0, i1) of
 *   rtqa.dvh.tables._FrameRing; pair and pb unused) from the ring's frames, computed in
 *   it by rtqa.dvh._ctables (its capsule _frames) when an element first needs them
 *   (None when a node lies outside the ring's window or the spans of its frame; the
 *   ring's frames and tags may have changed then). Per element weight, t mean, t variance and t range either direct
 *   (float64 arrays w, t, vt, tlo, thi; row empty) or coded: records w (bytes of
 *   rtqa.dvh.elements._REC: f8 weight, f4 t mean, f4 t variance) at row[i] (int64), and
 *   tlo/thi float32 at row[i]. The node doses at the ends of the t range update
 *   [dmin, dmax] (returned) when the chunk's node doses reach outside it, before the
 *   deferral test, as acc.points before acc.add. The means and weights are left in
 *   work for the caller's sums (the half widths, float32, in its deferred-weight part
 *   until a deferral needs the element ends).
 * layer_codes(mask, K, NJ, NI, j0, j1, i0, i1, layer, bit, pa, pb, code) -> None
 *   The code array of a group of layers (below).
 * codes(code, nJ, nI, lay_f, nxy, nx, base, r0, stride, g, row) -> None
 *   The flat grid indices and record rows of the whole-voxel elements of a group of
 *   layers of rtqa.dvh.engine._Engine._whole_voxels (integers; below).
 *
 * None: an input the numpy code would treat otherwise (a NaN or infinity, an index out
 * of range: numpy raises there); acc is unchanged, the caller runs the numpy code.
 *
 * Identical results: every value is the same IEEE 754 operation on the same operands,
 * in the same order, as numpy's element-wise arithmetic: float32 where numpy computes in
 * float32 (a float32 array times a float64 array into a float32 output is computed in
 * double and rounded once; with a float32 operand the product of two floats is exact in
 * double, so this equals the float product); compiled without contraction or
 * fast-math. A np.bincount is a sum in index order into a zero array, then added to
 * acc: here each of the four bincounts of a deposit is its own zeroed array summed in
 * element order, and acc[k] += B1[k]; acc[k] += B2[k-1]; acc[k] -= B3[k];
 * acc[k] -= B4[k-1] in that order, as numpy's four array updates. Only the nodes the
 * bincounts touch are updated: elsewhere numpy adds +0.0 or subtracts 0.0, which leaves
 * every value unchanged but -0.0 + 0.0, and acc never holds -0.0 (it starts at +0.0, a
 * bincount sum starts at +0.0 and never becomes -0.0, and in round-to-nearest a sum is
 * -0.0 only when both terms are). Minima and maxima follow Python's min and max (the
 * first of equal values) and np.minimum/np.maximum; they never meet a NaN (refused).
 * Which of two equal values is kept matters only for +0.0 against -0.0: the dose grid
 * is non-negative (no -0.0: rtqa.reading.dose), and no element end or node-dose point
 * computed from it is -0.0 (see the sums above).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Element-wise loops (no sum across elements) may be vectorised: each element still gets
 * the same IEEE operations (no contraction). */
#if defined(__GNUC__) && !defined(__clang__)
#define VECTOR __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic", "fp-contract=off", \
                                       "no-math-errno")))
#else
#define VECTOR
#endif
/* VECTOR, and on x86-64 Linux (glibc's ifunc) compiled twice: for AVX2 and for the
 * baseline, chosen at load by the processor (target_clones). The AVX2 loops do the
 * same IEEE 754 operations lane by lane (4 doubles or 8 floats a step), in the same
 * order, without FMA (the "avx2" target does not enable it, and -ffp-contract=off
 * forbids contraction anyway): the same values, bit for bit, either way. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && defined(__GLIBC__)
#define VECTOR_WIDE VECTOR __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_WIDE VECTOR
#endif
/* Elements per block of the whole-voxel pass (its operands on the stack). */
#define VBLK 256

/* Minima of lo and of hi - lo, maximum of hi; 0 when a value is NaN or a weight is not
 * finite. */
static int stats(const double *lo, const double *hi, const double *w, Py_ssize_t m,
                 double *lmin, double *hmax, double *wmin)
{
    double a = INFINITY, b = -INFINITY, c = INFINITY;
    for (Py_ssize_t i = 0; i < m; i++) {
        double l = lo[i], u = hi[i];
        if (isnan(l) || isnan(u) || !isfinite(w[i]))
            return 0;
        double d = u - l;
        if (l < a)
            a = l;
        if (u > b)
            b = u;
        if (d < c)
            c = d;
    }
    *lmin = a, *hmax = b, *wmin = c;
    return 1;
}

/* Zero the four bincounts B over nodes j0..j1 (interleaved: node k's four at 4 k). */
static void clear(double *B, Py_ssize_t n, Py_ssize_t j0, Py_ssize_t j1)
{
    (void)n;
    if (j1 < j0)
        return;
    memset(B + 4 * j0, 0, (size_t)(j1 - j0 + 1) * 4 * sizeof(double));
}

/* Elements per block of deposit_loop (its operands on the stack). */
#define DBLK 256

/* The ends l, u and rates w / (u - l) of n elements (after the widening when widen),
 * element-wise and vectorised: each element gets the operations of the numpy code
 * (_Accumulator._deposit) in its order; the division, the longest step, thus overlaps
 * across elements. half not NULL: lo the means, lo -/+ half the ends (as in add). */
#define ENDS_LOOP(L_, U_)                                                                    \
    for (Py_ssize_t i = 0; i < n; i++) {                                                     \
        double l = L_, u = U_;                                                               \
        double wi = u - l;                                                                   \
        if (widen) {                                                                         \
            /* np.maximum(w, h); hi -= h; np.minimum(lo, hi); np.maximum(lo, 0); lo + w */ \
            wi = wi < h ? h : wi;                                                            \
            u = u - h;                                                                       \
            l = u < l ? u : l;                                                               \
            l = l < 0.0 ? 0.0 : l;                                                           \
            u = l + wi;                                                                      \
        }                                                                                    \
        ol[i] = l, ou[i] = u, orate[i] = w[i] / wi;                                          \
    }
VECTOR_WIDE static void ends_half(const double *lo, const float *half, const double *w,
                             Py_ssize_t n, double h, const int widen, double *restrict ol,
                             double *restrict ou, double *restrict orate)
{
    if (widen)
        ENDS_LOOP(lo[i] - (double)half[i], lo[i] + (double)half[i])
    else
        ENDS_LOOP(lo[i] - (double)half[i], lo[i] + (double)half[i])
}

VECTOR_WIDE static void ends_lohi(const double *lo, const double *hi, const double *w,
                             Py_ssize_t n, double h, const int widen, double *restrict ol,
                             double *restrict ou, double *restrict orate)
{
    if (widen)
        ENDS_LOOP(lo[i], hi[i])
    else
        ENDS_LOOP(lo[i], hi[i])
}

/* The element loop of deposit_core (its arguments): returns the index of the first
 * element whose nodes are out of range (m: none). The bincounts are interleaved,
 * B[4 k + b] the b-th (0..3) at node k, so that an element's two updates at a node
 * share a cache line; each bincount still sums its terms in element order. */
static Py_ssize_t deposit_loop(const double *lo, const double *hi, const float *half,
                               const double *w, Py_ssize_t m, double h, int widen,
                               double inv, double top, double *B, Py_ssize_t *jmin_,
                               Py_ssize_t *jmax_, double *hm_)
{
    Py_ssize_t jmin = *jmin_, jmax = *jmax_;
    double hm = *hm_;
    double xl[DBLK], xu[DBLK], xr[DBLK];
    Py_ssize_t b0;
    for (b0 = 0; b0 < m; b0 += DBLK) {
        Py_ssize_t nb = m - b0 < DBLK ? m - b0 : DBLK, k;
        if (half)
            ends_half(lo + b0, half + b0, w + b0, nb, h, widen, xl, xu, xr);
        else
            ends_lohi(lo + b0, hi + b0, w + b0, nb, h, widen, xl, xu, xr);
        for (k = 0; k < nb; k++) {
            double l = xl[k], u = xu[k], rate = xr[k];
            if (u > hm)
                hm = u;
            /* j = pos.astype(intp) must index acc (numpy: a longer bincount, an error) */
            double pl = l * inv, pu = u * inv;
            if (!(pl >= 0.0 && pl < top && pu >= 0.0 && pu < top))
                break;
            Py_ssize_t jl = (Py_ssize_t)pl, ju = (Py_ssize_t)pu;
            if (jl < jmin)
                jmin = jl;
            if (ju > jmax)
                jmax = ju;
            pl -= (double)jl; /* t */
            pl *= rate;       /* rate * t */
            double *bl = B + 4 * jl, *bu = B + 4 * ju;
            bl[0] += rate - pl;
            bl[1] += pl;
            pu -= (double)ju;
            pu *= rate;
            bu[2] += rate - pu;
            bu[3] += pu;
        }
        if (k < nb) {
            b0 += k;
            break;
        }
    }
    *jmin_ = jmin, *jmax_ = jmax, *hm_ = hm;
    return b0 < m ? b0 : m;
}

/* The deposit of m elements lo, hi, w into acc (n nodes) (with half not NULL: lo the
 * means, lo - half and lo + half the ends, as computed in add); wmin and lmin: minima of
 * hi - lo and of lo (the widening test); B: the four bincounts (4 n, interleaved: see
 * deposit_loop), zero on entry and left zero (only the nodes touched are cleared).
 * Returns 1 (hi_max: -inf when m == 0) or 0 when a node index is out of range (acc
 * unchanged). */
static int deposit_core(double *acc, Py_ssize_t n, const double *lo, const double *hi,
                        const float *half, const double *w, Py_ssize_t m, double h,
                        double wmin, double lmin, double *B, double *hi_max)
{
    *hi_max = -INFINITY;
    if (m == 0)
        return 1;
    int widen = wmin < h || lmin < 0.0;
    double inv = 1.0 / h; /* (pos *= 1.0 / h) */
    double top = (double)n;
    Py_ssize_t jmin = n, jmax = -1, end;
    double hm = -INFINITY;
    end = deposit_loop(lo, hi, half, w, m, h, widen, inv, top, B, &jmin, &jmax, &hm);
    if (end < m) {
        clear(B, n, jmin, jmax);
        return 0;
    }
    /* acc += B1; acc[1:] += B2[:-1]; acc -= B3; acc[1:] -= B4[:-1] (per node in that
     * order), over the nodes jmin..jmax+1 within acc (jl <= ju: hi >= lo) */
    Py_ssize_t kend = jmax + 1 < n ? jmax + 1 : n - 1;
    for (Py_ssize_t k = jmin; k <= kend; k++) {
        double a = acc[k];
        a += B[4 * k];
        if (k > 0)
            a += B[4 * k - 3];
        a -= B[4 * k + 2];
        if (k > 0)
            a -= B[4 * k - 1];
        acc[k] = a;
    }
    clear(B, n, jmin, jmax);
    *hi_max = hm;
    return 1;
}

/* _Accumulator.add's deferral, then the deposit: elements lo, hi, w (m, scratch: the
 * kept ones compacted in place) with their stats; the deferred ones to dlo, dhi, dw
 * (*nd of them). Returns as deposit_core. */
static int defer_deposit(double *acc, Py_ssize_t n, double *lo, double *hi, double *w,
                         Py_ssize_t m, double lmin, double hmax, double wmin, double dmin,
                         double dmax, double h, double *B, double *dlo, double *dhi,
                         double *dw, Py_ssize_t *nd, double *hi_max)
{
    *nd = 0;
    Py_ssize_t kept = m;
    if (m && (lmin < dmin || hmax > dmax)) {
        Py_ssize_t k = 0, d = 0;
        lmin = INFINITY, wmin = INFINITY;
        for (Py_ssize_t i = 0; i < m; i++) {
            double l = lo[i], u = hi[i];
            if (l < dmin || u > dmax) {
                dlo[d] = l;
                dhi[d] = u;
                dw[d] = w[i];
                d++;
            } else {
                double wi = u - l;
                if (l < lmin)
                    lmin = l;
                if (wi < wmin)
                    wmin = wi;
                lo[k] = l;
                hi[k] = u;
                w[k] = w[i];
                k++;
            }
        }
        kept = k;
        *nd = d;
    }
    return deposit_core(acc, n, lo, hi, NULL, w, kept, h, wmin, lmin, B, hi_max);
}

/* Buffer sizes: items of size bytes; work for n nodes and m elements. */
static int need(Py_buffer *b, Py_ssize_t items, Py_ssize_t size, const char *what)
{
    if (b->len != items * size) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, expected %zd", what, b->len,
                     items * size);
        return 0;
    }
    return 1;
}

static int need_work(Py_buffer *work, Py_ssize_t n, Py_ssize_t m)
{
    if (work->len < (4 * n + 8 * m) * 8) {
        PyErr_SetString(PyExc_ValueError, "work: too small");
        return 0;
    }
    return 1;
}

static PyObject *deposit(PyObject *self, PyObject *args)
{
    Py_buffer acc, work, lo, hi, w;
    double h;
    if (!PyArg_ParseTuple(args, "w*w*y*y*y*d", &acc, &work, &lo, &hi, &w, &h))
        return NULL;
    PyObject *res = NULL;
    Py_ssize_t m = lo.len / 8, n = acc.len / 8;
    if (!need(&lo, m, 8, "lo") || !need(&hi, m, 8, "hi") || !need(&w, m, 8, "weight")
        || !need_work(&work, n, m))
        goto done;
    double hm, lmin, hmax, wmin;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = stats(lo.buf, hi.buf, w.buf, m, &lmin, &hmax, &wmin);
    if (rc)
        rc = deposit_core(acc.buf, n, lo.buf, hi.buf, NULL, w.buf, m, h, wmin, lmin,
                          work.buf, &hm);
    Py_END_ALLOW_THREADS
    res = rc ? PyFloat_FromDouble(hm) : Py_NewRef(Py_None);
done:
    PyBuffer_Release(&acc);
    PyBuffer_Release(&work);
    PyBuffer_Release(&lo);
    PyBuffer_Release(&hi);
    PyBuffer_Release(&w);
    return res;
}

static PyObject *add(PyObject *self, PyObject *args)
{
    Py_buffer acc, work, mean, width, w;
    double dmin, dmax, h;
    if (!PyArg_ParseTuple(args, "w*w*y*y*y*ddd", &acc, &work, &mean, &width, &w, &dmin,
                          &dmax, &h))
        return NULL;
    PyObject *res = NULL;
    Py_ssize_t m = mean.len / 8, n = acc.len / 8, nd = 0;
    int f32 = width.len == m * 4;
    if (!need(&mean, m, 8, "mean") || !(f32 || need(&width, m, 8, "width"))
        || !need(&w, m, 8, "weight") || !need_work(&work, n, m))
        goto done;
    double hm, lmin, hmax, wmin;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    double *B = work.buf, *l = B + 4 * n, *u = l + m, *ww = u + m;
    const double *me = mean.buf;
    if (f32) {
        const float *wd = width.buf;
        for (Py_ssize_t i = 0; i < m; i++) {
            float half = wd[i] * 0.5f; /* width *= 0.5 (float32) */
            l[i] = me[i] - (double)half;
            u[i] = me[i] + (double)half;
        }
    } else {
        const double *wd = width.buf;
        for (Py_ssize_t i = 0; i < m; i++) {
            double half = wd[i] * 0.5;
            l[i] = me[i] - half;
            u[i] = me[i] + half;
        }
    }
    memcpy(ww, w.buf, (size_t)m * 8);
    rc = stats(l, u, ww, m, &lmin, &hmax, &wmin);
    if (rc)
        rc = defer_deposit(acc.buf, n, l, u, ww, m, lmin, hmax, wmin, dmin, dmax, h, B,
                           ww + m, ww + 2 * m, ww + 3 * m, &nd, &hm);
    Py_END_ALLOW_THREADS
    res = rc ? Py_BuildValue("nd", nd, hm) : Py_NewRef(Py_None);
done:
    PyBuffer_Release(&acc);
    PyBuffer_Release(&work);
    PyBuffer_Release(&mean);
    PyBuffer_Release(&width);
    PyBuffer_Release(&w);
    return res;
}

/* The record of rtqa.dvh.elements._REC (packed: 16 bytes). */
typedef struct {
    double w;
    float tm, vt;
} rec_t;

/* The frames' pairs computed as the elements need them (voxels with a ring): the API of
 * rtqa.dvh._ctables (its capsule _frames; NULL until first used or when not built). */
typedef struct {
    int (*frame_pairs_spans)(const double *, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                             const int32_t *, const int32_t *, Py_ssize_t, Py_ssize_t,
                             float *, float *);
    int (*spans_ok)(const int32_t *, const int32_t *, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                    Py_ssize_t);
} FramesAPI;

static FramesAPI *frames_api = NULL;

/* A ring of ns frames of pairs over a window (rows j0..j1-1, columns i0..i1-1; 2 <= ns
 * <= RING_MAX): slot s holds frame tag[s] (-1: none) at the spans lo, hi of that frame
 * (int32, nz x (j1 - j0), window columns; rtqa.dvh.tables._FrameRing). */
#define RING_MAX 8
typedef struct {
    float *buf;
    int64_t *tag;
    Py_ssize_t ns;
    int64_t clock, stamp[RING_MAX]; /* (last use of each slot in this call) */
    const int32_t *lo, *hi;
    Py_ssize_t nz, ny, nx, j0, j1, i0, i1, nj, wlen, area;
    float *scr;
    /* the position of the last index (frame and row: indices in frame order mostly
     * need no division) */
    int64_t f, fbase, j, jbase;
    double inv_nxy, inv_nx;
} Ring;

/* x // d for 0 <= x < 2^52 and d >= 1 (as in _ctables.c). */
static inline int64_t quot(int64_t x, int64_t d, double inv)
{
    int64_t q = (int64_t)((double)x * inv);
    while (q * d > x)
        q--;
    while ((q + 1) * d <= x)
        q++;
    return q;
}

/* Frame, window row and window column of flat node index x (0 <= x < (nz - 1) nxy,
 * checked by the caller); 0 outside the window. */
static inline int ring_where(Ring *R, int64_t x, int64_t nxy, int64_t *f, int64_t *j,
                             int64_t *i)
{
    int64_t rem = x - R->fbase;
    if (rem < 0 || rem >= nxy) {
        R->f = quot(x, nxy, R->inv_nxy);
        R->fbase = R->f * nxy;
        rem = x - R->fbase;
    }
    int64_t c = rem - R->jbase;
    if (c < 0 || c >= R->nx) {
        R->j = quot(rem, R->nx, R->inv_nx);
        R->jbase = R->j * R->nx;
        c = rem - R->jbase;
    }
    if (R->j < R->j0 || R->j >= R->j1 || c < R->i0 || c >= R->i1)
        return 0;
    *f = R->f;
    *j = R->j - R->j0;
    *i = c - R->i0;
    return 1;
}

/* The slot of frame f; when not in the ring, computed into the least recently used slot
 * other than `keep` (and, if it can, not holding frame `spare`); -1 when a span is
 * outside the window or a pair is NaN. */
static Py_ssize_t ring_slot(Ring *R, const double *flat, int64_t f, Py_ssize_t keep,
                            int64_t spare)
{
    R->clock++;
    for (Py_ssize_t k = 0; k < R->ns; k++)
        if (R->tag[k] == f) {
            R->stamp[k] = R->clock;
            return k;
        }
    Py_ssize_t s = -1;
    for (int pass = 0; pass < 2 && s < 0; pass++)
        for (Py_ssize_t k = 0; k < R->ns; k++)
            if (k != keep && (pass || R->tag[k] != spare)
                && (s < 0 || R->stamp[k] < R->stamp[s]))
                s = k;
    R->stamp[s] = R->clock;
    const int32_t *lo = R->lo + f * R->nj, *hi = R->hi + f * R->nj;
    R->tag[s] = -1;
    if (!frames_api->spans_ok(lo, hi, R->nj, R->i0, R->wlen, R->nx)
        || !frames_api->frame_pairs_spans(flat + f * R->ny * R->nx, R->ny, R->nx, R->j0,
                                          R->j1, lo, hi, R->i0, R->wlen,
                                          R->buf + 2 * s * R->area, R->scr))
        return -1;
    R->tag[s] = f;
    return s;
}

/* The element-wise arithmetic of _voxel_chunk for n elements: node doses va, vb, pairs
 * (a0, a1) at frame f and (b0, b1) at f + 1, t mean t and variance vt; the means mu
 * (float64) and the squared widths d2s (float32). */
VECTOR_WIDE static void elements(Py_ssize_t n, const double *va, const double *vb,
                            const float *a0, const float *a1, const float *b0,
                            const float *b1, const double *t, const double *vt, double *mu,
                            float *d2s)
{
    for (Py_ssize_t k = 0; k < n; k++) {
        /* mean: a = va + pa0; dab = vb + pb0 - a; t dab + a (float64) */
        double a = va[k] + (double)a0[k];
        double dab = vb[k] + (double)b0[k];
        dab -= a;
        double m = t[k] * dab;
        m += a;
        /* spread (float32): sd = s + t (s' - s); d2 = 12 (vt (dab^2 + ds^2) + sd^2) */
        float t32 = (float)t[k];
        float dsd = b1[k] - a1[k];
        float sd = t32 * dsd;
        sd += a1[k];
        float d2 = (float)dab;
        d2 *= d2;
        dsd *= dsd;
        d2 += dsd;
        d2 = (float)((double)d2 * vt[k]); /* (an exact product, rounded once to float32) */
        sd *= sd;
        d2 += sd;
        d2 *= 12.0f;
        d2s[k] = d2; /* (the caller: width = sqrt(d2); add: width *= 0.5) */
        mu[k] = m;
    }
}

static PyObject *voxels(PyObject *self, PyObject *args)
{
    Py_buffer acc, work, flat, pair, pb, g, w, t, vt, tlo, thi, row;
    Py_buffer rbuf = {0}, rtag = {0}, rlo = {0}, rhi = {0};
    Py_ssize_t nxy;
    double dmin, dmax, h;
    PyObject *ringobj = Py_None;
    if (!PyArg_ParseTuple(args, "w*w*y*y*y*y*ny*y*y*y*y*y*ddd|O", &acc, &work, &flat, &pair,
                          &pb, &g, &nxy, &w, &t, &vt, &tlo, &thi, &row, &dmin, &dmax, &h,
                          &ringobj))
        return NULL;
    PyObject *res = NULL;
    Py_ssize_t m = g.len / 8, n = acc.len / 8, nd = 0, nflat = flat.len / 8;
    int coded = row.len > 0, gathered = pb.len > 0, ringed = ringobj != Py_None;
    Py_ssize_t nrec = coded ? w.len / 16 : 0, npair = pair.len / 8;
    Ring R;
    R.scr = NULL;
    if (ringed) {
        /* ring = (buf, tag, lo, hi, nz, ny, nx, j0, j1, i0, i1) */
        if (!PyArg_ParseTuple(ringobj, "w*w*y*y*nnnnnnn", &rbuf, &rtag, &rlo, &rhi, &R.nz,
                              &R.ny, &R.nx, &R.j0, &R.j1, &R.i0, &R.i1))
            goto done;
        if (frames_api == NULL) {
            frames_api = PyCapsule_Import("rtqa.dvh._ctables._frames", 0);
            if (frames_api == NULL) {
                PyErr_Clear();
                res = Py_NewRef(Py_None);
                goto done;
            }
        }
        R.nj = R.j1 - R.j0, R.wlen = R.i1 - R.i0, R.area = R.nj * R.wlen;
        R.ns = rtag.len / 8, R.clock = 0;
        for (int k = 0; k < RING_MAX; k++)
            R.stamp[k] = 0;
        if (!(R.ny >= 2 && R.nx >= 2 && R.nz >= 2 && R.nx * R.ny == nxy
              && R.nz * nxy == nflat && nflat < ((Py_ssize_t)1 << 52) && 0 <= R.j0
              && R.j0 < R.j1 && R.j1 <= R.ny && 0 <= R.i0 && R.i0 < R.i1 && R.i1 <= R.nx)) {
            PyErr_SetString(PyExc_ValueError, "ring: bad window");
            goto done;
        }
        if (R.ns < 2 || R.ns > RING_MAX || !need(&rtag, R.ns, 8, "tag")
            || !need(&rbuf, R.ns * R.area, 8, "ring")
            || !need(&rlo, R.nz * R.nj, 4, "lo") || !need(&rhi, R.nz * R.nj, 4, "hi"))
            goto done;
        R.buf = rbuf.buf, R.tag = rtag.buf, R.lo = rlo.buf, R.hi = rhi.buf;
        R.f = -1, R.fbase = -nxy - 1, R.j = -1, R.jbase = -R.nx - 1;
        R.inv_nxy = 1.0 / (double)nxy, R.inv_nx = 1.0 / (double)R.nx;
        R.scr = malloc((size_t)(10 * R.wlen + 4) * sizeof(float));
        if (R.scr == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        gathered = 0;
    }
    if (!need(&g, m, 8, "g") || !need_work(&work, n, m))
        goto done;
    if (gathered && (!need(&pair, m, 8, "pair") || !need(&pb, m, 8, "pb")))
        goto done;
    if (!gathered && !ringed && npair < nflat) {
        PyErr_SetString(PyExc_ValueError, "pair: smaller than flat");
        goto done;
    }
    if (coded) {
        if (!need(&row, m, 8, "row") || !need(&w, nrec, 16, "rec")
            || !need(&tlo, nrec, 4, "tlo") || !need(&thi, nrec, 4, "thi"))
            goto done;
    } else if (!need(&w, m, 8, "w") || !need(&t, m, 8, "t") || !need(&vt, m, 8, "vt")
               || !need(&tlo, m, 8, "tlo") || !need(&thi, m, 8, "thi")) {
        goto done;
    }
    double hm = -INFINITY;
    int rc = 1;
    Py_BEGIN_ALLOW_THREADS
    double *B = work.buf, *l = B + 4 * n, *u = l + m, *ww = u + m;
    double *me = ww + 4 * m, *wo = me + m;
    /* the half widths, in the deferred weights' part (l, u, ww: only for a deferral,
     * written from them before the deferred elements are) */
    float *hf = (float *)(ww + 3 * m);
    const double *fl = flat.buf;
    const float *pa_ = pair.buf, *pb_ = pb.buf;
    const int64_t *gi = g.buf, *ri = row.buf;
    const rec_t *rec = w.buf;
    const double *wd = w.buf, *td = t.buf, *vd = vt.buf;
    double vmin = INFINITY, vmax = -INFINITY;
    double lmin = INFINITY, hmax = -INFINITY, wmin = INFINITY;
    int64_t rlast = -1;
    const float *ra = NULL, *rb = NULL;
    const int32_t *loa = NULL, *hia = NULL, *lob = NULL, *hib = NULL;
    /* in blocks of VBLK elements: their operands gathered (and checked), then the
     * element-wise arithmetic (vectorised: the same operations per element), then the
     * checks and the minima and maxima in element order */
    double xva[VBLK], xvb[VBLK], xt[VBLK], xvt[VBLK];
    float xa0[VBLK], xa1[VBLK], xb0[VBLK], xb1[VBLK];
    for (Py_ssize_t b0 = 0; b0 < m && rc; b0 += VBLK) {
        Py_ssize_t nb = m - b0 < VBLK ? m - b0 : VBLK;
        for (Py_ssize_t k = 0; k < nb; k++) {
            Py_ssize_t i = b0 + k;
            int64_t ga = gi[i];
            if (ga < 0 || ga >= nflat || nxy < -ga || nxy >= nflat - ga) { /* (no overflow) */
                rc = 0;
                break;
            }
            int64_t gb = ga + nxy;
            double va = fl[ga], vb = fl[gb];
            float pa0, pa1, pb0, pb1;
            if (ringed) { /* the pairs of frames f and f + 1 from the ring (computed there) */
                int64_t f, jj, ii;
                if (!ring_where(&R, ga, nxy, &f, &jj, &ii)) {
                    rc = 0;
                    break;
                }
                if (f != rlast) {
                    Py_ssize_t sa = ring_slot(&R, fl, f, -1, f + 1);
                    Py_ssize_t sb = sa < 0 ? -1 : ring_slot(&R, fl, f + 1, sa, -1);
                    if (sb < 0) {
                        rc = 0;
                        break;
                    }
                    ra = R.buf + 2 * sa * R.area, rb = R.buf + 2 * sb * R.area;
                    loa = R.lo + f * R.nj, hia = R.hi + f * R.nj;
                    lob = loa + R.nj, hib = hia + R.nj;
                    rlast = f;
                }
                if (ii < loa[jj] || ii >= hia[jj] || ii < lob[jj] || ii >= hib[jj]) {
                    rc = 0; /* (a node outside the spans computed) */
                    break;
                }
                int64_t loc = 2 * (jj * R.wlen + ii);
                pa0 = ra[loc], pa1 = ra[loc + 1], pb0 = rb[loc], pb1 = rb[loc + 1];
            } else if (gathered) {
                pa0 = pa_[2 * i], pa1 = pa_[2 * i + 1], pb0 = pb_[2 * i], pb1 = pb_[2 * i + 1];
            } else {
                pa0 = pa_[2 * ga], pa1 = pa_[2 * ga + 1], pb0 = pa_[2 * gb];
                pb1 = pa_[2 * gb + 1];
            }
            if (coded) {
                int64_t r = ri[i];
                if (r < 0 || r >= nrec) {
                    rc = 0;
                    break;
                }
                wo[i] = rec[r].w, xt[k] = (double)rec[r].tm, xvt[k] = (double)rec[r].vt;
            } else {
                wo[i] = wd[i], xt[k] = td[i], xvt[k] = vd[i];
            }
            /* va.min(), vb.min(), va.max(), vb.max() */
            if (va < vmin)
                vmin = va;
            if (va > vmax)
                vmax = va;
            if (vb < vmin)
                vmin = vb;
            if (vb > vmax)
                vmax = vb;
            xva[k] = va, xvb[k] = vb;
            xa0[k] = pa0, xa1[k] = pa1, xb0[k] = pb0, xb1[k] = pb1;
        }
        if (!rc)
            break;
        elements(nb, xva, xvb, xa0, xa1, xb0, xb1, xt, xvt, me + b0, hf + b0);
        for (Py_ssize_t i = b0; i < b0 + nb; i++) {
            double mu = me[i];
            float half = sqrtf(hf[i]) * 0.5f; /* width = sqrt(d2); add: width *= 0.5 */
            hf[i] = half;
            double lo_ = mu - (double)half, hi_ = mu + (double)half;
            if (isnan(lo_) || isnan(hi_) || !isfinite(wo[i])) {
                rc = 0;
                break;
            }
            double d = hi_ - lo_;
            if (lo_ < lmin)
                lmin = lo_;
            if (hi_ > hmax)
                hmax = hi_;
            if (d < wmin)
                wmin = d;
        }
    }
    /* acc.points of the node doses at the ends of the t range, where they can widen
     * [Min, Max] */
    if (rc && m && (vmin < dmin || vmax > dmax)) {
        double pmin = 0.0, pmax = 0.0, qmin = 0.0, qmax = 0.0;
        for (Py_ssize_t i = 0; i < m; i++) {
            double va = fl[gi[i]], vb = fl[gi[i] + nxy];
            double ta, tb;
            if (coded) {
                ta = (double)((const float *)tlo.buf)[ri[i]];
                tb = (double)((const float *)thi.buf)[ri[i]];
            } else {
                ta = ((const double *)tlo.buf)[i];
                tb = ((const double *)thi.buf)[i];
            }
            double d = vb - va; /* vb -= va; p0 = tlo * vb + va; vb = vb * thi + va */
            double p0 = ta * d;
            p0 += va;
            double p1 = d * tb;
            p1 += va;
            if (isnan(p0) || isnan(p1)) {
                rc = 0;
                break;
            }
            if (i == 0 || p0 < pmin)
                pmin = p0;
            if (i == 0 || p0 > pmax)
                pmax = p0;
            if (i == 0 || p1 < qmin)
                qmin = p1;
            if (i == 0 || p1 > qmax)
                qmax = p1;
        }
        if (rc) {
            /* points(min(p0.min(), p1.min()), max(p0.max(), p1.max())) with Python's
             * min and max (the first unless the second is smaller / larger):
             * dmin = min(dmin, max(lo, 0.0)); dmax = max(dmax, hi) */
            double lo_p = qmin < pmin ? qmin : pmin;
            double hi_p = qmax > pmax ? qmax : pmax;
            double c = 0.0 > lo_p ? 0.0 : lo_p;
            if (c < dmin)
                dmin = c;
            if (hi_p > dmax)
                dmax = hi_p;
        }
    }
    if (rc && m && (lmin < dmin || hmax > dmax)) {
        /* a deferral: the ends as arrays (mean -/+ half, as in add) */
        for (Py_ssize_t i = 0; i < m; i++) {
            l[i] = me[i] - (double)hf[i];
            u[i] = me[i] + (double)hf[i];
            ww[i] = wo[i];
        }
        rc = defer_deposit(acc.buf, n, l, u, ww, m, lmin, hmax, wmin, dmin, dmax, h, B,
                           ww + m, ww + 2 * m, ww + 3 * m, &nd, &hm);
    } else if (rc) {
        rc = deposit_core(acc.buf, n, me, NULL, hf, wo, m, h, wmin, lmin, B, &hm);
    }
    Py_END_ALLOW_THREADS
    res = rc ? Py_BuildValue("ddnd", dmin, dmax, nd, hm) : Py_NewRef(Py_None);
done:
    PyBuffer_Release(&acc);
    PyBuffer_Release(&work);
    PyBuffer_Release(&flat);
    PyBuffer_Release(&pair);
    PyBuffer_Release(&pb);
    PyBuffer_Release(&g);
    PyBuffer_Release(&w);
    PyBuffer_Release(&t);
    PyBuffer_Release(&vt);
    PyBuffer_Release(&tlo);
    PyBuffer_Release(&thi);
    PyBuffer_Release(&row);
    free(R.scr);
    if (rbuf.obj)
        PyBuffer_Release(&rbuf);
    if (rtag.obj)
        PyBuffer_Release(&rtag);
    if (rlo.obj)
        PyBuffer_Release(&rlo);
    if (rhi.obj)
        PyBuffer_Release(&rhi);
    return res;
}

/* codes(code, nJ, nI, lay_f, nxy, nx, base, r0, stride, g, row) -> None
 * The whole-voxel elements of one group of layers (rtqa.dvh.engine._Engine._whole_voxels):
 * code (uint8, L layers x nJ x nI window cells), for every cell with a code, in
 * (layer, row, column) order: its flat grid index lay_f[l] nxy + base + j nx + i and
 * its record row code + (r0 + l) stride (int64; g and row hold exactly the cells with a
 * code). Integer arithmetic: the values of the numpy formulation exactly. */
static PyObject *codes(PyObject *self, PyObject *args)
{
    Py_buffer code, layf, g, row;
    Py_ssize_t nJ, nI, nxy, nx, base, r0, stride;
    if (!PyArg_ParseTuple(args, "y*nny*nnnnnw*w*", &code, &nJ, &nI, &layf, &nxy, &nx, &base,
                          &r0, &stride, &g, &row))
        return NULL;
    PyObject *res = NULL;
    Py_ssize_t L = layf.len / 8, cnt = g.len / 8;
    if (nJ < 0 || nI < 0 || !need(&code, L * nJ * nI, 1, "code") || !need(&row, cnt, 8, "row"))
        goto done;
    const unsigned char *c = code.buf;
    const int64_t *lf = layf.buf;
    int64_t *go = g.buf, *ro = row.buf;
    Py_ssize_t k = 0;
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t l = 0; l < L && ok; l++) {
        int64_t rl = (int64_t)(r0 + l) * stride;
        for (Py_ssize_t j = 0; j < nJ && ok; j++) {
            int64_t gj = lf[l] * nxy + base + j * nx;
            const unsigned char *cr = c + (l * nJ + j) * nI;
            for (Py_ssize_t i = 0; i < nI; i++) {
                if (cr[i]) {
                    if (k == cnt) {
                        ok = 0;
                        break;
                    }
                    go[k] = gj + i;
                    ro[k] = rl + cr[i];
                    k++;
                }
            }
        }
    }
    Py_END_ALLOW_THREADS
    if (!ok || k != cnt)
        PyErr_SetString(PyExc_ValueError, "codes: g is not the number of cells with a code");
    else
        res = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&code);
    PyBuffer_Release(&layf);
    PyBuffer_Release(&g);
    PyBuffer_Release(&row);
    return res;
}

/* o |= (a & b) << p for 0/1 bytes a, b (bv = 1 << p: the 0/1 byte negated is 0x00 or
 * 0xff, and-ed with bv). */
VECTOR static void or_row(unsigned char *restrict o, const unsigned char *a,
                          const unsigned char *b, Py_ssize_t n, unsigned char bv)
{
    for (Py_ssize_t i = 0; i < n; i++)
        o[i] |= (unsigned char)(-(unsigned char)(a[i] & b[i])) & bv;
}

/* layer_codes(mask, K, NJ, NI, j0, j1, i0, i1, layer, bit, pa, pb, code) -> None
 * The codes of a group of layers of rtqa.dvh.engine._Engine._whole_voxels: code (uint8,
 * L x (j1 - j0) x (i1 - i0)) zeroed, then for every piece s its window mask, mask[pa[s]]
 * and (pb[s] >= 0: an interval) mask[pb[s]] over rows j0..j1-1, columns i0..i1-1 of the
 * raster planes (uint8 0 or 1: bools, K x NJ x NI), shifted by bit[s] (0..7) and or-ed into layer
 * layer[s] (int64 each). Integer operations: the numpy code's values exactly. */
static PyObject *layer_codes(PyObject *self, PyObject *args)
{
    Py_buffer mask, lay, bit, pa, pb, code;
    Py_ssize_t K, NJ, NI, j0, j1, i0, i1;
    if (!PyArg_ParseTuple(args, "y*nnnnnnny*y*y*y*w*", &mask, &K, &NJ, &NI, &j0, &j1, &i0,
                          &i1, &lay, &bit, &pa, &pb, &code))
        return NULL;
    PyObject *res = NULL;
    Py_ssize_t n = lay.len / 8, nj = j1 - j0, ni = i1 - i0, nw = nj * ni;
    int ok = K >= 0 && 0 <= j0 && j0 <= j1 && j1 <= NJ && 0 <= i0 && i0 <= i1 && i1 <= NI
             && mask.len == K * NJ * NI && lay.len % 8 == 0 && bit.len == lay.len
             && pa.len == lay.len && pb.len == lay.len && nw > 0 && code.len % nw == 0;
    Py_ssize_t L = ok ? code.len / nw : 0;
    const int64_t *ly = lay.buf, *bt = bit.buf, *ka = pa.buf, *kb = pb.buf;
    for (Py_ssize_t s = 0; ok && s < n; s++)
        ok = ly[s] >= 0 && ly[s] < L && bt[s] >= 0 && bt[s] < 8 && ka[s] >= 0 && ka[s] < K
             && kb[s] >= -1 && kb[s] < K;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "layer_codes: bad arguments");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    unsigned char *c = code.buf;
    const unsigned char *m = mask.buf;
    memset(c, 0, (size_t)code.len);
    for (Py_ssize_t s = 0; s < n; s++) {
        unsigned char *out = c + ly[s] * nw;
        unsigned char bv = (unsigned char)(1u << bt[s]);
        for (Py_ssize_t j = 0; j < nj; j++) {
            const unsigned char *ra = m + (ka[s] * NJ + j0 + j) * NI + i0;
            or_row(out + j * ni, ra, kb[s] >= 0 ? m + (kb[s] * NJ + j0 + j) * NI + i0 : ra, ni,
                   bv);
        }
    }
    Py_END_ALLOW_THREADS
    res = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&mask);
    PyBuffer_Release(&lay);
    PyBuffer_Release(&bit);
    PyBuffer_Release(&pa);
    PyBuffer_Release(&pb);
    PyBuffer_Release(&code);
    return res;
}

static PyMethodDef methods[] = {
    {"layer_codes", layer_codes, METH_VARARGS,
     "layer_codes(mask, K, NJ, NI, j0, j1, i0, i1, layer, bit, pa, pb, code): the codes"
     " of a group of layers from the raster's planes."},
    {"codes", codes, METH_VARARGS,
     "codes(code, nJ, nI, lay_f, nxy, nx, base, r0, stride, g, row): the flat grid"
     " indices and record rows of the cells with a code."},
    {"deposit", deposit, METH_VARARGS,
     "deposit(acc, work, lo, hi, weight, h) -> hi_max | None: _Accumulator._deposit."},
    {"add", add, METH_VARARGS,
     "add(acc, work, mean, width, weight, dmin, dmax, h) -> (n_deferred, hi_max) | None:"
     " _Accumulator.add without its sums."},
    {"voxels", voxels, METH_VARARGS,
     "voxels(acc, work, flat, pair, pb, g, nxy, w, t, vt, tlo, thi, row, dmin, dmax, h[,"
     " ring]) -> (dmin, dmax, n_deferred, hi_max) | None: _voxel_chunk and its add."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cdeposit",
                                    "DVH deposit and whole-voxel elements (rtqa._native).",
                                    -1, methods};

PyMODINIT_FUNC PyInit__cdeposit(void) { return PyModule_Create(&module); }
