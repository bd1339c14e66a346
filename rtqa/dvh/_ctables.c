/* The per-grid tables of the DVH engine: the compiled twins of
 * rtqa.dvh.tables._Tables._compute (through _voxel_mean_sd) and of _Tables.pairs_at for
 * windowed (large) grids (see rtqa/_native.py).
 *
 * pairs(flat, nz, ny, nx, f0, f1, j0, j1, i0, i1, out) -> True | None
 *   _Tables._compute(f0, f1, (j0, j1, i0, i1)): for every node of frames f0..f1-1, rows
 *   j0..j1-1, columns i0..i1-1 of the dose grid flat (float64, nz * ny * nx, C order)
 *   the (mean offset, sd) float32 pair of _voxel_mean_sd, written to out (float32
 *   pairs, i.e. complex64, flat (frame, row, column)). Each node's pair is computed from
 *   its 3 x 3 in-plane neighbourhood with the one-sided rules at the grid's edges, as
 *   _voxel_mean_sd on the window padded by one node (numpy) gives it: no window node
 *   depends on a padding node's edge rule (_Tables' docstring). One sweep over the rows
 *   of each frame, three rows of x second differences kept.
 * blocks(g, nxy, nx, nz, block, j0, j1, i0, i1, mask) -> True | None
 *   Flags in mask (uint8, one per block of frames, zero on entry) the blocks that
 *   pairs_at(g) reads: those of the frames f and f + 1 of every flat node index g
 *   (only the frames are checked here, the window by gather).
 * pairs_spans(flat, nz, ny, nx, f, j0, j1, lo, hi, i0w, wlen, out) -> True | None
 *   The pairs of frame f at rows j0..j1-1, row j at window columns lo[j - j0]..hi[j -
 *   j0]-1 (int32; grid columns i0w + those) only, into out (complex64, (j1 - j0) x wlen;
 *   other entries untouched): the values of pairs, node by node. The same function is
 *   exported to rtqa.dvh._cdeposit as the capsule _frames (its frame ring).
 * row_spans(mask, K, NJ, NI, j0, j1, i0, i1, lo, hi) -> None
 *   The first and one past the last set column (less i0) of every row j0..j1-1 of every
 *   plane of a uint8 mask within columns i0..i1-1 (0, 0: none).
 * node_spans(f, j, i, nz, nj, lo, hi) -> True | None
 *   Widens spans (int32, nz x nj) of frames f and f + 1, rows j to hold columns i.
 * gather(g, nxy, nx, nz, block, j0, j1, i0, i1, lo, tabs, out_a, out_b) -> True | None
 *   pairs_at: out_a[k], out_b[k] (complex64) = the pairs of g[k] and g[k] + nxy from
 *   the blocks tabs[b - lo] (a tuple of complex64 arrays, each flat (frame in block,
 *   window row, column); None for a block not read). g is int64 in both.
 *
 * None: an input the numpy code would treat otherwise (a grid narrower than two nodes; a
 * node outside the grid, the window or the last frame, a block missing: the numpy code
 * raises or reads a wrapped index there), or a NaN in a pair (a NaN or infinite dose:
 * which NaN numpy returns is not reproduced); nothing is written that the caller keeps,
 * it runs the numpy code.
 *
 * Identical results: every value is the same IEEE 754 operation on the same operands,
 * in the same order, as _voxel_mean_sd's numpy arithmetic: the second differences of
 * the dose in float64 rounded once to float32 (numpy's float64 subtract into a float32
 * output), the rest in float (numpy float32 arrays and float32 scalars; the constants are
 * the float32 roundings of the same float64 values), compiled without contraction or
 * fast-math. The variance adds, per node, gl^2, gr^2 and 1.2 gl gr along x, then along
 * y, in numpy's order; where numpy adds no term (a grid edge, a row end where its flat
 * difference is set to 0) the term added here is +0.0 or -0.0, which leaves the sum
 * unchanged (it starts at +0.0 and, in round-to-nearest, is never -0.0). np.maximum(v,
 * 0) keeps v unless v < 0 (a NaN is refused: NaN propagates through every operation to
 * the pairs, which are checked), sqrtf is correctly rounded as np.sqrt. The row loops
 * are element-wise; vectorised, each element still gets the same operations. The gather
 * copies table entries (integer index arithmetic only).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* The row loops below are element-wise (no sum across elements): vectorising them
 * keeps every value (the same IEEE operations per element), and sqrtf need not set errno
 * (its argument is never negative here). */
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

/* v = sqrtf(v) over a row (v >= 0 or NaN): by SSE four at a time where compiled in (the
 * compiler keeps sqrtf scalar, for errno): correctly rounded, the same values. */
static inline void sqrt_row(float *v, Py_ssize_t n)
{
    Py_ssize_t c = 0;
#ifdef __SSE2__
    for (; c + 4 <= n; c += 4)
        _mm_storeu_ps(v + c, _mm_sqrt_ps(_mm_loadu_ps(v + c)));
#endif
    for (; c < n; c++)
        v[c] = sqrtf(v[c]);
}

/* dx2 (second difference along x, float64 rounded to float32) and the x-averaged profile
 * dx2 / 8 + dose (float32) of columns i0..i1-1 of one dose row. */
VECTOR_WIDE static void row_x(const double *d, Py_ssize_t nx, Py_ssize_t i0, Py_ssize_t i1,
                        float *dx2, float *py)
{
    const float eighth = (float)0.125;
    Py_ssize_t lo = i0 > 1 ? i0 : 1, hi = i1 < nx - 1 ? i1 : nx - 1;
    for (Py_ssize_t i = lo; i < hi; i++)
        dx2[i - i0] = (float)((d[i + 1] - d[i]) - (d[i] - d[i - 1]));
    if (i0 == 0)
        dx2[0] = (float)(d[1] - d[0]);
    if (i1 == nx)
        dx2[nx - 1 - i0] = (float)(-(d[nx - 1] - d[nx - 2]));
    for (Py_ssize_t i = i0; i < i1; i++)
        py[i - i0] = dx2[i - i0] * eighth + (float)d[i];
}

/* One output row: its x parts (off, x variance) at columns i0..i1-1 from dy2 and px
 * (columns ia..), the y variance from the x-averaged profiles of rows j-1, j, j+1 (pym,
 * pyp NULL at the grid's edge rows), into out (float32 pairs); 0 when a value is NaN. */
VECTOR_WIDE static int row_pairs(const float *dy2, const float *px, const float *dx2c,
                             const float *pym, const float *pyc, const float *pyp,
                             Py_ssize_t nx, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t ia,
                             float *offr, float *vr, float *out)
{
    const float eighth = (float)0.125, sixtyfourth = (float)(1.0 / 64.0);
    const float c12 = (float)1.2, c5 = (float)(5.0 / 192.0);
    Py_ssize_t w = i1 - i0;
    Py_ssize_t lo = i0 > 1 ? i0 : 1, hi = i1 < nx - 1 ? i1 : nx - 1;
    for (Py_ssize_t i = lo; i < hi; i++) {
        Py_ssize_t k = i - ia, c = i - i0;
        float off = (dy2[k + 1] - dy2[k]) - (dy2[k] - dy2[k - 1]);
        off = off * sixtyfourth;
        float t = dx2c[c] + dy2[k];
        t = t * eighth;
        offr[c] = off + t;
        float gl = px[k] - px[k - 1], gr = px[k + 1] - px[k];
        float v = 0.0f;
        v = v + gl * gl;
        v = v + gr * gr;
        vr[c] = v + (gl * gr) * c12;
    }
    for (int e = 0; e < 2; e++) { /* the grid's edge columns (one-sided rules) */
        Py_ssize_t i = e ? nx - 1 : 0;
        if (i < i0 || i >= i1)
            continue;
        Py_ssize_t k = i - ia, c = i - i0;
        float off = e ? -(dy2[k] - dy2[k - 1]) : dy2[k + 1] - dy2[k];
        off = off * sixtyfourth;
        float t = dx2c[c] + dy2[k];
        t = t * eighth;
        offr[c] = off + t;
        float gl = e ? px[k] - px[k - 1] : 0.0f, gr = e ? 0.0f : px[k + 1] - px[k];
        float v = 0.0f;
        v = v + gl * gl;
        v = v + gr * gr;
        vr[c] = v + (gl * gr) * c12;
    }
    if (pym && pyp) {
        for (Py_ssize_t c = 0; c < w; c++) {
            float gl = pyc[c] - pym[c], gr = pyp[c] - pyc[c], v = vr[c];
            v = v + gl * gl;
            v = v + gr * gr;
            vr[c] = v + (gl * gr) * c12;
        }
    } else {
        for (Py_ssize_t c = 0; c < w; c++) {
            float gl = pym ? pyc[c] - pym[c] : 0.0f, gr = pyp ? pyp[c] - pyc[c] : 0.0f;
            float v = vr[c];
            v = v + gl * gl;
            v = v + gr * gr;
            vr[c] = v + (gl * gr) * c12;
        }
    }
    for (Py_ssize_t c = 0; c < w; c++) {
        float v = vr[c] * c5;
        vr[c] = v < 0.0f ? 0.0f : v;
    }
    sqrt_row(vr, w);
    int nan = 0;
    for (Py_ssize_t c = 0; c < w; c++) {
        out[2 * c] = offr[c];
        out[2 * c + 1] = vr[c];
        nan |= (offr[c] != offr[c]) | (vr[c] != vr[c]);
    }
    return !nan;
}

/* The y second difference and the y-averaged profile dy2 / 8 + dose of row j over
 * columns ia..ib-1 (rows dm, dc, dp: j-1, j, j+1, clamped at the grid's edges). */
VECTOR_WIDE static void row_y(const double *dm, const double *dc, const double *dp, Py_ssize_t j,
                         Py_ssize_t ny, Py_ssize_t ia, Py_ssize_t ib, float *dy2, float *px)
{
    const float eighth = (float)0.125;
    Py_ssize_t n = ib - ia;
    dm += ia;
    dc += ia;
    dp += ia;
    if (j == 0)
        for (Py_ssize_t i = 0; i < n; i++)
            dy2[i] = (float)(dp[i] - dc[i]);
    else if (j == ny - 1)
        for (Py_ssize_t i = 0; i < n; i++)
            dy2[i] = (float)(-(dc[i] - dm[i]));
    else
        for (Py_ssize_t i = 0; i < n; i++)
            dy2[i] = (float)((dp[i] - dc[i]) - (dc[i] - dm[i]));
    for (Py_ssize_t i = 0; i < n; i++)
        px[i] = dy2[i] * eighth + (float)dc[i];
}

/* The pairs of one frame d (ny * nx) over the window into out (float32 pairs). Scratch:
 * 8 rows of width i1 - i0 and 2 of width i1 - i0 + 2. */
static int frame_pairs(const double *d, Py_ssize_t ny, Py_ssize_t nx, Py_ssize_t j0,
                       Py_ssize_t j1, Py_ssize_t i0, Py_ssize_t i1, float *out, float *scr)
{
    Py_ssize_t w = i1 - i0;
    Py_ssize_t ia = i0 > 0 ? i0 - 1 : 0, ib = i1 < nx ? i1 + 1 : nx;
    float *dx2r[3], *pyr[3];
    Py_ssize_t tag[3] = {-1, -1, -1};
    for (int s = 0; s < 3; s++) {
        dx2r[s] = scr + 2 * s * w;
        pyr[s] = scr + (2 * s + 1) * w;
    }
    float *offr = scr + 6 * w, *vr = scr + 7 * w;
    float *dy2 = scr + 8 * w, *px = dy2 + (w + 2);
    for (Py_ssize_t j = j0; j < j1; j++) {
        Py_ssize_t ja = j > 0 ? j - 1 : j, jb = j < ny - 1 ? j + 1 : j;
        for (Py_ssize_t r = ja; r <= jb; r++)
            if (tag[r % 3] != r) {
                row_x(d + r * nx, nx, i0, i1, dx2r[r % 3], pyr[r % 3]);
                tag[r % 3] = r;
            }
        row_y(d + ja * nx, d + j * nx, d + jb * nx, j, ny, ia, ib, dy2, px);
        if (!row_pairs(dy2, px, dx2r[j % 3], j > 0 ? pyr[(j - 1) % 3] : NULL, pyr[j % 3],
                  j < ny - 1 ? pyr[(j + 1) % 3] : NULL, nx, i0, i1, ia, offr, vr,
                  out + 2 * (j - j0) * w))
            return 0;
    }
    return 1;
}

/* frame_pairs with a column span per row: the pairs of one frame d (ny * nx) at rows
 * j0..j1-1, row j only at window columns lo[j - j0]..hi[j - j0]-1 (grid columns i0w +
 * those; none when lo >= hi; all within 0..wlen-1), into out (row j - j0 of wlen pairs from column i0w; the
 * other entries untouched). A pair depends on its node's 3 x 3 neighbourhood only, so
 * each is the value frame_pairs gives (the x parts of a dose row are computed once, over
 * the union of the spans of the output rows that read it). Scratch: 10 wlen + 4 floats.
 * 0 when a pair is NaN. */
static int frame_pairs_spans(const double *d, Py_ssize_t ny, Py_ssize_t nx, Py_ssize_t j0,
                             Py_ssize_t j1, const int32_t *lo, const int32_t *hi,
                             Py_ssize_t i0w, Py_ssize_t wlen, float *out, float *scr)
{
    float *dx2r[3], *pyr[3];
    Py_ssize_t tag[3] = {-1, -1, -1}, ua[3] = {0, 0, 0};
    for (int s = 0; s < 3; s++) {
        dx2r[s] = scr + 2 * s * wlen;
        pyr[s] = scr + (2 * s + 1) * wlen;
    }
    float *offr = scr + 6 * wlen, *vr = scr + 7 * wlen;
    float *dy2 = scr + 8 * wlen, *px = dy2 + (wlen + 2);
    for (Py_ssize_t j = j0; j < j1; j++) {
        Py_ssize_t a = i0w + lo[j - j0], b = i0w + hi[j - j0];
        if (a >= b)
            continue;
        Py_ssize_t ja = j > 0 ? j - 1 : j, jb = j < ny - 1 ? j + 1 : j;
        for (Py_ssize_t r = ja; r <= jb; r++)
            if (tag[r % 3] != r) { /* over the spans of output rows r - 1..r + 1 */
                Py_ssize_t u0 = PY_SSIZE_T_MAX, u1 = -1;
                for (Py_ssize_t q = r - 1; q <= r + 1; q++) {
                    if (q < j0 || q >= j1 || lo[q - j0] >= hi[q - j0])
                        continue;
                    if (i0w + lo[q - j0] < u0)
                        u0 = i0w + lo[q - j0];
                    if (i0w + hi[q - j0] > u1)
                        u1 = i0w + hi[q - j0];
                }
                row_x(d + r * nx, nx, u0, u1, dx2r[r % 3], pyr[r % 3]);
                tag[r % 3] = r;
                ua[r % 3] = u0;
            }
        Py_ssize_t ia = a > 0 ? a - 1 : 0, ib = b < nx ? b + 1 : nx;
        row_y(d + ja * nx, d + j * nx, d + jb * nx, j, ny, ia, ib, dy2, px);
        int cm = (int)((j + 2) % 3), cc = (int)(j % 3), cp = (int)((j + 1) % 3);
        if (!row_pairs(dy2, px, dx2r[cc] + (a - ua[cc]),
                       j > 0 ? pyr[cm] + (a - ua[cm]) : NULL, pyr[cc] + (a - ua[cc]),
                       j < ny - 1 ? pyr[cp] + (a - ua[cp]) : NULL, nx, a, b, ia, offr, vr,
                       out + 2 * ((j - j0) * wlen + (a - i0w))))
            return 0;
    }
    return 1;
}

/* The spans lo, hi (int32, n each, window columns) are within [0, wlen], and the window
 * columns i0w..i0w+wlen-1 within the grid's nx. */
static int spans_ok(const int32_t *lo, const int32_t *hi, Py_ssize_t n, Py_ssize_t i0w,
                    Py_ssize_t wlen, Py_ssize_t nx)
{
    if (i0w < 0 || wlen < 1 || i0w + wlen > nx)
        return 0;
    for (Py_ssize_t k = 0; k < n; k++)
        if (lo[k] < hi[k] && (lo[k] < 0 || hi[k] > wlen))
            return 0;
    return 1;
}

/* The API other kernels call (rtqa.dvh._cdeposit: the whole-voxel elements compute their
 * frames' pairs as they go), as the capsule rtqa.dvh._ctables._frames. */
typedef struct {
    int (*frame_pairs_spans)(const double *, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                             const int32_t *, const int32_t *, Py_ssize_t, Py_ssize_t,
                             float *, float *);
    int (*spans_ok)(const int32_t *, const int32_t *, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                    Py_ssize_t);
} FramesAPI;

static FramesAPI frames_api = {frame_pairs_spans, spans_ok};

/* pairs_spans(flat, nz, ny, nx, f, j0, j1, lo, hi, i0w, wlen, out) -> True | None:
 * frame_pairs_spans of frame f, spans lo, hi (int32, window columns), into out (complex64,
 * (j1 - j0) * wlen). */
static PyObject *pairs_spans(PyObject *self, PyObject *args)
{
    Py_buffer flat, lo, hi, out;
    Py_ssize_t nz, ny, nx, f, j0, j1, i0w, wlen;
    if (!PyArg_ParseTuple(args, "y*nnnnnny*y*nnw*", &flat, &nz, &ny, &nx, &f, &j0, &j1, &lo,
                          &hi, &i0w, &wlen, &out))
        return NULL;
    int ok = nz >= 1 && ny >= 2 && nx >= 2 && 0 <= f && f < nz && 0 <= j0 && j0 < j1 &&
             j1 <= ny && flat.len == (Py_ssize_t)(nz * ny * nx * sizeof(double)) &&
             lo.len == (j1 - j0) * 4 && hi.len == (j1 - j0) * 4 &&
             out.len == (Py_ssize_t)((j1 - j0) * wlen * 2 * sizeof(float)) &&
             spans_ok(lo.buf, hi.buf, j1 - j0, i0w, wlen, nx);
    float *scr = NULL;
    if (ok) {
        scr = malloc((size_t)(10 * wlen + 4) * sizeof(float));
        ok = scr != NULL;
    }
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        ok = frame_pairs_spans((const double *)flat.buf + f * ny * nx, ny, nx, j0, j1, lo.buf,
                               hi.buf, i0w, wlen, out.buf, scr);
        Py_END_ALLOW_THREADS
    }
    free(scr);
    PyBuffer_Release(&flat);
    PyBuffer_Release(&lo);
    PyBuffer_Release(&hi);
    PyBuffer_Release(&out);
    if (!ok)
        Py_RETURN_NONE;
    Py_RETURN_TRUE;
}

/* node_spans(f, j, i, nz, nj, lo, hi) -> True | None: widens the spans lo, hi (int32, nz
 * x nj, flat) of rows j (window rows, int64) of frames f and f + 1 (int64) to hold
 * columns i (int64): lo = min(lo, i), hi = max(hi, i + 1); None (nothing written after
 * the first bad one) when an f, j is outside nz - 1, nj or an i outside int32. */
static PyObject *node_spans(PyObject *self, PyObject *args)
{
    Py_buffer fb, jb, ib, lo, hi;
    Py_ssize_t nz, nj;
    if (!PyArg_ParseTuple(args, "y*y*y*nnw*w*", &fb, &jb, &ib, &nz, &nj, &lo, &hi))
        return NULL;
    Py_ssize_t n = fb.len / 8;
    int ok = fb.len % 8 == 0 && jb.len == fb.len && ib.len == fb.len && nz >= 1 && nj >= 1 &&
             lo.len == nz * nj * 4 && hi.len == nz * nj * 4;
    if (ok) {
        const int64_t *f = fb.buf, *j = jb.buf, *i = ib.buf;
        int32_t *l = lo.buf, *h = hi.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t k = 0; k < n; k++) {
            if (f[k] < 0 || f[k] >= nz - 1 || j[k] < 0 || j[k] >= nj || i[k] < 0
                || i[k] >= INT32_MAX) {
                ok = 0;
                break;
            }
            int32_t c = (int32_t)i[k];
            Py_ssize_t a = f[k] * nj + j[k];
            for (int e = 0; e < 2; e++, a += nj) {
                if (c < l[a])
                    l[a] = c;
                if (c + 1 > h[a])
                    h[a] = c + 1;
            }
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&fb);
    PyBuffer_Release(&jb);
    PyBuffer_Release(&ib);
    PyBuffer_Release(&lo);
    PyBuffer_Release(&hi);
    if (!ok)
        Py_RETURN_NONE;
    Py_RETURN_TRUE;
}

/* row_spans(mask, K, NJ, NI, j0, j1, i0, i1, lo, hi) -> None: for every plane k of the
 * boolean mask (uint8 0/1, K x NJ x NI) and row j0..j1-1, the first and one past the last
 * column within i0..i1-1 that is set, less i0 (int32, K x (j1 - j0); 0, 0 for a row
 * with none). */
static PyObject *row_spans(PyObject *self, PyObject *args)
{
    Py_buffer mask, lo, hi;
    Py_ssize_t K, NJ, NI, j0, j1, i0, i1;
    if (!PyArg_ParseTuple(args, "y*nnnnnnnw*w*", &mask, &K, &NJ, &NI, &j0, &j1, &i0, &i1,
                          &lo, &hi))
        return NULL;
    Py_ssize_t nj = j1 - j0;
    int ok = K >= 0 && 0 <= j0 && j0 <= j1 && j1 <= NJ && 0 <= i0 && i0 <= i1 && i1 <= NI &&
             mask.len == K * NJ * NI && lo.len == K * nj * 4 && hi.len == K * nj * 4;
    if (ok) {
        const unsigned char *m = mask.buf;
        int32_t *l = lo.buf, *h = hi.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t k = 0; k < K; k++)
            for (Py_ssize_t j = j0; j < j1; j++) {
                const unsigned char *r = m + (k * NJ + j) * NI;
                Py_ssize_t a = i0, b = i1;
                while (a < i1 && !r[a])
                    a++;
                if (a < i1)
                    while (!r[b - 1])
                        b--;
                else
                    a = b = i0;
                l[k * nj + (j - j0)] = (int32_t)(a - i0);
                h[k * nj + (j - j0)] = (int32_t)(b - i0);
            }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&mask);
    PyBuffer_Release(&lo);
    PyBuffer_Release(&hi);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "row_spans: bad shapes");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *pairs(PyObject *self, PyObject *args)
{
    Py_buffer flat, out;
    Py_ssize_t nz, ny, nx, f0, f1, j0, j1, i0, i1;
    if (!PyArg_ParseTuple(args, "y*nnnnnnnnnw*", &flat, &nz, &ny, &nx, &f0, &f1, &j0, &j1,
                          &i0, &i1, &out))
        return NULL;
    int ok = nz >= 1 && ny >= 2 && nx >= 2 && 0 <= f0 && f0 <= f1 && f1 <= nz && 0 <= j0 &&
             j0 < j1 && j1 <= ny && 0 <= i0 && i0 < i1 && i1 <= nx &&
             flat.len == (Py_ssize_t)(nz * ny * nx * sizeof(double)) &&
             out.len == (Py_ssize_t)((f1 - f0) * (j1 - j0) * (i1 - i0) * 2 * sizeof(float));
    float *scr = NULL;
    if (ok) {
        scr = malloc((size_t)(10 * (i1 - i0) + 4) * sizeof(float));
        ok = scr != NULL;
    }
    if (ok) {
        const double *d = flat.buf;
        float *o = out.buf;
        Py_ssize_t per = (j1 - j0) * (i1 - i0) * 2;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t f = f0; f < f1 && ok; f++)
            ok = frame_pairs(d + f * ny * nx, ny, nx, j0, j1, i0, i1, o + (f - f0) * per,
                             scr);
        Py_END_ALLOW_THREADS
    }
    free(scr);
    PyBuffer_Release(&flat);
    PyBuffer_Release(&out);
    if (!ok)
        Py_RETURN_NONE;
    Py_RETURN_TRUE;
}

/* x // d for 0 <= x < 2^52 and d >= 1, by the reciprocal, corrected to the exact
 * quotient (an integer division per value would dominate the gather). */
static inline int64_t quot(int64_t x, int64_t d, double inv)
{
    int64_t q = (int64_t)((double)x * inv);
    while (q * d > x)
        q--;
    while ((q + 1) * d <= x)
        q++;
    return q;
}

/* Frame f and in-window in-plane index of flat node indices; 0 when outside the grid's
 * nodes below the last frame or the window's rows j0..j1-1 and columns i0..i1-1. The
 * frame and row of the previous index are kept: indices in frame order (whole-voxel
 * elements) mostly need no division. */
typedef struct {
    int64_t nxy, nx, nz, j0, j1, i0, i1;
    double inv_nxy, inv_nx;
    int64_t f, fbase, j, jbase; /* last frame (f * nxy) and row (j * nx, in the frame) */
} Where;

static void where_init(Where *w, int64_t nxy, int64_t nx, int64_t nz, int64_t j0,
                       int64_t j1, int64_t i0, int64_t i1)
{
    Where v = {nxy, nx, nz, j0, j1, i0, i1, 1.0 / (double)nxy, 1.0 / (double)nx,
               -1, -nxy - 1, -1, -nx - 1};
    *w = v;
}

static inline int where(Where *w, int64_t x, int64_t *f, int64_t *loc)
{
    if (x < 0 || x >= (w->nz - 1) * w->nxy)
        return 0;
    int64_t rem = x - w->fbase;
    if (rem < 0 || rem >= w->nxy) {
        w->f = quot(x, w->nxy, w->inv_nxy);
        w->fbase = w->f * w->nxy;
        rem = x - w->fbase;
    }
    int64_t i = rem - w->jbase;
    if (i < 0 || i >= w->nx) {
        w->j = quot(rem, w->nx, w->inv_nx);
        w->jbase = w->j * w->nx;
        i = rem - w->jbase;
    }
    int64_t j = w->j;
    if (j < w->j0 || j >= w->j1 || i < w->i0 || i >= w->i1)
        return 0;
    *f = w->f;
    *loc = (j - w->j0) * (w->i1 - w->i0) + (i - w->i0);
    return 1;
}

static PyObject *blocks(PyObject *self, PyObject *args)
{
    Py_buffer g, mask;
    Py_ssize_t nxy, nx, nz, block, j0, j1, i0, i1;
    if (!PyArg_ParseTuple(args, "y*nnnnnnnnw*", &g, &nxy, &nx, &nz, &block, &j0, &j1, &i0,
                          &i1, &mask))
        return NULL;
    Py_ssize_t nb = block >= 1 ? (nz + block - 1) / block : 0;
    int ok = nx >= 1 && nxy >= nx && nz >= 2 && block >= 1 && g.len % 8 == 0 &&
             mask.len == nb && nxy * nz < ((Py_ssize_t)1 << 52);
    if (ok) {
        Where w;
        where_init(&w, nxy, nx, nz, j0, j1, i0, i1);
        const int64_t *x = g.buf;
        unsigned char *m = mask.buf;
        Py_ssize_t n = g.len / 8;
        double inv_b = 1.0 / (double)block;
        int64_t last = -1;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t k = 0; k < n; k++) { /* (frames only: gather checks the rest) */
            int64_t xk = x[k], rem = xk - w.fbase;
            if (rem < 0 || rem >= nxy) {
                if (xk < 0 || xk >= (nz - 1) * nxy) {
                    ok = 0;
                    break;
                }
                w.f = quot(xk, nxy, w.inv_nxy);
                w.fbase = w.f * nxy;
            }
            int64_t f = w.f;
            if (f != last) {
                m[quot(f, block, inv_b)] = 1;
                m[quot(f + 1, block, inv_b)] = 1;
                last = f;
            }
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&g);
    PyBuffer_Release(&mask);
    if (!ok)
        Py_RETURN_NONE;
    Py_RETURN_TRUE;
}

static PyObject *gather(PyObject *self, PyObject *args)
{
    Py_buffer g, oa, ob;
    Py_ssize_t nxy, nx, nz, block, j0, j1, i0, i1, lo;
    PyObject *tabs;
    if (!PyArg_ParseTuple(args, "y*nnnnnnnnnO!w*w*", &g, &nxy, &nx, &nz, &block, &j0, &j1,
                          &i0, &i1, &lo, &PyTuple_Type, &tabs, &oa, &ob))
        return NULL;
    Py_ssize_t nt = PyTuple_GET_SIZE(tabs), n = g.len / 8;
    int ok = nx >= 1 && nxy >= nx && nz >= 2 && block >= 1 && lo >= 0 && g.len % 8 == 0 &&
             oa.len == n * 8 && ob.len == n * 8 && nxy * nz < ((Py_ssize_t)1 << 52);
    Py_buffer *tb = ok ? calloc((size_t)(nt ? nt : 1), sizeof(Py_buffer)) : NULL;
    char *have = ok ? calloc((size_t)(nt ? nt : 1), 1) : NULL;
    ok = ok && tb != NULL && have != NULL;
    for (Py_ssize_t b = 0; ok && b < nt; b++) {
        PyObject *t = PyTuple_GET_ITEM(tabs, b);
        if (t == Py_None)
            continue;
        if (PyObject_GetBuffer(t, &tb[b], PyBUF_SIMPLE) < 0) {
            ok = -1;
            break;
        }
        have[b] = 1;
    }
    if (ok == 1) {
        Where w;
        where_init(&w, nxy, nx, nz, j0, j1, i0, i1);
        const int64_t *x = g.buf;
        uint64_t *pa = oa.buf, *pb = ob.buf; /* (float32 pairs copied as 8 bytes) */
        int64_t area = (int64_t)(j1 - j0) * (i1 - i0);
        double inv_b = 1.0 / (double)block;
        int64_t last = -1, ba = 0, bb = 0, oa0 = 0, ob0 = 0, na = 0, nb = 0;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t k = 0; k < n; k++) {
            int64_t f, loc;
            if (!where(&w, x[k], &f, &loc)) {
                ok = 0;
                break;
            }
            if (f != last) { /* the blocks of frames f and f + 1, and their offsets */
                ba = quot(f, block, inv_b) - lo;
                bb = quot(f + 1, block, inv_b) - lo;
                if (ba < 0 || bb >= nt || !have[ba] || !have[bb]) {
                    ok = 0;
                    break;
                }
                oa0 = (f - (ba + lo) * block) * area;
                ob0 = (f + 1 - (bb + lo) * block) * area;
                na = tb[ba].len / 8;
                nb = tb[bb].len / 8;
                last = f;
            }
            int64_t la = oa0 + loc, lb = ob0 + loc;
            if (la >= na || lb >= nb) {
                ok = 0;
                break;
            }
            memcpy(&pa[k], (const char *)tb[ba].buf + la * 8, 8);
            memcpy(&pb[k], (const char *)tb[bb].buf + lb * 8, 8);
        }
        Py_END_ALLOW_THREADS
    }
    for (Py_ssize_t b = 0; have && b < nt; b++)
        if (have[b])
            PyBuffer_Release(&tb[b]);
    free(tb);
    free(have);
    PyBuffer_Release(&g);
    PyBuffer_Release(&oa);
    PyBuffer_Release(&ob);
    if (ok < 0)
        return NULL;
    if (!ok)
        Py_RETURN_NONE;
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"pairs", pairs, METH_VARARGS,
     "pairs(flat, nz, ny, nx, f0, f1, j0, j1, i0, i1, out) -> True | None:"
     " the (mean offset, sd) pairs of a window of frames (_Tables._compute)."},
    {"blocks", blocks, METH_VARARGS,
     "blocks(g, nxy, nx, nz, block, j0, j1, i0, i1, mask) -> True | None:"
     " flags the blocks of frames _Tables.pairs_at(g) reads."},
    {"gather", gather, METH_VARARGS,
     "gather(g, nxy, nx, nz, block, j0, j1, i0, i1, lo, tabs, out_a, out_b) -> True | None:"
     " the pairs at g and g + nxy from the blocks of frames (_Tables.pairs_at)."},
    {"pairs_spans", pairs_spans, METH_VARARGS,
     "pairs_spans(flat, nz, ny, nx, f, j0, j1, lo, hi, i0w, wlen, out) -> True | None:"
     " the pairs of frame f at a column span per row."},
    {"node_spans", node_spans, METH_VARARGS,
     "node_spans(f, j, i, nz, nj, lo, hi) -> True | None: widens the spans of frames f"
     " and f + 1, rows j to columns i."},
    {"row_spans", row_spans, METH_VARARGS,
     "row_spans(mask, K, NJ, NI, j0, j1, i0, i1, lo, hi): the span of set columns of"
     " every row of every plane."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ctables",
                                    "DVH per-grid tables (rtqa._native).", -1, methods};

PyMODINIT_FUNC PyInit__ctables(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    PyObject *cap = PyCapsule_New(&frames_api, "rtqa.dvh._ctables._frames", NULL);
    if (cap == NULL || PyModule_AddObject(m, "_frames", cap) < 0) {
        Py_XDECREF(cap);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
