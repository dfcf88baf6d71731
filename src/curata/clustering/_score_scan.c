/* Python bindings of the work around each score GEMM of a k-means pass (the kernels are in _scan_kernels.c, the
 * threaded pass over a whole shard in _scan_pass.c).
 *
 * best_two: per row of a (rows, cols) float32 score block (row stride `ld`), plus an optional per-column bias, the
 * smallest value and its column, and the smallest of the other columns and its column; ties go to the lowest
 * column, as numpy's argmin does (the Python fallback in score_scan.py takes argmin, hides it, takes argmin again,
 * and gives the same answer bit for bit: the bias is one float32 add, then only comparisons).
 *
 * add_rows: stage[labels[i]] += round(x[i] * scale) in int64 (fixed point, see fixed_point.py): integer sums, the
 * same bit for bit as the torch fallback's in any order.
 *
 * scan_pass, sum_pass: the same for every block of a shard in memory, on a team of threads (see _scan_pass.h).
 *
 * Arguments are raw addresses and sizes: the Python wrapper checks dtypes, shapes and contiguity first. The GIL is
 * released during the work, so that the k-means workers' threads run these at the same time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_scan_kernels.h"
#include "_scan_pass.h"
#include "_thread_team.h"

/* How many calls took each kernel (kernel_uses()): the tests that force a path (CURATA_SIMD, set_simd) check that
 * it is the one that ran. Counted by the bindings with the GIL held, once a call, not once a row. */
enum { USE_SCAN_SCALAR, USE_SCAN_AVX2, USE_SCAN_AVX512, USE_DISTANCE_PORTABLE, USE_DISTANCE_AVX512, USE_PANEL_GEMM,
       USE_SCAN_PASS, USE_COUNT };
static const char *use_names[USE_COUNT] = {"scan_scalar",     "scan_avx2",  "scan_avx512", "distance_portable",
                                           "distance_avx512", "panel_gemm", "scan_pass"};
static long long uses[USE_COUNT];

/* scan_kernel's answer (SIMD_NONE, SIMD_AVX2, SIMD_AVX512) as the matching USE_SCAN_* */
static void count_scan(int64_t cols) { uses[USE_SCAN_SCALAR + scan_kernel(cols)]++; }

static void count_distance(void) { uses[has_avx512() ? USE_DISTANCE_AVX512 : USE_DISTANCE_PORTABLE]++; }

static const char *simd_names[] = {"none", "avx2", "avx512"}; /* indexed by SIMD_NONE, SIMD_AVX2, SIMD_AVX512 */

/* the SIMD_* level named `name`, or -1 */
static int simd_named(const char *name) {
    for (int level = SIMD_NONE; level <= SIMD_AVX512; level++)
        if (strcmp(name, simd_names[level]) == 0) return level;
    return -1;
}

static int parse(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t expected, void **ptrs, int64_t *sizes,
                 Py_ssize_t n_ptrs, const char *name) {
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s takes %zd arguments, got %zd", name, expected, nargs);
        return -1;
    }
    for (Py_ssize_t a = 0; a < nargs; a++) {
        if (a < n_ptrs) {
            ptrs[a] = PyLong_AsVoidPtr(args[a]);
        } else {
            sizes[a - n_ptrs] = PyLong_AsLongLong(args[a]);
        }
        if (PyErr_Occurred()) return -1;
    }
    return 0;
}

/* best_two(scores, bias or 0, first, first_at, second, second_at or 0, rows, cols, ld) */
static PyObject *best_two(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    void *p[6];
    int64_t n[3];
    if (parse(args, nargs, 9, p, n, 6, "best_two") < 0) return NULL;
    const float *scores = p[0], *bias = p[1];
    float *first = p[2], *second = p[4];
    int64_t *first_at = p[3], *second_at = p[5];
    int64_t rows = n[0], cols = n[1], ld = n[2];
    if (rows > 0) count_scan(cols);
    Py_BEGIN_ALLOW_THREADS;
    for (int64_t i = 0; i < rows; i++) {
        Best b;
        scan_row(scores + i * ld, bias, cols, &b, second_at != NULL);
        first[i] = b.v1;
        first_at[i] = b.i1;
        second[i] = b.v2;
        if (second_at) second_at[i] = b.i2;
    }
    Py_END_ALLOW_THREADS;
    Py_RETURN_NONE;
}

/* add_rows(stage, labels, x, rows, dim, ld, bits): stage[labels[i], :] += round(x[i, :] * 2^bits) */
static PyObject *add_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    void *p[3];
    int64_t n[4];
    if (parse(args, nargs, 7, p, n, 3, "add_rows") < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS;
    add_rows_fixed(p[0], p[1], p[2], n[0], n[1], n[2], ldexp(1.0, (int)n[3]));
    Py_END_ALLOW_THREADS;
    Py_RETURN_NONE;
}

/* panel_scores(x, panels, bias or 0, out, rows, dim, cols, ldx, ldo) -> whether it ran (only with AVX-512) */
static PyObject *panel_scores(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    void *p[4];
    int64_t n[5];
    if (parse(args, nargs, 9, p, n, 4, "panel_scores") < 0) return NULL;
    if (!has_avx512()) Py_RETURN_FALSE;
    uses[USE_PANEL_GEMM]++;
    Py_BEGIN_ALLOW_THREADS;
    panel_gemm(p[0], n[3], n[0], n[1], p[1], p[2], n[2], p[3], n[4]);
    Py_END_ALLOW_THREADS;
    Py_RETURN_TRUE;
}

/* settle_rows(first, second, block_sq or 0, best or 0, bound or 0, close, rows, largest_norm, unit_slack) -> count
 * settle_row (_scan_kernels.h) for every row; the near-ties' rows listed in `close`. */
static PyObject *settle_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9) {
        PyErr_Format(PyExc_TypeError, "settle_rows takes 9 arguments, got %zd", nargs);
        return NULL;
    }
    void *p[6];
    for (int a = 0; a < 6; a++) {
        p[a] = PyLong_AsVoidPtr(args[a]);
        if (PyErr_Occurred()) return NULL;
    }
    int64_t rows = PyLong_AsLongLong(args[6]);
    double largest = PyFloat_AsDouble(args[7]), unit = PyFloat_AsDouble(args[8]);
    if (PyErr_Occurred()) return NULL;
    const float *first = p[0], *second = p[1], *sq = p[2];
    float *best = p[3], *bound = p[4];
    int64_t *close = p[5];
    int64_t count = 0;
    Py_BEGIN_ALLOW_THREADS;
    for (int64_t i = 0; i < rows; i++) {
        if (settle_row(first[i], second[i], sq ? sq[i] : 0.0f, sq != NULL, (float)largest, (float)unit,
                       best ? best + i : NULL, bound ? bound + i : NULL))
            close[count++] = i;
    }
    Py_END_ALLOW_THREADS;
    return PyLong_FromLongLong(count);
}

/* scan_pass(x, x_sq or 0, panels, bias or 0, centers, labels, best, lower or 0, rows, dim, k, ldx, threads, exact,
 *           filled, largest_norm, unit_slack, grow) -> (near-ties, rows scored) */
static PyObject *py_scan_pass(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 18) {
        PyErr_Format(PyExc_TypeError, "scan_pass takes 18 arguments, got %zd", nargs);
        return NULL;
    }
    void *p[8];
    int64_t n[7];
    for (int a = 0; a < 15; a++) {
        if (a < 8)
            p[a] = PyLong_AsVoidPtr(args[a]);
        else
            n[a - 8] = PyLong_AsLongLong(args[a]);
        if (PyErr_Occurred()) return NULL;
    }
    double largest = PyFloat_AsDouble(args[15]), unit = PyFloat_AsDouble(args[16]), grow = PyFloat_AsDouble(args[17]);
    if (PyErr_Occurred()) return NULL;
    if (!has_avx512()) {
        PyErr_SetString(PyExc_RuntimeError, "scan_pass needs a CPU with AVX-512");
        return NULL;
    }
    int64_t count, scored;
    uses[USE_SCAN_PASS]++;
    uses[USE_PANEL_GEMM]++;
    count_scan(n[2]);
    count_distance(); /* the near-ties' sums of squares, and with `exact` every row's */
    Py_BEGIN_ALLOW_THREADS;
    count = scan_pass(p[0], n[3], p[1], n[0], n[1], p[2], p[3], p[4], n[2], n[4], (float)largest, (float)unit,
                      (int)n[5], p[5], p[6], p[7], (int)n[6], (float)grow, &scored);
    Py_END_ALLOW_THREADS;
    if (count < 0) return PyErr_NoMemory();
    return Py_BuildValue("(LL)", (long long)count, (long long)scored);
}

/* row_distances(x, centers, labels, out, rows, dim, ldx): out[i] = row_distance(x[i], centers[labels[i]]) */
static PyObject *py_row_distances(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    void *p[4];
    int64_t n[3];
    if (parse(args, nargs, 7, p, n, 4, "row_distances") < 0) return NULL;
    const float *x = p[0], *centers = p[1];
    const int64_t *labels = p[2];
    float *out = p[3];
    if (n[0] > 0) count_distance();
    Py_BEGIN_ALLOW_THREADS;
    for (int64_t i = 0; i < n[0]; i++) out[i] = row_distance(x + i * n[2], centers + labels[i] * n[1], n[1]);
    Py_END_ALLOW_THREADS;
    Py_RETURN_NONE;
}

/* sum_pass(x, labels, out, rows, dim, k, ldx, chunk, bits, workers, threads): int64 out, values times 2^bits */
static PyObject *py_sum_pass(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    void *p[3];
    int64_t n[8];
    if (parse(args, nargs, 11, p, n, 3, "sum_pass") < 0) return NULL;
    int failed;
    Py_BEGIN_ALLOW_THREADS;
    failed = sum_pass(p[0], n[3], p[1], n[0], n[1], n[2], n[4], ldexp(1.0, (int)n[5]), n[6], n[7], p[2]);
    Py_END_ALLOW_THREADS;
    if (failed == -2) {
        PyErr_SetString(PyExc_ValueError, "sum_pass takes 1 to 256 workers");
        return NULL;
    }
    if (failed) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* team_spin(microseconds): how long the pass threads spin for the next job before they sleep */
static PyObject *team_spin(PyObject *self, PyObject *arg) {
    long us = PyLong_AsLong(arg);
    if (PyErr_Occurred()) return NULL;
    team_set_spin(us);
    Py_RETURN_NONE;
}

/* avx512() -> whether panel_scores runs on this CPU */
static PyObject *avx512(PyObject *self, PyObject *unused) {
    if (has_avx512()) Py_RETURN_TRUE;
    Py_RETURN_FALSE;
}

/* simd() -> the widest instruction set the kernels use now: "avx512", "avx2" or "none" */
static PyObject *simd(PyObject *self, PyObject *unused) { return PyUnicode_FromString(simd_names[simd_level()]); }

/* set_simd(name): cap the kernels at "avx512", "avx2" or "none" (what the CPU lacks stays off) */
static PyObject *set_simd(PyObject *self, PyObject *arg) {
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL) return NULL;
    int level = simd_named(name);
    if (level < 0) {
        PyErr_Format(PyExc_ValueError, "the SIMD level must be avx512, avx2 or none, got %R", arg);
        return NULL;
    }
    set_simd_cap(level);
    Py_RETURN_NONE;
}

/* kernel_uses() -> {kernel: calls that took it} since the module loaded */
static PyObject *kernel_uses(PyObject *self, PyObject *unused) {
    PyObject *out = PyDict_New();
    if (out == NULL) return NULL;
    for (int u = 0; u < USE_COUNT; u++) {
        PyObject *count = PyLong_FromLongLong(uses[u]);
        if (count == NULL || PyDict_SetItemString(out, use_names[u], count) < 0) {
            Py_XDECREF(count);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(count);
    }
    return out;
}

static PyMethodDef methods[] = {
    {"best_two", (PyCFunction)(void (*)(void))best_two, METH_FASTCALL, "best two scores per row (see score_scan.py)"},
    {"add_rows", (PyCFunction)(void (*)(void))add_rows, METH_FASTCALL, "stage[labels[i]] += x[i] (see score_scan.py)"},
    {"settle_rows", (PyCFunction)(void (*)(void))settle_rows, METH_FASTCALL, "distances, near-ties, bounds (see score_scan.py)"},
    {"panel_scores", (PyCFunction)(void (*)(void))panel_scores, METH_FASTCALL, "x @ packed centroids + bias (AVX-512)"},
    {"scan_pass", (PyCFunction)(void (*)(void))py_scan_pass, METH_FASTCALL, "labels and near-ties of a shard (see score_scan.py)"},
    {"row_distances", (PyCFunction)(void (*)(void))py_row_distances, METH_FASTCALL, "sums of squares to given centroids"},
    {"sum_pass", (PyCFunction)(void (*)(void))py_sum_pass, METH_FASTCALL, "per-cluster sums of a shard (see score_scan.py)"},
    {"team_spin", team_spin, METH_O, "how long idle pass threads spin, in microseconds"},
    {"avx512", avx512, METH_NOARGS, "whether panel_scores runs on this CPU"},
    {"simd", simd, METH_NOARGS, "the widest instruction set the kernels use: avx512, avx2 or none"},
    {"set_simd", set_simd, METH_O, "cap the kernels at avx512, avx2 or none"},
    {"kernel_uses", kernel_uses, METH_NOARGS, "calls per kernel since the module loaded"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_score_scan", NULL, -1, methods};

/* CURATA_SIMD=avx512|avx2|none caps the kernels for the process, read once here (unset or empty: no cap) */
PyMODINIT_FUNC PyInit__score_scan(void) {
    simd_level(); /* the CPU's answer is cached before any pass thread asks */
    const char *wanted = getenv("CURATA_SIMD");
    if (wanted != NULL && wanted[0] != '\0') {
        int level = simd_named(wanted);
        if (level < 0) {
            PyErr_Format(PyExc_ValueError, "CURATA_SIMD must be avx512, avx2 or none, got '%s'", wanted);
            return NULL;
        }
        set_simd_cap(level);
    }
    return PyModule_Create(&module);
}
