/* A whole k-means pass over rows in memory, on the thread team (see _scan_pass.c). */
#ifndef CURATA_SCAN_PASS_H
#define CURATA_SCAN_PASS_H

#include <stdint.h>

/* Nearest centroid of every row, on up to `threads` threads: labels, and best, the squared distance: from the best
 * score, clamped at 0, or with `exact` the sum of squares (row_distance) to the centroid. Near-ties (rows whose two
 * best scores lie within the scores' rounding) are decided by the sums of squares to the two centroids (`centers`,
 * k rows of dim floats), the lower column on a tie, and get that sum as their distance. x_sq NULL: cosine.
 *
 * With `lower` (Hamerly's bounds, see row_bounds.py), once `filled`: a row whose exact distance to its own centroid
 * (times `grow`) is within lower^2 keeps its label, with that distance; the others are scored; every scored row gets
 * a new lower bound. `scored` gets the count of scored rows. Returns the count of near-ties, or -1 when out of
 * memory. */
int64_t scan_pass(const float *x, int64_t ldx, const float *x_sq, int64_t rows, int64_t dim, const float *panels,
                  const float *bias, const float *centers, int64_t k, int64_t threads, float largest, float unit,
                  int exact, int64_t *labels, float *best, float *lower, int filled, float grow, int64_t *scored);

/* Per-cluster sums of the rows and counts into out (k, dim + 1) int64, counts in the last column, on up to
 * `threads` threads. Every value goes in as round(x * scale) (scale a power of two, half to even: add_rows_fixed),
 * so that the sums are integers and the same bit for bit however the rows are split: worker w (of `workers`) adds
 * its chunks (w, w + workers, ...), then the workers' sums are added. Returns 0, -1 when out of memory, -2 for a
 * worker count outside [1, TEAM_MAX]. */
int sum_pass(const float *x, int64_t ldx, const int64_t *labels, int64_t rows, int64_t dim, int64_t k,
             int64_t chunk, double scale, int64_t workers, int64_t threads, int64_t *out);

#endif
