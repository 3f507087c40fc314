/*
 * threads.c — the fork-join pool of threads.h.
 *
 * Invariants:
 * 1. gen counts jobs: run() publishes fn/ctx, then increments gen (release);
 *    a worker that sees gen change (acquire) reads fn/ctx of that job.
 * 2. done counts the workers finished with the current job; run() waits for
 *    done == n − 1 (acquire) before returning and resets it before the next
 *    publish, so a worker never adds to the wrong job's count: it cannot see
 *    the next gen before run() has reset done.
 * 3. Sleeping is only ever on a futex word whose expected value is rechecked
 *    by the kernel: a waker increments the word first and then wakes if the
 *    matching sleeper count is non-zero (both seq_cst), a sleeper raises the
 *    count first and then futex-waits on the old value.  Either the waker
 *    sees the sleeper, or the sleeper's wait returns at once.
 * 4. A waiter spins at most spin_ns of monotonic time (read every SPIN_CHECK
 *    pauses) before it sleeps; spin_ns changes only between runs.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "threads.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

enum { SPIN_CHECK = 32 };   /* pauses between two clock reads and yields (0.8 µs on Zen 4) */

struct worker {
	struct mp_threads *pool;   /* back pointer */
	pthread_t tid;             /* the thread */
	int index;                 /* 1..n-1 */
};

struct mp_threads {
	int n;                        /* threads in all, caller included */
	struct worker *workers;       /* n − 1 entries */
	int started;                  /* workers successfully created */
	_Atomic uint64_t spin_ns;     /* spin before sleeping (invariant 4) */
	/* ---- per job ---- */
	mp_threads_fn fn;             /* published before gen++ (invariant 1) */
	void *ctx;
	_Atomic uint32_t gen;         /* job generation; futex word of the workers */
	_Atomic uint32_t done;        /* workers finished; futex word of the caller */
	_Atomic int quit;             /* set with a gen++ by destroy */
	_Atomic int gen_sleepers;     /* workers sleeping (or about to) on gen */
	_Atomic int done_sleeper;     /* caller sleeping (or about to) on done */
};

static void futex_wait(_Atomic uint32_t *word, uint32_t expected)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Spins until the condition on *word holds (until_equal: *word == ref, else
 * *word != ref) or spin_ns passed; returns the last value seen. */
static uint32_t spin_on(_Atomic uint32_t *word, uint32_t ref, int until_equal, uint64_t spin_ns)
{
	uint32_t v = atomic_load_explicit(word, memory_order_acquire);
	if ((v == ref) == until_equal || spin_ns == 0)
		return v;
	uint64_t end = mp_clock_now_ns() + spin_ns;
	for (;;) {
		for (int i = 0; i < SPIN_CHECK; i++) {
			if (((v = atomic_load_explicit(word, memory_order_acquire)) == ref) == until_equal)
				return v;
			cpu_relax();
		}
		if (mp_clock_now_ns() >= end)
			return v;
		sched_yield();   /* an oversubscribed core runs whoever we wait for */
	}
}

/* Waits until *word != old (gen) — spinning first, then sleeping. */
static uint32_t wait_change(_Atomic uint32_t *word, uint32_t old, _Atomic int *sleepers,
                            uint64_t spin_ns)
{
	uint32_t v = spin_on(word, old, 0, spin_ns);
	if (v != old)
		return v;
	for (;;) {
		atomic_fetch_add(sleepers, 1);
		if ((v = atomic_load(word)) == old)
			futex_wait(word, old);
		atomic_fetch_sub(sleepers, 1);
		if ((v = atomic_load_explicit(word, memory_order_acquire)) != old)
			return v;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct mp_threads *t = w->pool;
	uint32_t seen = 0;
	for (;;) {
		seen = wait_change(&t->gen, seen, &t->gen_sleepers,
		                   atomic_load_explicit(&t->spin_ns, memory_order_relaxed));
		if (atomic_load_explicit(&t->quit, memory_order_acquire))
			return NULL;
		t->fn(t->ctx, w->index, t->n);
		uint32_t d = atomic_fetch_add(&t->done, 1) + 1;   /* seq_cst: invariant 3 */
		if (d == (uint32_t)(t->n - 1) && atomic_load(&t->done_sleeper))
			futex_wake(&t->done);
	}
}

int mp_threads_create(int n, struct mp_threads **out)
{
	*out = NULL;
	if (n < 1 || n > 1024)
		return -MP_EARG;
	struct mp_threads *t = mp_calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	t->n = n;
	atomic_init(&t->spin_ns, (uint64_t)MP_THREADS_SPIN_US * 1000u);
	int rc = 0;
	if (n > 1) {
		t->workers = mp_calloc((size_t)n - 1, sizeof *t->workers);
		if (!t->workers) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	for (int i = 0; i < n - 1; i++) {
		t->workers[i].pool = t;
		t->workers[i].index = i + 1;
		int e = pthread_create(&t->workers[i].tid, NULL, worker_main, &t->workers[i]);
		if (e) {
			rc = -e;
			goto fail;
		}
		t->started++;
	}
	*out = t;
	return 0;
fail:
	mp_threads_destroy(t);
	return rc;
}

/* Caller side of the barrier: waits for done == n − 1. */
static void wait_done(struct mp_threads *t)
{
	uint32_t want = (uint32_t)(t->n - 1);
	if (spin_on(&t->done, want, 1, atomic_load_explicit(&t->spin_ns, memory_order_relaxed)) == want)
		return;
	for (;;) {
		atomic_store(&t->done_sleeper, 1);
		uint32_t d = atomic_load(&t->done);
		if (d != want)
			futex_wait(&t->done, d);
		atomic_store(&t->done_sleeper, 0);
		if (atomic_load_explicit(&t->done, memory_order_acquire) == want)
			return;
	}
}

void mp_threads_run(struct mp_threads *t, mp_threads_fn fn, void *ctx)
{
	if (!t || t->n == 1) {
		fn(ctx, 0, 1);
		return;
	}
	t->fn = fn;
	t->ctx = ctx;
	atomic_store_explicit(&t->done, 0, memory_order_relaxed);
	atomic_fetch_add(&t->gen, 1);                 /* publish (seq_cst ⊇ release) */
	if (atomic_load(&t->gen_sleepers))
		futex_wake(&t->gen);
	fn(ctx, 0, t->n);
	wait_done(t);
}

void mp_threads_set_spin_us(struct mp_threads *t, unsigned us)
{
	if (t)
		atomic_store_explicit(&t->spin_ns, (uint64_t)(us > 1000000u ? 1000000u : us) * 1000u,
		                      memory_order_relaxed);
}

int mp_threads_count(const struct mp_threads *t)
{
	return t ? t->n : 1;
}

void mp_threads_destroy(struct mp_threads *t)
{
	if (!t)
		return;
	if (t->started) {
		atomic_store_explicit(&t->quit, 1, memory_order_release);
		atomic_fetch_add(&t->gen, 1);
		futex_wake(&t->gen);
		for (int i = 0; i < t->started; i++)
			pthread_join(t->workers[i].tid, NULL);
	}
	mp_free(t->workers);
	mp_free(t);
}
