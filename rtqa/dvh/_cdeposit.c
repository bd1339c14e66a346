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
 * voxels(acc, work, flat, pair, pb, g, nxy, w, t, vt, tlo, thi, row, dmin, dmax, h)
 *   -> (dmin, dmax, n_deferred, hi_max) | None
 *   _voxel_chunk, then add: the whole-voxel elements of flat grid indices g (int64):
 *   the doses flat[g], flat[g + nxy] and the (mean offset, sd) float32 pairs, from the
 *   table pair (complex64) at g and g + nxy, or pre-gathered: pair[i], pb[i] when pb is
 *   not empty. Per element weight, t mean, t variance and t range either direct
 *   (float64 arrays w, t, vt, tlo, thi; row empty) or coded: records w (bytes of
 *   rtqa.dvh.elements._REC: f8 weight, f4 t mean, f4 t variance) at row[i] (int64), and
 *   tlo/thi float32 at row[i]. The node doses at the ends of the t range update
 *   [dmin, dmax] (returned) when the chunk's node doses reach outside it, before the
 *   deferral test, as acc.points before acc.add. The means and weights are left in
 *   work for the caller's sums (the half widths, float32, in its deferred-weight part
 *   until a deferral needs the element ends).
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
#include <string.h>

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

/* Zero the four bincounts B (4 n) over nodes j0..j1. */
static void clear(double *B, Py_ssize_t n, Py_ssize_t j0, Py_ssize_t j1)
{
    if (j1 < j0)
        return;
    for (int b = 0; b < 4; b++)
        memset(B + b * n + j0, 0, (size_t)(j1 - j0 + 1) * sizeof(double));
}

/* The deposit of m elements lo, hi, w into acc (n nodes) (with half not NULL: lo the
 * means, lo - half and lo + half the ends, as computed in add); wmin and lmin: minima of
 * hi - lo and of lo (the widening test); B: the four bincounts (4 n), zero on entry
 * and left zero (only the nodes touched are cleared). Returns 1 (hi_max: -inf when
 * m == 0) or 0 when a node index is out of range (acc unchanged). */
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
    double *B1 = B, *B2 = B + n, *B3 = B + 2 * n, *B4 = B + 3 * n;
    Py_ssize_t jmin = n, jmax = -1;
    double hm = -INFINITY;
    for (Py_ssize_t i = 0; i < m; i++) {
        double l, u;
        if (half) { /* lo = mean - half, hi = mean + half (lo the means) */
            l = lo[i] - (double)half[i];
            u = lo[i] + (double)half[i];
        } else {
            l = lo[i], u = hi[i];
        }
        double wi = u - l;
        if (widen) {
            /* np.maximum(w, h); hi -= h; np.minimum(lo, hi); np.maximum(lo, 0); lo + w */
            wi = wi < h ? h : wi;
            u = u - h;
            l = u < l ? u : l;
            l = l < 0.0 ? 0.0 : l;
            u = l + wi;
        }
        if (u > hm)
            hm = u;
        double rate = w[i] / wi;
        /* j = pos.astype(intp) must index acc (numpy: a longer bincount, an error) */
        double pl = l * inv, pu = u * inv;
        if (!(pl >= 0.0 && pl < top && pu >= 0.0 && pu < top)) {
            clear(B, n, jmin, jmax);
            return 0;
        }
        Py_ssize_t jl = (Py_ssize_t)pl, ju = (Py_ssize_t)pu;
        if (jl < jmin)
            jmin = jl;
        if (ju > jmax)
            jmax = ju;
        pl -= (double)jl; /* t */
        pl *= rate;       /* rate * t */
        B1[jl] += rate - pl;
        B2[jl] += pl;
        pu -= (double)ju;
        pu *= rate;
        B3[ju] += rate - pu;
        B4[ju] += pu;
    }
    /* acc += B1; acc[1:] += B2[:-1]; acc -= B3; acc[1:] -= B4[:-1] (per node in that
     * order), over the nodes jmin..jmax+1 within acc (jl <= ju: hi >= lo) */
    Py_ssize_t kend = jmax + 1 < n ? jmax + 1 : n - 1;
    for (Py_ssize_t k = jmin; k <= kend; k++) {
        double a = acc[k];
        a += B1[k];
        if (k > 0)
            a += B2[k - 1];
        a -= B3[k];
        if (k > 0)
            a -= B4[k - 1];
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

static PyObject *voxels(PyObject *self, PyObject *args)
{
    Py_buffer acc, work, flat, pair, pb, g, w, t, vt, tlo, thi, row;
    Py_ssize_t nxy;
    double dmin, dmax, h;
    if (!PyArg_ParseTuple(args, "w*w*y*y*y*y*ny*y*y*y*y*y*ddd", &acc, &work, &flat, &pair,
                          &pb, &g, &nxy, &w, &t, &vt, &tlo, &thi, &row, &dmin, &dmax, &h))
        return NULL;
    PyObject *res = NULL;
    Py_ssize_t m = g.len / 8, n = acc.len / 8, nd = 0, nflat = flat.len / 8;
    int coded = row.len > 0, gathered = pb.len > 0;
    Py_ssize_t nrec = coded ? w.len / 16 : 0, npair = pair.len / 8;
    if (!need(&g, m, 8, "g") || !need_work(&work, n, m))
        goto done;
    if (gathered && (!need(&pair, m, 8, "pair") || !need(&pb, m, 8, "pb")))
        goto done;
    if (!gathered && npair < nflat) {
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
    for (Py_ssize_t i = 0; i < m; i++) {
        int64_t ga = gi[i];
        if (ga < 0 || ga >= nflat || nxy < -ga || nxy >= nflat - ga) { /* (no overflow) */
            rc = 0;
            break;
        }
        int64_t gb = ga + nxy;
        double va = fl[ga], vb = fl[gb];
        float pa0, pa1, pb0, pb1;
        if (gathered) {
            pa0 = pa_[2 * i], pa1 = pa_[2 * i + 1], pb0 = pb_[2 * i], pb1 = pb_[2 * i + 1];
        } else {
            pa0 = pa_[2 * ga], pa1 = pa_[2 * ga + 1], pb0 = pa_[2 * gb], pb1 = pa_[2 * gb + 1];
        }
        double wi, ti, vti;
        if (coded) {
            int64_t r = ri[i];
            if (r < 0 || r >= nrec) {
                rc = 0;
                break;
            }
            wi = rec[r].w, ti = (double)rec[r].tm, vti = (double)rec[r].vt;
        } else {
            wi = wd[i], ti = td[i], vti = vd[i];
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
        /* mean: a = va + pa0; dab = vb + pb0 - a; t dab + a (float64) */
        double a = va + (double)pa0;
        double dab = vb + (double)pb0;
        dab -= a;
        double mu = ti * dab;
        mu += a;
        /* spread (float32): sd = s + t (s' - s); d2 = 12 (vt (dab^2 + ds^2) + sd^2) */
        float t32 = (float)ti;
        float dsd = pb1 - pa1;
        float sd = t32 * dsd;
        sd += pa1;
        float d2 = (float)dab;
        d2 *= d2;
        dsd *= dsd;
        d2 += dsd;
        d2 = (float)((double)d2 * vti); /* (an exact product, rounded once to float32) */
        sd *= sd;
        d2 += sd;
        d2 *= 12.0f;
        float half = sqrtf(d2) * 0.5f; /* width = sqrt(d2); add: width *= 0.5 */
        double lo_ = mu - (double)half, hi_ = mu + (double)half;
        if (isnan(lo_) || isnan(hi_) || !isfinite(wi)) {
            rc = 0;
            break;
        }
        me[i] = mu;
        wo[i] = wi;
        hf[i] = half;
        double d = hi_ - lo_;
        if (lo_ < lmin)
            lmin = lo_;
        if (hi_ > hmax)
            hmax = hi_;
        if (d < wmin)
            wmin = d;
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

static PyMethodDef methods[] = {
    {"codes", codes, METH_VARARGS,
     "codes(code, nJ, nI, lay_f, nxy, nx, base, r0, stride, g, row): the flat grid"
     " indices and record rows of the cells with a code."},
    {"deposit", deposit, METH_VARARGS,
     "deposit(acc, work, lo, hi, weight, h) -> hi_max | None: _Accumulator._deposit."},
    {"add", add, METH_VARARGS,
     "add(acc, work, mean, width, weight, dmin, dmax, h) -> (n_deferred, hi_max) | None:"
     " _Accumulator.add without its sums."},
    {"voxels", voxels, METH_VARARGS,
     "voxels(acc, work, flat, pair, pb, g, nxy, w, t, vt, tlo, thi, row, dmin, dmax, h)"
     " -> (dmin, dmax, n_deferred, hi_max) | None: _voxel_chunk and its add."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cdeposit",
                                    "DVH deposit and whole-voxel elements (rtqa._native).",
                                    -1, methods};

PyMODINIT_FUNC PyInit__cdeposit(void) { return PyModule_Create(&module); }
