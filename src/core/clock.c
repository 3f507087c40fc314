/* clock.c — monotonic and wall clocks. */
#include <time.h>
#include "clock.h"

uint64_t mp_clock_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t mp_clock_wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec;
}

static uint64_t monotonic_now(void *ctx)
{
	(void)ctx;
	return mp_clock_now_ns();
}

const struct mp_clock mp_clock_monotonic = { monotonic_now, 0 };
