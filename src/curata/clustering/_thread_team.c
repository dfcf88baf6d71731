/* A team of threads for the passes of a k-means fit.
 *
 * A pass over 10,000 rows takes about 0.5 ms of arithmetic; handing half of it to an idle Python thread took about
 * 0.3 ms on a 2-core VM (a wake-up through the GIL and the kernel), so small passes ran on one core. Here the
 * helpers spin on a generation counter for a while after each job (a fit's next pass comes within a fraction of a
 * millisecond) and only then sleep on a condition variable; the caller works too, and the units of a job go to
 * whichever thread asks first, so that a helper that is late (descheduled: torch's OpenMP threads spin for
 * milliseconds after each parallel op, on the same cores) delays nobody: the caller does its share.
 *
 * After fork() the child has none of the parent's helpers: it starts its own on its first job.
 */
#include "_thread_team.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RELAX() _mm_pause()
#else
#define RELAX() ((void)0)
#endif

typedef struct {
    TeamUnit unit;
    void *arg;
    int64_t units;
    int threads;
    atomic_llong next; /* the next unit not yet taken */
} Job;

static pthread_mutex_t turn = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* guards the sleepers' wait */
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static atomic_ulong generation;    /* bumped once per job */
static _Atomic(Job *) current;     /* the job open to helpers, or NULL */
static atomic_int inside;          /* helpers that may be looking at `current` */
static int helpers;                /* helper threads started (threads 1 .. helpers) */
static unsigned long born_at[TEAM_MAX];
static atomic_long spin_ns = 1000000;
static int fork_handler_set;

typedef struct {
    void *base;
    size_t bytes;
} Scratch;
static Scratch scratch[TEAM_MAX][TEAM_SLOTS];

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void work_on(Job *job, int thread) {
    for (int64_t u; (u = atomic_fetch_add(&job->next, 1)) < job->units;) job->unit(job->arg, u, thread);
}

static void *helper(void *arg) {
    int thread = (int)(intptr_t)arg;
    unsigned long seen = born_at[thread];
    for (;;) {
        unsigned long g = atomic_load_explicit(&generation, memory_order_acquire);
        if (g == seen) {
            long long start = now_ns(), limit = atomic_load_explicit(&spin_ns, memory_order_relaxed);
            for (int n = 1; (g = atomic_load_explicit(&generation, memory_order_acquire)) == seen; n++) {
                RELAX();
                if ((n & 63) == 0 && now_ns() - start > limit) break;
            }
        }
        if (g == seen) {
            pthread_mutex_lock(&lock);
            while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen) pthread_cond_wait(&wake, &lock);
            pthread_mutex_unlock(&lock);
        }
        seen = g;
        /* Announce first, then look: the caller closes the job, then waits for those inside (both sequentially
         * consistent), so that a helper either sees no job or is waited for. */
        atomic_fetch_add(&inside, 1);
        Job *job = atomic_load(&current);
        if (job && thread < job->threads) work_on(job, thread);
        atomic_fetch_sub(&inside, 1);
    }
    return NULL;
}

static void forget_helpers(void) {
    /* in a forked child: the helpers were the parent's; the locks may have been held by them at the fork */
    pthread_mutex_init(&turn, NULL);
    pthread_mutex_init(&lock, NULL);
    pthread_cond_init(&wake, NULL);
    atomic_store(&current, NULL);
    atomic_store(&inside, 0);
    helpers = 0;
}

static int start_helpers(int wanted) {
    if (!fork_handler_set) {
        if (pthread_atfork(NULL, NULL, forget_helpers) != 0) return -1;
        fork_handler_set = 1;
    }
    while (helpers < wanted) {
        int thread = helpers + 1;
        born_at[thread] = atomic_load(&generation);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_t id;
        int failed = pthread_create(&id, &attr, helper, (void *)(intptr_t)thread);
        pthread_attr_destroy(&attr);
        if (failed) return -1;
        helpers = thread;
    }
    return 0;
}

void team_run(int threads, int64_t units, TeamUnit unit, void *arg) {
    if (threads > TEAM_MAX) threads = TEAM_MAX;
    if (threads > units) threads = (int)units;
    pthread_mutex_lock(&turn);
    Job job = {unit, arg, units, threads, 0};
    int started = threads <= 1 || start_helpers(threads - 1) == 0;
    if (started && threads > 1) {
        atomic_store(&current, &job);
        pthread_mutex_lock(&lock); /* a helper between its last look at the counter and its wait must not miss this */
        atomic_fetch_add_explicit(&generation, 1, memory_order_release);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&lock);
    }
    work_on(&job, 0);
    atomic_store(&current, NULL);
    while (atomic_load(&inside) > 0) RELAX();
    pthread_mutex_unlock(&turn);
}

void team_set_spin(long microseconds) { atomic_store(&spin_ns, microseconds < 0 ? 0 : microseconds * 1000L); }

void *team_scratch(int owner, int slot, size_t bytes) {
    Scratch *s = &scratch[owner][slot];
    if (s->bytes < bytes) {
        free(s->base);
        s->base = NULL;
        s->bytes = 0;
        size_t rounded = (bytes + 63) / 64 * 64;
        if (posix_memalign(&s->base, 64, rounded) != 0) {
            s->base = NULL;
            return NULL;
        }
        s->bytes = rounded;
    }
    return s->base;
}
