/* A k-means pass over rows in memory in two team jobs: first the scores, their scan and what follows it (labels,
 * distances, near-ties settled by the sums of squares), block after block while each block's scores are still in
 * cache; then the per-cluster sums, by the same workers over the same chunks in the same order as the Python workers
 * of nearest.py, so that the results are the same bit for bit. */
#include "_scan_pass.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "_scan_kernels.h"
#include "_thread_team.h"

#define SCORE_BYTES (96 * 1024) /* the scores of one unit of rows: they stay in L2 from the GEMM to the scan */
#define COMBINE_CLUSTERS 64     /* clusters per unit of the final addition of the workers' sums */

enum { SCORES, STAGE, SUMS, COUNTS }; /* team_scratch slots */

typedef struct {
    const float *x, *x_sq, *panels, *bias, *centers;
    int64_t ldx, rows, dim, k, step;
    float largest, unit;
    int exact;
    int64_t *labels, *near_count;
    float *best;
    atomic_int failed;
} ScanJob;

static void scan_unit(void *arg, int64_t u, int thread) {
    ScanJob *j = arg;
    int64_t k = j->k, dim = j->dim, a = u * j->step, b = a + j->step < j->rows ? a + j->step : j->rows, count = 0;
    float *scores = team_scratch(thread, SCORES, (size_t)(j->step * k) * sizeof(float));
    if (!scores) {
        atomic_store(&j->failed, 1);
        return;
    }
    panel_gemm(j->x + a * j->ldx, j->ldx, b - a, dim, j->panels, j->bias, k, scores, k);
    for (int64_t i = a; i < b; i++) {
        const float *row = scores + (i - a) * k, *xi = j->x + i * j->ldx;
        Best found;
        scan_row(row, NULL, k, &found, 0);
        int64_t label = found.i1;
        float sq = j->x_sq ? j->x_sq[i] : 0.0f;
        if (settle_row(found.v1, found.v2, sq, j->x_sq != NULL, j->largest, j->unit, j->best + i, NULL)) {
            /* a near-tie: the scores cannot tell the two best apart, the sums of squares (which follow the row
             * alone) do; the lower column on a tie */
            scan_row(row, NULL, k, &found, 1);
            int64_t other_at = found.i2;
            float near = row_distance(xi, j->centers + label * dim, dim);
            float other = row_distance(xi, j->centers + other_at * dim, dim);
            if (other < near || (other == near && other_at < label)) label = other_at;
            j->best[i] = other < near ? other : near;
            count++;
        } else if (j->exact) {
            j->best[i] = row_distance(xi, j->centers + label * dim, dim);
        }
        j->labels[i] = label;
    }
    j->near_count[u] = count;
}

int64_t scan_pass(const float *x, int64_t ldx, const float *x_sq, int64_t rows, int64_t dim, const float *panels,
                  const float *bias, const float *centers, int64_t k, int64_t threads, float largest, float unit,
                  int exact, int64_t *labels, float *best) {
    if (rows == 0) return 0;
    int64_t step = SCORE_BYTES / (4 * k);
    step = step < 8 ? 8 : step / 8 * 8;
    int64_t units = (rows + step - 1) / step;
    int64_t *counts = malloc((size_t)units * sizeof(int64_t));
    if (!counts) return -1;
    ScanJob job = {x, x_sq, panels, bias, centers, ldx, rows, dim, k, step, largest, unit, exact, labels, counts,
                   best, 0};
    team_run((int)threads, units, scan_unit, &job);
    int64_t total = 0;
    for (int64_t v = 0; v < units; v++) total += counts[v];
    free(counts);
    return atomic_load(&job.failed) ? -1 : total;
}

typedef struct {
    const float *x;
    const int64_t *labels;
    int64_t ldx, rows, dim, k, chunk, flush;
    double *out;
    int64_t workers;
    atomic_int failed;
} SumJob;

/* worker w: its chunks (w, w + workers, ...) into its own float32 stage, flushed into its float64 sums */
static void sum_unit(void *arg, int64_t w, int thread) {
    SumJob *j = arg;
    int64_t kd = j->k * j->dim;
    float *stage = team_scratch((int)w, STAGE, (size_t)kd * sizeof(float));
    double *sums = team_scratch((int)w, SUMS, (size_t)kd * sizeof(double));
    int64_t *counts = team_scratch((int)w, COUNTS, (size_t)j->k * sizeof(int64_t));
    if (!stage || !sums || !counts) {
        atomic_store(&j->failed, 1);
        return;
    }
    memset(stage, 0, (size_t)kd * sizeof(float));
    memset(sums, 0, (size_t)kd * sizeof(double));
    memset(counts, 0, (size_t)j->k * sizeof(int64_t));
    int64_t staged = 0;
    for (int64_t c = w; c * j->chunk < j->rows; c += j->workers) {
        int64_t s = c * j->chunk, e = s + j->chunk < j->rows ? s + j->chunk : j->rows;
        add_rows_f32(stage, j->labels + s, j->x + s * j->ldx, e - s, j->dim, j->ldx);
        for (int64_t i = s; i < e; i++) counts[j->labels[i]]++;
        staged += e - s;
        if (staged >= j->flush && e % j->chunk == 0) {
            for (int64_t t = 0; t < kd; t++) sums[t] += (double)stage[t];
            memset(stage, 0, (size_t)kd * sizeof(float));
            staged = 0;
        }
    }
    if (staged)
        for (int64_t t = 0; t < kd; t++) sums[t] += (double)stage[t];
}

/* clusters [u * COMBINE_CLUSTERS, ...): the sums of worker 0 + worker 1 + ... (in that order) and the counts */
static void combine_unit(void *arg, int64_t u, int thread) {
    SumJob *j = arg;
    int64_t c0 = u * COMBINE_CLUSTERS, c1 = c0 + COMBINE_CLUSTERS < j->k ? c0 + COMBINE_CLUSTERS : j->k;
    for (int64_t c = c0; c < c1; c++) {
        double *to = j->out + c * (j->dim + 1);
        int64_t count = 0;
        for (int w = 0; w < j->workers; w++) {
            const double *from = (const double *)team_scratch(w, SUMS, 0) + c * j->dim;
            if (w == 0) {
                memcpy(to, from, (size_t)j->dim * sizeof(double));
            } else {
                for (int64_t t = 0; t < j->dim; t++) to[t] += from[t];
            }
            count += ((const int64_t *)team_scratch(w, COUNTS, 0))[c];
        }
        to[j->dim] = (double)count;
    }
}

int sum_pass(const float *x, int64_t ldx, const int64_t *labels, int64_t rows, int64_t dim, int64_t k,
             int64_t chunk, int64_t flush, int64_t workers, int64_t threads, double *out) {
    if (workers < 1 || workers > TEAM_MAX) return -2;
    SumJob job = {x, labels, ldx, rows, dim, k, chunk, flush, out, workers, 0};
    team_run((int)threads, workers, sum_unit, &job);
    if (atomic_load(&job.failed)) return -1;
    team_run((int)threads, (k + COMBINE_CLUSTERS - 1) / COMBINE_CLUSTERS, combine_unit, &job);
    return 0;
}
