/* test_stat — tools/statview (what moepager-stat shows): the derived figures
 * and latency percentiles, n/a where the segment has no such counter, the
 * text screen within 80x24 for an R1-shaped segment, the JSON document
 * against the schema of docs/stats.md (parsed with jansson), and JSON
 * rendered from snapshots taken while a writer thread updates the segment
 * (invariants that a torn read would break).
 *
 * Also a helper for tests/stat.test:
 *   test_stat --writer PATH SECONDS   a segment at PATH updated until SIGTERM
 *                                     or SECONDS pass (removed at exit)
 *   test_stat --validate FILE [--invariants|--decoded]
 *                                     FILE (JSON) against the schema, and the
 *                                     writer's invariants, or every decode
 *                                     phase timed (after a real run); exit 0
 *                                     or 1 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "mp_test.h"
#include "stats.h"
#include "statview.h"

static char path[4096];

static void make_path(const char *name)
{
	const char *dir = getenv("MP_BUILDDIR");
	snprintf(path, sizeof path, "%s/tests/%s-%d.stats", dir && *dir ? dir : ".", name, (int)getpid());
}

/* ---- The JSON schema of docs/stats.md ---- */

enum jt { J_INT, J_NUMNULL, J_STR, J_STRNULL, J_BOOL, J_OBJ, J_ARR };

struct field {
	const char *key;                 /* "a" or "a.b" */
	enum jt type;
};

static const struct field top_fields[] = {
	{ "schema_version", J_INT }, { "segment_version", J_INT }, { "source", J_STR },
	{ "pid", J_INT }, { "alive", J_BOOL }, { "backend", J_STR }, { "fingerprint", J_STR },
	{ "fallbacks", J_STRNULL }, { "fallback_bits", J_INT },
	{ "start_wall_s", J_INT }, { "n_layers", J_INT }, { "n_experts", J_INT },
	{ "decode", J_OBJ }, { "decode.tokens", J_INT }, { "decode.decode_ns", J_INT },
	{ "decode.tokens_per_s", J_NUMNULL },
	{ "experts_total", J_OBJ }, { "experts_total.uses", J_INT }, { "experts_total.hits", J_INT },
	{ "experts_total.page_cache_hits", J_INT }, { "experts_total.misses", J_INT },
	{ "experts_total.hit_rate", J_NUMNULL }, { "experts_total.page_cache_rate", J_NUMNULL },
	{ "experts_total.miss_rate", J_NUMNULL }, { "experts_total.stall_ns", J_INT },
	{ "experts_total.stall_fraction", J_NUMNULL },
	{ "prefetch", J_OBJ }, { "prefetch.issued", J_INT }, { "prefetch.used", J_INT },
	{ "prefetch.wasted", J_INT }, { "prefetch.precision", J_NUMNULL }, { "prefetch.recall", J_NUMNULL },
	{ "pool", J_OBJ }, { "pool.used_bytes", J_INT }, { "pool.total_bytes", J_INT },
	{ "pool.occupancy", J_NUMNULL }, { "pool.evictions", J_INT },
	{ "io", J_OBJ }, { "io.reads", J_INT }, { "io.errors", J_INT }, { "io.disk_bytes", J_INT }, { "io.pager_cpu_ns", J_INT },
	{ "io.page_cache_bytes", J_INT }, { "io.page_cache_dropped_bytes", J_INT },
	{ "io.read_mb_per_s", J_NUMNULL }, { "io.latency_p50_us", J_NUMNULL },
	{ "io.latency_p90_us", J_NUMNULL }, { "io.latency_p99_us", J_NUMNULL },
	{ "io.latency_hist", J_ARR }, { "layers", J_ARR },
};

static const struct field layer_fields[] = {
	{ "layer", J_INT }, { "hits", J_INT }, { "page_cache_hits", J_INT }, { "misses", J_INT },
	{ "hit_rate", J_NUMNULL }, { "prefetch_issued", J_INT }, { "prefetch_used", J_INT },
	{ "prefetch_wasted", J_INT }, { "bytes_read", J_INT }, { "stall_ns", J_INT },
	{ "expert_uses", J_ARR }, { "expert_hits", J_ARR }, { "expert_misses", J_ARR },
};

static json_t *get(json_t *o, const char *key)
{
	char k[64];
	const char *dot = strchr(key, '.');
	if (!dot)
		return json_object_get(o, key);
	snprintf(k, sizeof k, "%.*s", (int)(dot - key), key);
	return get(json_object_get(o, k), dot + 1);
}

static int type_ok(json_t *v, enum jt t)
{
	switch (t) {
	case J_INT: return json_is_integer(v) && json_integer_value(v) >= 0;
	case J_NUMNULL: return json_is_number(v) || json_is_null(v);
	case J_STR: return json_is_string(v);
	case J_STRNULL: return json_is_string(v) || json_is_null(v);
	case J_BOOL: return json_is_boolean(v);
	case J_OBJ: return json_is_object(v);
	case J_ARR: return json_is_array(v);
	}
	return 0;
}

static int check_fields(json_t *o, const struct field *f, size_t n, char *why, size_t len)
{
	for (size_t i = 0; i < n; i++) {
		json_t *v = get(o, f[i].key);
		if (!v) {
			snprintf(why, len, "missing key %s", f[i].key);
			return -1;
		}
		if (!type_ok(v, f[i].type)) {
			snprintf(why, len, "key %s has the wrong type", f[i].key);
			return -1;
		}
	}
	return 0;
}

static uint64_t u(json_t *o, const char *key)
{
	return (uint64_t)json_integer_value(get(o, key));
}

static uint64_t arr_sum(json_t *a, size_t want_len, int *bad)
{
	uint64_t s = 0;
	if (json_array_size(a) != want_len)
		*bad = 1;
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_t *v = json_array_get(a, i);
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			*bad = 1;
		s += (uint64_t)json_integer_value(v);
	}
	return s;
}

/* Misses summed over the document's layers. */
static uint64_t layer_misses(json_t *doc)
{
	json_t *layers = json_object_get(doc, "layers"), *l;
	size_t i;
	uint64_t n = 0;
	json_array_foreach(layers, i, l)
		n += (uint64_t)json_integer_value(json_object_get(l, "misses"));
	return n;
}

/* "timings" (null only for segment versions 1 and 2): its keys, the phases
 * summing to total_ns, and with invariants the writer's rule (phase p is
 * (p + 1) µs of a 36 µs step); with decoded, every phase non-zero after a
 * real decode — waits only where the pager missed (a pool holding every
 * expert, or prefetches that all landed in time, leave nothing to wait
 * for).  0, or -1 with why. */
static int validate_timings(json_t *doc, int invariants, int decoded, char *why, size_t len)
{
	json_t *t = get(doc, "timings");
	if (json_is_null(t) && u(doc, "segment_version") < 3 && !decoded)
		return 0;
	static const struct field tf[] = { { "tokens", J_INT }, { "total_ns", J_INT },
	                                   { "ms_per_token", J_NUMNULL }, { "ns", J_OBJ }, { "ms", J_OBJ } };
	if (!json_is_object(t) || check_fields(t, tf, sizeof tf / sizeof tf[0], why, len) < 0) {
		snprintf(why + strlen(why), len - strlen(why), " (timings: expected an object)");
		return -1;
	}
	uint64_t tokens = u(t, "tokens"), sum = 0, misses = layer_misses(doc);
	for (int p = 0; p < MP_STATS_PHASES; p++) {
		const char *k = mp_stats_phase_names[p];
		json_t *ns = json_object_get(get(t, "ns"), k), *ms = json_object_get(get(t, "ms"), k);
		if (!type_ok(ns, J_INT) || !type_ok(ms, J_NUMNULL) || (tokens && !json_is_number(ms))) {
			snprintf(why, len, "timings.ns.%s or timings.ms.%s missing or of the wrong type", k, k);
			return -1;
		}
		uint64_t v = (uint64_t)json_integer_value(ns);
		int may_be_zero = strcmp(k, "wait") == 0 && misses == 0;
		if ((invariants && v != 1000ull * (uint64_t)(p + 1) * tokens) || (decoded && v == 0 && !may_be_zero)) {
			snprintf(why, len, "timings.ns.%s is %llu after %llu steps", k, (unsigned long long)v,
			         (unsigned long long)tokens);
			return -1;
		}
		sum += v;
	}
	if (sum != u(t, "total_ns") || (decoded && !tokens)) {
		snprintf(why, len, "timings: the phases sum to %llu ns, total_ns is %llu, %llu steps",
		         (unsigned long long)sum, (unsigned long long)u(t, "total_ns"),
		         (unsigned long long)tokens);
		return -1;
	}
	return 0;
}

/* Checks the schema, the sums it promises, and with invariants the writer's
 * rules (see writer_step).  0, or -1 with why. */
static int validate(json_t *doc, int invariants, int decoded, char *why, size_t len)
{
	if (check_fields(doc, top_fields, sizeof top_fields / sizeof top_fields[0], why, len) < 0)
		return -1;
	if (u(doc, "schema_version") != MP_STATVIEW_SCHEMA) {
		snprintf(why, len, "schema_version %llu", (unsigned long long)u(doc, "schema_version"));
		return -1;
	}
	const char *fp = json_string_value(get(doc, "fingerprint"));
	if (strlen(fp) != 16 || strspn(fp, "0123456789abcdef") != 16) {
		snprintf(why, len, "fingerprint '%s' is not 16 hex digits", fp);
		return -1;
	}
	uint64_t nl = u(doc, "n_layers"), ne = u(doc, "n_experts"), tokens = u(doc, "decode.tokens");
	int bad = 0;
	uint64_t hist = arr_sum(get(doc, "io.latency_hist"), MP_STATS_HIST, &bad);
	json_t *layers = get(doc, "layers");
	if (bad || json_array_size(layers) != nl) {
		snprintf(why, len, "latency_hist or layers of the wrong length or type");
		return -1;
	}
	uint64_t hits = 0, pc = 0, miss = 0;
	for (size_t l = 0; l < nl; l++) {
		json_t *L = json_array_get(layers, l);
		if (check_fields(L, layer_fields, sizeof layer_fields / sizeof layer_fields[0], why, len) < 0)
			return -1;
		uint64_t eu = arr_sum(get(L, "expert_uses"), ne, &bad);
		uint64_t eh = arr_sum(get(L, "expert_hits"), ne, &bad);
		uint64_t em = arr_sum(get(L, "expert_misses"), ne, &bad);
		if (bad || u(L, "layer") != l) {
			snprintf(why, len, "layer %zu: expert arrays or index wrong", l);
			return -1;
		}
		hits += u(L, "hits");
		pc += u(L, "page_cache_hits");
		miss += u(L, "misses");
		if (invariants && (u(L, "hits") != tokens || u(L, "misses") != tokens || eu != 2 * tokens ||
		                   eh != tokens || em != tokens || u(L, "stall_ns") != 10 * tokens)) {
			snprintf(why, len, "torn: layer %zu has hits %llu, misses %llu, expert uses %llu "
			         "at %llu tokens", l, (unsigned long long)u(L, "hits"),
			         (unsigned long long)u(L, "misses"), (unsigned long long)eu,
			         (unsigned long long)tokens);
			return -1;
		}
	}
	if (hits != u(doc, "experts_total.hits") || pc != u(doc, "experts_total.page_cache_hits") ||
	    miss != u(doc, "experts_total.misses") || hits + pc + miss != u(doc, "experts_total.uses")) {
		snprintf(why, len, "experts_total is not the sum of the layers");
		return -1;
	}
	if (invariants && (u(doc, "decode.decode_ns") != 1000 * tokens || u(doc, "io.reads") != nl * tokens ||
	                   hist != nl * tokens)) {
		snprintf(why, len, "torn: decode_ns %llu, reads %llu, histogram %llu at %llu tokens",
		         (unsigned long long)u(doc, "decode.decode_ns"), (unsigned long long)u(doc, "io.reads"),
		         (unsigned long long)hist, (unsigned long long)tokens);
		return -1;
	}
	return validate_timings(doc, invariants, decoded, why, len);
}

/* ---- The writer: one update per step, keeping invariants a torn read breaks ---- */

static void writer_step(struct mp_stats *s, uint32_t nl, uint32_t ne, uint64_t k)
{
	mp_stats_begin(s);
	struct mp_stats_global *g = mp_stats_global(s);
	mp_stats_add(&g->tokens, 1);
	mp_stats_add(&g->decode_ns, 1000);
	for (uint32_t l = 0; l < nl; l++) {
		struct mp_stats_layer *L = mp_stats_layer(s, l);
		mp_stats_add(&L->hits, 1);
		mp_stats_add(&L->misses, 1);
		mp_stats_add(&L->stall_ns, 10);
		mp_stats_add(&L->bytes_read, 4096);
		struct mp_stats_expert *e = mp_stats_expert(s, l, (uint32_t)(k % ne));
		mp_stats_add(&e->uses, 2);
		mp_stats_add(&e->hits, 1);
		mp_stats_add(&e->misses, 1);
		mp_stats_add(&g->io_reads, 1);
		mp_stats_add(&g->io_bytes, 4096);
		mp_stats_latency(s, (k % 4096) * 1000);
	}
	/* phase p takes (p + 1) µs of each 36 µs step */
	mp_stats_add(&g->phase_tokens, 1);
	mp_stats_add(&g->phase_total_ns, 36000);
	for (int p = 0; p < MP_STATS_PHASES; p++)
		mp_stats_add(&g->phase_ns[p], 1000ull * (uint64_t)(p + 1));
	mp_stats_end(s);
}

static volatile sig_atomic_t writer_stop;

static void on_term(int sig)
{
	(void)sig;
	writer_stop = 1;
}

/* Updates until SIGTERM or seconds pass, then removes the segment. */
static int run_writer(const char *p, double seconds)
{
	signal(SIGTERM, on_term);
	struct mp_stats *s = NULL;
	char msg[512];
	struct mp_stats_config cfg = { .path = p, .n_layers = 6, .n_experts = 32, .backend = "mem" };
	if (mp_stats_create(&cfg, &s, msg, sizeof msg) < 0) {
		fprintf(stderr, "test_stat: %s\n", msg);
		return 1;
	}
	mp_stats_begin(s);
	mp_stats_set(&mp_stats_global(s)->pool_total, 64ull << 20);
	mp_stats_set(&mp_stats_global(s)->pool_used, 48ull << 20);
	mp_stats_end(s);
	uint64_t end = mp_clock_now_ns() + (uint64_t)(seconds * 1e9);
	for (uint64_t k = 0; !writer_stop && mp_clock_now_ns() < end; k++) {
		writer_step(s, 6, 32, k);
		if (k % 64 == 0)
			usleep(100);
	}
	mp_stats_destroy(s);
	return 0;
}

static int run_validate(const char *file, const char *mode)
{
	int invariants = mode && strcmp(mode, "--invariants") == 0;
	int decoded = mode && strcmp(mode, "--decoded") == 0;
	json_error_t je;
	json_t *doc = json_load_file(file, 0, &je);
	if (!doc) {
		fprintf(stderr, "test_stat: %s: not JSON: line %d: %s\n", file, je.line, je.text);
		return 1;
	}
	char why[256];
	int rc = validate(doc, invariants, decoded, why, sizeof why);
	json_decref(doc);
	if (rc < 0)
		fprintf(stderr, "test_stat: %s: %s\n", file, why);
	return rc < 0;
}

/* ---- Cases ---- */

/* A segment, its reader and one snapshot, for the cases below. */
struct fixture {
	struct mp_stats *w;
	struct mp_stats_reader *r;
	struct mp_stats_snap snap;
};

static int fixture_open(struct fixture *f, const char *name, uint32_t nl, uint32_t ne)
{
	memset(f, 0, sizeof *f);
	make_path(name);
	char msg[512];
	struct mp_stats_config cfg = { .path = path, .n_layers = nl, .n_experts = ne, .backend = "sync",
	                               .fingerprint = 0xfeedull };
	if (mp_stats_create(&cfg, &f->w, msg, sizeof msg) < 0 || mp_stats_open(path, &f->r, msg, sizeof msg) < 0) {
		fprintf(stderr, "%s\n", msg);
		return -1;
	}
	return 0;
}

static int fixture_snap(struct fixture *f)
{
	mp_stats_snap_free(&f->snap);
	return mp_stats_snapshot(f->r, &f->snap);
}

static void fixture_close(struct fixture *f)
{
	mp_stats_snap_free(&f->snap);
	mp_stats_close(f->r);
	mp_stats_destroy(f->w);
}

/* Renders into a string (caller frees with free(): open_memstream's buffer). */
static char *render(int what, const struct mp_statview_state *st, const struct mp_stats_snap *prev,
                    const struct mp_stats_snap *cur, double dt)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m)
		return NULL;
	if (what == 0)
		mp_statview_text(m, st, prev, cur, dt);
	else if (what == 1)
		mp_statview_json(m, st, cur);
	else
		mp_statview_svg(m, st, cur);
	fclose(m);
	return buf;
}

static void test_percentile(void)
{
	uint64_t h[MP_STATS_HIST] = { 0 };
	CHECK(isnan(mp_statview_percentile(h, MP_STATS_HIST, 0.5)));
	h[0] = 50;
	h[3] = 40;
	h[10] = 10;
	CHECK_NEAR(mp_statview_percentile(h, MP_STATS_HIST, 0.50), 2.0, 0);
	CHECK_NEAR(mp_statview_percentile(h, MP_STATS_HIST, 0.90), 16.0, 0);
	CHECK_NEAR(mp_statview_percentile(h, MP_STATS_HIST, 0.99), 2048.0, 0);
}

static void test_figures(void)
{
	struct fixture f;
	REQUIRE(fixture_open(&f, "fig", 3, 8) == 0);
	REQUIRE(fixture_snap(&f) == 0);
	struct mp_statview_fig fig;
	mp_statview_figures(NULL, &f.snap, 0, &fig);
	CHECK(isnan(fig.tok_s) && isnan(fig.hit_rate) && isnan(fig.pf_precision) && isnan(fig.lat_us[0]));
	struct mp_statview_state st = { path, 1, 0, 80, 0 };
	char *txt = render(0, &st, NULL, &f.snap, 0);
	REQUIRE(txt);
	CHECK_CONTAINS(txt, "no prefetches issued");
	CHECK_CONTAINS(txt, "n/a (no expert used yet)");
	free(txt);

	struct mp_stats_snap first = f.snap;
	memset(&f.snap, 0, sizeof f.snap);
	mp_stats_begin(f.w);
	struct mp_stats_global *g = mp_stats_global(f.w);
	mp_stats_add(&g->tokens, 10);
	mp_stats_add(&g->decode_ns, 2000000000ull);     /* 5 tokens/s */
	mp_stats_add(&g->io_bytes, 3000000);
	mp_stats_add(&g->pc_bytes, 1000000);
	mp_stats_set(&g->pool_total, 100);
	mp_stats_set(&g->pool_used, 25);
	struct mp_stats_layer *L = mp_stats_layer(f.w, 1);
	mp_stats_add(&L->hits, 60);
	mp_stats_add(&L->pc_hits, 10);
	mp_stats_add(&L->misses, 30);
	mp_stats_add(&L->stall_ns, 500000000ull);       /* a quarter of decode time */
	mp_stats_add(&L->pf_issued, 20);
	mp_stats_add(&L->pf_used, 15);
	mp_stats_add(&L->pf_wasted, 5);
	mp_stats_latency(f.w, 100000);                   /* 100 µs: bucket [64, 128) */
	mp_stats_end(f.w);
	REQUIRE(fixture_snap(&f) == 0);
	mp_statview_figures(NULL, &f.snap, 0, &fig);
	CHECK_NEAR(fig.tok_s, 5.0, 1e-9);
	CHECK_NEAR(fig.hit_rate, 0.6, 1e-9);
	CHECK_NEAR(fig.pc_rate, 0.1, 1e-9);
	CHECK_NEAR(fig.miss_rate, 0.3, 1e-9);
	CHECK_NEAR(fig.stall_frac, 0.25, 1e-9);
	CHECK_NEAR(fig.pf_precision, 0.75, 1e-9);
	CHECK_NEAR(fig.pf_recall, 15.0 / 55.0, 1e-9);
	CHECK_NEAR(fig.read_mbs, 2.0, 1e-9);            /* 4 MB over 2 s of decoding */
	CHECK_NEAR(fig.lat_us[1], 128.0, 0);
	/* The interval: everything happened in the 2 s between the snapshots. */
	mp_statview_figures(&first, &f.snap, 2.0, &fig);
	CHECK_EQ_U64(fig.tokens, 10);
	CHECK_NEAR(fig.read_mbs, 2.0, 1e-9);
	CHECK_NEAR(fig.hit_rate, 0.6, 1e-9);
	/* Prefetches used but never counted as issued: precision unknown, recall known. */
	{
		struct mp_stats_snap tmp = f.snap;
		struct mp_stats_layer *l1 = (struct mp_stats_layer *)(void *)
			((char *)tmp.buf + tmp.h->layer_off + tmp.h->layer_stride);
		uint64_t issued = l1->pf_issued;
		l1->pf_issued = 0;
		mp_statview_figures(NULL, &tmp, 0, &fig);
		CHECK(isnan(fig.pf_precision));
		CHECK_NEAR(fig.pf_recall, 15.0 / 55.0, 1e-9);
		char *t2 = render(0, &st, NULL, &tmp, 0);
		REQUIRE(t2);
		CHECK_CONTAINS(t2, "15 used > 0 counted as issued");
		free(t2);
		l1->pf_issued = issued;
	}
	txt = render(0, &st, &first, &f.snap, 2.0);
	REQUIRE(txt);
	CHECK_CONTAINS(txt, "last 2.0s");
	CHECK_CONTAINS(txt, "prefetch precision        75.0%      75.0%");
	CHECK_CONTAINS(txt, "pool 0.0 of 0.0 MiB used (25.0%)");
	CHECK_CONTAINS(txt, "L1 ");
	CHECK(!strstr(txt, "L0 "));                       /* unused layers are left out */
	free(txt);
	mp_stats_snap_free(&first);
	fixture_close(&f);
}

/* R1's shape (61 layers, 3 dense, 256 experts) fits 80x24, one line free. */
static void test_screen_fits(void)
{
	struct fixture f;
	REQUIRE(fixture_open(&f, "r1", 61, 256) == 0);
	mp_stats_begin(f.w);
	for (uint32_t l = 3; l < 61; l++) {
		mp_stats_add(&mp_stats_layer(f.w, l)->hits, 100 + l);
		mp_stats_add(&mp_stats_layer(f.w, l)->misses, 50);
	}
	mp_stats_end(f.w);
	REQUIRE(fixture_snap(&f) == 0);
	for (int pf = 0; pf < 2; pf++) {
		if (pf) {
			mp_stats_begin(f.w);
			mp_stats_add(&mp_stats_layer(f.w, 5)->pf_issued, 3);
			mp_stats_end(f.w);
			REQUIRE(fixture_snap(&f) == 0);
		}
		struct mp_statview_state st = { "/dev/shm/moepager-123456.stats", 1, 2e9, 80, 24 };
		char *txt = render(0, &st, &f.snap, &f.snap, 1.0);
		REQUIRE(txt);
		int lines = 0, longest = 0;
		for (char *p = txt, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
			lines++;
			if (nl - p > longest)
				longest = (int)(nl - p);
		}
		CHECK(lines <= 23);
		CHECK(longest <= 80);
		CHECK_CONTAINS(txt, "L60 ");
		CHECK_CONTAINS(txt, "L3 ");
		if (lines > 23 || longest > 80)
			fprintf(stderr, "%s", txt);
		free(txt);
	}
	fixture_close(&f);
}

/* The decode phases: n/a before the first step, per step over the whole run
 * or the interval (one line at 160 columns, two at 80), in the JSON, and
 * "unknown" / null for a version-2 segment. */
static void test_phases(void)
{
	struct fixture f;
	REQUIRE(fixture_open(&f, "phases", 4, 16) == 0);
	REQUIRE(fixture_snap(&f) == 0);
	struct mp_statview_state st = { path, 1, 0, 80, 0 };
	char *txt = render(0, &st, NULL, &f.snap, 0);
	REQUIRE(txt);
	CHECK_CONTAINS(txt, "time per token: n/a (no decode step yet)");
	free(txt);
	struct mp_stats_snap first = f.snap;
	memset(&f.snap, 0, sizeof f.snap);
	for (uint64_t k = 0; k < 4; k++)
		writer_step(f.w, 4, 16, k);
	REQUIRE(fixture_snap(&f) == 0);
	struct mp_statview_fig fig;
	mp_statview_figures(NULL, &f.snap, 0, &fig);
	CHECK(fig.phases_known);
	CHECK_EQ_U64(fig.phase_tokens, 4);
	CHECK_NEAR(fig.step_ms, 0.036, 1e-12);
	CHECK_NEAR(fig.phase_ms[4], 0.005, 1e-12);
	txt = render(0, &st, NULL, &f.snap, 0);
	REQUIRE(txt);
	CHECK_CONTAINS(txt, "time per token 0.036 ms: attn 0.001 ms, ffn 0.002, shared 0.003, router 0.004,\n"
	               "  routed 0.005, wait 0.006, head 0.007, other 0.008 (4 steps)\n");
	free(txt);
	st.cols = 160;
	txt = render(0, &st, &first, &f.snap, 1.0);
	REQUIRE(txt);
	CHECK_CONTAINS(txt, "router 0.004, routed 0.005, wait 0.006, head 0.007, other 0.008 (last 1.0s)\n");
	free(txt);
	char *js = render(1, &st, NULL, &f.snap, 0);
	REQUIRE(js);
	CHECK_CONTAINS(js, "\"timings\": {\"tokens\": 4, \"total_ns\": 144000, \"ms_per_token\": 0.036,");
	CHECK_CONTAINS(js, "\"routed\": 20000,");
	free(js);
	/* The same segment read as version 2: the phases are unknown, not zero. */
	((struct mp_stats_header *)f.snap.buf)->version = 2;
	txt = render(0, &st, NULL, &f.snap, 0);
	js = render(1, &st, NULL, &f.snap, 0);
	REQUIRE(txt && js);
	CHECK_CONTAINS(txt, "time per token: unknown (segment version 1 or 2)");
	CHECK_CONTAINS(js, "\"timings\": null,");
	free(txt);
	free(js);
	mp_stats_snap_free(&first);
	fixture_close(&f);
}

static void test_json_schema(void)
{
	struct fixture f;
	REQUIRE(fixture_open(&f, "json", 4, 16) == 0);
	for (uint64_t k = 0; k < 7; k++)
		writer_step(f.w, 4, 16, k);
	REQUIRE(fixture_snap(&f) == 0);
	struct mp_statview_state st = { "a \"quoted\"\\path", 0, 0, 80, 0 };
	char *js = render(1, &st, NULL, &f.snap, 0);
	REQUIRE(js);
	json_error_t je;
	json_t *doc = json_loads(js, 0, &je);
	if (!doc)
		fprintf(stderr, "not JSON: %s\n%s", je.text, js);
	REQUIRE(doc);
	char why[256] = "";
	CHECK(validate(doc, 1, 0, why, sizeof why) == 0);
	if (why[0])
		fprintf(stderr, "%s\n", why);
	CHECK_STR(json_string_value(get(doc, "source")), "a \"quoted\"\\path");
	CHECK_STR(json_string_value(get(doc, "fingerprint")), "000000000000feed");
	CHECK(json_is_null(get(doc, "prefetch.precision")));
	CHECK(json_is_false(get(doc, "alive")));
	CHECK_EQ_U64(u(doc, "decode.tokens"), 7);
	/* A key removed fails the validator (the check can fail). */
	json_object_del(get(doc, "io"), "reads");
	CHECK(validate(doc, 0, 0, why, sizeof why) < 0);
	CHECK_CONTAINS(why, "io.reads");
	json_decref(doc);
	free(js);
	char *svg = render(2, &st, NULL, &f.snap, 0);
	REQUIRE(svg);
	CHECK(strncmp(svg, "<?xml", 5) == 0);
	CHECK_CONTAINS(svg, "a &quot;quoted&quot;\\path");
	CHECK_CONTAINS(svg, "</svg>\n");
	free(svg);
	fixture_close(&f);
}

static volatile int stop_writer;

static void *writer_thread(void *arg)
{
	struct mp_stats *s = arg;
	for (uint64_t k = 0; !__atomic_load_n(&stop_writer, __ATOMIC_RELAXED); k++)
		writer_step(s, 5, 12, k);
	return NULL;
}

/* Snapshots taken while the writer runs always render a consistent document. */
static void test_racing_writer(void)
{
	struct fixture f;
	REQUIRE(fixture_open(&f, "race", 5, 12) == 0);
	pthread_t t;
	stop_writer = 0;
	REQUIRE(pthread_create(&t, NULL, writer_thread, f.w) == 0);
	struct mp_statview_state st = { path, 1, 0, 80, 0 };
	int ok = 0, torn = 0, busy = 0;
	uint64_t last = 0, grew = 0;
	for (int i = 0; i < 200; i++) {
		int rc = fixture_snap(&f);
		if (rc == -EAGAIN) {
			busy++;
			continue;
		}
		REQUIRE(rc == 0);
		char *js = render(1, &st, NULL, &f.snap, 0);
		json_t *doc = js ? json_loads(js, 0, NULL) : NULL;
		char why[256];
		if (doc && validate(doc, 1, 0, why, sizeof why) == 0) {
			ok++;
			grew += u(doc, "decode.tokens") > last;
			last = u(doc, "decode.tokens");
		} else {
			if (!torn++)
				fprintf(stderr, "%s\n", doc ? why : "not JSON");
		}
		json_decref(doc);
		free(js);
		usleep(200);                     /* let the writer run on a busy machine */
	}
	__atomic_store_n(&stop_writer, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	CHECK_EQ_INT(torn, 0);
	CHECK(ok > 100);
	CHECK(grew > 10);                        /* the snapshots did race the writer */
	printf("  %d consistent snapshots (%llu advancing), %d retried\n", ok,
	       (unsigned long long)grew, busy);
	fixture_close(&f);
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--writer") == 0)
		return run_writer(argv[2], atof(argv[3]));
	if ((argc == 3 || argc == 4) && strcmp(argv[1], "--validate") == 0)
		return run_validate(argv[2], argc == 4 ? argv[3] : NULL);
	RUN(test_percentile);
	RUN(test_figures);
	RUN(test_screen_fits);
	RUN(test_phases);
	RUN(test_json_schema);
	RUN(test_racing_writer);
	return mp_test_end();
}
