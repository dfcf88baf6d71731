/* The work around each score GEMM of a k-means pass, in one pass over memory instead of five numpy/torch calls.
 *
 * best_two: per row of a (rows, cols) float32 score block (row stride `ld`), plus an optional per-column bias, the
 * smallest value and its column, and the smallest of the other columns and its column; ties go to the lowest
 * column, as numpy's argmin does (the Python fallback in score_scan.py takes argmin, hides it, takes argmin again,
 * and gives the same answer bit for bit: the bias is one float32 add, then only comparisons).
 *
 * add_rows: stage[labels[i]] += x[i] for i in row order, one float32 add per element, which is what torch's
 * index_add_ does on one CPU thread (same sums bit for bit).
 *
 * Arguments are raw addresses and sizes: the Python wrapper checks dtypes, shapes and contiguity first. The GIL is
 * released during the work, so that the k-means workers' threads run these at the same time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SCAN_AVX2 1
#endif

#ifndef SCAN512_FROM
#define SCAN512_FROM 8 /* columns from which the 16-lane scan beats the scalar one */
#endif

typedef struct {
    float v1, v2;
    int64_t i1, i2;
} Best;

/* Put column j's value v into a running best two (columns arrive in increasing order). */
static inline void take(Best *b, float v, int64_t j) {
    if (v < b->v1) {
        b->v2 = b->v1;
        b->i2 = b->i1;
        b->v1 = v;
        b->i1 = j;
    } else if (v < b->v2) {
        b->v2 = v;
        b->i2 = j;
    }
}

/* a before b: smaller value, or the same value at a lower column */
static inline int before(float va, int64_t ia, float vb, int64_t ib) { return va < vb || (va == vb && ia < ib); }

static void scan_row_scalar(const float *s, const float *bias, int64_t cols, Best *out) {
    Best b = {INFINITY, INFINITY, 0, 0};
    if (bias) {
        for (int64_t j = 0; j < cols; j++) take(&b, s[j] + bias[j], j);
    } else {
        for (int64_t j = 0; j < cols; j++) take(&b, s[j], j);
    }
    *out = b;
}

typedef int64_t (*Finder)(const float *s, const float *bias, int64_t cols, int64_t from, float v);

/* The columns of a row's two smallest values v1 <= v2 (found by a vector scan), as numpy's argmin would give them:
 * the first column holding v1; the first other column holding v2 (or, v2 being inf, the first column holding inf
 * once v1's is hidden: numpy hides it with inf itself). NaN rows (nothing equals v1) get column 0. */
static void locate(const float *s, const float *bias, int64_t cols, float v1, float v2, int want_i2, Finder find_at,
                   Best *out) {
    int64_t i1 = find_at(s, bias, cols, 0, v1);
    if (i1 < 0) { /* NaN: the caller rejects what follows from it */
        *out = (Best){v1, v2, 0, 0};
        return;
    }
    if (!want_i2) { /* the caller needs the runner-up's column only for a few rows: it finds it itself */
        *out = (Best){v1, v2, i1, 0};
        return;
    }
    int64_t i2;
    if (v2 == INFINITY) {
        int64_t f = find_at(s, bias, cols, 0, INFINITY);
        i2 = (f < 0 || i1 < f) ? i1 : f;
    } else {
        i2 = find_at(s, bias, cols, v2 == v1 ? i1 + 1 : 0, v2);
        if (i2 < 0) i2 = 0;
    }
    *out = (Best){v1, v2, i1, i2};
}

#ifdef SCAN_AVX2
/* Two smallest values (as a multiset) of two lane-wise pairs: merged into (a1, a2). */
#define MERGE(a1, a2, b1, b2)                                                              \
    do {                                                                                   \
        __m256 lo_ = _mm256_min_ps(a1, b1), hi_ = _mm256_max_ps(a1, b1);                  \
        a2 = _mm256_min_ps(hi_, _mm256_min_ps(a2, b2));                                    \
        a1 = lo_;                                                                          \
    } while (0)

/* first column j >= from whose value (score + bias) equals v, or -1 */
__attribute__((target("avx2"))) static int64_t find(const float *s, const float *bias, int64_t cols, int64_t from,
                                                    float v) {
    int64_t j = from;
    const __m256 target = _mm256_set1_ps(v);
    for (; j < cols && (j & 7); j++)
        if ((bias ? s[j] + bias[j] : s[j]) == v) return j;
    for (; j + 8 <= cols; j += 8) {
        __m256 x = _mm256_loadu_ps(s + j);
        if (bias) x = _mm256_add_ps(x, _mm256_loadu_ps(bias + j));
        int mask = _mm256_movemask_ps(_mm256_cmp_ps(x, target, _CMP_EQ_OQ));
        if (mask) return j + __builtin_ctz(mask);
    }
    for (; j < cols; j++)
        if ((bias ? s[j] + bias[j] : s[j]) == v) return j;
    return -1;
}

/* The two smallest values of the row first (min/max only, pipelined over two accumulator pairs), then where they
 * are: a running best-two with columns is a chain of dependent blends per group of 8 and ran 3x slower. */
__attribute__((target("avx2"))) static void scan_row_avx2(const float *s, const float *bias, int64_t cols,
                                                          Best *out, int want_i2) {
    const __m256 inf = _mm256_set1_ps(INFINITY);
    __m256 a1 = inf, a2 = inf, b1 = inf, b2 = inf;
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16) {
        __m256 x = _mm256_loadu_ps(s + j), y = _mm256_loadu_ps(s + j + 8);
        if (bias) {
            x = _mm256_add_ps(x, _mm256_loadu_ps(bias + j));
            y = _mm256_add_ps(y, _mm256_loadu_ps(bias + j + 8));
        }
        a2 = _mm256_min_ps(a2, _mm256_max_ps(a1, x));
        a1 = _mm256_min_ps(a1, x);
        b2 = _mm256_min_ps(b2, _mm256_max_ps(b1, y));
        b1 = _mm256_min_ps(b1, y);
    }
    MERGE(a1, a2, b1, b2);
    /* across the 8 lanes: halves, then pairs, then neighbours */
    b1 = _mm256_permute2f128_ps(a1, a1, 1);
    b2 = _mm256_permute2f128_ps(a2, a2, 1);
    MERGE(a1, a2, b1, b2);
    b1 = _mm256_permute_ps(a1, 0x4E);
    b2 = _mm256_permute_ps(a2, 0x4E);
    MERGE(a1, a2, b1, b2);
    b1 = _mm256_permute_ps(a1, 0xB1);
    b2 = _mm256_permute_ps(a2, 0xB1);
    MERGE(a1, a2, b1, b2);
    float v1 = _mm256_cvtss_f32(a1), v2 = _mm256_cvtss_f32(a2);
    for (; j < cols; j++) {
        float v = bias ? s[j] + bias[j] : s[j];
        if (v < v1) {
            v2 = v1;
            v1 = v;
        } else if (v < v2) {
            v2 = v;
        }
    }
    locate(s, bias, cols, v1, v2, want_i2, find, out);
}

static int has_avx2(void) {
    static int known = -1;
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return known;
}
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SCAN_AVX512 1
static int has_avx512(void) {
    static int known = -1;
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return known;
}

#define MERGE16(a1, a2, b1, b2)                                              \
    do {                                                                     \
        __m512 lo_ = _mm512_min_ps(a1, b1), hi_ = _mm512_max_ps(a1, b1);     \
        a2 = _mm512_min_ps(hi_, _mm512_min_ps(a2, b2));                      \
        a1 = lo_;                                                            \
    } while (0)

/* the columns from j on, 16 at a time, with the lanes past `cols` masked off (inf in the values) */
static inline __mmask16 lanes(int64_t j, int64_t cols) {
    return cols - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cols - j)) - 1);
}

__attribute__((target("avx512f"))) static inline __m512 load16(const float *s, const float *bias, int64_t j,
                                                                __mmask16 m) {
    const __m512 inf = _mm512_set1_ps(INFINITY);
    __m512 x = _mm512_mask_loadu_ps(inf, m, s + j);
    if (bias) x = _mm512_mask_add_ps(x, m, x, _mm512_maskz_loadu_ps(m, bias + j));
    return x;
}

__attribute__((target("avx512f"))) static int64_t find16(const float *s, const float *bias, int64_t cols,
                                                          int64_t from, float v) {
    const __m512 target = _mm512_set1_ps(v);
    for (int64_t j = from; j < cols; j += 16) {
        __mmask16 m = lanes(j, cols);
        __mmask16 eq = _mm512_mask_cmp_ps_mask(m, load16(s, bias, j, m), target, _CMP_EQ_OQ);
        if (eq) return j + __builtin_ctz(eq);
    }
    return -1;
}

/* as scan_row_avx2, 16 lanes wide, the last columns through a masked load */
__attribute__((target("avx512f"))) static void scan_row_avx512(const float *s, const float *bias, int64_t cols,
                                                              Best *out, int want_i2) {
    const __m512 inf = _mm512_set1_ps(INFINITY);
    __m512 a1 = inf, a2 = inf, b1 = inf, b2 = inf;
    int64_t j = 0;
    for (; j + 32 <= cols; j += 32) {
        __m512 x = load16(s, bias, j, 0xFFFF), y = load16(s, bias, j + 16, 0xFFFF);
        a2 = _mm512_min_ps(a2, _mm512_max_ps(a1, x));
        a1 = _mm512_min_ps(a1, x);
        b2 = _mm512_min_ps(b2, _mm512_max_ps(b1, y));
        b1 = _mm512_min_ps(b1, y);
    }
    for (; j < cols; j += 16) {
        __m512 x = load16(s, bias, j, lanes(j, cols));
        b2 = _mm512_min_ps(b2, _mm512_max_ps(b1, x));
        b1 = _mm512_min_ps(b1, x);
    }
    MERGE16(a1, a2, b1, b2);
    b1 = _mm512_shuffle_f32x4(a1, a1, 0x4E);
    b2 = _mm512_shuffle_f32x4(a2, a2, 0x4E);
    MERGE16(a1, a2, b1, b2);
    b1 = _mm512_shuffle_f32x4(a1, a1, 0xB1);
    b2 = _mm512_shuffle_f32x4(a2, a2, 0xB1);
    MERGE16(a1, a2, b1, b2);
    b1 = _mm512_permute_ps(a1, 0x4E);
    b2 = _mm512_permute_ps(a2, 0x4E);
    MERGE16(a1, a2, b1, b2);
    b1 = _mm512_permute_ps(a1, 0xB1);
    b2 = _mm512_permute_ps(a2, 0xB1);
    MERGE16(a1, a2, b1, b2);
    float v1 = _mm512_cvtss_f32(a1), v2 = _mm512_cvtss_f32(a2);
    locate(s, bias, cols, v1, v2, want_i2, find16, out);
}
#endif

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
    Py_BEGIN_ALLOW_THREADS;
#ifdef SCAN_AVX2
    int wide = has_avx2();
#else
    int wide = 0;
#endif
#ifdef SCAN_AVX512
    int wider = has_avx512();
#else
    int wider = 0;
#endif
    for (int64_t i = 0; i < rows; i++) {
        Best b;
#ifdef SCAN_AVX512
        if (wider && cols >= SCAN512_FROM)
            scan_row_avx512(scores + i * ld, bias, cols, &b, second_at != NULL);
        else
#endif
#ifdef SCAN_AVX2
        if (wide && cols >= 16)
            scan_row_avx2(scores + i * ld, bias, cols, &b, second_at != NULL);
        else
#endif
            scan_row_scalar(scores + i * ld, bias, cols, &b);
        first[i] = b.v1;
        first_at[i] = b.i1;
        second[i] = b.v2;
        if (second_at) second_at[i] = b.i2;
    }
    (void)wide;
    (void)wider;
    Py_END_ALLOW_THREADS;
    Py_RETURN_NONE;
}

/* add_rows(stage, labels, x, rows, dim, ld): stage[labels[i], :] += x[i, :] in row order */
static PyObject *add_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    void *p[3];
    int64_t n[3];
    if (parse(args, nargs, 6, p, n, 3, "add_rows") < 0) return NULL;
    float *stage = p[0];
    const int64_t *labels = p[1];
    const float *x = p[2];
    int64_t rows = n[0], dim = n[1], ld = n[2];
    Py_BEGIN_ALLOW_THREADS;
    for (int64_t i = 0; i < rows; i++) {
        float *to = stage + labels[i] * dim;
        const float *from = x + i * ld;
        for (int64_t c = 0; c < dim; c++) to[c] += from[c];
    }
    Py_END_ALLOW_THREADS;
    Py_RETURN_NONE;
}

#ifdef SCAN_AVX512
#define PANEL 32 /* centroids per panel: two 16-float vectors */
#define GROUP 8  /* rows per micro-tile: 16 accumulators */

#define FMA_ROW(r)                                         \
    do {                                                   \
        __m512 b_ = _mm512_set1_ps(xr[r][j]);              \
        acc[2 * (r)] = _mm512_fmadd_ps(b_, c0, acc[2 * (r)]);         \
        acc[2 * (r) + 1] = _mm512_fmadd_ps(b_, c1, acc[2 * (r) + 1]); \
    } while (0)

/* out[r, 0:nc] = x[r] . panel[:, 0:nc] + bias[0:nc] for the nr (<= GROUP) rows at x; panel is (dim, PANEL) */
__attribute__((target("avx512f"))) static void micro_tile(const float *x, int64_t ldx, int nr, const float *panel,
                                                            int64_t dim, const float *bias, int nc, float *out,
                                                            int64_t ldo) {
    const float *xr[GROUP];
    for (int r = 0; r < GROUP; r++) xr[r] = x + (r < nr ? r : nr - 1) * ldx;  /* past nr: computed, not stored */
    __m512 acc[2 * GROUP];
    for (int a = 0; a < 2 * GROUP; a++) acc[a] = _mm512_setzero_ps();
    for (int64_t j = 0; j < dim; j++) {
        __m512 c0 = _mm512_loadu_ps(panel + j * PANEL), c1 = _mm512_loadu_ps(panel + j * PANEL + 16);
        FMA_ROW(0);
        FMA_ROW(1);
        FMA_ROW(2);
        FMA_ROW(3);
        FMA_ROW(4);
        FMA_ROW(5);
        FMA_ROW(6);
        FMA_ROW(7);
    }
    __mmask16 m0 = nc >= 16 ? 0xFFFF : (__mmask16)((1u << nc) - 1);
    __mmask16 m1 = nc >= 32 ? 0xFFFF : nc > 16 ? (__mmask16)((1u << (nc - 16)) - 1) : 0;
    __m512 b0 = _mm512_setzero_ps(), b1 = _mm512_setzero_ps();
    if (bias) {
        b0 = _mm512_maskz_loadu_ps(m0, bias);
        b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
    for (int r = 0; r < nr; r++) {
        _mm512_mask_storeu_ps(out + r * ldo, m0, _mm512_add_ps(acc[2 * r], b0));
        _mm512_mask_storeu_ps(out + r * ldo + 16, m1, _mm512_add_ps(acc[2 * r + 1], b1));
    }
}

/* scores = x @ centroids + bias for rows x cols, the centroids packed as panels (ceil(cols / PANEL), dim, PANEL),
 * zero-padded; panels are taken in groups of about 256 KB so that a group stays in L2 across the row groups */
__attribute__((target("avx512f"))) static void panel_gemm(const float *x, int64_t ldx, int64_t rows, int64_t dim,
                                                            const float *panels, const float *bias, int64_t cols,
                                                            float *out, int64_t ldo) {
    int64_t n_panels = (cols + PANEL - 1) / PANEL;
    int64_t per_group = (256 * 1024) / (dim * PANEL * 4);
    if (per_group < 1) per_group = 1;
    for (int64_t p0 = 0; p0 < n_panels; p0 += per_group) {
        int64_t p1 = p0 + per_group < n_panels ? p0 + per_group : n_panels;
        for (int64_t i = 0; i < rows; i += GROUP) {
            int nr = rows - i < GROUP ? (int)(rows - i) : GROUP;
            for (int64_t p = p0; p < p1; p++) {
                int64_t c = p * PANEL;
                int nc = cols - c < PANEL ? (int)(cols - c) : PANEL;
                micro_tile(x + i * ldx, ldx, nr, panels + p * dim * PANEL, dim, bias ? bias + c : NULL, nc,
                           out + i * ldo + c, ldo);
            }
        }
    }
}
#endif

/* panel_scores(x, panels, bias or 0, out, rows, dim, cols, ldx, ldo) -> whether it ran (only with AVX-512) */
static PyObject *panel_scores(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    void *p[4];
    int64_t n[5];
    if (parse(args, nargs, 9, p, n, 4, "panel_scores") < 0) return NULL;
#ifdef SCAN_AVX512
    if (!has_avx512()) Py_RETURN_FALSE;
    const float *x = p[0], *panels = p[1], *bias = p[2];
    float *out = p[3];
    int64_t rows = n[0], dim = n[1], cols = n[2], ldx = n[3], ldo = n[4];
    Py_BEGIN_ALLOW_THREADS;
    panel_gemm(x, ldx, rows, dim, panels, bias, cols, out, ldo);
    Py_END_ALLOW_THREADS;
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

/* settle_rows(first, second, block_sq or 0, best or 0, bound or 0, close, rows, largest_norm, unit_slack) -> count
 * What follows the scan, per row: the squared distance from the best score (l2: score + |x|^2; cosine between unit
 * vectors: 2 score + 2), clamped at 0; the scores' rounding bound (l2: (|x| + largest_norm)^2 unit_slack; cosine:
 * 4 unit_slack); the rows whose two best scores are within twice that (near-ties, listed in `close`); and a lower
 * bound on every other centroid's squared distance (the second score, or the first for a near-tie, less the
 * rounding), clamped at 0. Every operation is one float32 operation in the order the torch fallback runs them
 * (setup.py turns off the contraction of a * b + c into one rounding). */
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
    const float largest32 = (float)largest, unit32 = (float)unit, cosine_slack = (float)(4.0 * unit);
    int64_t count = 0;
    Py_BEGIN_ALLOW_THREADS;
    for (int64_t i = 0; i < rows; i++) {
        float slack;
        float f = first[i], g = second[i], d;
        if (sq) {
            float root = sqrtf(sq[i]) + largest32;
            slack = root * root;
            slack = slack * unit32;
            d = f + sq[i];
        } else {
            slack = cosine_slack;
            d = f * 2.0f;
            d = d + 2.0f;
        }
        if (best) best[i] = d < 0.0f ? 0.0f : d;
        float twice = slack * 2.0f;
        int near = (g - f) <= twice;
        if (near) close[count++] = i;
        if (bound) {
            float other = near ? f : g, e;
            if (sq) {
                e = other + sq[i];
            } else {
                e = other * 2.0f;
                e = e + 2.0f;
            }
            e = e - slack;
            bound[i] = e < 0.0f ? 0.0f : e;
        }
    }
    Py_END_ALLOW_THREADS;
    return PyLong_FromLongLong(count);
}

/* avx512() -> whether panel_scores runs on this CPU */
static PyObject *avx512(PyObject *self, PyObject *unused) {
#ifdef SCAN_AVX512
    if (has_avx512()) Py_RETURN_TRUE;
#endif
    Py_RETURN_FALSE;
}

static PyMethodDef methods[] = {
    {"best_two", (PyCFunction)(void (*)(void))best_two, METH_FASTCALL, "best two scores per row (see score_scan.py)"},
    {"add_rows", (PyCFunction)(void (*)(void))add_rows, METH_FASTCALL, "stage[labels[i]] += x[i] (see score_scan.py)"},
    {"settle_rows", (PyCFunction)(void (*)(void))settle_rows, METH_FASTCALL, "distances, near-ties, bounds (see score_scan.py)"},
    {"panel_scores", (PyCFunction)(void (*)(void))panel_scores, METH_FASTCALL, "x @ packed centroids + bias (AVX-512)"},
    {"avx512", avx512, METH_NOARGS, "whether panel_scores runs on this CPU"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_score_scan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__score_scan(void) { return PyModule_Create(&module); }
