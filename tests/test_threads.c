/* test_threads — src/core/threads: every thread index runs exactly once per
 * job, the caller is index 0, writes made before run() are seen by the jobs
 * and the jobs' writes are seen after it (also across futex sleeps), the
 * NULL pool runs inline, and bad sizes are refused; the same with spinning
 * off (every wait sleeps on the futex) and with a spin of 1 µs (waits that
 * end either way).  Runs under TSan. */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "threads.h"
#include "mp_test.h"

enum { MAXT = 8, SLOTS = 4096 };

struct job {
	int calls[MAXT];          /* per thread index: times called */
	int nth_seen[MAXT];       /* nth each call saw */
	uint64_t in[SLOTS];       /* written by the caller before run */
	uint64_t out[SLOTS];      /* written by the jobs (disjoint ranges) */
	uint64_t round;           /* caller's value for this run */
};

static void body(void *ctx, int ith, int nth)
{
	struct job *j = ctx;
	j->calls[ith]++;
	j->nth_seen[ith] = nth;
	for (int i = ith * SLOTS / nth; i < (ith + 1) * SLOTS / nth; i++)
		j->out[i] = j->in[i] * 3 + j->round;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { 0, ms * 1000000L };
	nanosleep(&ts, NULL);
}

static void check_pool_spin(int n, int runs, int pause_every, int spin_us)
{
	struct mp_threads *t;
	REQUIRE(mp_threads_create(n, &t) == 0);
	if (spin_us >= 0)
		mp_threads_set_spin_us(t, (unsigned)spin_us);
	CHECK_EQ_INT(mp_threads_count(t), n);
	static struct job j;
	memset(&j, 0, sizeof j);
	int bad = 0;
	for (int r = 0; r < runs && bad < 3; r++) {
		j.round = (uint64_t)r;
		for (int i = 0; i < SLOTS; i++)
			j.in[i] = (uint64_t)(i + r);
		mp_threads_run(t, body, &j);
		for (int i = 0; i < SLOTS; i++)
			if (j.out[i] != (uint64_t)(i + r) * 3 + (uint64_t)r) {
				MP_TEST_FAIL("n=%d run %d: slot %d = %llu, expected %llu", n, r, i,
					     (unsigned long long)j.out[i],
					     (unsigned long long)((uint64_t)(i + r) * 3 + (uint64_t)r));
				bad++;
				break;
			}
		if (pause_every && r % pause_every == 0)
			sleep_ms(3);   /* past the spin: workers go to sleep */
	}
	for (int i = 0; i < n; i++) {
		CHECK_EQ_INT(j.calls[i], runs);
		CHECK_EQ_INT(j.nth_seen[i], n);
	}
	for (int i = n; i < MAXT; i++)
		CHECK_EQ_INT(j.calls[i], 0);
	mp_threads_destroy(t);
}

static void check_pool(int n, int runs, int pause_every)
{
	check_pool_spin(n, runs, pause_every, -1);
}

static void test_sizes(void)
{
	for (int n = 1; n <= MAXT; n *= 2)
		check_pool(n, 300, 0);
	check_pool(3, 300, 0);
}

static void test_sleeping_workers(void)
{
	check_pool(4, 40, 4);
}

/* Spin 0: workers and caller sleep on every wait (the futex protocol alone);
 * spin 1 µs: a wait ends while spinning or after, as the race goes. */
static void test_spin_settings(void)
{
	check_pool_spin(2, 200, 0, 0);
	check_pool_spin(4, 100, 0, 0);
	check_pool_spin(3, 40, 4, 0);
	check_pool_spin(2, 300, 0, 1);
	check_pool_spin(4, 40, 4, 1);
	check_pool_spin(2, 20, 5, 5000000);   /* clamped to 1 s: still correct */
	mp_threads_set_spin_us(NULL, 10);     /* no-op */
}

static void test_null_pool_and_errors(void)
{
	static struct job j;
	memset(&j, 0, sizeof j);
	mp_threads_run(NULL, body, &j);
	CHECK_EQ_INT(j.calls[0], 1);
	CHECK_EQ_INT(j.nth_seen[0], 1);
	CHECK_EQ_INT(mp_threads_count(NULL), 1);
	struct mp_threads *t = (struct mp_threads *)&j;
	CHECK_EQ_INT(mp_threads_create(0, &t), -MP_EARG);
	CHECK(t == NULL);
	CHECK_EQ_INT(mp_threads_create(5000, &t), -MP_EARG);
	mp_threads_destroy(NULL);
	/* create and destroy without ever running */
	REQUIRE(mp_threads_create(4, &t) == 0);
	mp_threads_destroy(t);
}

int main(void)
{
	RUN(test_sizes);
	RUN(test_sleeping_workers);
	RUN(test_spin_settings);
	RUN(test_null_pool_and_errors);
	return mp_test_end();
}
