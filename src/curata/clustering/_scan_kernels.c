/* The kernels of a k-means pass over one block of rows: the scan of a row's scores for its best two, the score GEMM
 * on packed centroid panels (AVX-512), and the per-cluster fixed-point sums. Used by the Python bindings
 * (_score_scan.c) one block at a time, and by the threaded pass (_scan_pass.c) over a whole shard. */
#include "_scan_kernels.h"

#include <math.h>
#include <string.h>


#ifndef SCAN512_FROM
#define SCAN512_FROM 8 /* columns from which the 16-lane scan beats the scalar one */
#endif

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

#endif

/* what the CPU has, for the kernels this build carries; first asked when the module loads (PyInit), so that the
 * pass threads only ever read it */
static int cpu_simd(void) {
    static int known = -1;
    if (known < 0) {
        int level = SIMD_NONE;
#ifdef SCAN_AVX2
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2")) level = __builtin_cpu_supports("avx512f") ? SIMD_AVX512 : SIMD_AVX2;
#endif
        known = level;
    }
    return known;
}

static int simd_cap = SIMD_AVX512;

void set_simd_cap(int level) { simd_cap = level < SIMD_NONE ? SIMD_NONE : level > SIMD_AVX512 ? SIMD_AVX512 : level; }

int simd_level(void) {
    int cpu = cpu_simd();
    return cpu < simd_cap ? cpu : simd_cap;
}

int has_avx512(void) { return simd_level() == SIMD_AVX512; }

#ifdef SCAN_AVX512
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

#ifdef SCAN_AVX512
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

#define FMA_ROW16(r)                                                 \
    do {                                                             \
        acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(xr[r][j]), c0, acc[r]); \
    } while (0)

/* micro_tile for a panel's last nc <= 16 centroids: half the multiply-adds (k = 100 computed 128 columns, now 112) */
__attribute__((target("avx512f"))) static void micro_tile16(const float *x, int64_t ldx, int nr, const float *panel,
                                                              int64_t dim, const float *bias, int nc, float *out,
                                                              int64_t ldo) {
    const float *xr[GROUP];
    for (int r = 0; r < GROUP; r++) xr[r] = x + (r < nr ? r : nr - 1) * ldx;
    __m512 acc[GROUP];
    for (int a = 0; a < GROUP; a++) acc[a] = _mm512_setzero_ps();
    for (int64_t j = 0; j < dim; j++) {
        __m512 c0 = _mm512_loadu_ps(panel + j * PANEL);
        FMA_ROW16(0);
        FMA_ROW16(1);
        FMA_ROW16(2);
        FMA_ROW16(3);
        FMA_ROW16(4);
        FMA_ROW16(5);
        FMA_ROW16(6);
        FMA_ROW16(7);
    }
    __mmask16 m0 = nc >= 16 ? 0xFFFF : (__mmask16)((1u << nc) - 1);
    __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    for (int r = 0; r < nr; r++) _mm512_mask_storeu_ps(out + r * ldo, m0, _mm512_add_ps(acc[r], b0));
}

/* scores = x @ centroids + bias for rows x cols, the centroids packed as panels (ceil(cols / PANEL), dim, PANEL),
 * zero-padded; panels are taken in groups of about 256 KB so that a group stays in L2 across the row groups */
__attribute__((target("avx512f"))) void panel_gemm(const float *x, int64_t ldx, int64_t rows, int64_t dim,
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
                (nc <= 16 ? micro_tile16 : micro_tile)(x + i * ldx, ldx, nr, panels + p * dim * PANEL, dim,
                                                       bias ? bias + c : NULL, nc, out + i * ldo + c, ldo);
            }
        }
    }
}
#endif


/* The squared distance of two rows as sixteen lanes: lane l sums (x[j] - c[j])^2 over j = l, l + 16, ... in order,
 * then lanes l and l + 8, l and l + 4, l and l + 2, l and l + 1 are added. The same order in both versions and in
 * the numpy fallback (score_scan.row_distances), one float32 operation at a time. */
static float distance_portable(const float *x, const float *c, int64_t dim) {
    float acc[16] = {0.0f};
    for (int64_t j = 0; j < dim; j++) {
        float d = x[j] - c[j];
        d = d * d;
        acc[j & 15] = acc[j & 15] + d;
    }
    for (int h = 8; h >= 1; h /= 2)
        for (int l = 0; l < h; l++) acc[l] = acc[l] + acc[l + h];
    return acc[0];
}

#ifdef SCAN_AVX512
__attribute__((target("avx512f"))) static float distance16(const float *x, const float *c, int64_t dim) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t j = 0; j < dim; j += 16) {
        __mmask16 m = lanes(j, dim);
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + j), _mm512_maskz_loadu_ps(m, c + j));
        acc = _mm512_add_ps(acc, _mm512_mul_ps(d, d));
    }
    __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(acc),
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
    __m128 a4 = _mm_add_ps(_mm256_castps256_ps128(a8), _mm256_extractf128_ps(a8, 1));
    __m128 a2 = _mm_add_ps(a4, _mm_movehl_ps(a4, a4));
    __m128 a1 = _mm_add_ss(a2, _mm_shuffle_ps(a2, a2, 1));
    return _mm_cvtss_f32(a1);
}
#endif

float row_distance(const float *x, const float *c, int64_t dim) {
#ifdef SCAN_AVX512
    if (has_avx512()) return distance16(x, c, dim);
#endif
    return distance_portable(x, c, dim);
}

int scan_kernel(int64_t cols) {
    int level = simd_level();
    if (level >= SIMD_AVX512 && cols >= SCAN512_FROM) return SIMD_AVX512;
    if (level >= SIMD_AVX2 && cols >= 16) return SIMD_AVX2;
    return SIMD_NONE;
}

void scan_row(const float *s, const float *bias, int64_t cols, Best *out, int want_i2) {
    switch (scan_kernel(cols)) {
#ifdef SCAN_AVX512
    case SIMD_AVX512:
        scan_row_avx512(s, bias, cols, out, want_i2);
        return;
#endif
#ifdef SCAN_AVX2
    case SIMD_AVX2:
        scan_row_avx2(s, bias, cols, out, want_i2);
        return;
#endif
    default:
        scan_row_scalar(s, bias, cols, out);
    }
}

/* One term of a fixed-point sum: round(v * scale) half to even, scale being a power of two (exact in double). rint
 * rounds to nearest even in the default rounding mode, as torch.round does in the Python fallback. */
static inline int64_t fixed_term(float v, double scale) { return (int64_t)rint((double)v * scale); }

#ifdef SCAN_AVX512
static int has_avx512dq(void) {
    static int known = -1;
    if (known < 0) known = __builtin_cpu_supports("avx512dq") ? 1 : 0;
    return known;
}

/* to[c] += fixed_term(from[c], scale), 8 at a time: float32 -> float64 (exact), times the power of two (exact),
 * rounded to int64 to nearest even whatever the MXCSR says (the Python fallback's torch.round) */
__attribute__((target("avx512f,avx512dq"))) static void add_fixed8(int64_t *to, const float *from, int64_t dim,
                                                                   double scale) {
    const __m512d s = _mm512_set1_pd(scale);
    for (int64_t c = 0; c < dim; c += 8) {
        __mmask8 m = dim - c >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (dim - c)) - 1);
        __m256 f = _mm512_castps512_ps256(_mm512_maskz_loadu_ps((__mmask16)m, from + c)); /* no AVX-512VL needed */
        __m512d v = _mm512_mul_pd(_mm512_cvtps_pd(f), s);
        __m512i q = _mm512_cvt_roundpd_epi64(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm512_mask_storeu_epi64(to + c, m, _mm512_add_epi64(_mm512_maskz_loadu_epi64(m, to + c), q));
    }
}
#endif

void add_rows_fixed(int64_t *stage, const int64_t *labels, const float *x, int64_t rows, int64_t dim, int64_t ld,
                    double scale) {
#ifdef SCAN_AVX512
    if (has_avx512() && has_avx512dq()) {
        for (int64_t i = 0; i < rows; i++) add_fixed8(stage + labels[i] * dim, x + i * ld, dim, scale);
        return;
    }
#endif
    for (int64_t i = 0; i < rows; i++) {
        int64_t *to = stage + labels[i] * dim;
        const float *from = x + i * ld;
        for (int64_t c = 0; c < dim; c++) to[c] += fixed_term(from[c], scale);
    }
}
