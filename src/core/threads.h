/*
 * threads.h — a persistent pool of worker threads for data-parallel kernels
 * (matvec, dequantization).  Not a task queue: mp_threads_run() runs one
 * function on every thread of the pool at once, the caller included, and
 * returns when all of them have finished (a fork-join barrier).
 *
 * Workers spin for a bounded time (MP_THREADS_SPIN_US by default) on the next
 * job and then sleep on a futex, so back-to-back runs (many per layer) do not
 * pay for a wakeup while an idle pool costs no CPU; the caller waits for the
 * workers the same way.  bench/kernels measures both costs (bench/README.md).
 * One caller at a time: run() is not reentrant and must not be called from
 * inside a job or from two threads at once.
 */
#ifndef MP_THREADS_H
#define MP_THREADS_H

struct mp_threads;

/* Job body: ith in 0..nth-1 (0 is the calling thread), nth = pool size. */
typedef void (*mp_threads_fn)(void *ctx, int ith, int nth);

/* A pool of n threads in all (n − 1 workers plus the caller), 1 ≤ n ≤ 1024.
 * Returns 0 and *out, or -MP_EARG / -ENOMEM / -errno of pthread_create. */
int mp_threads_create(int n, struct mp_threads **out);

/* Runs fn(ctx, i, n) for every i, i = 0 on the caller; returns when all have
 * returned.  Everything the jobs wrote is visible to the caller afterwards,
 * and everything the caller wrote before is visible to the jobs.  NULL pool:
 * runs fn(ctx, 0, 1) inline. */
void mp_threads_run(struct mp_threads *t, mp_threads_fn fn, void *ctx);

/* Default spin before sleeping, µs: above the gaps between the parallel
 * regions of one token, far below an idle pause. */
#define MP_THREADS_SPIN_US 200u

/* Sets how long waiters spin before sleeping (0: sleep at once), µs, at most
 * 1,000,000.  Only between runs.  NULL is fine (no-op). */
void mp_threads_set_spin_us(struct mp_threads *t, unsigned us);

/* Threads in the pool (1 for NULL). */
int mp_threads_count(const struct mp_threads *t);

/* Stops and joins the workers; NULL is fine. */
void mp_threads_destroy(struct mp_threads *t);

#endif
