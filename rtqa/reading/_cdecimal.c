/* ContourData decimal strings to float64: the compiled twin of
 * rtqa.reading.structures._parse_decimals (see rtqa/_native.py).
 *
 * parse(values, out) -> bool
 *   values: list of bytes (DS values, e.g. ContourData); out: a writable C-contiguous
 *   float64 buffer of exactly as many items as there are backslash-separated tokens
 *   in all of values.  Each value is first stripped of leading and trailing spaces
 *   and NULs.  Returns False, with out partly written, when any token is not a plain
 *   decimal: [+-]digits[.digits] with 1 to 15 digits in all, at most one dot, the
 *   sign only first, not empty (the caller then parses token by token).
 *
 * Exactness (as in the numpy code): a mantissa of at most 15 digits is an exact
 * float64 integer, 10**k is exact for k <= 22, and IEEE 754 division rounds
 * correctly, so mantissa / 10**k is the correctly rounded value of the decimal, the
 * value float(token) gives.  A minus sign negates the quotient (-0 gives -0.0).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static const double POW10[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
    1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* One token b[0:n]: 1 and *x set when plain, else 0. */
static int token(const unsigned char *b, Py_ssize_t n, double *x)
{
    Py_ssize_t i = 0;
    int negative = 0, digits = 0, dot = 0, frac = 0;
    double m = 0.0;
    if (n <= 0)
        return 0;
    if (b[0] == '+' || b[0] == '-') {
        negative = b[0] == '-';
        i = 1;
    }
    for (; i < n; i++) {
        unsigned char c = b[i];
        if (c >= '0' && c <= '9') {
            if (++digits > 15)
                return 0;
            m = m * 10.0 + (double)(c - '0');  /* exact: < 10**15 */
            frac += dot;
        } else if (c == '.') {
            if (dot)
                return 0;
            dot = 1;
        } else {
            return 0;
        }
    }
    if (digits == 0)
        return 0;
    *x = m / POW10[frac];
    if (negative)
        *x = -*x;
    return 1;
}

static PyObject *parse(PyObject *self, PyObject *args)
{
    PyObject *values;
    Py_buffer out;
    if (!PyArg_ParseTuple(args, "O!w*", &PyList_Type, &values, &out))
        return NULL;
    double *o = (double *)out.buf;
    Py_ssize_t cap = out.len / (Py_ssize_t)sizeof(double), k = 0;
    Py_ssize_t nv = PyList_GET_SIZE(values);
    int ok = 1;
    for (Py_ssize_t v = 0; v < nv && ok; v++) {
        PyObject *item = PyList_GET_ITEM(values, v);
        if (!PyBytes_Check(item)) {
            PyBuffer_Release(&out);
            PyErr_SetString(PyExc_TypeError, "parse: values must be bytes");
            return NULL;
        }
        const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(item);
        Py_ssize_t lo = 0, hi = PyBytes_GET_SIZE(item);
        while (lo < hi && (b[lo] == ' ' || b[lo] == 0))
            lo++;
        while (hi > lo && (b[hi - 1] == ' ' || b[hi - 1] == 0))
            hi--;
        Py_ssize_t start = lo;
        for (Py_ssize_t i = lo; i <= hi; i++) {
            if (i == hi || b[i] == '\\') {
                if (k >= cap) {
                    PyBuffer_Release(&out);
                    PyErr_SetString(PyExc_ValueError, "parse: out is too small");
                    return NULL;
                }
                if (!token(b + start, i - start, o + k)) {
                    ok = 0;
                    break;
                }
                k++;
                start = i + 1;
            }
        }
    }
    PyBuffer_Release(&out);
    if (ok && k != cap) {
        PyErr_SetString(PyExc_ValueError, "parse: out is not the number of tokens");
        return NULL;
    }
    return PyBool_FromLong(ok);
}

static PyMethodDef methods[] = {
    {"parse", parse, METH_VARARGS,
     "parse(values, out) -> bool: plain DS decimals of values into out (float64)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cdecimal",
                                    "ContourData decimals to float64 (rtqa._native).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__cdecimal(void) { return PyModule_Create(&module); }
