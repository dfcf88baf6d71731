/* A team of threads kept for the life of the process, which the calling thread joins for each job (see
 * _thread_team.c). */
#ifndef CURATA_THREAD_TEAM_H
#define CURATA_THREAD_TEAM_H

#include <stddef.h>
#include <stdint.h>

/* unit(arg, u, thread) does unit u of a job; `thread` (0 = the caller) indexes per-thread scratch memory */
typedef void (*TeamUnit)(void *arg, int64_t u, int thread);

#define TEAM_MAX 256

/* Runs units 0 .. units - 1 on up to `threads` threads, the caller included, each thread taking the next unit not
 * yet taken, and returns once all are done (where helper threads cannot be started, the caller runs every unit).
 * What a unit computes must not depend on the thread that runs it. Calls from several threads take turns. */
void team_run(int threads, int64_t units, TeamUnit unit, void *arg);

/* How long an idle helper spins for the next job before it sleeps, in microseconds (default 1,000). */
void team_set_spin(long microseconds);

/* Scratch memory kept between jobs: `slot` (0 .. TEAM_SLOTS - 1) of owner `owner` (0 .. TEAM_MAX - 1: a thread, or
 * whatever the caller indexes by), at least `bytes` long, 64-byte aligned; NULL when out of memory. Its contents are
 * undefined. Only inside a job (which serialises the callers). */
#define TEAM_SLOTS 6
void *team_scratch(int owner, int slot, size_t bytes);

#endif
