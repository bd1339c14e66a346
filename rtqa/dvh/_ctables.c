/* The per-grid tables of the DVH engine: the compiled twins of
 * rtqa.dvh.tables._Tables._compute (through _voxel_mean_sd) and of _Tables.pairs_at for
 * windowed (large) grids (see rtqa/_native.py). Below them, small compiled twins of the
 * engine's per-structure numpy steps (raster, counts, items, layers, sums: each described
 * where it is defined; the same values, bit for bit, as the numpy code it replaces).
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
#include "_npmath.h"  /* np_max, np_min, np_clip, exact_rint, exact_floor */

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

/* Small helpers of the engine (new; the tables' functions above are untouched).
 *
 * row_counts(a, rows, n, out) -> None
 *   out[i] (intp) = number of non-zero bytes of row i of a (uint8, rows x n, C order):
 *   rtqa.dvh.geometry.row_counts (np.count_nonzero of each row; integers, exact).
 * pair_counts(a, rows, n, k, out) -> None: the same of a[k] & a[k + 1].
 * plane_counts(cls, bid, bid_itemsize, pc, K, nv, m2, out) -> True | None
 *   Raster.plane_counts (integer counts, exact in any order).
 * quadrant_moments(codes, n, m, itemsize, tab, rho, out) -> True | None (a code of m
 *   bits or more: numpy raises; out is not to be used)
 *   rtqa.dvh.elements._quadrant_moments with its row table (m <= 15): codes (n x m row
 *   codes of itemsize 4 or 8 bytes), tab (2^m x 6 float64, _row_table), rho (m float64,
 *   the in-cell row coordinates), out (n x 4 x 6 float64). Per item and half qy the row
 *   sums R0 = sum P, R1 = sum P rho, R2 = sum P (rho rho) over the half's rows, each
 *   from +0.0, adding row by row in row order (np.einsum's order for these reductions:
 *   one addend per row, accumulated sequentially; the product P rho rounded, then
 *   added), then the same placement into out. */
/* The bytes of p[0..n-1] equal to value (0..255), or (value < 0) not zero. */
static Py_ssize_t count_bytes(const unsigned char *p, Py_ssize_t n, int value)
{
    unsigned char v = value < 0 ? 0 : (unsigned char)value;
    Py_ssize_t c = 0, j = 0;
#ifdef __SSE2__
    __m128i z = _mm_set1_epi8((char)v), tot = _mm_setzero_si128();
    while (j + 16 <= n) {
        __m128i acc = _mm_setzero_si128();
        Py_ssize_t stop = j + 16 * 255 < n ? j + 16 * 255 : n;
        for (; j + 16 <= stop; j += 16)  /* (+1 per equal byte; at most 255 per lane) */
            acc = _mm_sub_epi8(
                acc, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + j)), z));
        tot = _mm_add_epi64(tot, _mm_sad_epu8(acc, _mm_setzero_si128()));
    }
    c = (Py_ssize_t)_mm_cvtsi128_si64(tot) +
        (Py_ssize_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(tot, tot));
#else
    for (; j < n; j++)
        c += p[j] == v;
#endif
    for (; j < n; j++)
        c += p[j] == v;
    return value < 0 ? n - c : c;
}

/* The positions j < n where both p[j] and q[j] are not zero. */
static Py_ssize_t count_both(const unsigned char *p, const unsigned char *q, Py_ssize_t n)
{
    Py_ssize_t c = 0, j = 0; /* c: either is zero */
#ifdef __SSE2__
    __m128i z = _mm_setzero_si128(), tot = _mm_setzero_si128();
    while (j + 16 <= n) {
        __m128i acc = _mm_setzero_si128();
        Py_ssize_t stop = j + 16 * 255 < n ? j + 16 * 255 : n;
        for (; j + 16 <= stop; j += 16) {
            __m128i a = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + j)), z);
            __m128i b = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(q + j)), z);
            acc = _mm_sub_epi8(acc, _mm_or_si128(a, b));
        }
        tot = _mm_add_epi64(tot, _mm_sad_epu8(acc, _mm_setzero_si128()));
    }
    c = (Py_ssize_t)_mm_cvtsi128_si64(tot) +
        (Py_ssize_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(tot, tot));
#endif
    for (; j < n; j++)
        c += !p[j] || !q[j];
    return n - c;
}

static PyObject *row_counts(PyObject *self, PyObject *args)
{
    Py_buffer a, out;
    Py_ssize_t rows, n;
    if (!PyArg_ParseTuple(args, "y*nnw*", &a, &rows, &n, &out))
        return NULL;
    int ok = rows >= 0 && n >= 0 && a.len == rows * n &&
             out.len == rows * (Py_ssize_t)sizeof(Py_ssize_t);
    if (ok) {
        const unsigned char *p = a.buf;
        Py_ssize_t *o = out.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < rows; i++)
            o[i] = count_bytes(p + i * n, n, -1);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&out);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "row_counts: bad shapes");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* pair_counts(a, rows, n, k, out): out[i] (intp) = the positions where rows k[i] and
 * k[i] + 1 of a (uint8, rows x n) are both not zero (int64 k; row_counts of
 * a[k] & a[k + 1]). */
static PyObject *pair_counts(PyObject *self, PyObject *args)
{
    Py_buffer a, kb, out;
    Py_ssize_t rows, n;
    if (!PyArg_ParseTuple(args, "y*nny*w*", &a, &rows, &n, &kb, &out))
        return NULL;
    Py_ssize_t nk = kb.len / 8;
    int ok = rows >= 0 && n >= 0 && a.len == rows * n && kb.len == nk * 8 &&
             out.len == nk * (Py_ssize_t)sizeof(Py_ssize_t);
    const int64_t *k = kb.buf;
    for (Py_ssize_t i = 0; ok && i < nk; i++)
        ok = k[i] >= 0 && k[i] + 1 < rows;
    if (ok) {
        const unsigned char *p = a.buf;
        Py_ssize_t *o = out.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < nk; i++)
            o[i] = count_both(p + k[i] * n, p + (k[i] + 1) * n, n);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&kb);
    PyBuffer_Release(&out);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "pair_counts: bad shapes or rows");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* plane_counts(cls, bid, bid_itemsize, pc, K, nv, m2, out) -> True | None:
 * Raster.plane_counts: out[k] (int64) = m2 x (voxels of plane k with cls 2) + the sum of
 * pc[bid] (int64, the inside sub-samples of each block) over its voxels with cls 1
 * (integers: exact in any order). cls uint8 (K x nv), bid int32 or uint8 (K x nv).
 * None: a block id out of range (numpy's index error). */
static PyObject *plane_counts(PyObject *self, PyObject *args)
{
    Py_buffer cb, bb, pb, out;
    Py_ssize_t isz, K, nv, m2;
    if (!PyArg_ParseTuple(args, "y*y*ny*nnnw*", &cb, &bb, &isz, &pb, &K, &nv, &m2, &out))
        return NULL;
    Py_ssize_t npc = pb.len / 8;
    int ok = K >= 0 && nv >= 0 && (isz == 1 || isz == 4) && cb.len == K * nv &&
             bb.len == K * nv * isz && out.len == K * 8;
    int bad = 0;
    if (ok) {
        const unsigned char *c = cb.buf;
        const int64_t *pc = pb.buf;
        int64_t *o = out.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t k = 0; k < K; k++) {
            const unsigned char *ck = c + k * nv;
            int64_t whole = count_bytes(ck, nv, 2), nin = 0;
            if (count_bytes(ck, nv, 1))
                for (Py_ssize_t v = 0; v < nv; v++)
                    if (ck[v] == 1) {
                        Py_ssize_t i = k * nv + v;
                        int64_t b = isz == 4 ? (int64_t)((const int32_t *)bb.buf)[i]
                                             : (int64_t)((const unsigned char *)bb.buf)[i];
                        if (b < 0 || b >= npc)
                            bad = 1;
                        else
                            nin += pc[b];
                    }
            o[k] = whole * m2 + nin;
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&cb);
    PyBuffer_Release(&bb);
    PyBuffer_Release(&pb);
    PyBuffer_Release(&out);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "plane_counts: bad shapes");
        return NULL;
    }
    if (bad)
        Py_RETURN_NONE;
    Py_RETURN_TRUE;
}

static PyObject *quadrant_moments(PyObject *self, PyObject *args)
{
    Py_buffer codes, tab, rho, out;
    Py_ssize_t n, m, isz;
    int bad = 0;
    if (!PyArg_ParseTuple(args, "y*nnny*y*w*", &codes, &n, &m, &isz, &tab, &rho, &out))
        return NULL;
    int ok = n >= 0 && m >= 1 && m <= 15 && (isz == 4 || isz == 8) &&
             codes.len == n * m * isz && tab.len == ((Py_ssize_t)1 << m) * 6 * 8 &&
             rho.len == m * 8 && out.len == n * 24 * 8;
    if (ok) {
        const double *T = tab.buf, *rh = rho.buf;
        double *o = out.buf;
        const uint32_t *c4 = codes.buf;
        const uint64_t *c8 = codes.buf;
        Py_ssize_t h = (m - 1) / 2;
        uint64_t mask = ((uint64_t)1 << m) - 1;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            double *oi = o + i * 24;
            for (int qy = 0; qy < 2; qy++) {
                Py_ssize_t r0 = qy ? h : 0, r1 = qy ? m : h;
                double R0[6] = {0, 0, 0, 0, 0, 0}, R1[6] = {0, 0, 0, 0, 0, 0},
                       R2[6] = {0, 0, 0, 0, 0, 0};
                for (Py_ssize_t r = r0; r < r1; r++) {
                    uint64_t code = isz == 4 ? (uint64_t)c4[i * m + r] : c8[i * m + r];
                    if (code > mask) {  /* (numpy's index error: left to it) */
                        bad = 1;
                        code = 0;
                    }
                    const double *P = T + code * 6;
                    double rr = rh[r], rr2 = rr * rr;
                    for (int k = 0; k < 6; k++) {
                        R0[k] += P[k];
                        R1[k] += P[k] * rr;
                        R2[k] += P[k] * rr2;
                    }
                }
                for (int qx = 0; qx < 2; qx++) {
                    double *q = oi + (2 * qy + qx) * 6;
                    int b = 3 * qx;
                    q[0] = R0[b];
                    q[1] = R0[b + 1];
                    q[2] = R1[b];
                    q[3] = R0[b + 2];
                    q[4] = R2[b];
                    q[5] = R1[b + 1];
                }
            }
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&codes);
    PyBuffer_Release(&tab);
    PyBuffer_Release(&rho);
    PyBuffer_Release(&out);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "quadrant_moments: bad shapes");
        return NULL;
    }
    if (bad)
        Py_RETURN_NONE;
    Py_RETURN_TRUE;
}

/* parity_rows(col, w, n_rows, rid, m, h, n, out) -> None
 *   rtqa.dvh.geometry._parity_rows times 2 (the raster's cls of node states): for rows
 *   rid (int64) of the crossing columns col (int64, w x n_rows; INT32_MAX: no crossing)
 *   the even-odd states of points h, h + m, ... (n of them) as 0 or 2 (uint8, len(rid) x
 *   n). As the numpy code: every crossing flips the state from its first point on (an
 *   even number at one point cancels), the state running on from row to row (a row's
 *   crossings past its last point are dropped there, as numpy drops them); the padding
 *   entries (INT32_MAX: no crossing) are skipped, as the numpy code skips them.
 * refine(touched, col, w, n_rows, fine_ny, m, K, NJ, NI, cls, bid, blocks, isz) -> n
 *   raster's classification of the touched voxels (uint8 K x NJ x NI, in (k, j, i)
 *   order): each voxel's m row codes as RowTable.segment_codes forms them, the number
 *   inside, cls (uint8) 2 all, 0 none, 1 some; bid (int32) cls // 2, or for the voxels
 *   with some 2 + their rank among them, whose codes go to blocks (rows of m codes of
 *   isz bytes, in that order). Returns the number of such voxels. */
static PyObject *parity_rows(PyObject *self, PyObject *args)
{
    Py_buffer cb, rb, out;
    Py_ssize_t w, n_rows, m, h, n;
    if (!PyArg_ParseTuple(args, "y*nny*nnnw*", &cb, &w, &n_rows, &rb, &m, &h, &n, &out))
        return NULL;
    Py_ssize_t R = rb.len / 8;
    int ok = w >= 0 && n_rows >= 0 && m >= 1 && h >= 0 && h < m && n >= 0 &&
             cb.len == w * n_rows * 8 && rb.len == R * 8 && out.len == R * n;
    const int64_t *rid = rb.buf;
    for (Py_ssize_t i = 0; ok && i < R; i++)
        ok = rid[i] >= 0 && rid[i] < n_rows;
    unsigned char *tog = ok ? calloc((size_t)(n ? n : 1), 1) : NULL;
    if (ok && tog == NULL) {
        PyBuffer_Release(&cb);
        PyBuffer_Release(&rb);
        PyBuffer_Release(&out);
        return PyErr_NoMemory();
    }
    if (ok) {
        const int64_t *col = cb.buf;
        unsigned char *o = out.buf;
        Py_BEGIN_ALLOW_THREADS
        unsigned char state = 0;
        for (Py_ssize_t i = 0; i < R; i++) {
            memset(tog, 0, (size_t)n);
            for (Py_ssize_t t = 0; t < w; t++) {
                int64_t c = col[t * n_rows + rid[i]];
                if (c == INT32_MAX)
                    continue;
                int64_t p = (c + (m - 1 - h)) / m; /* (c >= 0: floor) */
                if (p >= 0 && p < n)
                    tog[p] ^= 1;
            }
            unsigned char *oi = o + i * n;
            for (Py_ssize_t p = 0; p < n; p++) {
                state ^= tog[p];
                oi[p] = (unsigned char)(state << 1);
            }
        }
        Py_END_ALLOW_THREADS
    }
    free(tog);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&rb);
    PyBuffer_Release(&out);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "parity_rows: bad shapes or rows");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *refine(PyObject *self, PyObject *args)
{
    Py_buffer tb, cb, clb, bb, kb;
    Py_ssize_t w, n_rows, fny, m, K, NJ, NI, isz;
    if (!PyArg_ParseTuple(args, "y*y*nnnnnnnw*w*w*n", &tb, &cb, &w, &n_rows, &fny, &m, &K,
                          &NJ, &NI, &clb, &bb, &kb, &isz))
        return NULL;
    Py_ssize_t nv = K * NJ * NI;
    int ok = w >= 0 && m >= 1 && m <= 63 && K >= 0 && NJ >= 0 && NI >= 0 &&
             (isz == 4 || isz == 8) && (isz == 8 || m <= 31) && fny == NJ * m &&
             n_rows == K * fny && tb.len == nv && cb.len == w * n_rows * 8 &&
             clb.len == nv && bb.len == nv * 4 && kb.len % (m * isz) == 0;
    Py_ssize_t cap = ok ? kb.len / (m * isz) : 0, nb = 0;
    if (ok) {
        const unsigned char *tch = tb.buf;
        const int64_t *col = cb.buf;
        unsigned char *cls = clb.buf;
        int32_t *bid = bb.buf;
        uint64_t full = m == 64 ? ~(uint64_t)0 : (((uint64_t)1 << m) - 1);
        uint64_t codes[64];
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t v = 0; v < nv && ok; v++) {
            if (!tch[v])
                continue;
            Py_ssize_t k = v / (NJ * NI), j = (v / NI) % NJ, i = v % NI;
            int64_t c0 = (int64_t)i * m, n_in = 0;
            for (Py_ssize_t r = 0; r < m; r++) {
                Py_ssize_t row = k * fny + j * m + r;
                uint64_t code = 0;
                for (Py_ssize_t t = 0; t < w; t++) {
                    int64_t rel = col[t * n_rows + row] - c0;
                    rel = rel < 0 ? 0 : rel > m ? m : rel;
                    code ^= full ^ ((((uint64_t)1) << rel) - 1);
                }
                codes[r] = code;
                n_in += __builtin_popcountll(code);
            }
            unsigned char cl = n_in == m * m ? 2 : n_in == 0 ? 0 : 1;
            cls[v] = cl;
            if (cl == 1) {
                if (nb >= cap) {
                    ok = 0;
                    break;
                }
                bid[v] = (int32_t)(2 + nb);
                if (isz == 4) {
                    uint32_t *b = (uint32_t *)kb.buf + nb * m;
                    for (Py_ssize_t r = 0; r < m; r++)
                        b[r] = (uint32_t)codes[r];
                } else {
                    uint64_t *b = (uint64_t *)kb.buf + nb * m;
                    for (Py_ssize_t r = 0; r < m; r++)
                        b[r] = codes[r];
                }
                nb++;
            } else
                bid[v] = cl / 2;
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&tb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&clb);
    PyBuffer_Release(&bb);
    PyBuffer_Release(&kb);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "refine: bad shapes or too few blocks");
        return NULL;
    }
    return PyLong_FromSsize_t(nb);
}

/* touched(ax, ay, bx, by, plane, x0, y0, dx, dy, half, K, NJ, NI, out) -> True | None
 *   rtqa.dvh.geometry._touched: the voxels (uint8 K x NJ x NI, zero on entry) that the
 *   edges (ax, ay) -> (bx, by) of planes plane (int64) pass through, each edge split into
 *   n = max(ceil(hypot(ex, ey) / half), 1) pieces (half = 0.5 min(dx, dy), formed by the
 *   caller as numpy's caller does), each piece's end points rounded to voxels as numpy
 *   does (the same operations in the same order; one piece per edge for all when no edge
 *   has more: numpy's other formula). None: a voxel index out of range (numpy would
 *   wrap or raise). */
static PyObject *touched(PyObject *self, PyObject *args)
{
    Py_buffer b0, b1, b2, b3, pb, out;
    double x0, y0, dx, dy, half;
    Py_ssize_t K, NJ, NI;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*dddddnnnw*", &b0, &b1, &b2, &b3, &pb, &x0, &y0,
                          &dx, &dy, &half, &K, &NJ, &NI, &out))
        return NULL;
    Py_ssize_t ne = b0.len / 8, nv = K * NJ * NI;
    int ok = K >= 0 && NJ >= 1 && NI >= 1 && b0.len == ne * 8 && b1.len == ne * 8 &&
             b2.len == ne * 8 && b3.len == ne * 8 && pb.len == ne * 8 && out.len == nv;
    int bad = 0;
    if (ok) {
        const double *ax = b0.buf, *ay = b1.buf, *bx_ = b2.buf, *by_ = b3.buf;
        const int64_t *pl = pb.buf;
        unsigned char *o = out.buf;
        Py_BEGIN_ALLOW_THREADS
        int many = 0;
        for (Py_ssize_t e = 0; e < ne; e++) {
            double ex = bx_[e] - ax[e], ey = by_[e] - ay[e];
            int64_t n = (int64_t)ceil(hypot(ex, ey) / half);
            many |= n > 1;
        }
        for (Py_ssize_t e = 0; e < ne && !bad; e++) {
            double ex = bx_[e] - ax[e], ey = by_[e] - ay[e];
            double bx = ax[e] - x0, by = ay[e] - y0;
            int64_t n = (int64_t)ceil(hypot(ex, ey) / half);
            if (n < 1)
                n = 1;
            if (!many)
                n = 1;
            for (int64_t p = 0; p < n; p++) {
                double f[4];
                if (!many) {
                    f[0] = floor(bx / dx + 0.5);
                    f[1] = floor((bx + ex) / dx + 0.5);
                    f[2] = floor(by / dy + 0.5);
                    f[3] = floor((by + ey) / dy + 0.5);
                } else {
                    double t0 = (double)p / (double)n;
                    double t1 = t0 + 1.0 / (double)n;
                    f[0] = floor((bx + t0 * ex) / dx + 0.5);
                    f[1] = floor((bx + t1 * ex) / dx + 0.5);
                    f[2] = floor((by + t0 * ey) / dy + 0.5);
                    f[3] = floor((by + t1 * ey) / dy + 0.5);
                }
                int64_t ix[2], r[2];
                for (int a = 0; a < 2; a++) {
                    int64_t v = (int64_t)f[a];
                    ix[a] = v < 0 ? 0 : v > NI - 1 ? NI - 1 : v;
                    v = (int64_t)f[2 + a];
                    v = v < 0 ? 0 : v > NJ - 1 ? NJ - 1 : v;
                    r[a] = (v + pl[e] * NJ) * NI;
                }
                for (int a = 0; a < 2; a++)
                    for (int b = 0; b < 2; b++) {
                        int64_t g = r[a] + ix[b];
                        if (pl[e] < 0 || pl[e] >= K || g < 0 || g >= nv)
                            bad = 1;
                        else
                            o[g] = 1;
                    }
            }
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&b0);
    PyBuffer_Release(&b1);
    PyBuffer_Release(&b2);
    PyBuffer_Release(&b3);
    PyBuffer_Release(&pb);
    PyBuffer_Release(&out);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "touched: bad shapes");
        return NULL;
    }
    if (bad)
        Py_RETURN_NONE;
    Py_RETURN_TRUE;
}

/* finish_cum(acc, n, h, total, top, edges, cum) -> True | None
 *   rtqa.dvh.accumulator._Accumulator.finish after the deferred deposits: slope =
 *   cumsum(acc[:n + 2]), below = h * [0, cumsum(slope)[:-1]][:n], cum = clip(total -
 *   below, 0, total), its running minimum (np.minimum.accumulate), edges = arange(n) * h,
 *   cum 0 where edges > top and at the end (float64, n each). Sums in index order as
 *   np.cumsum; clip and minimum as numpy's (a NaN propagates). None: acc shorter than
 *   n + 2 (numpy's shapes would not match). */
static PyObject *finish_cum(PyObject *self, PyObject *args)
{
    Py_buffer ab, eb, cb;
    Py_ssize_t n;
    double h, total, top;
    if (!PyArg_ParseTuple(args, "y*ndddw*w*", &ab, &n, &h, &total, &top, &eb, &cb))
        return NULL;
    int ok = n >= 1 && eb.len == n * 8 && cb.len == n * 8, fits = ab.len >= (n + 2) * 8;
    if (ok && fits) {
        const double *acc = ab.buf;
        double *edges = eb.buf, *cum = cb.buf;
        double slope = 0.0, s2 = 0.0, run = 0.0;
        for (Py_ssize_t i = 0; i < n; i++) {
            /* below[i] = h * S2[i - 1] (S2: cumsum of the slopes), below[0] = h * 0.0 */
            double below = h * (i ? s2 : 0.0);
            slope = i ? slope + acc[i] : acc[0];
            s2 = i ? s2 + slope : slope;
            double v = total - below;
            v = isnan(v) ? v : (v > 0.0 ? v : 0.0);
            v = isnan(v) ? v : (v < total ? v : total);
            run = i == 0 ? v : ((run <= v || isnan(run)) ? run : v);
            double e = (double)i * h;
            edges[i] = e;
            cum[i] = e > top ? 0.0 : run;
        }
        cum[n - 1] = 0.0;
    }
    PyBuffer_Release(&ab);
    PyBuffer_Release(&eb);
    PyBuffer_Release(&cb);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "finish_cum: bad shapes");
        return NULL;
    }
    if (!fits)
        Py_RETURN_NONE;
    Py_RETURN_TRUE;
}

/* partial_items(cls, bid, K, NJ, NI, lk, st, en, z, lo, hi, pair_scale, scale, sxsy,
 *               blocks, m, isz, outs) -> (n_int, n_items) | None
 *   The items of rtqa.dvh.engine._Engine._partial_voxels: the voxels (J, I) of every
 *   linked interval k = lk[x] (x in order) with cls 1 on plane k or k + 1 or different
 *   classes on the two, then those with cls 1 on every start plane st, then on every end
 *   plane en (numpy's nonzero order: plane, row, column). outs None: the counts only;
 *   else a tuple (ik, iJ, iI (int64), za, zbb, wsc (float64), Ba, Bb, both (blocks'
 *   rows: m codes of isz bytes)) sized for n_items: plane, row, column, z range (z[k],
 *   z[k + 1]; lo[k], z[k]; z[k], hi[k]), weight scale (pair_scale[k] or scale[k], times
 *   sxsy), the block rows of bid on the two planes (a cap: its plane twice) and their
 *   and. cls uint8 and bid int32 (K x NJ x NI). None: a block id out of range. */
static PyObject *partial_items(PyObject *self, PyObject *args)
{
    Py_buffer clb, bib, lkb, stb, enb, zb, lob, hib, psb, scb, bkb;
    Py_ssize_t K, NJ, NI, m, isz;
    double sxsy;
    PyObject *outs;
    if (!PyArg_ParseTuple(args, "y*y*nnny*y*y*y*y*y*y*y*dy*nnO", &clb, &bib, &K, &NJ, &NI,
                          &lkb, &stb, &enb, &zb, &lob, &hib, &psb, &scb, &sxsy, &bkb, &m,
                          &isz, &outs))
        return NULL;
    Py_buffer ob[9];
    int n_ob = 0, ok = 1, bad = 0;
    Py_ssize_t nv = K * NJ * NI, nl = lkb.len / 8, ns = stb.len / 8, ne = enb.len / 8;
    Py_ssize_t nblk = (isz == 4 || isz == 8) && m >= 1 ? bkb.len / (m * isz) : 0;
    ok = K >= 0 && NJ >= 0 && NI >= 0 && clb.len == nv && bib.len == nv * 4 &&
         (isz == 4 || isz == 8) && m >= 1 && zb.len == K * 8 && lob.len == K * 8 &&
         hib.len == K * 8 && scb.len == K * 8 && psb.len == (K ? K - 1 : 0) * 8 &&
         bkb.len == nblk * m * isz;
    const int64_t *lk = lkb.buf, *st = stb.buf, *en = enb.buf;
    for (Py_ssize_t i = 0; ok && i < nl; i++)
        ok = lk[i] >= 0 && lk[i] + 1 < K;
    for (Py_ssize_t i = 0; ok && i < ns; i++)
        ok = st[i] >= 0 && st[i] < K;
    for (Py_ssize_t i = 0; ok && i < ne; i++)
        ok = en[i] >= 0 && en[i] < K;
    Py_ssize_t plane = NJ * NI, n_int = 0, n_items = 0;
    const unsigned char *cls = clb.buf;
    if (ok) { /* counts */
        for (Py_ssize_t x = 0; x < nl; x++) {
            const unsigned char *a = cls + lk[x] * plane, *b = a + plane;
            for (Py_ssize_t v = 0; v < plane; v++)
                n_int += a[v] == 1 || b[v] == 1 || a[v] != b[v];
        }
        n_items = n_int;
        for (int c = 0; c < 2; c++) {
            const int64_t *kc = c ? en : st;
            for (Py_ssize_t x = 0; x < (c ? ne : ns); x++) {
                const unsigned char *a = cls + kc[x] * plane;
                for (Py_ssize_t v = 0; v < plane; v++)
                    n_items += a[v] == 1;
            }
        }
    }
    if (ok && outs != Py_None) {
        if (!PyTuple_Check(outs) || PyTuple_GET_SIZE(outs) != 9)
            ok = 0;
        for (int i = 0; ok && i < 9; i++) {
            if (PyObject_GetBuffer(PyTuple_GET_ITEM(outs, i), &ob[i],
                                   PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
                ok = -1;
                break;
            }
            n_ob++;
            Py_ssize_t want = i < 6 ? n_items * 8 : n_items * m * isz;
            ok = ob[i].len == want;
        }
        if (ok == 1) {
            int64_t *ik = ob[0].buf, *iJ = ob[1].buf, *iI = ob[2].buf;
            double *za = ob[3].buf, *zbb = ob[4].buf, *wsc = ob[5].buf;
            unsigned char *Ba = ob[6].buf, *Bb = ob[7].buf, *Bo = ob[8].buf;
            const int32_t *bid = bib.buf;
            const double *z = zb.buf, *lo = lob.buf, *hi = hib.buf, *ps = psb.buf,
                         *sc = scb.buf;
            const unsigned char *blk = bkb.buf;
            Py_ssize_t row = m * isz, t = 0;
            for (int part = 0; part < 3 && !bad; part++) {
                Py_ssize_t np_ = part == 0 ? nl : part == 1 ? ns : ne;
                const int64_t *ks = part == 0 ? lk : part == 1 ? st : en;
                for (Py_ssize_t x = 0; x < np_ && !bad; x++) {
                    int64_t k = ks[x];
                    const unsigned char *a = cls + k * plane, *b = a + plane;
                    for (Py_ssize_t v = 0; v < plane; v++) {
                        int take = part == 0 ? (a[v] == 1 || b[v] == 1 || a[v] != b[v])
                                             : a[v] == 1;
                        if (!take)
                            continue;
                        int64_t ia = bid[k * plane + v];
                        int64_t ib = part == 0 ? bid[(k + 1) * plane + v] : ia;
                        if (ia < 0 || ia >= nblk || ib < 0 || ib >= nblk) {
                            bad = 1;
                            break;
                        }
                        ik[t] = k;
                        iJ[t] = v / NI;
                        iI[t] = v % NI;
                        za[t] = part == 1 ? lo[k] : z[k];
                        zbb[t] = part == 0 ? z[k + 1] : part == 1 ? z[k] : hi[k];
                        wsc[t] = (part == 0 ? ps[k] : sc[k]) * sxsy;
                        memcpy(Ba + t * row, blk + ia * row, (size_t)row);
                        memcpy(Bb + t * row, blk + ib * row, (size_t)row);
                        for (Py_ssize_t j = 0; j < row; j++)
                            Bo[t * row + j] = blk[ia * row + j] & blk[ib * row + j];
                        t++;
                    }
                }
            }
        }
    }
    for (int i = 0; i < n_ob; i++)
        PyBuffer_Release(&ob[i]);
    Py_buffer *all[] = {&clb, &bib, &lkb, &stb, &enb, &zb, &lob, &hib, &psb, &scb, &bkb};
    for (int i = 0; i < 11; i++)
        PyBuffer_Release(all[i]);
    if (ok < 0)
        return NULL;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "partial_items: bad shapes or planes");
        return NULL;
    }
    if (bad)
        Py_RETURN_NONE;
    return Py_BuildValue("nn", n_int, n_items);
}

/* ------------------------------------------------ whole-voxel layers (engine) */

/* _ZBins.right (right = 1) / left (0) of a finite v (as _cpartial's bin_of) */
static inline int64_t wl_bin(double v, int right, const double *z, int64_t nbin, int uniform,
                             double dz0)
{
    if (uniform) {
        double r = (v - z[0]) * (1.0 / dz0);
        double ri = exact_rint(r), fl = exact_floor(r);
        int on = fabs(r - ri) < 1e-9;
        double ff = on ? (right ? ri : ri - 1.0) : fl;
        return (int64_t)np_clip(ff, 0.0, (double)(nbin - 1));
    }
    int64_t lo = 0, hi = nbin + 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (right ? z[mid] <= v : z[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    lo -= 1;
    return lo < 0 ? 0 : lo > nbin - 1 ? nbin - 1 : lo;
}

typedef struct {
    double w;
    float tm, vt;
} wl_rec; /* rtqa.dvh.elements._REC */

static PyObject *wl_bytes(const void *p, Py_ssize_t n)
{
    return PyBytes_FromStringAndSize((const char *)p, n);
}

/* whole_layers(za, zb, wsc, counts, zlo, zhi, z, edges, uniform, dz0)
 *     -> 0 | None | (n_lay, nbit, q, f, layer, bit, lay_f, rec, tlo, thi)
 *   The layer tables of rtqa.dvh.engine._Engine._whole_voxels (its numpy code from the
 *   clip of the sources' z ranges to the records): sources clipped to [zlo, zhi], those
 *   with cb > ca and counts > 0 cut into the bins (_ZBins.cut, its all-one-bin shortcut
 *   included), _ZBins.moments of each part, the parts stably sorted by bin, ranked within
 *   their bin, in layers of 8 (bit: rank % 8), the weight w c0, w c1, w c2 (w = wsc of the
 *   source) and the t range of each, and per layer and code (the parts of its bits) the
 *   sums W, S1, S2 as numpy's sum over the last axis of (P * bits) gives them (from 0: a
 *   sequential sum from -0.0 of fewer than 8 terms, numpy's pairwise block of 8), TM =
 *   S1 / (W > 0 ? W : 1), VT = max(S2 / Wd - TM TM, 0), the t range min / max (1.0 /
 *   0.0 for no part), as float32 where numpy casts. The arrays come back as bytes (int64
 *   q, f, layer, bit, lay_f; records of _REC; float32 tlo, thi). 0: no live source (the
 *   numpy code returns); None: no part (numpy raises on it) or a NaN z range. */
static PyObject *whole_layers(PyObject *self, PyObject *args)
{
    Py_buffer zab, zbb, wb, cb, zfb, eb;
    double zlo, zhi, dz0;
    int uniform;
    if (!PyArg_ParseTuple(args, "y*y*y*y*ddy*y*id", &zab, &zbb, &wb, &cb, &zlo, &zhi, &zfb,
                          &eb, &uniform, &dz0))
        return NULL;
    Py_ssize_t n = zab.len / 8, nz = zfb.len / 8, nbin = nz - 1;
    PyObject *res = NULL;
    int ok = zab.len == n * 8 && zbb.len == n * 8 && wb.len == n * 8 && cb.len == n * 8 &&
             nbin >= 1 && zfb.len == nz * 8 && eb.len == nz * 8;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "whole_layers: bad shapes");
        goto done;
    }
    const double *za = zab.buf, *zb = zbb.buf, *wsc = wb.buf, *cnt = cb.buf,
                 *z = zfb.buf, *edges = eb.buf;
    /* live sources, their clipped ranges and bins */
    int64_t *live = malloc(sizeof(int64_t) * (n ? n : 1) * 3);
    double *cab = malloc(sizeof(double) * (n ? n : 1) * 2);
    if (!live || !cab) {
        free(live);
        free(cab);
        PyErr_NoMemory();
        goto done;
    }
    int64_t *fa = live + n, *fb = live + 2 * n;
    double *ca = cab, *cbv = cab + n;
    Py_ssize_t nl = 0, total = 0;
    int all_one = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        double a = np_clip(za[i], zlo, zhi), b = np_clip(zb[i], zlo, zhi);
        if (!(b > a && cnt[i] > 0))
            continue;
        live[nl] = i;
        ca[nl] = a;
        cbv[nl] = b;
        fa[nl] = wl_bin(a, 1, z, nbin, uniform, dz0);
        fb[nl] = wl_bin(b, 0, z, nbin, uniform, dz0);
        int64_t k = fb[nl] - fa[nl] + 1;
        k = k < 0 ? 0 : k;
        all_one &= k == 1;
        total += k;
        nl++;
    }
    if (!nl) {
        free(live);
        free(cab);
        res = PyLong_FromLong(0);
        goto done;
    }
    /* parts: source, bin, moments */
    Py_ssize_t np_ = 0, cap = total ? total : 1;
    int64_t *pq = malloc(sizeof(int64_t) * cap * 2);
    double *pm = malloc(sizeof(double) * cap * 5);
    if (!pq || !pm) {
        free(live);
        free(cab);
        free(pq);
        free(pm);
        PyErr_NoMemory();
        goto done;
    }
    int64_t *pf = pq + cap;
    for (Py_ssize_t i = 0; i < nl; i++) {
        int64_t k = all_one ? 1 : fb[i] - fa[i] + 1;
        for (int64_t t = 0; t < k; t++) {
            int64_t f = fa[i] + t;
            double a = ca[i], b = cbv[i];
            if (!all_one) {
                a = np_max(a, edges[f]);
                b = np_min(b, edges[f + 1]);
                if (!(b > a))
                    continue;
            }
            double z0 = z[f], z1 = z[f + 1], h = z1 - z0;
            double A = np_clip((a - z0) / h, 0.0, 1.0), B = np_clip((b - z0) / h, 0.0, 1.0);
            double above = np_max(b - np_max(a, z1), 0.0);
            double *m = pm + 5 * np_;
            m[0] = b - a;
            m[1] = 0.5 * h * (B * B - A * A) + above;
            m[2] = h * (B * B * B - A * A * A) / 3.0 + above;
            m[3] = A;
            m[4] = B;
            pq[np_] = live[i];
            pf[np_] = f;
            np_++;
        }
    }
    free(cab);
    free(live);
    if (!np_) {
        free(pq);
        free(pm);
        Py_INCREF(Py_None);
        res = Py_None;
        goto done;
    }
    /* stable sort by bin (counting sort), ranks, layers */
    int64_t *start = calloc((size_t)nbin + 1, sizeof(int64_t));
    int64_t *ord = malloc(sizeof(int64_t) * np_ * 6);
    if (!start || !ord) {
        free(start);
        free(ord);
        free(pq);
        free(pm);
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t j = 0; j < np_; j++)
        start[pf[j] + 1]++;
    int64_t maxc = 0, n_lay = 0;
    for (Py_ssize_t f = 0; f < nbin; f++) {
        int64_t c = start[f + 1];
        maxc = c > maxc ? c : maxc;
        n_lay += (c + 7) / 8;
        start[f + 1] += start[f];
    }
    for (Py_ssize_t j = 0; j < np_; j++)
        ord[start[pf[j]]++] = j;
    int nbit = maxc < 8 ? (int)maxc : 8;
    int64_t ncode = (int64_t)1 << nbit;
    int64_t *oq = ord + np_, *of = ord + 2 * np_;
    int64_t *olay = ord + 3 * np_, *obit = ord + 4 * np_;
    int64_t *layf = malloc(sizeof(int64_t) * n_lay);
    double *P = calloc((size_t)(n_lay * 8 * 5), sizeof(double));
    wl_rec *rec = malloc(sizeof(wl_rec) * n_lay * ncode);
    float *tlo = malloc(sizeof(float) * n_lay * ncode * 2);
    if (!layf || !P || !rec || !tlo) {
        free(layf);
        free(P);
        free(rec);
        free(tlo);
        free(start);
        free(ord);
        free(pq);
        free(pm);
        PyErr_NoMemory();
        goto done;
    }
    float *thi = tlo + n_lay * ncode;
    /* P: per layer 8 slots of (w c0, w c1, w c2, ta, tb); empty: 0, 0, 0, 1, 0 */
    for (int64_t l = 0; l < n_lay; l++)
        for (int p = 0; p < 8; p++)
            P[(l * 8 + p) * 5 + 3] = 1.0;
    int64_t lay = -1, prev_f = -1, rank = 0;
    for (Py_ssize_t t = 0; t < np_; t++) {
        int64_t j = ord[t], f = pf[j];
        if (f != prev_f) {
            rank = 0;
            prev_f = f;
        }
        if (rank % 8 == 0) {
            lay++;
            layf[lay] = f;
        }
        int b = (int)(rank % 8);
        oq[t] = pq[j];
        of[t] = f;
        olay[t] = lay;
        obit[t] = b;
        double w = wsc[pq[j]], *m = pm + 5 * j, *d = P + (lay * 8 + b) * 5;
        d[0] = w * m[0];
        d[1] = w * m[1];
        d[2] = w * m[2];
        d[3] = m[3];
        d[4] = m[4];
        rank++;
    }
    for (int64_t l = 0; l < n_lay; l++)
        for (int64_t code = 0; code < ncode; code++) {
            double S[3];
            for (int q = 0; q < 3; q++) {
                double x[8];
                for (int p = 0; p < nbit; p++)
                    x[p] = P[(l * 8 + p) * 5 + q] * (double)((code >> p) & 1);
                double r;
                if (nbit < 8) {
                    r = -0.0;
                    for (int p = 0; p < nbit; p++)
                        r += x[p];
                } else
                    r = ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]));
                S[q] = 0.0 + r;
            }
            double lo = 1.0, hi = 0.0;
            int first = 1;
            for (int p = 0; p < nbit; p++) {
                int set = (code >> p) & 1;
                double vl = set ? P[(l * 8 + p) * 5 + 3] : 1.0;
                double vh = set ? P[(l * 8 + p) * 5 + 4] : 0.0;
                lo = first ? vl : np_min(lo, vl);
                hi = first ? vh : np_max(hi, vh);
                first = 0;
            }
            double Wd = S[0] > 0 ? S[0] : 1.0;
            double TM = S[1] / Wd;
            double VT = np_max(S[2] / Wd - TM * TM, 0.0);
            wl_rec *rc = rec + l * ncode + code;
            rc->w = S[0] * 1e-3;
            rc->tm = (float)TM;
            rc->vt = (float)VT;
            tlo[l * ncode + code] = (float)lo;
            thi[l * ncode + code] = (float)hi;
        }
    res = Py_BuildValue("LiNNNNNNNN", (long long)n_lay, nbit, wl_bytes(oq, np_ * 8),
                        wl_bytes(of, np_ * 8), wl_bytes(olay, np_ * 8),
                        wl_bytes(obit, np_ * 8), wl_bytes(layf, n_lay * 8),
                        wl_bytes(rec, n_lay * ncode * (Py_ssize_t)sizeof(wl_rec)),
                        wl_bytes(tlo, n_lay * ncode * 4), wl_bytes(thi, n_lay * ncode * 4));
    free(layf);
    free(P);
    free(rec);
    free(tlo);
    free(start);
    free(ord);
    free(pq);
    free(pm);
done:
    PyBuffer_Release(&zab);
    PyBuffer_Release(&zbb);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&zfb);
    PyBuffer_Release(&eb);
    return res;
}

/* ------------------------------------------------ numpy's pairwise sums */

/* numpy's pairwise summation (np.add.reduce of a contiguous float64 array: 0.0 + the
 * pairwise sum of all n), of w and of the products m w at once (the same recursion for
 * both): fewer than 8 terms added in order from -0.0; up to 128 in 8 running sums
 * combined ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then the rest in order;
 * more: split at n / 2 rounded down to a multiple of 8, the halves' sums added. */
static void pw2(const double *m, const double *w, Py_ssize_t n, double *sw, double *smw)
{
    if (n < 8) {
        double a = -0.0, b = -0.0;
        for (Py_ssize_t i = 0; i < n; i++) {
            a += w[i];
            b += m[i] * w[i];
        }
        *sw = a;
        *smw = b;
    } else if (n <= 128) {
        double r[8], q[8];
        for (int j = 0; j < 8; j++) {
            r[j] = w[j];
            q[j] = m[j] * w[j];
        }
        Py_ssize_t i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) {
                r[j] += w[i + j];
                q[j] += m[i + j] * w[i + j];
            }
        double a = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        double b = ((q[0] + q[1]) + (q[2] + q[3])) + ((q[4] + q[5]) + (q[6] + q[7]));
        for (; i < n; i++) {
            a += w[i];
            b += m[i] * w[i];
        }
        *sw = a;
        *smw = b;
    } else {
        Py_ssize_t n2 = n / 2;
        n2 -= n2 % 8;
        double a1, b1, a2, b2;
        pw2(m, w, n2, &a1, &b1);
        pw2(m + n2, w + n2, n - n2, &a2, &b2);
        *sw = a1 + a2;
        *smw = b1 + b2;
    }
}

/* sums(mean, weight) -> (float(weight.sum()), float((mean * weight).sum())) of float64
 * arrays of one length (numpy's pairwise sums, as np.sum forms them). */
static PyObject *sums(PyObject *self, PyObject *args)
{
    Py_buffer mb, wb;
    if (!PyArg_ParseTuple(args, "y*y*", &mb, &wb))
        return NULL;
    Py_ssize_t n = wb.len / 8;
    int ok = mb.len == wb.len && wb.len == n * 8;
    double a = 0.0, b = 0.0;
    if (ok && n) {
        pw2(mb.buf, wb.buf, n, &a, &b);
        a = 0.0 + a;
        b = 0.0 + b;
    }
    PyBuffer_Release(&mb);
    PyBuffer_Release(&wb);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "sums: bad shapes");
        return NULL;
    }
    return Py_BuildValue("dd", a, b);
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
    {"row_counts", row_counts, METH_VARARGS,
     "row_counts(a, rows, n, out): the non-zero bytes of every row (geometry.row_counts)."},
    {"pair_counts", pair_counts, METH_VARARGS,
     "pair_counts(a, rows, n, k, out): row_counts of a[k] & a[k + 1]."},
    {"plane_counts", plane_counts, METH_VARARGS,
     "plane_counts(cls, bid, bid_itemsize, pc, K, nv, m2, out) -> True | None:"
     " Raster.plane_counts."},
    {"parity_rows", parity_rows, METH_VARARGS,
     "parity_rows(col, w, n_rows, rid, m, h, n, out): geometry._parity_rows times 2."},
    {"refine", refine, METH_VARARGS,
     "refine(touched, col, w, n_rows, fine_ny, m, K, NJ, NI, cls, bid, blocks, isz) -> n:"
     " raster's classification of the touched voxels."},
    {"touched", touched, METH_VARARGS,
     "touched(ax, ay, bx, by, plane, x0, y0, dx, dy, half, K, NJ, NI, out) -> True | None:"
     " geometry._touched."},
    {"finish_cum", finish_cum, METH_VARARGS,
     "finish_cum(acc, n, h, total, top, edges, cum) -> True | None: the cumulative DVH"
     " of _Accumulator.finish."},
    {"partial_items", partial_items, METH_VARARGS,
     "partial_items(cls, bid, K, NJ, NI, lk, st, en, z, lo, hi, pair_scale, scale, sxsy,"
     " blocks, m, isz, outs) -> (n_int, n_items) | None: _partial_voxels' items."},
    {"whole_layers", whole_layers, METH_VARARGS,
     "whole_layers(za, zb, wsc, counts, zlo, zhi, z, edges, uniform, dz0) -> 0 | None |"
     " (n_lay, nbit, q, f, layer, bit, lay_f, rec, tlo, thi): _whole_voxels' layers."},
    {"sums", sums, METH_VARARGS,
     "sums(mean, weight) -> (weight.sum(), (mean * weight).sum()): numpy's pairwise sums."},
    {"quadrant_moments", quadrant_moments, METH_VARARGS,
     "quadrant_moments(codes, n, m, itemsize, tab, rho, out): elements._quadrant_moments"
     " by its row table."},
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
