/* Surface crossings of band pieces: the compiled twin of
 * rtqa.dvh.geometry.band_crossings with what it calls (RowTable.query, _euclid,
 * _circle_root, and the column table rast.cols: row_crossings + RowTable); see
 * rtqa/_native.py.  The Python caller (geometry._band_crossings_c) converts dtypes and
 * runs these steps (each checks buffer sizes, and the points against the planes and
 * the lattice, before reading the tables):
 *
 * crossing_table(ax, ay, bx, by, plane, (y0, sy, ny), n_planes, counts, pos)
 *   RowTable.pos of the lattice columns (the edges with x and y swapped): the same
 *   table, value for value and rank for rank (its width first, with pos None).
 * prepare(rows_pos, rows_w, cols_pos, cols_w, K, lat, k, lower, R, C, d_in, d_out, flags)
 *   Per band point i (plane interval k..k+1, fine lattice row R, column C, ``lower``:
 *   inside on plane k only): the distances along the lattice row and column to the
 *   contours of the plane where the point is outside (k_out), the scan axis (the
 *   nearer of the two: row when d_row <= d_col), the distance along that axis on the
 *   plane where it is inside (k_in).  flags[i]: bit 0 row axis, bit 1 both distances
 *   finite (else the caller measures Euclidean distances: step 2).
 * euclid(x0, y0, x1, y1, l2, pstart, lat, k, lower, R, C, flags, d_in, d_out, de[, simd])
 *   For the points whose flags lack bit 1 (the j-th of them in index order): the
 *   in-plane Euclidean distance to the contour edges of planes k_in, k_out (into d_in,
 *   d_out), k-1 and k+2 (clipped to 0..K-1; into de[0][j], de[1][j]).
 * finish(rows_pos, rows_w, cols_pos, cols_w, K, lat, z, linked, k, lower, R, C, d_in,
 *        d_out, flags, de, out[, simd])
 *   The signed distances on planes k-1 and k+2, the roots of the circles through
 *   three (z, phi) points, their mean or the linear root, clipped to [z_k, z_k+1].
 *
 * ``rows_pos``/``cols_pos`` are RowTable.pos ((width, K * ny) and (width, K * nx)
 * float64, inf where a row has fewer crossings); lat = (x0, y0, sx, sy, nx, ny) of the
 * fine lattice; point coordinates x = x0 + C sx, y = y0 + R sy.  ``simd`` (default
 * True): the SSE2 loops where compiled in (x86-64), else the scalar ones; the tests
 * run both.
 *
 * Why the values are the numpy ones, bit for bit: every float64 result is computed by
 * the same IEEE 754 operations (+ - * / sqrt, correctly rounded; no FMA contraction,
 * -ffp-contract=off) on the same operands in the same order, element by element, as
 * the numpy expressions cited beside each line; the SSE2 loops do the same operations
 * lane by lane (IEEE 754 per lane).  The other operations choose among values: abs,
 * np.minimum and np.min (exact; NaN propagates as in numpy), np.clip (numpy's clip
 * loop: min(max(x, lo), hi) with max(a, b) = isnan(a) || a > b ? a : b and min alike;
 * reproduced literally), np.where, comparisons.  The one reduction that is not a
 * choice, the squared edge lengths (np.einsum), stays in numpy: the caller passes them
 * (l2).  The Euclidean distance of a point depends only on its plane's edges and the
 * minimum is exact, so the points may be taken in any order and (plane, point) pairs
 * measured twice, where numpy measures each once.  Three shortcuts give the same bits
 * (each argued where it is made): a clipped quotient of known outcome is not divided
 * (euclid), the mean of n_roots = 1 or 2 roots is total or total * 0.5 (= total / 2
 * exactly), and a negative radicand is replaced by NaN before sqrt (both give NaN,
 * and a NaN root is replaced by the constant NaN, then not used).  numpy computes the
 * roots of every point and sums where(ok, r, 0.0) for each side, and so does finish
 * (numpy skips a side no point has: adding 0.0 to the total, which starts at +0.0 and
 * so is never -0.0, changes nothing).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef struct {
    double x0, y0, sx, sy;
    long long nx, ny; /* PyArg "L" */
} lattice;

typedef struct {
    const double *pos; /* (w, n) */
    int64_t w, n;
} table;

/* np.minimum(a, b) of float64: a when a <= b or a is NaN, else b (NaN propagates). */
static inline double np_minimum(double a, double b) { return (a <= b || isnan(a)) ? a : b; }

/* numpy's clip loop for floats: Min(Max(x, lo), hi). */
static inline double np_clip(double x, double lo, double hi)
{
    double m = (isnan(x) || x > lo) ? x : lo;
    return (isnan(m) || m < hi) ? m : hi;
}

/* cond ? a : b, bit for bit, without a branch (the roots are unpredictable). */
static inline double pick(int cond, double a, double b)
{
    uint64_t ua, ub, m = (uint64_t)0 - (uint64_t)(cond != 0);
    memcpy(&ua, &a, 8);
    memcpy(&ub, &b, 8);
    ua = (ua & m) | (ub & ~m);
    memcpy(&a, &ua, 8);
    return a;
}

/* RowTable.query: distance along row ``rid`` from p to the nearest crossing (inf when
 * none) and (ins != NULL) the even-odd flag: an odd number of crossings at or before p.
 *   diff = pos[0][rid] - p; d = abs(diff); ins = diff <= 0
 *   for w >= 1: diff = pos[w][rid] - p; d = minimum(d, abs(diff)); ins ^= diff <= 0 */
static inline double query(const table *t, int64_t rid, double p, int *ins)
{
    const double *q = t->pos + rid;
    double diff = q[0] - p;
    double d = fabs(diff);
    int in = diff <= 0;
    if (t->w == 2) { /* (the common width: no loop) */
        diff = q[t->n] - p;
        d = np_minimum(d, fabs(diff));
        in ^= diff <= 0;
    } else {
        for (int64_t w = 1; w < t->w; w++) {
            diff = q[w * t->n] - p;
            d = np_minimum(d, fabs(diff));
            in ^= diff <= 0;
        }
    }
    if (ins)
        *ins = in;
    return d;
}

/* Distance along the scan axis (flags bit 0: the row) on plane kp. */
static inline double directional(const table *rows, const table *cols, const lattice *f,
                                 int row_axis, int64_t kp, int64_t R, int64_t C, double x,
                                 double y, int *ins)
{
    if (row_axis)
        return query(rows, kp * f->ny + R, x, ins);
    return query(cols, kp * f->nx + C, y, ins);
}

/* _circle_root for one element: x1..x3 the z, y1..y3 the phi of three points; the root
 * within [lo, hi] (the lower first), NaN when none.  Each line is the numpy code's. */
static inline double circle_root(double x1, double x2, double x3, double y1, double y2,
                                 double y3, double lo, double hi)
{
    double a = y2 - y3, b = y3 - y1, c = y1 - y2;
    double s1 = x1 * x1;
    s1 += y1 * y1;
    double s2 = x2 * x2;
    s2 += y2 * y2;
    double s3 = x3 * x3;
    s3 += y3 * y3;
    double inv = x1 * a;
    inv += x2 * b;
    inv += x3 * c;
    inv = 0.5 / inv;
    double ux = s1 * a;
    ux += s2 * b;
    ux += s3 * c;
    ux *= inv;
    double uy = x3 - x2;       /* np.subtract(x3, x2, out=a) */
    uy *= s1;
    uy += s2 * (x1 - x3);      /* np.multiply(s2, np.subtract(x1, x3)) */
    uy += s3 * (x2 - x1);
    uy *= inv;
    double h = x1 - ux;
    h *= h;
    uy *= 2;
    uy = y1 - uy;
    uy *= y1;
    h += uy;
    /* sqrt(h): a negative h gives NaN (numpy's NaN and this one are both replaced by the
     * constant NAN below); passing NaN instead keeps the libm call that sets errno out */
    h = sqrt(pick(h >= 0, h, NAN));
    double r0 = ux - h;
    double r1 = ux + h;
    r1 = pick((r1 >= lo) & (r1 <= hi), r1, NAN);
    return pick((r0 >= lo) & (r0 <= hi), r0, r1);
}

#ifdef __SSE2__
/* The two roots of an element at once (lane 0 and lane 1), SSE2: the same operations
 * as circle_root lane by lane (IEEE 754 per lane: add, sub, mul, div, sqrt correctly
 * rounded; the picks are bit masks). */
static inline __m128d blend(__m128d mask, __m128d a, __m128d b)
{
    return _mm_or_pd(_mm_and_pd(mask, a), _mm_andnot_pd(mask, b));
}

static inline __m128d circle_root2(__m128d x1, __m128d x2, __m128d x3, __m128d y1,
                                   __m128d y2, __m128d y3, __m128d lo, __m128d hi)
{
    __m128d a = _mm_sub_pd(y2, y3), b = _mm_sub_pd(y3, y1), c = _mm_sub_pd(y1, y2);
    __m128d s1 = _mm_add_pd(_mm_mul_pd(x1, x1), _mm_mul_pd(y1, y1));
    __m128d s2 = _mm_add_pd(_mm_mul_pd(x2, x2), _mm_mul_pd(y2, y2));
    __m128d s3 = _mm_add_pd(_mm_mul_pd(x3, x3), _mm_mul_pd(y3, y3));
    __m128d inv = _mm_add_pd(_mm_add_pd(_mm_mul_pd(x1, a), _mm_mul_pd(x2, b)),
                             _mm_mul_pd(x3, c));
    inv = _mm_div_pd(_mm_set1_pd(0.5), inv);
    __m128d ux = _mm_add_pd(_mm_add_pd(_mm_mul_pd(s1, a), _mm_mul_pd(s2, b)),
                            _mm_mul_pd(s3, c));
    ux = _mm_mul_pd(ux, inv);
    __m128d uy = _mm_mul_pd(_mm_sub_pd(x3, x2), s1);
    uy = _mm_add_pd(uy, _mm_mul_pd(s2, _mm_sub_pd(x1, x3)));
    uy = _mm_add_pd(uy, _mm_mul_pd(s3, _mm_sub_pd(x2, x1)));
    uy = _mm_mul_pd(uy, inv);
    __m128d h = _mm_sub_pd(x1, ux);
    h = _mm_mul_pd(h, h);
    uy = _mm_mul_pd(uy, _mm_set1_pd(2.0));
    uy = _mm_sub_pd(y1, uy);
    uy = _mm_mul_pd(uy, y1);
    h = _mm_add_pd(h, uy);
    h = _mm_sqrt_pd(h);
    __m128d r0 = _mm_sub_pd(ux, h), r1 = _mm_add_pd(ux, h);
    r1 = blend(_mm_and_pd(_mm_cmpge_pd(r1, lo), _mm_cmple_pd(r1, hi)), r1,
               _mm_set1_pd(NAN));
    return blend(_mm_and_pd(_mm_cmpge_pd(r0, lo), _mm_cmple_pd(r0, hi)), r0, r1);
}
#endif

/* ---- argument helpers ---------------------------------------------------------- */

typedef struct {
    Py_buffer b[16];
    int n;
} buffers;

static void release(buffers *bs)
{
    for (int i = 0; i < bs->n; i++)
        PyBuffer_Release(&bs->b[i]);
    bs->n = 0;
}

/* Checks that buffer i of bs holds n items of size itemsize. */
static int sized(buffers *bs, int i, Py_ssize_t n, Py_ssize_t itemsize, const char *what)
{
    if (bs->b[i].len != n * itemsize) {
        PyErr_Format(PyExc_ValueError, "_cbands: %s has %zd bytes, not %zd", what,
                     bs->b[i].len, n * itemsize);
        return 0;
    }
    return 1;
}

static int parse_lattice(PyObject *o, lattice *f)
{
    return PyArg_ParseTuple(o, "ddddLL", &f->x0, &f->y0, &f->sx, &f->sy, &f->nx, &f->ny);
}

/* Checks the table widths and the lattice: query reads rank 0 of every row (a RowTable
 * is at least 1 wide), and the sizes rw K ny, cw K nx stay far from overflow. */
static int widths_ok(long long rw, long long cw, long long K, const lattice *f)
{
    const long long lim = (long long)1 << 20, big = (long long)1 << 40;
    if (rw < 1 || cw < 1 || rw > lim || cw > lim || K < 0 || K > big || f->nx < 0
        || f->ny < 0 || f->nx > big || f->ny > big || K * f->nx > big || K * f->ny > big) {
        PyErr_SetString(PyExc_ValueError, "_cbands: table widths or lattice out of range");
        return 0;
    }
    return 1;
}

/* Checks the band points: 0 <= k < K - 1, 0 <= R < ny, 0 <= C < nx (the tables are
 * read without further bounds checks). */
static int points_ok(const int64_t *k, const int64_t *R, const int64_t *C, Py_ssize_t n,
                     int64_t K, const lattice *f)
{
    int bad = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        bad |= k[i] < 0 || k[i] >= K - 1 || R[i] < 0 || R[i] >= f->ny || C[i] < 0 ||
               C[i] >= f->nx;
    if (bad)
        PyErr_SetString(PyExc_ValueError,
                        "_cbands: a band point off the planes or the lattice");
    return !bad;
}

/* ---- prepare -------------------------------------------------------------------- */

static PyObject *prepare(PyObject *self, PyObject *args)
{
    buffers bs = {.n = 0};
    PyObject *lat_o;
    long long rw, cw, K;
    /* 0 rows_pos, 1 cols_pos, 2 k, 3 lower, 4 R, 5 C, 6 d_in, 7 d_out, 8 flags */
    if (!PyArg_ParseTuple(args, "y*Ly*LLOy*y*y*y*w*w*w*", &bs.b[0], &rw, &bs.b[1], &cw, &K,
                          &lat_o, &bs.b[2], &bs.b[3], &bs.b[4], &bs.b[5], &bs.b[6],
                          &bs.b[7], &bs.b[8]))
        return NULL;
    bs.n = 9;
    lattice f;
    if (!parse_lattice(lat_o, &f)) {
        release(&bs);
        return NULL;
    }
    Py_ssize_t n = bs.b[2].len / 8;
    if (!widths_ok(rw, cw, K, &f) || !sized(&bs, 0, rw * K * f.ny, 8, "rows_pos") ||
        !sized(&bs, 1, cw * K * f.nx, 8, "cols_pos") || !sized(&bs, 3, n, 1, "lower") ||
        !sized(&bs, 4, n, 8, "R") || !sized(&bs, 5, n, 8, "C") ||
        !sized(&bs, 6, n, 8, "d_in") || !sized(&bs, 7, n, 8, "d_out") ||
        !sized(&bs, 8, n, 1, "flags")) {
        release(&bs);
        return NULL;
    }
    table rows = {bs.b[0].buf, rw, K * f.ny}, cols = {bs.b[1].buf, cw, K * f.nx};
    const int64_t *k = bs.b[2].buf, *R = bs.b[4].buf, *C = bs.b[5].buf;
    const uint8_t *lower = bs.b[3].buf;
    double *d_in = bs.b[6].buf, *d_out = bs.b[7].buf;
    uint8_t *flags = bs.b[8].buf;
    if (!points_ok(k, R, C, n, K, &f)) {
        release(&bs);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        double x = f.x0 + (double)C[i] * f.sx, y = f.y0 + (double)R[i] * f.sy;
        int64_t k_out = lower[i] ? k[i] + 1 : k[i], k_in = lower[i] ? k[i] : k[i] + 1;
        double d_ox = query(&rows, k_out * f.ny + R[i], x, NULL);
        double d_oy = query(&cols, k_out * f.nx + C[i], y, NULL);
        int row_axis = d_ox <= d_oy;
        double di = directional(&rows, &cols, &f, row_axis, k_in, R[i], C[i], x, y, NULL);
        double dout = row_axis ? d_ox : d_oy;
        d_in[i] = di;
        d_out[i] = dout;
        flags[i] = (uint8_t)(row_axis | ((isfinite(di) && isfinite(dout)) << 1));
    }
    Py_END_ALLOW_THREADS
    release(&bs);
    Py_RETURN_NONE;
}

/* ---- euclid --------------------------------------------------------------------- */

/* _euclid for one point: sqrt of the least squared distance to edges lo..hi-1.
 *   px = x - a0; py = y - a1; tt = px ab0 + py ab1 (tt = px * ab0; tt += py * ab1);
 *   tt /= l2; clip(tt, 0, 1); px -= tt ab0; px *= px; py -= tt ab1; py *= py;
 *   px += py; sqrt(min(px)) */
static inline double min_sq(const double *ex0, const double *ey0, const double *ex1,
                            const double *ey1, const double *l2, int64_t lo, int64_t hi,
                            double x, double y, int *any_nan)
{
    double best = INFINITY;
    int nan = 0;
    for (int64_t e = lo; e < hi; e++) {
        double a0 = ex0[e], a1 = ey0[e];
        double ab0 = ex1[e] - a0, ab1 = ey1[e] - a1;
        double px = x - a0, py = y - a1;
        double tt = px * ab0;
        tt += py * ab1;
        double l = l2[e];
        /* clip(tt / l, 0, 1) without the division where its outcome is known (l > 0
         * finite; the quotient is correctly rounded, hence monotone): tt <= 0 gives a
         * quotient <= 0 (or -0.0), clipped to 0.0; tt >= l one >= 1, clipped to 1.0. */
        if (tt <= 0 && l > 0 && l < INFINITY)
            tt = 0.0;
        else if (tt >= l && l > 0 && l < INFINITY)
            tt = 1.0;
        else
            tt = np_clip(tt / l, 0.0, 1.0);
        px -= tt * ab0;
        px *= px;
        py -= tt * ab1;
        py *= py;
        px += py;
        if (px < best)
            best = px;
        nan |= isnan(px);
    }
    *any_nan = nan;
    return best;
}

static inline double euclid1(const double *ex0, const double *ey0, const double *ex1,
                             const double *ey1, const double *l2, int64_t lo, int64_t hi,
                             double x, double y)
{
    int nan;
    double best = min_sq(ex0, ey0, ex1, ey1, l2, lo, hi, x, y, &nan);
    return nan ? NAN : sqrt(best);
}

#ifdef __SSE2__
/* min_sq two edges at a time (SSE2; the same operations lane by lane, the division
 * only when a lane needs it; the minimum is exact in any order). */
static inline double min_sq2(const double *ex0, const double *ey0, const double *ex1,
                             const double *ey1, const double *l2, int64_t lo, int64_t hi,
                             double x, double y, int *any_nan)
{
    __m128d X = _mm_set1_pd(x), Y = _mm_set1_pd(y), zero = _mm_setzero_pd(),
            one = _mm_set1_pd(1.0), inf = _mm_set1_pd(INFINITY);
    __m128d best = inf, nan = zero;
    int64_t e = lo;
    for (; e + 2 <= hi; e += 2) {
        __m128d a0 = _mm_loadu_pd(ex0 + e), a1 = _mm_loadu_pd(ey0 + e);
        __m128d ab0 = _mm_sub_pd(_mm_loadu_pd(ex1 + e), a0);
        __m128d ab1 = _mm_sub_pd(_mm_loadu_pd(ey1 + e), a1);
        __m128d px = _mm_sub_pd(X, a0), py = _mm_sub_pd(Y, a1);
        __m128d tt = _mm_add_pd(_mm_mul_pd(px, ab0), _mm_mul_pd(py, ab1));
        __m128d l = _mm_loadu_pd(l2 + e);
        __m128d lok = _mm_and_pd(_mm_cmpgt_pd(l, zero), _mm_cmplt_pd(l, inf));
        __m128d m0 = _mm_and_pd(_mm_cmple_pd(tt, zero), lok);
        __m128d m1 = _mm_andnot_pd(m0, _mm_and_pd(_mm_cmpge_pd(tt, l), lok));
        __m128d q = zero;
        if (_mm_movemask_pd(_mm_or_pd(m0, m1)) != 3) {
            q = _mm_div_pd(tt, l);
            /* np.clip(q, 0, 1): Max(q, 0) = isnan(q) || q > 0 ? q : 0, then Min(., 1) */
            q = blend(_mm_or_pd(_mm_cmpunord_pd(q, q), _mm_cmpgt_pd(q, zero)), q, zero);
            q = blend(_mm_or_pd(_mm_cmpunord_pd(q, q), _mm_cmplt_pd(q, one)), q, one);
        }
        tt = blend(m0, zero, blend(m1, one, q));
        px = _mm_sub_pd(px, _mm_mul_pd(tt, ab0));
        px = _mm_mul_pd(px, px);
        py = _mm_sub_pd(py, _mm_mul_pd(tt, ab1));
        py = _mm_mul_pd(py, py);
        px = _mm_add_pd(px, py);
        nan = _mm_or_pd(nan, _mm_cmpunord_pd(px, px));
        best = _mm_min_pd(px, best); /* px < best ? px : best (NaN: best; flagged) */
    }
    double b2[2];
    _mm_storeu_pd(b2, best);
    int tail_nan;
    double rest = min_sq(ex0, ey0, ex1, ey1, l2, e, hi, x, y, &tail_nan);
    *any_nan = _mm_movemask_pd(nan) != 0 || tail_nan;
    double m = b2[0] < b2[1] ? b2[0] : b2[1];
    return m < rest ? m : rest;
}

static inline double euclid2(const double *ex0, const double *ey0, const double *ex1,
                             const double *ey1, const double *l2, int64_t lo, int64_t hi,
                             double x, double y)
{
    int nan;
    double best = min_sq2(ex0, ey0, ex1, ey1, l2, lo, hi, x, y, &nan);
    return nan ? NAN : sqrt(best);
}
#endif

/* Edges in blocks of EB (in plane order; a plane's first block starts at its first
 * edge) with their bounding boxes, for the pruned minimum (euclid_pruned). */
enum { EB = 8 };

typedef struct {
    double x0, x1, y0, y1;
} box;

/* The least squared distance of min_sq (min_sq2: simd) over edges lo..hi-1 of a plane
 * whose edge coordinates are finite and below 1e100 in magnitude (as the point's), so
 * that no value is NaN; blocks whose box is provably farther than the least distance
 * found are skipped (the nearest box first).  Skipping is exact: the minimum is exact in
 * any order, and a skipped edge's computed value exceeds it.  Why: for a point P, the
 * computed value of an edge is the squared distance from P to a + t (b - a) (t in
 * [0, 1] after the clip, b - a rounded), a point within 3 u s of the edge (u = 2^-53,
 * s the largest magnitude of the point's and the plane's coordinates), formed with an
 * absolute error below 8 u s in each component and a relative one of 3 u in the squares
 * and their sum: it is at least (L - 11 u s)^2 (1 - 3 u), L the exact distance from P
 * to the block's box.  The box distance is computed to within a few u L, and a block is
 * skipped only when (Lc - tol)^2 (1 - 1e-12) > best with tol = 1e-9 (1 + s), margins
 * far larger than those errors. */
static double euclid_pruned(const double *ex0, const double *ey0, const double *ex1,
                            const double *ey1, const double *l2, int64_t lo, int64_t hi,
                            const box *bx, double *lb, double s, double x, double y,
                            int simd)
{
    int64_t nb = (hi - lo + EB - 1) / EB, first = 0;
    double tol = 1e-9 * (1.0 + s);
    for (int64_t c = 0; c < nb; c++) {
        const box *b = bx + c;
        double dx = b->x0 - x, dy = b->y0 - y, ex = x - b->x1, ey = y - b->y1;
        dx = dx > ex ? dx : ex;
        dy = dy > ey ? dy : ey;
        dx = dx > 0.0 ? dx : 0.0;
        dy = dy > 0.0 ? dy : 0.0;
        double L = sqrt(dx * dx + dy * dy);
        /* the squared lower bound of every computed value of the block (-1: none) */
        lb[c] = L > tol ? (L - tol) * (L - tol) * (1.0 - 1e-12) : -1.0;
        if (lb[c] < lb[first])
            first = c;
    }
    double best = INFINITY;
    for (int64_t t = -1; t < nb; t++) {
        int64_t c = t < 0 ? first : t;
        if ((t >= 0 && c == first) || lb[c] > best)
            continue;
        int64_t a = lo + c * EB, e = a + EB < hi ? a + EB : hi;
        int nan;
        double v;
#ifdef __SSE2__
        if (simd)
            v = min_sq2(ex0, ey0, ex1, ey1, l2, a, e, x, y, &nan);
        else
#endif
            v = min_sq(ex0, ey0, ex1, ey1, l2, a, e, x, y, &nan);
        best = v < best ? v : best;
    }
    return sqrt(best);
}

static PyObject *euclid(PyObject *self, PyObject *args)
{
    buffers bs = {.n = 0};
    PyObject *lat_o;
    /* 0-3 edges x0 y0 x1 y1, 4 l2, 5 pstart, 6 k, 7 lower, 8 R, 9 C, 10 flags,
     * 11 d_in, 12 d_out, 13 de */
    int simd = 1;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*Oy*y*y*y*y*w*w*w*|p", &bs.b[0], &bs.b[1],
                          &bs.b[2], &bs.b[3], &bs.b[4], &bs.b[5], &lat_o, &bs.b[6],
                          &bs.b[7], &bs.b[8], &bs.b[9], &bs.b[10], &bs.b[11], &bs.b[12],
                          &bs.b[13], &simd))
        return NULL;
    bs.n = 14;
    lattice f;
    if (!parse_lattice(lat_o, &f)) {
        release(&bs);
        return NULL;
    }
    Py_ssize_t ne = bs.b[0].len / 8, K = bs.b[5].len / 8 - 1, n = bs.b[6].len / 8;
    if (!sized(&bs, 1, ne, 8, "y0") || !sized(&bs, 2, ne, 8, "x1") ||
        !sized(&bs, 3, ne, 8, "y1") || !sized(&bs, 4, ne, 8, "l2") || K < 1 ||
        !sized(&bs, 7, n, 1, "lower") || !sized(&bs, 8, n, 8, "R") ||
        !sized(&bs, 9, n, 8, "C") || !sized(&bs, 10, n, 1, "flags") ||
        !sized(&bs, 11, n, 8, "d_in") || !sized(&bs, 12, n, 8, "d_out")) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "_cbands.euclid: no planes");
        release(&bs);
        return NULL;
    }
    const double *ex0 = bs.b[0].buf, *ey0 = bs.b[1].buf, *ex1 = bs.b[2].buf,
                 *ey1 = bs.b[3].buf, *l2 = bs.b[4].buf;
    const int64_t *pstart = bs.b[5].buf, *k = bs.b[6].buf, *R = bs.b[8].buf,
                  *C = bs.b[9].buf;
    const uint8_t *lower = bs.b[7].buf, *flags = bs.b[10].buf;
    double *d_in = bs.b[11].buf, *d_out = bs.b[12].buf, *de = bs.b[13].buf;
    Py_ssize_t n_e = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        n_e += !(flags[i] & 2);
    int bad = !sized(&bs, 13, 2 * n_e, 8, "de") || pstart[0] != 0 || pstart[K] != ne;
    for (Py_ssize_t p = 0; p < K && !bad; p++)
        bad = pstart[p + 1] < pstart[p];
    for (Py_ssize_t i = 0; i < n && !bad; i++)
        bad = k[i] < 0 || k[i] + 1 > K - 1;
    if (bad) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "_cbands.euclid: bad pstart or k");
        release(&bs);
        return NULL;
    }
    /* the blocks of EB edges of each plane (plane p's from bstart[p]) and their boxes;
     * per plane the largest coordinate magnitude, or -1 when a coordinate or squared
     * length is not finite or a coordinate reaches 1e100 (no pruning there) */
    Py_ssize_t nbox = 0, maxb = 0;
    for (Py_ssize_t p = 0; p < K; p++) {
        Py_ssize_t b = (pstart[p + 1] - pstart[p] + EB - 1) / EB;
        nbox += b;
        maxb = b > maxb ? b : maxb;
    }
    box *bx = PyMem_Malloc((size_t)(nbox ? nbox : 1) * sizeof(box));
    double *lb = PyMem_Malloc((size_t)(maxb ? maxb : 1) * sizeof(double));
    double *smax = PyMem_Malloc((size_t)K * sizeof(double));
    int64_t *bstart = PyMem_Malloc((size_t)K * sizeof(int64_t));
    if (!bx || !lb || !smax || !bstart) {
        PyMem_Free(bx);
        PyMem_Free(lb);
        PyMem_Free(smax);
        PyMem_Free(bstart);
        release(&bs);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t nb0 = 0;
    for (Py_ssize_t p = 0; p < K; p++) {
        double sm = 0.0;
        int fin = 1;
        bstart[p] = nb0;
        for (int64_t a = pstart[p]; a < pstart[p + 1]; a += EB, nb0++) {
            int64_t e1 = a + EB < pstart[p + 1] ? a + EB : pstart[p + 1];
            box b = {INFINITY, -INFINITY, INFINITY, -INFINITY};
            for (int64_t e = a; e < e1; e++) {
                double v[4] = {ex0[e], ex1[e], ey0[e], ey1[e]};
                for (int q = 0; q < 4; q++) {
                    double av = fabs(v[q]);
                    fin &= av < 1e100; /* (false for NaN and inf) */
                    sm = av > sm ? av : sm;
                }
                fin &= l2[e] > 0 && l2[e] < INFINITY;
                b.x0 = v[0] < b.x0 ? v[0] : b.x0;
                b.x0 = v[1] < b.x0 ? v[1] : b.x0;
                b.x1 = v[0] > b.x1 ? v[0] : b.x1;
                b.x1 = v[1] > b.x1 ? v[1] : b.x1;
                b.y0 = v[2] < b.y0 ? v[2] : b.y0;
                b.y0 = v[3] < b.y0 ? v[3] : b.y0;
                b.y1 = v[2] > b.y1 ? v[2] : b.y1;
                b.y1 = v[3] > b.y1 ? v[3] : b.y1;
            }
            bx[nb0] = b;
        }
        smax[p] = fin ? sm : -1.0;
    }
    Py_ssize_t j = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (flags[i] & 2)
            continue;
        double x = f.x0 + (double)C[i] * f.sx, y = f.y0 + (double)R[i] * f.sy;
        double s = fabs(x) > fabs(y) ? fabs(x) : fabs(y);
        int pt_ok = s < 1e100; /* (false for NaN) */
        int64_t kk = k[i];
        int64_t k_out = lower[i] ? kk + 1 : kk, k_in = lower[i] ? kk : kk + 1;
        int64_t km = kk - 1 < 0 ? 0 : kk - 1, kp = kk + 2 > K - 1 ? K - 1 : kk + 2;
        int64_t planes[4] = {k_in, k_out, km, kp};
        double d4[4];
        for (int t = 0; t < 4; t++) {
            int64_t pl = planes[t], lo = pstart[pl], hi = pstart[pl + 1];
            int u;
            for (u = 0; u < t && planes[u] != pl; u++)
                ;
            if (u < t) { /* (the same plane again: the same value) */
                d4[t] = d4[u];
                continue;
            }
            if (pt_ok && smax[pl] >= 0) {
                d4[t] = euclid_pruned(ex0, ey0, ex1, ey1, l2, lo, hi, bx + bstart[pl], lb,
                                      smax[pl] > s ? smax[pl] : s, x, y, simd);
                continue;
            }
#ifdef __SSE2__
            if (simd) {
                d4[t] = euclid2(ex0, ey0, ex1, ey1, l2, lo, hi, x, y);
                continue;
            }
#endif
            d4[t] = euclid1(ex0, ey0, ex1, ey1, l2, lo, hi, x, y);
        }
        d_in[i] = d4[0];
        d_out[i] = d4[1];
        de[j] = d4[2];
        de[n_e + j] = d4[3];
        j++;
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(bx);
    PyMem_Free(lb);
    PyMem_Free(smax);
    PyMem_Free(bstart);
    release(&bs);
    Py_RETURN_NONE;
}

/* ---- finish --------------------------------------------------------------------- */

static PyObject *finish(PyObject *self, PyObject *args)
{
    buffers bs = {.n = 0};
    PyObject *lat_o;
    long long rw, cw, K;
    /* 0 rows_pos, 1 cols_pos, 2 z, 3 linked, 4 k, 5 lower, 6 R, 7 C, 8 d_in, 9 d_out,
     * 10 flags, 11 de, 12 out */
    int simd = 1;
    if (!PyArg_ParseTuple(args, "y*Ly*LLOy*y*y*y*y*y*y*y*y*y*w*|p", &bs.b[0], &rw, &bs.b[1],
                          &cw, &K, &lat_o, &bs.b[2], &bs.b[3], &bs.b[4], &bs.b[5],
                          &bs.b[6], &bs.b[7], &bs.b[8], &bs.b[9], &bs.b[10], &bs.b[11],
                          &bs.b[12], &simd))
        return NULL;
    bs.n = 13;
    lattice f;
    if (!parse_lattice(lat_o, &f)) {
        release(&bs);
        return NULL;
    }
    Py_ssize_t n = bs.b[4].len / 8, n_e = bs.b[11].len / 16;
    if (!widths_ok(rw, cw, K, &f) || !sized(&bs, 0, rw * K * f.ny, 8, "rows_pos") ||
        !sized(&bs, 1, cw * K * f.nx, 8, "cols_pos") || !sized(&bs, 2, K, 8, "z") ||
        !sized(&bs, 3, K + 1, 1, "linked") || !sized(&bs, 5, n, 1, "lower") ||
        !sized(&bs, 6, n, 8, "R") || !sized(&bs, 7, n, 8, "C") ||
        !sized(&bs, 8, n, 8, "d_in") || !sized(&bs, 9, n, 8, "d_out") ||
        !sized(&bs, 10, n, 1, "flags") || !sized(&bs, 11, 2 * n_e, 8, "de") ||
        !sized(&bs, 12, n, 8, "out")) {
        release(&bs);
        return NULL;
    }
    table rows = {bs.b[0].buf, rw, K * f.ny}, cols = {bs.b[1].buf, cw, K * f.nx};
    const double *z = bs.b[2].buf, *d_in = bs.b[8].buf, *d_out = bs.b[9].buf,
                 *de = bs.b[11].buf;
    const uint8_t *linked = bs.b[3].buf, *lower = bs.b[5].buf, *flags = bs.b[10].buf;
    const int64_t *k = bs.b[4].buf, *R = bs.b[6].buf, *C = bs.b[7].buf;
    double *out = bs.b[12].buf;
    if (!points_ok(k, R, C, n, K, &f)) {
        release(&bs);
        return NULL;
    }
    Py_ssize_t j = 0, n_dir = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        n_dir += (flags[i] & 2) != 0;
    if (n - n_dir != n_e) {
        PyErr_SetString(PyExc_ValueError, "_cbands.finish: de does not match flags");
        release(&bs);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    /* In batches of FB points: the inputs of the roots, the roots (a short loop whose
     * divisions and square roots of successive points overlap), the result. */
    enum { FB = 64 };
    double b_z1[FB], b_z2[FB], b_p1[FB], b_p2[FB], b_pm[FB], b_pq[FB], b_um[FB], b_uq[FB],
        b_rm[FB], b_rq[FB];
    int b_okm[FB], b_okq[FB];
    for (Py_ssize_t i0 = 0; i0 < n; i0 += FB) {
        int nb = n - i0 < FB ? (int)(n - i0) : FB;
        for (int t = 0; t < nb; t++) {
            Py_ssize_t i = i0 + t;
            int low = lower[i] != 0, row_axis = flags[i] & 1, dir = (flags[i] & 2) != 0;
            double x = f.x0 + (double)C[i] * f.sx, y = f.y0 + (double)R[i] * f.sy;
            double z1 = z[k[i]];
            b_z1[t] = z1;
            b_z2[t] = z[k[i] + 1];
            b_p1[t] = low ? -d_in[i] : d_out[i]; /* plane k: inside when lower */
            b_p2[t] = low ? d_out[i] : -d_in[i];
            /* planes k-1 and k+2 (clipped; used where they exist and are linked) */
            int64_t km = k[i] - 1, kq = k[i] + 2;
            b_okm[t] = km >= 0 && linked[k[i]];
            b_okq[t] = kq <= K - 1 && linked[kq];
            km = km < 0 ? 0 : km;
            kq = kq > K - 1 ? K - 1 : kq;
            /* phi: the signed distance on those planes (negative inside) */
            int ins_m, ins_q;
            double d_m, d_q;
            if (dir) {
                d_m = directional(&rows, &cols, &f, row_axis, km, R[i], C[i], x, y, &ins_m);
                d_q = directional(&rows, &cols, &f, row_axis, kq, R[i], C[i], x, y, &ins_q);
            } else {
                d_m = de[j];
                d_q = de[n_e + j];
                query(&rows, km * f.ny + R[i], x, &ins_m);
                query(&rows, kq * f.ny + R[i], x, &ins_q);
                j++;
            }
            b_pm[t] = pick(ins_m, -d_m, d_m);
            b_pq[t] = pick(ins_q, -d_q, d_q);
            b_um[t] = z[km] - z1;
            b_uq[t] = z[kq] - z1;
        }
        /* both roots everywhere (numpy computes them everywhere too) */
#ifdef __SSE2__
        if (simd) {
            for (int t = 0; t < nb; t++) {
                double span = b_z2[t] - b_z1[t], r2[2];
                /* lane 0: planes k-1, k, k+1; lane 1: planes k, k+1, k+2 */
                __m128d x1 = _mm_set_pd(0.0, b_um[t]), x2 = _mm_set_pd(span, 0.0),
                        x3 = _mm_set_pd(b_uq[t], span), y1 = _mm_set_pd(b_p1[t], b_pm[t]),
                        y2 = _mm_set_pd(b_p2[t], b_p1[t]),
                        y3 = _mm_set_pd(b_pq[t], b_p2[t]);
                _mm_storeu_pd(r2, circle_root2(x1, x2, x3, y1, y2, y3, _mm_setzero_pd(),
                                               _mm_set1_pd(span)));
                b_rm[t] = r2[0];
                b_rq[t] = r2[1];
            }
        } else
#endif
        {
            for (int t = 0; t < nb; t++) {
                double span = b_z2[t] - b_z1[t];
                b_rm[t] = circle_root(b_um[t], 0.0, span, b_pm[t], b_p1[t], b_p2[t], 0.0,
                                      span);
                b_rq[t] = circle_root(0.0, span, b_uq[t], b_p1[t], b_p2[t], b_pq[t], 0.0,
                                      span);
            }
        }
        for (int t = 0; t < nb; t++) {
            double z1 = b_z1[t], z2 = b_z2[t], r_m = b_rm[t], r_q = b_rq[t];
            int ok_m = b_okm[t] & (r_m == r_m), ok_q = b_okq[t] & (r_q == r_q); /* a root */
            double total = 0.0, n_roots = 0.0;
            total += pick(ok_m, r_m, 0.0);
            n_roots += pick(ok_m, 1.0, 0.0);
            total += pick(ok_q, r_q, 0.0);
            n_roots += pick(ok_q, 1.0, 0.0);
            double o;
            /* z1 + total / max(n_roots, 1): n_roots is 1 or 2; x / 1 = x, x / 2 = x * 0.5
             * exactly (the same real value, rounded once) */
            if (n_roots > 0)
                o = z1 + (n_roots == 1.0 ? total : total * 0.5);
            else { /* the linear root */
                double p1 = b_p1[t], p2 = b_p2[t], span = z2 - z1;
                o = z1 + (p1 / (p1 == p2 ? 1.0 : p1 - p2)) * span;
            }
            out[i0 + t] = np_clip(o, z1, z2);
        }
    }
    Py_END_ALLOW_THREADS
    release(&bs);
    Py_RETURN_NONE;
}

/* ---- crossing table -------------------------------------------------------------- */

/* row_crossings for one edge (ax, ay) - (bx, by) and lattice rows y = y0 + j sy, j < ny:
 *   j0 = clip(ceil((min(ay, by) - y0) / sy), 0, ny) as int64, count = clip(ceil((max(ay,
 *   by) - y0) / sy), 0, ny) as int64 - j0; crossing of row j0 + t:
 *   ax + (y0 + j sy - ay) * (bx - ax) / (by - ay) */
static inline void edge_rows(double ay, double by, double y0, double sy, long long ny,
                             int64_t *j0, int64_t *count)
{
    double lo = (ay <= by || isnan(ay)) ? ay : by; /* np.minimum, np.maximum */
    double hi = (ay >= by || isnan(ay)) ? ay : by;
    double dny = (double)ny;
    *j0 = (int64_t)np_clip(ceil((lo - y0) / sy), 0.0, dny);
    *count = (int64_t)np_clip(ceil((hi - y0) / sy), 0.0, dny) - *j0;
}

/* crossing_table(ax, ay, bx, by, plane, (y0, sy, ny), n_planes, counts, pos) -> width
 *   RowTable(*row_crossings(..., sort=False), ...).pos of the edges (ax, ay)-(bx, by) on
 *   planes ``plane``: the crossings of lattice row plane * ny + j, ranked in the order
 *   row_crossings makes them (edge by edge, j ascending; RowTable sorts stably by row).
 *   counts: int64 scratch of n_planes * ny items.  With pos None: returns the width
 *   (max(most crossings of a row, 1)); else fills pos (width, n_planes * ny), which
 *   the caller filled with inf. */
static PyObject *crossing_table(PyObject *self, PyObject *args)
{
    buffers bs = {.n = 0};
    PyObject *pos_o;
    double y0, sy;
    long long ny, n_planes;
    /* 0 ax, 1 ay, 2 bx, 3 by, 4 plane, 5 counts */
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*(ddL)Lw*O", &bs.b[0], &bs.b[1], &bs.b[2],
                          &bs.b[3], &bs.b[4], &y0, &sy, &ny, &n_planes, &bs.b[5], &pos_o))
        return NULL;
    bs.n = 6;
    if (n_planes < 0 || ny < 0 || (ny > 0 && n_planes > ((long long)1 << 40) / ny)) {
        PyErr_SetString(PyExc_ValueError, "_cbands.crossing_table: rows out of range");
        release(&bs);
        return NULL;
    }
    Py_ssize_t ne = bs.b[0].len / 8, n_rows = (Py_ssize_t)(n_planes * ny);
    if (!sized(&bs, 1, ne, 8, "ay") || !sized(&bs, 2, ne, 8, "bx") ||
        !sized(&bs, 3, ne, 8, "by") || !sized(&bs, 4, ne, 8, "plane") ||
        !sized(&bs, 5, n_rows, 8, "counts")) {
        release(&bs);
        return NULL;
    }
    const double *ax = bs.b[0].buf, *ay = bs.b[1].buf, *bx = bs.b[2].buf, *by = bs.b[3].buf;
    const int64_t *plane = bs.b[4].buf;
    int64_t *counts = bs.b[5].buf;
    int bad = 0;
    for (Py_ssize_t e = 0; e < ne; e++) /* (raster has failed before on such edges) */
        bad |= plane[e] < 0 || plane[e] >= n_planes || !isfinite(ay[e]) || !isfinite(by[e]);
    if (bad || !(sy > 0) || !isfinite(sy) || !isfinite(y0) || ny < 0) { /* (no NaN cast) */
        PyErr_SetString(PyExc_ValueError,
                        "_cbands.crossing_table: a plane out of range or a coordinate "
                        "or the lattice not finite");
        release(&bs);
        return NULL;
    }
    memset(counts, 0, (size_t)n_rows * 8);
    if (pos_o == Py_None) { /* the width */
        int64_t width = 1;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t e = 0; e < ne; e++) {
            int64_t j0, count;
            edge_rows(ay[e], by[e], y0, sy, ny, &j0, &count);
            int64_t *c = counts + plane[e] * ny + j0;
            for (int64_t t = 0; t < count; t++)
                c[t]++;
        }
        for (Py_ssize_t r = 0; r < n_rows; r++)
            width = counts[r] > width ? counts[r] : width;
        Py_END_ALLOW_THREADS
        release(&bs);
        return PyLong_FromLongLong(width);
    }
    Py_buffer pb;
    if (PyObject_GetBuffer(pos_o, &pb, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        release(&bs);
        return NULL;
    }
    bs.b[bs.n++] = pb;
    if (n_rows == 0 ? pb.len != 0 : pb.len % (n_rows * 8) != 0) { /* (no % 0) */
        PyErr_SetString(PyExc_ValueError, "_cbands.crossing_table: pos is not (w, rows)");
        release(&bs);
        return NULL;
    }
    int64_t width = n_rows ? pb.len / (n_rows * 8) : 0;
    double *pos = pb.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t e = 0; e < ne && !bad; e++) {
        int64_t j0, count;
        edge_rows(ay[e], by[e], y0, sy, ny, &j0, &count);
        int64_t row = plane[e] * ny + j0;
        for (int64_t t = 0; t < count; t++, row++) {
            int64_t j = j0 + t;
            double xc = ax[e] + (y0 + (double)j * sy - ay[e]) * (bx[e] - ax[e]) /
                                    (by[e] - ay[e]); /* (a * b) / c, as numpy */
            if (counts[row] >= width) {
                bad = 1;
                break;
            }
            pos[counts[row]++ * n_rows + row] = xc;
        }
    }
    Py_END_ALLOW_THREADS
    release(&bs);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "_cbands.crossing_table: pos is too narrow");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"prepare", prepare, METH_VARARGS,
     "prepare(rows_pos, rows_w, cols_pos, cols_w, K, lat, k, lower, R, C, d_in, d_out, "
     "flags): scan-axis distances of band points."},
    {"euclid", euclid, METH_VARARGS,
     "euclid(x0, y0, x1, y1, l2, pstart, lat, k, lower, R, C, flags, d_in, d_out, de): "
     "Euclidean distances where a scan line misses the contours."},
    {"finish", finish, METH_VARARGS,
     "finish(rows_pos, rows_w, cols_pos, cols_w, K, lat, z, linked, k, lower, R, C, d_in, "
     "d_out, flags, de, out): z of the surface crossings."},
    {"crossing_table", crossing_table, METH_VARARGS,
     "crossing_table(ax, ay, bx, by, plane, (y0, sy, ny), n_planes, counts, pos): the "
     "width of RowTable.pos (pos None), or fill pos."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cbands",
                                    "Band-piece surface crossings (rtqa._native).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__cbands(void) { return PyModule_Create(&module); }
