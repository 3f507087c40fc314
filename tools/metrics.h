/*
 * metrics.h — GET /metrics of moepager-server: the server's own counters and
 * the pager's figures from a snapshot of the stats segment (the same numbers
 * moepager-stat shows), in the Prometheus text exposition format 0.0.4.
 *
 * Counters are plain uint64_t updated with relaxed atomic adds by any thread
 * (mp_metrics_add) and read the same way; the format is built from values,
 * so a test can check it without a server.
 */
#ifndef MP_METRICS_H
#define MP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "stats.h"

/* The HTTP statuses of the responses sent, counted one by one (others count
 * as "other"); a stream counts as 200 when its head is sent. */
#define MP_METRICS_CODES { 200, 400, 401, 404, 405, 413, 500, 503 }
#define MP_METRICS_N_CODES 9

struct mp_metrics_counts {
	uint64_t responses[MP_METRICS_N_CODES]; /* by status, last = other */
	uint64_t prompt_new;         /* prompt tokens run through the model */
	uint64_t prompt_reused;      /* prompt tokens taken from the kept KV cache */
	uint64_t completion;         /* tokens generated */
	uint64_t prompt_ns;          /* ns spent on prompts */
	uint64_t gen_ns;             /* ns spent generating */
	uint64_t cancelled;          /* requests whose client left before the end */
	uint64_t busy;               /* 1 while a request runs, else 0 */
};

static inline void mp_metrics_add(uint64_t *field, uint64_t v)
{
	__atomic_fetch_add(field, v, __ATOMIC_RELAXED);
}

static inline uint64_t mp_metrics_get(const uint64_t *field)
{
	return __atomic_load_n(field, __ATOMIC_RELAXED);
}

/* Counts one response with that HTTP status. */
void mp_metrics_count_status(struct mp_metrics_counts *c, int status);

/* The exposition text (mp_malloc'd, NUL-terminated; NULL when out of
 * memory).  snap: the stats segment, or NULL when the experts are resident. */
char *mp_metrics_format(const struct mp_metrics_counts *c, size_t queue_len, size_t queue_cap,
			const struct mp_stats_snap *snap);

#endif
