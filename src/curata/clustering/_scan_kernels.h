/* The per-block kernels of a k-means pass (see _scan_kernels.c). */
#ifndef CURATA_SCAN_KERNELS_H
#define CURATA_SCAN_KERNELS_H

#include <math.h>
#include <stdint.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SCAN_AVX2 1
#define SCAN_AVX512 1
#endif

#define PANEL 32 /* centroids per panel of the AVX-512 GEMM: two 16-float vectors */

typedef struct {
    float v1, v2;
    int64_t i1, i2;
} Best;

/* The instruction sets the kernels may use, in order. */
enum { SIMD_NONE = 0, SIMD_AVX2 = 1, SIMD_AVX512 = 2 };

/* The widest the kernels use: what the CPU has (and the build carries), capped by set_simd_cap, so that a machine
 * with AVX-512 runs, in tests, the kernels a CPU without it runs. The cap is set between calls (score_scan.py, with
 * the GIL held, before any pass), never while a pass runs. */
int simd_level(void);
void set_simd_cap(int level);

/* whether the kernels use AVX-512 (panel_gemm, the 16-lane scan and distances): simd_level() == SIMD_AVX512 */
int has_avx512(void);

/* The kernel scan_row takes for a row of `cols` columns: SIMD_AVX512, SIMD_AVX2 or SIMD_NONE (scalar). */
int scan_kernel(int64_t cols);

/* A row's smallest value (score + bias, bias may be NULL) and its column, and the smallest of the other columns; its
 * column only with want_i2 (else 0). Ties go to the lowest column, as numpy's argmin. */
void scan_row(const float *s, const float *bias, int64_t cols, Best *out, int want_i2);

/* out[r, c] = x[r] . centroid c + bias[c] for rows x cols, the centroids packed as (ceil(cols / PANEL), dim, PANEL)
 * zero-padded panels; only where has_avx512() */
void panel_gemm(const float *x, int64_t ldx, int64_t rows, int64_t dim, const float *panels, const float *bias,
                int64_t cols, float *out, int64_t ldo);

/* sum((x - c)^2) over dim floats in a fixed order (sixteen lanes, then halves: see _scan_kernels.c) */
float row_distance(const float *x, const float *c, int64_t dim);

/* stage[labels[i], :] += round(x[i, :] * scale) in int64 (scale a power of two, rounding half to even): integer
 * adds, so the totals do not depend on the order of the rows (see curata/clustering/fixed_point.py) */
void add_rows_fixed(int64_t *stage, const int64_t *labels, const float *x, int64_t rows, int64_t dim, int64_t ld,
                    double scale);

/* What follows the scan for one row (l2: sq = |x|^2, has_sq = 1; cosine between unit vectors: has_sq = 0): the
 * squared distance from the best score, clamped at 0, into *best (if given); the rounding bound of the scores (l2:
 * (|x| + largest)^2 unit, cosine: 4 unit); into *bound (if given) a lower bound on every other centroid's squared
 * distance (the second score, or the first for a near-tie, less the rounding, clamped at 0). Returns whether the row
 * is a near-tie (its two best scores within twice the rounding). One float32 operation at a time, in the order of
 * the torch fallback (built with -ffp-contract=off). */
static inline int settle_row(float f, float g, float sq, int has_sq, float largest, float unit, float *best,
                             float *bound) {
    float slack, d;
    if (has_sq) {
        float root = sqrtf(sq) + largest;
        slack = root * root;
        slack = slack * unit;
        d = f + sq;
    } else {
        slack = unit * 4.0f;
        d = f * 2.0f;
        d = d + 2.0f;
    }
    if (best) *best = d < 0.0f ? 0.0f : d;
    float twice = slack * 2.0f;
    int near = (g - f) <= twice;
    if (bound) {
        float other = near ? f : g, e;
        if (has_sq) {
            e = other + sq;
        } else {
            e = other * 2.0f;
            e = e + 2.0f;
        }
        e = e - slack;
        *bound = e < 0.0f ? 0.0f : e;
    }
    return near;
}

#endif
