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
 *   pairs_at(g) reads: those of the frames f and f + 1 of every flat node index g.
 * gather(g, nxy, nx, nz, block, j0, j1, i0, i1, lo, tabs, out_a, out_b) -> True | None
 *   pairs_at: out_a[k], out_b[k] (complex64) = the pairs of g[k] and g[k] + nxy from
 *   the blocks tabs[b - lo] (a tuple of complex64 arrays, each flat (frame in block,
 *   window row, column); None for a block not read). g is int64 in both.
 *
 * None: an input the numpy code would treat otherwise (a grid narrower than two nodes, a
 * dose not finite or beyond 1e15 Gy, where float32 overflow could give NaNs of another
 * sign; a node outside the grid, the window or the last frame, a block missing: the
 * numpy code raises or reads a wrapped index there); nothing is written that the caller
 * keeps, it runs the numpy code.
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
 * 0) keeps v unless v < 0 (no NaN: finite input bounded as above), sqrtf is correctly
 * rounded as np.sqrt. The gather copies table entries (integer index arithmetic only).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DOSE_LIMIT 1e15

/* dx2 (second difference along x, float64 rounded to float32) and the x-averaged profile
 * dx2 / 8 + dose (float32) of columns i0..i1-1 of one dose row; 0 when a dose is not
 * finite or beyond the limit (the whole row is checked). */
static int row_x(const double *d, Py_ssize_t nx, Py_ssize_t i0, Py_ssize_t i1, float *dx2,
                 float *py)
{
    const float eighth = (float)0.125;
    Py_ssize_t ia = i0 > 0 ? i0 - 1 : 0, ib = i1 < nx ? i1 + 1 : nx;
    for (Py_ssize_t i = ia; i < ib; i++)
        if (!(fabs(d[i]) <= DOSE_LIMIT))
            return 0;
    for (Py_ssize_t i = i0; i < i1; i++) {
        float s;
        if (i == 0)
            s = (float)(d[1] - d[0]);
        else if (i == nx - 1)
            s = (float)(-(d[i] - d[i - 1]));
        else
            s = (float)((d[i + 1] - d[i]) - (d[i] - d[i - 1]));
        dx2[i - i0] = s;
        py[i - i0] = s * eighth + (float)d[i];
    }
    return 1;
}

/* The pairs of one frame d (ny * nx) over the window into out (float32 pairs). Scratch:
 * 6 rows of width i1 - i0 and 2 of width i1 - i0 + 2. */
static int frame_pairs(const double *d, Py_ssize_t ny, Py_ssize_t nx, Py_ssize_t j0,
                       Py_ssize_t j1, Py_ssize_t i0, Py_ssize_t i1, float *out, float *scr)
{
    const float eighth = (float)0.125, sixtyfourth = (float)(1.0 / 64.0);
    const float c12 = (float)1.2, c5 = (float)(5.0 / 192.0);
    Py_ssize_t w = i1 - i0;
    Py_ssize_t ia = i0 > 0 ? i0 - 1 : 0, ib = i1 < nx ? i1 + 1 : nx;
    float *dx2r[3], *pyr[3];
    Py_ssize_t tag[3] = {-1, -1, -1};
    for (int s = 0; s < 3; s++) {
        dx2r[s] = scr + 2 * s * w;
        pyr[s] = scr + (2 * s + 1) * w;
    }
    float *dy2 = scr + 6 * w, *px = dy2 + (w + 2);
    for (Py_ssize_t j = j0; j < j1; j++) {
        Py_ssize_t ja = j > 0 ? j - 1 : j, jb = j < ny - 1 ? j + 1 : j;
        for (Py_ssize_t r = ja; r <= jb; r++)
            if (tag[r % 3] != r) {
                if (!row_x(d + r * nx, nx, i0, i1, dx2r[r % 3], pyr[r % 3]))
                    return 0;
                tag[r % 3] = r;
            }
        const double *dc = d + j * nx;
        const double *dm = d + (j > 0 ? j - 1 : 0) * nx;
        const double *dp = d + (j < ny - 1 ? j + 1 : ny - 1) * nx;
        /* the y second difference and the y-averaged profile over ia..ib-1 (these rows'
         * doses were checked by row_x over the same columns) */
        for (Py_ssize_t i = ia; i < ib; i++) {
            float s;
            if (j == 0)
                s = (float)(dp[i] - dc[i]);
            else if (j == ny - 1)
                s = (float)(-(dc[i] - dm[i]));
            else
                s = (float)((dp[i] - dc[i]) - (dc[i] - dm[i]));
            dy2[i - ia] = s;
            px[i - ia] = s * eighth + (float)dc[i];
        }
        const float *dx2c = dx2r[j % 3], *pyc = pyr[j % 3];
        const float *pym = pyr[(j > 0 ? j - 1 : j) % 3], *pyp = pyr[(j < ny - 1 ? j + 1 : j) % 3];
        float *o = out + 2 * (j - j0) * w;
        for (Py_ssize_t i = i0; i < i1; i++) {
            Py_ssize_t k = i - ia, c = i - i0;
            float off;
            if (i == 0)
                off = dy2[k + 1] - dy2[k];
            else if (i == nx - 1)
                off = -(dy2[k] - dy2[k - 1]);
            else
                off = (dy2[k + 1] - dy2[k]) - (dy2[k] - dy2[k - 1]);
            off = off * sixtyfourth;
            float t = dx2c[c] + dy2[k];
            t = t * eighth;
            off = off + t;
            float gl = i > 0 ? px[k] - px[k - 1] : 0.0f;
            float gr = i < nx - 1 ? px[k + 1] - px[k] : 0.0f;
            float v = 0.0f;
            v = v + gl * gl;
            v = v + gr * gr;
            v = v + (gl * gr) * c12;
            gl = j > 0 ? pyc[c] - pym[c] : 0.0f;
            gr = j < ny - 1 ? pyp[c] - pyc[c] : 0.0f;
            v = v + gl * gl;
            v = v + gr * gr;
            v = v + (gl * gr) * c12;
            v = v * c5;
            if (v < 0.0f)
                v = 0.0f;
            o[2 * c] = off;
            o[2 * c + 1] = sqrtf(v);
        }
    }
    return 1;
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
        scr = malloc((size_t)(8 * (i1 - i0) + 4) * sizeof(float));
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

/* Frame f, row j, column i of flat index x; 0 when outside the grid's nodes below the
 * last frame or the window's rows j0..j1-1 and columns i0..i1-1. */
typedef struct {
    int64_t nxy, nx, nz, j0, j1, i0, i1;
    double inv_nxy, inv_nx;
} Where;

static inline int where(const Where *w, int64_t x, int64_t *f, int64_t *loc)
{
    if (x < 0 || x >= (w->nz - 1) * w->nxy)
        return 0;
    int64_t ff = quot(x, w->nxy, w->inv_nxy);
    int64_t rem = x - ff * w->nxy;
    int64_t j = quot(rem, w->nx, w->inv_nx);
    int64_t i = rem - j * w->nx;
    if (j < w->j0 || j >= w->j1 || i < w->i0 || i >= w->i1)
        return 0;
    *f = ff;
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
        Where w = {nxy, nx, nz, j0, j1, i0, i1, 1.0 / (double)nxy, 1.0 / (double)nx};
        const int64_t *x = g.buf;
        unsigned char *m = mask.buf;
        Py_ssize_t n = g.len / 8;
        double inv_b = 1.0 / (double)block;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t k = 0; k < n; k++) {
            int64_t f, loc;
            if (!where(&w, x[k], &f, &loc)) {
                ok = 0;
                break;
            }
            m[quot(f, block, inv_b)] = 1;
            m[quot(f + 1, block, inv_b)] = 1;
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
        Where w = {nxy, nx, nz, j0, j1, i0, i1, 1.0 / (double)nxy, 1.0 / (double)nx};
        const int64_t *x = g.buf;
        uint64_t *pa = oa.buf, *pb = ob.buf; /* (float32 pairs copied as 8 bytes) */
        int64_t area = (int64_t)(j1 - j0) * (i1 - i0);
        double inv_b = 1.0 / (double)block;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t k = 0; k < n; k++) {
            int64_t f, loc;
            if (!where(&w, x[k], &f, &loc)) {
                ok = 0;
                break;
            }
            int64_t ba = quot(f, block, inv_b), bb = quot(f + 1, block, inv_b);
            int64_t la = (f - ba * block) * area + loc, lb = (f + 1 - bb * block) * area + loc;
            ba -= lo;
            bb -= lo;
            if (ba < 0 || bb >= nt || !have[ba] || !have[bb] || la * 8 >= tb[ba].len ||
                lb * 8 >= tb[bb].len) {
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
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ctables",
                                    "DVH per-grid tables (rtqa._native).", -1, methods};

PyMODINIT_FUNC PyInit__ctables(void) { return PyModule_Create(&module); }
