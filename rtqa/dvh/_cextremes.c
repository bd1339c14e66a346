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
    for (Py_ssize_t v = 0; v < m && ok; v++) {
        int64_t g = gv[v], n = nfv[v];
        /* (each term below size first: the offset cannot overflow) */
        if (n < 2 || g < 0 || g >= size || nx >= size
            || n - 1 > (size - g) / nxy
            || g + (n - 1) * (int64_t)nxy + nx + 1 >= size) {
            ok = 0;
            break;
        }
        double c00 = a00[v], c10 = a10[v], c11 = a11[v], c01 = a01[v];
        double prev = 0.0, cur = 0.0, first = 0.0;
        for (int64_t o = 0; o < n; o++) {
            const double *p = d + g + o * nxy;
            double x = c00 * p[0];
            x += c10 * p[1];
            x += c11 * p[1 + nx];
            x += c01 * p[nx];
            if (isnan(x)) {
                ok = 0;
                break;
            }
            prev = cur;
            cur = x;
            if (o == 0) {
                first = x;
            } else if (o == 1) { /* face a */
                double f = x - first;
                f = tav[v] * f;
                f = first + f;
                if (isnan(f)) {
                    ok = 0;
                    break;
                }
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
        if (!ok)
            break;
        double f = cur - prev; /* face b */
        f *= tbv[v];
        f += prev;
        if (isnan(f)) {
            ok = 0;
            break;
        }
        if (f < lo)
            lo = f;
        if (f > hi)
            hi = f;
    }
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

static PyMethodDef methods[] = {
    {"surface", surface, METH_VARARGS,
     "surface(flat, g0, w00, w10, w11, w01, nf, ta, tb, nxy, nx) -> (lo, hi) | None:"
     " extreme doses at the contour vertices (_surface_extremes)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cextremes",
                                    "Surface extreme doses (rtqa._native).", -1, methods};

PyMODINIT_FUNC PyInit__cextremes(void) { return PyModule_Create(&module); }
