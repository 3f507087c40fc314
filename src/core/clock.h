/*
 * clock.h — time sources.  Code whose decisions depend on time (the pager's
 * adaptive prefetch depth, the simulator) takes a struct mp_clock so that
 * tests can drive it; everything else may call mp_clock_now_ns() directly.
 */
#ifndef MP_CLOCK_H
#define MP_CLOCK_H

#include <stdint.h>

/* Monotonic nanoseconds (CLOCK_MONOTONIC). */
uint64_t mp_clock_now_ns(void);
/* Wall-clock seconds since the epoch (CLOCK_REALTIME), for stamps only. */
uint64_t mp_clock_wall_s(void);

struct mp_clock {
	uint64_t (*now_ns)(void *ctx);   /* returns monotonic ns */
	void *ctx;                       /* passed to now_ns */
};

/* The real monotonic clock as an mp_clock. */
extern const struct mp_clock mp_clock_monotonic;

static inline uint64_t mp_clock_read(const struct mp_clock *c)
{
	return c->now_ns(c->ctx);
}

#endif
