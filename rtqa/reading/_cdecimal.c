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
 * raw_items(value, implicit, vr_names) -> list | None | False
 *   rtqa.reading.raw._items(value, 0, len(value), len(value), implicit)[0] of a sequence
 *   value (bytes, little endian): per item {tag: (VR str or None, value bytes or None
 *   for a nested sequence)} in element order; None where the Python walk raises
 *   _Unusual (the same checks, in the same order); False where this walk cannot decide
 *   (an undefined-length element in implicit VR, whose sequence-ness is the data
 *   dictionary's, or items nested deeper than MAX_DEPTH): the caller runs the Python
 *   walk.  vr_names: {2-byte VR code: (VR name, 4-byte length)} of every VR the walk
 *   knows (raw._VR_NAMES, _LONG_VRS).
 *
 * walk_body(data, pos, little) -> (end, pixel_data) | None
 *   rtqa.reading.completeness: _Walker(data, explicit=True, little).elements(pos,
 *   len(data), None, top=True) of an explicit VR data set: the position after its last
 *   element and the (offset, length) of its top-level PixelData of defined length (None
 *   without one); None where the Python walk raises (Incomplete, struct.error) or the
 *   items nest deeper than MAX_DEPTH: the caller then runs the Python walk, which gives
 *   the reason.
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

/* ---- raw sequence items (rtqa.reading.raw) ------------------------------------ */

enum { WALK_OK = 0, WALK_UNUSUAL = 1, WALK_UNSURE = 2, WALK_ERROR = -1, MAX_DEPTH = 64 };

typedef struct {
    const unsigned char *d;
    int implicit;
    PyObject *vr_names; /* dict: 2-byte VR code (bytes) -> (str, long length) */
} walker;

static inline unsigned int u16le(const unsigned char *p) { return p[0] | (p[1] << 8); }

static inline unsigned long u32le(const unsigned char *p)
{
    return (unsigned long)p[0] | ((unsigned long)p[1] << 8) | ((unsigned long)p[2] << 16)
           | ((unsigned long)p[3] << 24);
}

static int w_items(walker *w, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t limit, int depth,
                   PyObject **out, Py_ssize_t *after);

/* raw._elements: end < 0 for None (up to the Item Delimitation Item) */
static int w_elements(walker *w, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t limit,
                      int depth, PyObject **out, Py_ssize_t *after)
{
    const unsigned char *d = w->d;
    PyObject *o = PyDict_New();
    if (!o)
        return WALK_ERROR;
    Py_ssize_t stop = end < 0 ? limit : end;
    int st = WALK_OK;
    for (;;) {
        if (end >= 0 && pos == end)
            break;
        if (pos + 8 > stop) {
            st = WALK_UNUSUAL;
            break;
        }
        unsigned int group = u16le(d + pos), element = u16le(d + pos + 2);
        if (group == 0xFFFE) {
            if (end < 0 && element == 0xE00D) {
                pos += 8;
                break;
            }
            st = WALK_UNUSUAL;
            break;
        }
        long tag = (long)(group << 16 | element);
        PyObject *vr = Py_None;
        unsigned long length;
        if (w->implicit) {
            length = u32le(d + pos + 4);
            pos += 8;
        } else {
            PyObject *code = PyBytes_FromStringAndSize((const char *)d + pos + 4, 2);
            if (!code) {
                st = WALK_ERROR;
                break;
            }
            PyObject *ent = PyDict_GetItemWithError(w->vr_names, code);
            Py_DECREF(code);
            if (!ent) {
                st = PyErr_Occurred() ? WALK_ERROR : WALK_UNUSUAL;
                break;
            }
            vr = PyTuple_GET_ITEM(ent, 0);
            if (PyTuple_GET_ITEM(ent, 1) == Py_True) {
                if (pos + 12 > stop) {
                    st = WALK_UNUSUAL;
                    break;
                }
                length = u32le(d + pos + 8);
                pos += 12;
            } else {
                length = u16le(d + pos + 6);
                pos += 8;
            }
        }
        PyObject *key = PyLong_FromLong(tag);
        if (!key) {
            st = WALK_ERROR;
            break;
        }
        int has = PyDict_Contains(o, key);
        if (has) {
            Py_DECREF(key);
            st = has < 0 ? WALK_ERROR : WALK_UNUSUAL;
            break;
        }
        PyObject *val;
        if (length == 0xFFFFFFFFul) {
            int sq = vr != Py_None && PyUnicode_CompareWithASCIIString(vr, "SQ") == 0;
            if (!sq) { /* implicit VR: the dictionary's call (the Python walk) */
                Py_DECREF(key);
                st = vr == Py_None ? WALK_UNSURE : WALK_UNUSUAL;
                break;
            }
            if (depth >= MAX_DEPTH) {
                Py_DECREF(key);
                st = WALK_UNSURE;
                break;
            }
            PyObject *nested = NULL;
            st = w_items(w, pos, -1, stop, depth + 1, &nested, &pos);
            Py_XDECREF(nested);
            if (st != WALK_OK) {
                Py_DECREF(key);
                break;
            }
            val = PyTuple_Pack(2, vr, Py_None);
        } else {
            if (pos + (Py_ssize_t)length > stop) {
                Py_DECREF(key);
                st = WALK_UNUSUAL;
                break;
            }
            PyObject *b = PyBytes_FromStringAndSize((const char *)d + pos, (Py_ssize_t)length);
            if (!b) {
                Py_DECREF(key);
                st = WALK_ERROR;
                break;
            }
            val = PyTuple_Pack(2, vr, b);
            Py_DECREF(b);
            pos += (Py_ssize_t)length;
        }
        if (!val || PyDict_SetItem(o, key, val) < 0) {
            Py_XDECREF(val);
            Py_DECREF(key);
            st = WALK_ERROR;
            break;
        }
        Py_DECREF(val);
        Py_DECREF(key);
    }
    if (st != WALK_OK) {
        Py_DECREF(o);
        return st;
    }
    *out = o;
    *after = pos;
    return WALK_OK;
}

/* raw._items: end < 0 for None (up to the Sequence Delimitation Item) */
static int w_items(walker *w, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t limit, int depth,
                   PyObject **out, Py_ssize_t *after)
{
    const unsigned char *d = w->d;
    PyObject *o = PyList_New(0);
    if (!o)
        return WALK_ERROR;
    Py_ssize_t stop = end < 0 ? limit : end;
    int st = WALK_OK;
    for (;;) {
        if (end >= 0 && pos == end)
            break;
        if (pos + 8 > stop) {
            st = WALK_UNUSUAL;
            break;
        }
        unsigned int group = u16le(d + pos), element = u16le(d + pos + 2);
        unsigned long length = u32le(d + pos + 4);
        pos += 8;
        if (group != 0xFFFE) {
            st = WALK_UNUSUAL;
            break;
        }
        if (element == 0xE0DD && end < 0)
            break;
        if (element != 0xE000) {
            st = WALK_UNUSUAL;
            break;
        }
        PyObject *item = NULL;
        if (length == 0xFFFFFFFFul) {
            st = w_elements(w, pos, -1, stop, depth, &item, &pos);
        } else {
            if (pos + (Py_ssize_t)length > stop) {
                st = WALK_UNUSUAL;
                break;
            }
            st = w_elements(w, pos, pos + (Py_ssize_t)length, stop, depth, &item, &pos);
        }
        if (st != WALK_OK)
            break;
        int r = PyList_Append(o, item);
        Py_DECREF(item);
        if (r < 0) {
            st = WALK_ERROR;
            break;
        }
    }
    if (st != WALK_OK) {
        Py_DECREF(o);
        return st;
    }
    *out = o;
    *after = pos;
    return WALK_OK;
}

/* ---- completeness walk (rtqa.reading.completeness, explicit VR) ----------------- */

typedef struct {
    const unsigned char *d;
    int little;
    Py_ssize_t pix_off, pix_len;
} cwalk;

static inline unsigned long c16(const cwalk *w, Py_ssize_t p)
{
    const unsigned char *b = w->d + p;
    return w->little ? (unsigned long)(b[0] | (b[1] << 8)) : (unsigned long)(b[1] | (b[0] << 8));
}

static inline unsigned long c32(const cwalk *w, Py_ssize_t p)
{
    const unsigned char *b = w->d + p;
    if (w->little)
        return (unsigned long)b[0] | ((unsigned long)b[1] << 8) | ((unsigned long)b[2] << 16)
               | ((unsigned long)b[3] << 24);
    return (unsigned long)b[3] | ((unsigned long)b[2] << 8) | ((unsigned long)b[1] << 16)
           | ((unsigned long)b[0] << 24);
}

static inline unsigned long ctag(const cwalk *w, Py_ssize_t p)
{
    return (c16(w, p) << 16) | c16(w, p + 2);
}

static int long_vr(const unsigned char *v)
{
    static const char *L[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN",
                              "UR", "UT", "UV"};
    for (int i = 0; i < 13; i++)
        if (v[0] == (unsigned char)L[i][0] && v[1] == (unsigned char)L[i][1])
            return 1;
    return 0;
}

#define C_ITEM 0xFFFEE000ul
#define C_ITEM_END 0xFFFEE00Dul
#define C_SEQ_END 0xFFFEE0DDul
#define C_PIXEL 0x7FE00010ul
#define C_UNDEF 0xFFFFFFFFul

static Py_ssize_t c_items(cwalk *w, Py_ssize_t pos, Py_ssize_t end, int nested, int depth);

/* _Walker.elements: -1 where it raises (or nests too deep); until 0: None */
static Py_ssize_t c_elements(cwalk *w, Py_ssize_t pos, Py_ssize_t end, unsigned long until,
                             int top, int depth)
{
    if (depth > MAX_DEPTH)
        return -1;
    while (pos < end || until) {
        if (pos + 8 > end)
            return -1;
        unsigned long tag = ctag(w, pos), length;
        if (until && tag == until)
            return pos + 8;
        if (tag == C_ITEM_END || tag == C_SEQ_END || tag == C_ITEM)
            return -1;
        const unsigned char *vr = w->d + pos + 4;
        int sq = vr[0] == 'S' && vr[1] == 'Q';
        if (long_vr(vr)) {
            if (pos + 12 > end)
                return -1;
            length = c32(w, pos + 8);
            pos += 12;
        } else {
            length = c16(w, pos + 6);
            pos += 8;
        }
        if (length == C_UNDEF) {
            pos = c_items(w, pos, end, tag != C_PIXEL, depth + 1);
            if (pos < 0)
                return -1;
        } else {
            Py_ssize_t n = (Py_ssize_t)length;
            if (pos + n > end)
                return -1;
            if (top && tag == C_PIXEL) {
                w->pix_off = pos;
                w->pix_len = n;
            } else if (sq) { /* _Walker.sequence: items filling [pos, pos + n) exactly */
                Py_ssize_t p = pos, e = pos + n;
                while (p < e) {
                    if (p + 8 > e || ctag(w, p) != C_ITEM)
                        return -1;
                    unsigned long len = c32(w, p + 4);
                    p += 8;
                    if (len == C_UNDEF) {
                        p = c_elements(w, p, e, C_ITEM_END, 0, depth + 1);
                    } else {
                        if (p + (Py_ssize_t)len > e)
                            return -1;
                        Py_ssize_t stop = c_elements(w, p, p + (Py_ssize_t)len, 0, 0,
                                                     depth + 1);
                        p = stop == p + (Py_ssize_t)len ? stop : -1;
                    }
                    if (p < 0)
                        return -1;
                }
            }
            pos += n;
        }
    }
    return pos;
}

/* _Walker.items: the items of an undefined-length sequence (nested) or pixel data
 * fragments */
static Py_ssize_t c_items(cwalk *w, Py_ssize_t pos, Py_ssize_t end, int nested, int depth)
{
    if (depth > MAX_DEPTH)
        return -1;
    for (;;) {
        if (pos + 8 > end)
            return -1;
        unsigned long tag = ctag(w, pos), length = c32(w, pos + 4);
        pos += 8;
        if (tag == C_SEQ_END)
            return pos;
        if (tag != C_ITEM)
            return -1;
        if (nested) { /* _Walker._item */
            if (length == C_UNDEF) {
                pos = c_elements(w, pos, end, C_ITEM_END, 0, depth + 1);
            } else {
                if (pos + (Py_ssize_t)length > end)
                    return -1;
                Py_ssize_t stop = c_elements(w, pos, pos + (Py_ssize_t)length, 0, 0,
                                             depth + 1);
                pos = stop == pos + (Py_ssize_t)length ? stop : -1;
            }
            if (pos < 0)
                return -1;
        } else if (length == C_UNDEF) {
            return -1;
        } else {
            if (pos + (Py_ssize_t)length > end)
                return -1;
            pos += (Py_ssize_t)length;
        }
    }
}

static PyObject *walk_body(PyObject *self, PyObject *args)
{
    Py_buffer v;
    Py_ssize_t pos;
    int little;
    if (!PyArg_ParseTuple(args, "y*np", &v, &pos, &little))
        return NULL;
    cwalk w = {v.buf, little, -1, -1};
    Py_ssize_t end = -1;
    if (pos >= 0 && pos <= v.len) {
        Py_BEGIN_ALLOW_THREADS
        end = c_elements(&w, pos, v.len, 0, 1, 0);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&v);
    if (end < 0)
        Py_RETURN_NONE;
    if (w.pix_off < 0)
        return Py_BuildValue("(nO)", end, Py_None);
    return Py_BuildValue("(n(nn))", end, w.pix_off, w.pix_len);
}

static PyObject *raw_items(PyObject *self, PyObject *args)
{
    Py_buffer v;
    int implicit;
    PyObject *vr_names;
    if (!PyArg_ParseTuple(args, "y*pO!", &v, &implicit, &PyDict_Type, &vr_names))
        return NULL;
    walker w = {v.buf, implicit, vr_names};
    PyObject *out = NULL;
    Py_ssize_t after;
    int st = w_items(&w, 0, v.len, v.len, 0, &out, &after);
    PyBuffer_Release(&v);
    if (st == WALK_OK)
        return out;
    if (st == WALK_ERROR)
        return NULL;
    if (st == WALK_UNUSUAL)
        Py_RETURN_NONE;
    Py_RETURN_FALSE;
}

static PyMethodDef methods[] = {
    {"parse", parse, METH_VARARGS,
     "parse(values, out) -> bool: plain DS decimals of values into out (float64)."},
    {"raw_items", raw_items, METH_VARARGS,
     "raw_items(value, implicit, vr_names) -> list | None | False: rtqa.reading.raw's "
     "items of a sequence value (None: not plain; False: the Python walk decides)."},
    {"walk_body", walk_body, METH_VARARGS,
     "walk_body(data, pos, little) -> (end, pixel_data) | None: the completeness walk of "
     "an explicit VR data set (None: the Python walk decides)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cdecimal",
                                    "ContourData decimals to float64 and raw sequence items (rtqa._native).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__cdecimal(void) { return PyModule_Create(&module); }
