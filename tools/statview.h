/*
 * statview.h — what moepager-stat shows, computed from stats snapshots
 * (pager/stats.h): the derived figures, the text screen, the JSON document
 * (schema in docs/stats.md) and the layer x expert heat map (SVG).
 *
 * Split from the program so that tests render snapshots taken while a writer
 * races them.  Nothing here attaches to processes, sleeps or touches a
 * terminal: the caller passes the snapshots, the interval between them and
 * the screen size.  Figures the segment cannot give (no prefetches issued,
 * no reads yet, a single snapshot for a rate) are "not available": NAN here,
 * "n/a" on screen, null in JSON — never a made-up zero.
 */
#ifndef MP_STATVIEW_H
#define MP_STATVIEW_H

#include <stdint.h>
#include <stdio.h>

#include "stats.h"

#define MP_STATVIEW_SCHEMA 1u            /* the "schema_version" of the JSON document */

/* Sums and ratios over a whole run (prev = NULL) or over the interval between
 * two snapshots of one segment.  Ratios are NAN when their denominator is 0. */
struct mp_statview_fig {
	uint64_t tokens;                 /* decoded tokens */
	uint64_t decode_ns;              /* ns spent decoding them */
	uint64_t hits;                   /* expert uses served from the pool */
	uint64_t pc_hits;                /* misses copied from the page cache */
	uint64_t misses;                 /* misses read from the disk */
	uint64_t uses;                   /* hits + pc_hits + misses */
	uint64_t bytes;                  /* bytes read from disk + copied from the page cache */
	uint64_t disk_bytes;             /* of which read by the backend */
	uint64_t stall_ns;               /* ns callers waited for experts (all layers) */
	uint64_t pf_issued, pf_used, pf_wasted;  /* prefetch counters, all layers */
	uint64_t io_reads, io_errors;    /* backend reads completed / failed */
	uint64_t evictions;              /* slots evicted */
	double tok_s;                    /* tokens / decode time */
	double hit_rate;                 /* hits / uses */
	double pc_rate;                  /* pc_hits / uses */
	double miss_rate;                /* misses / uses */
	double stall_frac;               /* stall_ns / decode_ns (threads add up: may pass 1) */
	double pf_precision;             /* pf_used / pf_issued; NAN when used > issued
	                                  * (uncounted prefetches: precision unknown) */
	double pf_recall;                /* pf_used / (pf_used + pc_hits + misses); NAN
	                                  * when no prefetch was issued or used */
	double read_mbs;                 /* MB/s (10^6): over the interval's wall time, or
	                                  * for a whole run over the decode time */
	double lat_us[3];                /* p50, p90, p99 I/O latency: bucket upper bounds, µs */
	/* Where the decode steps' time went (segment version 3; before it every
	 * figure below is 0 or NAN and phases_known is 0). */
	int phases_known;                /* 1: the segment has the phase counters */
	uint64_t phase_tokens;           /* decode steps timed */
	uint64_t phase_total_ns;         /* their time */
	uint64_t phase_ns[MP_STATS_PHASES];      /* by phase (they sum to phase_total_ns) */
	double step_ms;                  /* ms per timed step; NAN without steps */
	double phase_ms[MP_STATS_PHASES];        /* ms per timed step by phase; NAN likewise */
};

/* Fills f from cur, minus prev when given (dt_s: seconds between them). */
void mp_statview_figures(const struct mp_stats_snap *prev, const struct mp_stats_snap *cur,
                         double dt_s, struct mp_statview_fig *f);

/* Latency percentile q (0..1) from a log2 µs histogram (pager/stats.h):
 * the upper bound of the bucket holding it, in µs; NAN when it is empty. */
double mp_statview_percentile(const uint64_t *hist, unsigned n, double q);

/* What the screen says about the writer. */
struct mp_statview_state {
	const char *source;              /* the segment's path */
	int alive;                       /* 1: the writer runs; 0: it exited */
	double now_wall_s;               /* wall clock (for the uptime); 0: not shown */
	int cols, rows;                  /* screen size; rows 0: no limit (plain text) */
};

/* Writes the text screen: header, figures (interval and whole run), pool,
 * latency, per-layer hit-rate bars.  prev may be NULL (no interval column).
 * Lines end with "\n" only: the caller adds terminal controls. */
void mp_statview_text(FILE *out, const struct mp_statview_state *st,
                      const struct mp_stats_snap *prev, const struct mp_stats_snap *cur,
                      double dt_s);

/* Writes one JSON document (docs/stats.md) for cur, ending with "\n". */
void mp_statview_json(FILE *out, const struct mp_statview_state *st,
                      const struct mp_stats_snap *cur);

/* Writes the heat map (SVG 1.1, one document). */
void mp_statview_svg(FILE *out, const struct mp_statview_state *st,
                     const struct mp_stats_snap *cur);

#endif
