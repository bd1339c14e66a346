/* Extreme doses at the contour vertices of a structure's surface: the compiled twin of
 * the vertex loop of rtqa.dvh.extremes._surface_extremes (see rtqa/_native.py).
 *
 * surface(flat, g0, w00, w10, w11, w01, nf, ta, tb, nxy, nx) -> (lo, hi) | None
 *   Per vertex v (int64 g0, nf; float64 weights and t): the bilinear dose on frames
 *   o = 0 .. nf[v]-1 of its slab, V[o] = w00 d[g] + w10 d[g+1] + w11 d[g+1+nx]
 *   + w01 d[g+nx] with g = g0[v] + o nxy (summed in that order); the candidates are
 *   face a, V[0] + ta (V[1] - V[0]); face b, (V[nf-1] - V[nf-2]) tb + V[nf-2]; and the
 *   inner frames V[1] .. V[nf-2]. Returns the least and greatest candidate (inf, -inf
 *   with no vertex).
 *
 * surface_xy(flat, x, y, plane, live, fa, nf, ta, tb, (x0, y0, dx, dy, nx_g, ny_g),
 *            (xlo, xhi, ylo, yhi), nxy, nx) -> (lo, hi) | None
 *   The same from the vertices themselves (float64 x, y; int64 plane) and per plane
 *   (live: uint8, the slab meets the grid; int64 fa, nf; float64 ta, tb): the vertices
 *   of live planes within the grid's in-plane extent (_in_grid_xy: xlo <= x <= xhi and
 *   ylo <= y <= yhi), their cell and fractions as _bilinear_parts (fx = (x - x0) / dx,
 *   i0 = int64(clip(floor(fx), 0, nx_g - 2)), tx = clip(fx - i0, 0, 1); y alike), the
 *   weights as _surface_extremes (w11 = tx ty, w10 = tx - w11, w01 = ty - w11, w00 =
 *   1 - tx - w01) and g0 = fa nxy + j0 nx + i0; then the vertex pass of surface.
 *
 * None: an index out of the dose array or a NaN (numpy raises or propagates it): the
 * caller runs the numpy code.
 *
 * Identical results: every candidate is the same IEEE 754 operations in the same order
 * as the numpy code (compiled without contraction or fast-math), and the least and
 * greatest of a set of non-NaN values do not depend on the order they are met in (no
 * candidate is -0.0: a sum with a +0.0 or positive term never rounds to -0.0).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

/* The candidates of one vertex (frames o = 0 .. n-1 from flat index g, weights c00..c01,
 * face fractions ta, tb) into [lo, hi]; 0 on an index outside the dose or a NaN. */
static inline int vertex(const double *d, Py_ssize_t size, int64_t g, int64_t n,
                         double c00, double c10, double c11, double c01, double ta,
                         double tb, Py_ssize_t nxy, Py_ssize_t nx, double *plo,
                         double *phi)
{
    double lo = *plo, hi = *phi;
    /* (each term below size first: the offset cannot overflow) */
    if (n < 2 || g < 0 || g >= size || nx >= size || n - 1 > (size - g) / nxy
        || g + (n - 1) * (int64_t)nxy + nx + 1 >= size)
        return 0;
    double prev = 0.0, cur = 0.0, first = 0.0;
    for (int64_t o = 0; o < n; o++) {
        const double *p = d + g + o * nxy;
        double x = c00 * p[0];
        x += c10 * p[1];
        x += c11 * p[1 + nx];
        x += c01 * p[nx];
        if (isnan(x))
            return 0;
        prev = cur;
        cur = x;
        if (o == 0) {
            first = x;
        } else if (o == 1) { /* face a */
            double f = x - first;
            f = ta * f;
            f = first + f;
            if (isnan(f))
                return 0;
            if (f < lo)
                lo = f;
            if (f > hi)
                hi = f;
        }
        if (o >= 2) { /* the previous frame is an inner one */
            if (prev < lo)
                lo = prev;
            if (prev > hi)
                hi = prev;
        }
    }
    double f = cur - prev; /* face b */
    f *= tb;
    f += prev;
    if (isnan(f))
        return 0;
    if (f < lo)
        lo = f;
    if (f > hi)
        hi = f;
    *plo = lo;
    *phi = hi;
    return 1;
}

static PyObject *surface(PyObject *self, PyObject *args)
{
    Py_buffer flat, g0, w00, w10, w11, w01, nf, ta, tb;
    Py_ssize_t nxy, nx;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*nn", &flat, &g0, &w00, &w10, &w11, &w01,
                          &nf, &ta, &tb, &nxy, &nx))
        return NULL;
    PyObject *res = NULL;
    Py_ssize_t m = g0.len / 8, size = flat.len / 8;
    Py_buffer *per[] = {&w00, &w10, &w11, &w01, &nf, &ta, &tb};
    if (nxy < 1 || nx < 0) { /* (the bound test below takes the last frame's last node) */
        PyErr_SetString(PyExc_ValueError, "surface: strides out of range");
        goto done;
    }
    for (int k = 0; k < 7; k++) {
        if (per[k]->len != m * 8) {
            PyErr_SetString(PyExc_ValueError, "surface: arrays of different lengths");
            goto done;
        }
    }
    const double *d = flat.buf, *a00 = w00.buf, *a10 = w10.buf, *a11 = w11.buf,
                 *a01 = w01.buf, *tav = ta.buf, *tbv = tb.buf;
    const int64_t *gv = g0.buf, *nfv = nf.buf;
    double lo = INFINITY, hi = -INFINITY;
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t v = 0; v < m && ok; v++)
        ok = vertex(d, size, gv[v], nfv[v], a00[v], a10[v], a11[v], a01[v], tav[v], tbv[v],
                    nxy, nx, &lo, &hi);
    Py_END_ALLOW_THREADS
    res = ok ? Py_BuildValue("dd", lo, hi) : Py_NewRef(Py_None);
done:
    PyBuffer_Release(&flat);
    PyBuffer_Release(&g0);
    PyBuffer_Release(&w00);
    PyBuffer_Release(&w10);
    PyBuffer_Release(&w11);
    PyBuffer_Release(&w01);
    PyBuffer_Release(&nf);
    PyBuffer_Release(&ta);
    PyBuffer_Release(&tb);
    return res;
}

/* numpy's clip of a float (np.clip(v, lo, hi): min(max(v, lo), hi), NaN kept) */
static inline double np_clip(double v, double lo, double hi)
{
    double m = (isnan(v) || v > lo) ? v : lo;
    return (isnan(m) || m < hi) ? m : hi;
}

/* floor(r) without a libm call where |r| < 2^50 (truncation toward zero is exact there);
 * the sign of a zero may differ, which the clip to [0, n] and the cast do not see */
static inline double floor_fast(double r)
{
    if (!(fabs(r) < 1125899906842624.0))
        return floor(r);
    double t = (double)(int64_t)r;
    return t > r ? t - 1.0 : t;
}

static PyObject *surface_xy(PyObject *self, PyObject *args)
{
    Py_buffer flat, xb, yb, plb, lvb, fab, nfb, tab, tbb;
    double x0, y0, dx, dy, xlo, xhi, ylo, yhi;
    long long nxg, nyg;
    Py_ssize_t nxy, nx;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*(ddddLL)(dddd)nn", &flat, &xb, &yb, &plb,
                          &lvb, &fab, &nfb, &tab, &tbb, &x0, &y0, &dx, &dy, &nxg, &nyg,
                          &xlo, &xhi, &ylo, &yhi, &nxy, &nx))
        return NULL;
    PyObject *res = NULL;
    Py_ssize_t m = xb.len / 8, K = lvb.len, size = flat.len / 8;
    if (nxy < 1 || nx < 0 || nxg < 2 || nyg < 2) {
        PyErr_SetString(PyExc_ValueError, "surface_xy: strides or grid out of range");
        goto done;
    }
    if (yb.len != m * 8 || plb.len != m * 8 || fab.len != K * 8 || nfb.len != K * 8
        || tab.len != K * 8 || tbb.len != K * 8) {
        PyErr_SetString(PyExc_ValueError, "surface_xy: arrays of different lengths");
        goto done;
    }
    const double *d = flat.buf, *px = xb.buf, *py = yb.buf, *tav = tab.buf, *tbv = tbb.buf;
    const int64_t *pl = plb.buf, *fav = fab.buf, *nfv = nfb.buf;
    const unsigned char *live = lvb.buf;
    double lo = INFINITY, hi = -INFINITY;
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t v = 0; v < m && ok; v++) {
        int64_t k = pl[v];
        if (k < 0 || k >= K) {
            ok = 0;
            break;
        }
        double x = px[v], y = py[v];
        /* keep = _in_grid_xy & live[plane] (a NaN compares false: not kept) */
        if (!live[k] || !(x >= xlo) || !(x <= xhi) || !(y >= ylo) || !(y <= yhi))
            continue;
        /* _bilinear_parts */
        double fx = (x - x0) / dx, fy = (y - y0) / dy;
        double cx = np_clip(floor_fast(fx), 0.0, (double)(nxg - 2));
        double cy = np_clip(floor_fast(fy), 0.0, (double)(nyg - 2));
        if (!(fabs(cx) < 9.0e15) || !(fabs(cy) < 9.0e15)) { /* (no NaN or huge cast) */
            ok = 0;
            break;
        }
        int64_t i0 = (int64_t)cx, j0 = (int64_t)cy;
        double tx = np_clip(fx - (double)i0, 0.0, 1.0);
        double ty = np_clip(fy - (double)j0, 0.0, 1.0);
        double w11 = tx * ty;
        double w10 = tx - w11;
        double w01 = ty - w11;
        double w00 = 1.0 - tx - w01;
        int64_t g = fav[k] * (int64_t)nxy;
        g += j0 * (int64_t)nx;
        g += i0;
        ok = vertex(d, size, g, nfv[k], w00, w10, w11, w01, tav[k], tbv[k], nxy, nx, &lo,
                    &hi);
    }
    Py_END_ALLOW_THREADS
    res = ok ? Py_BuildValue("dd", lo, hi) : Py_NewRef(Py_None);
done:
    PyBuffer_Release(&flat);
    PyBuffer_Release(&xb);
    PyBuffer_Release(&yb);
    PyBuffer_Release(&plb);
    PyBuffer_Release(&lvb);
    PyBuffer_Release(&fab);
    PyBuffer_Release(&nfb);
    PyBuffer_Release(&tab);
    PyBuffer_Release(&tbb);
    return res;
}

static PyMethodDef methods[] = {
    {"surface", surface, METH_VARARGS,
     "surface(flat, g0, w00, w10, w11, w01, nf, ta, tb, nxy, nx) -> (lo, hi) | None:"
     " extreme doses at the contour vertices (_surface_extremes)."},
    {"surface_xy", surface_xy, METH_VARARGS,
     "surface_xy(flat, x, y, plane, live, fa, nf, ta, tb, (x0, y0, dx, dy, nx_g, ny_g),"
     " (xlo, xhi, ylo, yhi), nxy, nx) -> (lo, hi) | None: the same from the vertices."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cextremes",
                                    "Surface extreme doses (rtqa._native).", -1, methods};

PyMODINIT_FUNC PyInit__cextremes(void) { return PyModule_Create(&module); }
