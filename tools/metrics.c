/*
 * metrics.c — Prometheus text for moepager-server (metrics.h).
 *
 * Every family is written with its # HELP and # TYPE lines; counters end in
 * _total, durations are seconds, sizes bytes (the Prometheus naming rules).
 * Ratios the pager's summary prints (pool hit share, prefetch precision,
 * tokens/s) are gauges computed here from the same counters, so a plain curl
 * shows them without a PromQL rate().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "metrics.h"

static const int codes[] = MP_METRICS_CODES;
_Static_assert(sizeof codes / sizeof codes[0] + 1 == MP_METRICS_N_CODES, "codes and slots agree");

void mp_metrics_count_status(struct mp_metrics_counts *c, int status)
{
	size_t i = 0;
	while (i < sizeof codes / sizeof codes[0] && codes[i] != status)
		i++;
	mp_metrics_add(&c->responses[i], 1);
}

struct out {
	char *p;
	size_t n, cap;
	int failed;                  /* 1: out of memory */
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	for (int tries = 0; tries < 2 && !o->failed; tries++) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(o->p ? o->p + o->n : NULL, o->p ? o->cap - o->n : 0, fmt, ap);
		va_end(ap);
		if (n < 0 || (o->p && (size_t)n < o->cap - o->n)) {
			o->n += n > 0 ? (size_t)n : 0;
			return;
		}
		size_t cap = o->cap ? o->cap : 4096;
		while (cap < o->n + (size_t)n + 1)
			cap *= 2;
		char *p = mp_realloc(o->p, cap);
		if (!p)
			o->failed = 1;
		else {
			o->p = p;
			o->cap = cap;
		}
	}
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(struct out *o, const char *name, const char *help, uint64_t v)
{
	family(o, name, "counter", help);
	put(o, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(struct out *o, const char *name, const char *help, double v)
{
	family(o, name, "gauge", help);
	put(o, "%s %.6g\n", name, v);
}

static void server_part(struct out *o, const struct mp_metrics_counts *c, size_t qlen, size_t qcap)
{
	family(o, "moepager_responses_total", "counter", "HTTP responses by status code");
	for (size_t i = 0; i < MP_METRICS_N_CODES; i++) {
		char code[16];
		if (i < sizeof codes / sizeof codes[0])
			snprintf(code, sizeof code, "%d", codes[i]);
		else
			snprintf(code, sizeof code, "other");
		put(o, "moepager_responses_total{code=\"%s\"} %llu\n", code,
		    (unsigned long long)mp_metrics_get(&c->responses[i]));
	}
	gauge(o, "moepager_queue_length", "requests waiting for the model", (double)qlen);
	gauge(o, "moepager_queue_capacity", "requests that may wait (--queue); more get 503", (double)qcap);
	gauge(o, "moepager_busy", "1 while a request is being answered", (double)mp_metrics_get(&c->busy));
	family(o, "moepager_prompt_tokens_total", "counter",
	       "prompt tokens: new = run through the model, reused = taken from the kept KV cache");
	put(o, "moepager_prompt_tokens_total{kind=\"new\"} %llu\n",
	    (unsigned long long)mp_metrics_get(&c->prompt_new));
	put(o, "moepager_prompt_tokens_total{kind=\"reused\"} %llu\n",
	    (unsigned long long)mp_metrics_get(&c->prompt_reused));
	counter(o, "moepager_completion_tokens_total", "tokens generated", mp_metrics_get(&c->completion));
	counter(o, "moepager_cancelled_total", "requests whose client left before the answer ended",
		mp_metrics_get(&c->cancelled));
	double ps = (double)mp_metrics_get(&c->prompt_ns) / 1e9, gs = (double)mp_metrics_get(&c->gen_ns) / 1e9;
	family(o, "moepager_prompt_seconds_total", "counter", "seconds spent processing prompts");
	put(o, "moepager_prompt_seconds_total %.6f\n", ps);
	family(o, "moepager_generation_seconds_total", "counter", "seconds spent generating");
	put(o, "moepager_generation_seconds_total %.6f\n", gs);
	gauge(o, "moepager_prompt_tokens_per_second", "new prompt tokens per second of prompt processing",
	      ps > 0 ? (double)mp_metrics_get(&c->prompt_new) / ps : 0);
	gauge(o, "moepager_generation_tokens_per_second", "generated tokens per second of generation",
	      gs > 0 ? (double)mp_metrics_get(&c->completion) / gs : 0);
}

static void pager_part(struct out *o, const struct mp_stats_snap *s)
{
	const struct mp_stats_global *g = s->g;
	uint64_t hits = 0, pc = 0, miss = 0, issued = 0, used = 0, wasted = 0, stall = 0;
	for (uint32_t l = 0; l < s->h->n_layers; l++) {
		const struct mp_stats_layer *L = mp_stats_snap_layer(s, l);
		hits += L->hits;
		pc += L->pc_hits;
		miss += L->misses;
		issued += L->pf_issued;
		used += L->pf_used;
		wasted += L->pf_wasted;
		stall += L->stall_ns;
	}
	uint64_t uses = hits + pc + miss;
	counter(o, "moepager_decoded_tokens_total", "forward steps (prompt and generated tokens)", g->tokens);
	family(o, "moepager_decode_seconds_total", "counter", "seconds spent in forward steps");
	put(o, "moepager_decode_seconds_total %.6f\n", (double)g->decode_ns / 1e9);
	gauge(o, "moepager_tokens_per_second", "forward steps per second over the server's life",
	      g->decode_ns ? (double)g->tokens * 1e9 / (double)g->decode_ns : 0);
	family(o, "moepager_expert_uses_total", "counter",
	       "routed-expert uses by where they were served from: pool, page cache (copied) or disk");
	put(o, "moepager_expert_uses_total{from=\"pool\"} %llu\n", (unsigned long long)hits);
	put(o, "moepager_expert_uses_total{from=\"page_cache\"} %llu\n", (unsigned long long)pc);
	put(o, "moepager_expert_uses_total{from=\"disk\"} %llu\n", (unsigned long long)miss);
	gauge(o, "moepager_pool_hit_ratio", "share of expert uses served from the pool",
	      uses ? (double)hits / (double)uses : 0);
	counter(o, "moepager_disk_read_bytes_total", "bytes read from disk into the pool", g->io_bytes);
	counter(o, "moepager_page_cache_copy_bytes_total", "bytes copied from the page cache", g->pc_bytes);
	counter(o, "moepager_io_errors_total", "expert reads that failed", g->io_errors);
	counter(o, "moepager_evictions_total", "experts evicted from the pool", g->evictions);
	family(o, "moepager_pool_bytes", "gauge", "bytes of the expert pool");
	put(o, "moepager_pool_bytes %llu\n", (unsigned long long)g->pool_total);
	family(o, "moepager_pool_used_bytes", "gauge", "bytes of the pool holding experts");
	put(o, "moepager_pool_used_bytes %llu\n", (unsigned long long)g->pool_used);
	family(o, "moepager_stall_seconds_total", "counter", "seconds the model waited for experts");
	put(o, "moepager_stall_seconds_total %.6f\n", (double)stall / 1e9);
	family(o, "moepager_prefetches_total", "counter", "expert prefetches: issued, used, wasted");
	put(o, "moepager_prefetches_total{outcome=\"issued\"} %llu\n", (unsigned long long)issued);
	put(o, "moepager_prefetches_total{outcome=\"used\"} %llu\n", (unsigned long long)used);
	put(o, "moepager_prefetches_total{outcome=\"wasted\"} %llu\n", (unsigned long long)wasted);
	gauge(o, "moepager_prefetch_precision", "used / issued prefetches",
	      issued ? (double)used / (double)issued : 0);
}

char *mp_metrics_format(const struct mp_metrics_counts *c, size_t queue_len, size_t queue_cap,
			const struct mp_stats_snap *snap)
{
	struct out o = { 0 };
	server_part(&o, c, queue_len, queue_cap);
	if (snap)
		pager_part(&o, snap);
	if (o.failed || !o.p) {
		mp_free(o.p);
		return NULL;
	}
	return o.p;
}
