/* A k-means pass over rows in memory in two team jobs: first the scores, their scan and what follows it (labels,
 * distances, near-ties settled by the sums of squares), block after block while each block's scores are still in
 * cache; then the per-cluster sums, by the same workers over the same chunks in the same order as the Python workers
 * of nearest.py, so that the results are the same bit for bit. */
#include "_scan_pass.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "_scan_kernels.h"
#include "_thread_team.h"

#define SCORE_BYTES (96 * 1024) /* the scores of one unit of rows: they stay in L2 from the GEMM to the scan */
#define BOUNDED_ROWS 256        /* rows per unit of a bounded pass, of which only the stale are scored */
#define COMBINE_CLUSTERS 64     /* clusters per unit of the final addition of the workers' sums */

enum { SCORES, SUMS, COUNTS, GATHERED, STALE }; /* team_scratch slots */

typedef struct {
    const float *x, *x_sq, *panels, *bias, *centers;
    int64_t ldx, rows, dim, k, step, unit_rows;
    float largest, unit;
    int exact;
    int64_t *labels;
    float *best;
    /* Hamerly's bounds (RowBounds): per row a lower bound on the distance to every other centroid, or NULL */
    float *lower;
    int filled;  /* whether labels and lower hold the last pass's */
    float grow;  /* 1 + the relative rounding of an own distance */
    int64_t *near_count, *scored; /* per unit */
    atomic_int failed;
} ScanJob;

/* Score m rows (row r at xs + r * ldx, global row which[r], or first + r) against every centroid: label, distance
 * (from the score, or exact), near-ties by the sums of squares, and in a bounded pass the new lower bound. */
static int64_t score_rows(ScanJob *j, const float *xs, int64_t ldx, int64_t first, const int64_t *which, int64_t m,
                          float *scores) {
    int64_t k = j->k, dim = j->dim, near_ties = 0;
    for (int64_t a = 0; a < m; a += j->step) {
        int64_t b = a + j->step < m ? a + j->step : m;
        panel_gemm(xs + a * ldx, ldx, b - a, dim, j->panels, j->bias, k, scores, k);
        for (int64_t r = a; r < b; r++) {
            int64_t i = which ? which[r] : first + r;
            const float *row = scores + (r - a) * k, *xi = xs + r * ldx;
            Best found;
            scan_row(row, NULL, k, &found, 0);
            int64_t label = found.i1;
            float sq = j->x_sq ? j->x_sq[i] : 0.0f, bound;
            if (settle_row(found.v1, found.v2, sq, j->x_sq != NULL, j->largest, j->unit, j->best + i,
                           j->lower ? &bound : NULL)) {
                /* a near-tie: the scores cannot tell the two best apart, the sums of squares (which follow the
                 * row alone) do; the lower column on a tie */
                scan_row(row, NULL, k, &found, 1);
                int64_t other_at = found.i2;
                float near = row_distance(xi, j->centers + label * dim, dim);
                float other = row_distance(xi, j->centers + other_at * dim, dim);
                if (other < near || (other == near && other_at < label)) label = other_at;
                j->best[i] = other < near ? other : near;
                near_ties++;
            } else if (j->exact) {
                j->best[i] = row_distance(xi, j->centers + label * dim, dim);
            }
            j->labels[i] = label;
            if (j->lower) j->lower[i] = sqrtf(bound);
        }
    }
    return near_ties;
}

static void scan_unit(void *arg, int64_t u, int thread) {
    ScanJob *j = arg;
    int64_t dim = j->dim, a = u * j->unit_rows, b = a + j->unit_rows < j->rows ? a + j->unit_rows : j->rows;
    float *scores = team_scratch(thread, SCORES, (size_t)(j->step * j->k) * sizeof(float));
    if (!scores) {
        atomic_store(&j->failed, 1);
        return;
    }
    if (!j->lower || !j->filled) {
        j->near_count[u] = score_rows(j, j->x + a * j->ldx, j->ldx, a, NULL, b - a, scores);
        j->scored[u] = b - a;
        return;
    }
    /* The rows whose own (moved) centroid may no longer be the nearest: the exact distance to it, widened by its
     * rounding, beyond the bound on the others (as RowBounds.stale_rows, one float32 operation at a time). */
    int64_t *stale = team_scratch(thread, STALE, (size_t)j->unit_rows * sizeof(int64_t)), m = 0;
    if (!stale) {
        atomic_store(&j->failed, 1);
        return;
    }
    for (int64_t i = a; i < b; i++) {
        float own = row_distance(j->x + i * j->ldx, j->centers + j->labels[i] * dim, dim), lo = j->lower[i];
        j->best[i] = own;
        float widened = own * j->grow, reach = lo * lo;
        if (lo < 0.0f || widened > reach) stale[m++] = i;
    }
    j->scored[u] = m;
    if (m == b - a) {
        j->near_count[u] = score_rows(j, j->x + a * j->ldx, j->ldx, a, NULL, m, scores);
        return;
    }
    float *gathered = team_scratch(thread, GATHERED, (size_t)(m > 0 ? m : 1) * dim * sizeof(float));
    if (!gathered) {
        atomic_store(&j->failed, 1);
        return;
    }
    for (int64_t r = 0; r < m; r++) memcpy(gathered + r * dim, j->x + stale[r] * j->ldx, (size_t)dim * sizeof(float));
    j->near_count[u] = m ? score_rows(j, gathered, dim, 0, stale, m, scores) : 0;
}

int64_t scan_pass(const float *x, int64_t ldx, const float *x_sq, int64_t rows, int64_t dim, const float *panels,
                  const float *bias, const float *centers, int64_t k, int64_t threads, float largest, float unit,
                  int exact, int64_t *labels, float *best, float *lower, int filled, float grow, int64_t *scored) {
    *scored = 0;
    if (rows == 0) return 0;
    int64_t step = SCORE_BYTES / (4 * k);
    step = step < 8 ? 8 : step / 8 * 8;
    int64_t unit_rows = lower && step < BOUNDED_ROWS ? BOUNDED_ROWS / step * step : step;
    int64_t units = (rows + unit_rows - 1) / unit_rows;
    int64_t *counts = malloc((size_t)units * 2 * sizeof(int64_t));
    if (!counts) return -1;
    ScanJob job = {x, x_sq, panels, bias, centers, ldx, rows, dim, k, step, unit_rows, largest, unit, exact, labels,
                   best, lower, filled, grow, counts, counts + units, 0};
    team_run((int)threads, units, scan_unit, &job);
    int64_t near_ties = 0;
    for (int64_t v = 0; v < units; v++) {
        near_ties += counts[v];
        *scored += counts[units + v];
    }
    free(counts);
    return atomic_load(&job.failed) ? -1 : near_ties;
}

typedef struct {
    const float *x;
    const int64_t *labels;
    int64_t ldx, rows, dim, k, chunk;
    double scale;
    int64_t *out;
    int64_t workers;
    atomic_int failed;
} SumJob;

/* worker w: its chunks (w, w + workers, ...) into its own int64 fixed-point sums and counts */
static void sum_unit(void *arg, int64_t w, int thread) {
    SumJob *j = arg;
    int64_t kd = j->k * j->dim;
    int64_t *sums = team_scratch((int)w, SUMS, (size_t)kd * sizeof(int64_t));
    int64_t *counts = team_scratch((int)w, COUNTS, (size_t)j->k * sizeof(int64_t));
    if (!sums || !counts) {
        atomic_store(&j->failed, 1);
        return;
    }
    memset(sums, 0, (size_t)kd * sizeof(int64_t));
    memset(counts, 0, (size_t)j->k * sizeof(int64_t));
    for (int64_t c = w; c * j->chunk < j->rows; c += j->workers) {
        int64_t s = c * j->chunk, e = s + j->chunk < j->rows ? s + j->chunk : j->rows;
        add_rows_fixed(sums, j->labels + s, j->x + s * j->ldx, e - s, j->dim, j->ldx, j->scale);
        for (int64_t i = s; i < e; i++) counts[j->labels[i]]++;
    }
}

/* clusters [u * COMBINE_CLUSTERS, ...): the workers' sums and counts added (integers: in any order, the same) */
static void combine_unit(void *arg, int64_t u, int thread) {
    SumJob *j = arg;
    int64_t c0 = u * COMBINE_CLUSTERS, c1 = c0 + COMBINE_CLUSTERS < j->k ? c0 + COMBINE_CLUSTERS : j->k;
    for (int64_t c = c0; c < c1; c++) {
        int64_t *to = j->out + c * (j->dim + 1);
        int64_t count = 0;
        memset(to, 0, (size_t)j->dim * sizeof(int64_t));
        for (int w = 0; w < j->workers; w++) {
            const int64_t *from = (const int64_t *)team_scratch(w, SUMS, 0) + c * j->dim;
            for (int64_t t = 0; t < j->dim; t++) to[t] += from[t];
            count += ((const int64_t *)team_scratch(w, COUNTS, 0))[c];
        }
        to[j->dim] = count;
    }
}

int sum_pass(const float *x, int64_t ldx, const int64_t *labels, int64_t rows, int64_t dim, int64_t k,
             int64_t chunk, double scale, int64_t workers, int64_t threads, int64_t *out) {
    if (workers < 1 || workers > TEAM_MAX) return -2;
    SumJob job = {x, labels, ldx, rows, dim, k, chunk, scale, out, workers, 0};
    team_run((int)threads, workers, sum_unit, &job);
    if (atomic_load(&job.failed)) return -1;
    team_run((int)threads, (k + COMBINE_CLUSTERS - 1) / COMBINE_CLUSTERS, combine_unit, &job);
    return 0;
}
