/* test_pager — pager/pager: experts registered as unaligned byte ranges in
 * two synthetic files, served through every backend built (and memory);
 * the bytes served always equal the files' bytes.  Cases: a decode-like
 * loop with eviction and prefetch hints (invariants checked throughout), the
 * budget below the minimum (named in the error), a model that fits (all
 * resident), page-cache tiers (copies counted apart, pages dropped when
 * memory is "low"), EIO at a chosen read (error names layer, expert, file,
 * offset; the pager stays usable), short/EAGAIN/reordered/delayed
 * completions, a file truncated while running (an error, never SIGBUS), the
 * policy hooks, prefetch never evicting the current set, the stats segment,
 * and two threads using one pager while the I/O completes. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "io.h"
#include "mp_test.h"
#include "pager.h"
#include "rng.h"
#include "stats.h"
#include "test_pager_util.h"

#define NL 3              /* layer 0 is dense: nothing registered */
#define NE 8
#define TOPK 2
#define SEED_A 21
#define SEED_B 22

static char path_a[4096], path_b[4096];
static uint64_t size_a, size_b;
static struct mp_pager_range ranges[NL][NE][3];
static uint64_t slot1, slot2;     /* class slot sizes, computed by the test */

static uint64_t up4k(uint64_t x)
{
	return (x + 4095) & ~(uint64_t)4095;
}

/* Lays out the experts: gate and up in file A, down in file B, unaligned. */
static void layout(void)
{
	uint64_t a = 777, b = 4093;
	for (uint32_t l = 1; l < NL; l++)
		for (uint32_t e = 0; e < NE; e++) {
			uint64_t down = l == 1 ? 24000 : 30000;
			ranges[l][e][0] = (struct mp_pager_range){ .file = 0, .offset = a, .len = 20000 };
			a += 20000 + 13;
			ranges[l][e][1] = (struct mp_pager_range){ .file = 0, .offset = a, .len = 20000 };
			a += 20000 + 4099;
			ranges[l][e][2] = (struct mp_pager_range){ .file = 1, .offset = b, .len = down };
			b += down + 1;
		}
	size_a = a + 100;
	size_b = b;                   /* the last range ends at EOF */
	slot1 = 2 * (up4k(20000) + 4096) + up4k(24000) + 4096;
	slot2 = 2 * (up4k(20000) + 4096) + up4k(30000) + 4096;
}

struct opts {
	const struct mp_io_ops *ops;
	uint64_t budget;
	const struct mp_io_fault *fault;
	int page_cache;               /* 0: no_page_cache */
	uint64_t io_block;
	uint32_t depth;
	const char *a, *b;            /* file paths (default the shared ones) */
	struct mp_stats *stats;
	double (*keep)(void *, uint32_t, uint32_t);
	void (*access)(void *, uint32_t, const uint32_t *, uint32_t);
	void *ctx;
	uint64_t low_mem;
	uint64_t reg_max, reg_piece;  /* io_uring registration (0: defaults) */
	uint64_t prefetch_cap;        /* 0: measured */
};

static struct mp_pager *make(const struct opts *o, int *rc_out)
{
	struct mp_pager_config cfg = {
		.budget = o->budget, .backend = o->ops, .fault = o->fault, .io_depth = o->depth,
		.io_threads = 3, .io_block = o->io_block, .n_layers = NL, .n_experts = NE,
		.top_k = TOPK, .no_page_cache = !o->page_cache, .keep_score = o->keep,
		.on_access = o->access, .policy_ctx = o->ctx, .stats = o->stats, .low_mem = o->low_mem,
		.reg_max = o->reg_max, .reg_piece = o->reg_piece, .prefetch_cap = o->prefetch_cap,
	};
	char msg[256];
	struct mp_pager *p = NULL;
	int rc = mp_pager_create(&cfg, &p, msg, sizeof msg);
	if (rc < 0) {
		MP_TEST_FAIL("create: %s", msg);
		*rc_out = rc;
		return NULL;
	}
	if (mp_pager_add_file(p, o->a ? o->a : path_a) != 0 ||
	    mp_pager_add_file(p, o->b ? o->b : path_b) != 1) {
		MP_TEST_FAIL("add_file: %s", mp_pager_message(p));
		mp_pager_destroy(p);
		*rc_out = -1;
		return NULL;
	}
	for (uint32_t l = 1; l < NL; l++)
		for (uint32_t e = 0; e < NE; e++)
			if (mp_pager_register(p, l, e, ranges[l][e], 3) != 0)
				MP_TEST_FAIL("register: %s", mp_pager_message(p));
	*rc_out = mp_pager_start(p);
	return p;
}

/* 0 if every range pointer of (l, e) holds the file bytes. */
static int bytes_ok(const void **ptr, uint32_t l, uint32_t e)
{
	for (int r = 0; r < 3; r++) {
		const struct mp_pager_range *x = &ranges[l][e][r];
		if (tp_mismatch(ptr[r], x->file ? SEED_B : SEED_A, x->offset, x->len))
			return -1;
	}
	return 0;
}

/* A decode-like loop: per token and layer, acquire a random top-k set, take
 * the experts as they land (wait_any), check their bytes, release, hint the
 * next layer.  Returns the number of bad experts. */
static int decode(struct mp_pager *p, int tokens, uint64_t seed, int hints)
{
	struct mp_rng rng;
	mp_rng_seed(&rng, seed);
	int bad = 0;
	for (int t = 0; t < tokens; t++)
		for (uint32_t l = 1; l < NL; l++) {
			uint32_t x[TOPK];
			x[0] = (uint32_t)mp_rng_below(&rng, NE);
			do
				x[1] = (uint32_t)mp_rng_below(&rng, NE);
			while (x[1] == x[0]);
			int rc = mp_pager_acquire(p, l, x, TOPK);
			if (rc != 0) {
				MP_TEST_FAIL("acquire layer %u: %s", l, mp_pager_message(p));
				return bad + 1;
			}
			uint8_t taken[TOPK] = { 0 };
			for (int k = 0; k < TOPK; k++) {
				int i = mp_pager_wait_any(p, l, x, TOPK, taken);
				if (i < 0) {
					MP_TEST_FAIL("wait_any: %s", mp_pager_message(p));
					bad++;
					break;
				}
				taken[i] = 1;
				const void *ptr[3];
				if (mp_pager_poll(p, l, x[i], ptr, 3) != 1 || bytes_ok(ptr, l, x[i]) != 0)
					bad++;
			}
			mp_pager_release(p, l, x, TOPK);
			if (hints) {
				uint32_t nl = l + 1 < NL ? l + 1 : 1;
				uint32_t h[3] = { (uint32_t)mp_rng_below(&rng, NE), (uint32_t)mp_rng_below(&rng, NE),
				                  (uint32_t)mp_rng_below(&rng, NE) };
				double s[3] = { 0.9, 0.5, 0.99 };
				if (h[1] != h[0] && h[2] != h[0] && h[2] != h[1])
					mp_pager_hint(p, nl, h, s, 3);
			}
			if (mp_pager_check(p, 2) != 0) {
				MP_TEST_FAIL("%s", mp_pager_message(p));
				return bad + 1;
			}
		}
	return bad;
}

static const struct mp_io_ops *backends[8];
static int n_backends;

static void test_budget_minimum(void)
{
	struct opts o = { .ops = &mp_io_memory_ops, .budget = 2 * slot1 + 2 * slot2 - 1 };
	int rc;
	struct mp_pager *p = make(&o, &rc);
	REQUIRE(p);
	CHECK_EQ_INT(rc, -MP_EBUDGET);
	CHECK_EQ_U64(mp_pager_min_budget(p), 2 * slot1 + 2 * slot2);
	char want[64];
	snprintf(want, sizeof want, "smallest budget that works is %llu bytes",
	         (unsigned long long)(2 * slot1 + 2 * slot2));
	CHECK_CONTAINS(mp_pager_message(p), want);
	CHECK_EQ_INT(mp_pager_acquire(p, 1, (uint32_t[]){ 0 }, 1), -MP_EARG);
	mp_pager_destroy(p);

	o.budget = 2 * slot1 + 2 * slot2;   /* exactly the minimum works */
	p = make(&o, &rc);
	REQUIRE(p);
	CHECK_EQ_INT(rc, 0);
	struct mp_pager_info in;
	mp_pager_info(p, &in);
	CHECK_EQ_INT(in.n_slots, 4);
	CHECK_EQ_INT(in.n_classes, 2);
	CHECK_EQ_U64(in.pool_bytes, o.budget);
	CHECK_EQ_INT(decode(p, 6, 1, 1), 0);
	/* Two layers held at once do not fit in the minimum: refused, not hung. */
	CHECK_EQ_INT(mp_pager_acquire(p, 1, (uint32_t[]){ 0, 1 }, 2), 0);
	CHECK_EQ_INT(mp_pager_acquire(p, 1, (uint32_t[]){ 2 }, 1), -MP_EBUDGET);
	CHECK_CONTAINS(mp_pager_message(p), "no slot can be freed for layer 1 expert 2");
	mp_pager_release(p, 1, (uint32_t[]){ 0, 1 }, 2);
	CHECK_EQ_INT(mp_pager_check(p, 2), 0);
	mp_pager_destroy(p);
}

static void test_decode_every_backend(void)
{
	for (int b = 0; b < n_backends; b++) {
		tp_drop_cache(path_a);
		tp_drop_cache(path_b);
		struct opts o = { .ops = backends[b], .budget = 3 * slot1 + 3 * slot2,
		                  .io_block = 8192, .depth = 8 };
		int rc;
		struct mp_pager *p = make(&o, &rc);
		REQUIRE(p);
		if (rc != 0) {
			MP_TEST_FAIL("%s: start: %s", backends[b]->name, mp_pager_message(p));
			mp_pager_destroy(p);
			continue;
		}
		int bad = decode(p, 25, 2 + (uint64_t)b, 1);
		if (bad)
			MP_TEST_FAIL("%s: %d experts served wrong bytes", backends[b]->name, bad);
		struct mp_pager_info in;
		mp_pager_info(p, &in);
		CHECK_EQ_U64(in.hits + in.misses + in.pc_hits, 25 * 2 * TOPK);
		if (!(backends[b]->caps & MP_IO_CAP_NOPOOL)) {
			CHECK(in.misses > 0 && in.hits > 0 && in.evictions > 0);
			CHECK(in.pf_issued > 0);
			CHECK_EQ_U64(in.pool_bytes, o.budget);
		}
		mp_pager_destroy(p);
	}
}

static void test_fits_whole(void)
{
	for (int b = 0; b < n_backends; b++) {
		struct opts o = { .ops = backends[b], .budget = 1u << 30, .depth = 4 };
		int rc;
		struct mp_pager *p = make(&o, &rc);
		REQUIRE(p && rc == 0);
		struct mp_pager_info in;
		mp_pager_info(p, &in);
		CHECK_EQ_INT(in.fits, 1);
		CHECK_EQ_INT(in.n_slots, 2 * NE);
		if (!(backends[b]->caps & MP_IO_CAP_NOPOOL)) {
			CHECK_EQ_U64(in.pool_bytes, NE * (slot1 + slot2));   /* not the whole budget */
			CHECK_EQ_U64(in.pf_issued, 2 * NE);                  /* preloaded */
			CHECK_EQ_U64(in.warmed_bytes, 0);                    /* so no warmer */
		}
		CHECK_EQ_INT(decode(p, 10, 3, 0), 0);
		mp_pager_info(p, &in);
		if (!(backends[b]->caps & MP_IO_CAP_NOPOOL))
			CHECK_EQ_U64(in.misses + in.pc_hits, 0);
		CHECK_EQ_U64(in.evictions, 0);
		mp_pager_destroy(p);
	}
}

/* Why the pool warmer cannot run here, or NULL when it can. */
static const char *warmer_missing(void)
{
#ifdef MADV_POPULATE_WRITE
	void *probe = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (probe == MAP_FAILED)
		return "cannot map a page to probe MADV_POPULATE_WRITE";
	int can = madvise(probe, 4096, MADV_POPULATE_WRITE) == 0;
	munmap(probe, 4096);
	return can ? NULL : "MADV_POPULATE_WRITE refused by this kernel (before 5.14)";
#else
	return "built without MADV_POPULATE_WRITE";
#endif
}

/* The warmer faults the whole pool in on its own (no acquire needed), the
 * experts read into warmed slots are right, and a pager destroyed while its
 * warmer runs joins it before unmapping the pool. */
static void test_warm_pool(void)
{
	const struct mp_io_ops *ops = tp_pool_backend(backends, n_backends);
	if (!ops)
		SKIP_CASE("no backend with a pool");
	const char *no_warmer = warmer_missing();
	if (no_warmer)
		SKIP_CASE(no_warmer);
	struct opts o = { .ops = ops, .budget = 3 * slot1 + 3 * slot2, .io_block = 8192, .depth = 8 };
	int rc;
	struct mp_pager *p = make(&o, &rc);
	REQUIRE(p && rc == 0);
	struct mp_pager_info in;
	uint64_t until = mp_clock_now_ns() + 10000000000ull;
	do {
		mp_pager_info(p, &in);
	} while (in.warmed_bytes < in.pool_bytes && mp_clock_now_ns() < until && usleep(1000) == 0);
	CHECK_EQ_U64(in.warmed_bytes, o.budget);
	CHECK_EQ_U64(in.misses + in.hits + in.pc_hits, 0);   /* warmed before any acquire */
	CHECK_EQ_INT(decode(p, 10, 8, 1), 0);
	mp_pager_destroy(p);
	for (int i = 0; i < 5; i++) {                        /* destroyed at once */
		p = make(&o, &rc);
		REQUIRE(p && rc == 0);
		mp_pager_destroy(p);
	}
}

/* A lazily registered io_uring pool: the warmer registers every piece once
 * it has faulted it in, before any read, so the reads of a decode register
 * none (mp_pager_info counts both), and their bytes are right. */
static void test_warm_registers(void)
{
	const struct mp_io_ops *u = mp_io_find("uring");
	char why[256];
	if (!u || u->probe(why, sizeof why) < 0)
		SKIP_CASE("no usable io_uring");
	const char *no_warmer = warmer_missing();
	if (no_warmer)
		SKIP_CASE(no_warmer);
	const uint64_t piece = 64 << 10;
	struct opts o = { .ops = u, .budget = 3 * slot1 + 3 * slot2, .io_block = 8192, .depth = 8,
	                  .reg_max = 4096, .reg_piece = piece };
	int rc;
	struct mp_pager *p = make(&o, &rc);
	REQUIRE(p && rc == 0);
	struct mp_pager_info in;
	mp_pager_info(p, &in);
	if (in.fallbacks & MP_STATS_FB_REG_REFUSED) {
		mp_pager_destroy(p);
		SKIP_CASE("buffer registration refused here");
	}
	CHECK(in.fallbacks & MP_STATS_FB_REG_LAZY);
	uint32_t pieces = (uint32_t)((in.pool_bytes + piece - 1) / piece);
	REQUIRE(pieces > 2);
	uint64_t until = mp_clock_now_ns() + 10000000000ull;
	do {
		mp_pager_info(p, &in);
	} while (in.reg_warmed < pieces && mp_clock_now_ns() < until && usleep(1000) == 0);
	CHECK_EQ_U64(in.reg_warmed, pieces);
	CHECK_EQ_U64(in.warmed_bytes, in.pool_bytes);
	CHECK_EQ_INT(decode(p, 10, 9, 1), 0);
	mp_pager_info(p, &in);
	CHECK(in.misses > 0);
	CHECK_EQ_U64(in.reg_on_read, 0);
	CHECK_EQ_U64(in.reg_warmed, pieces);
	mp_pager_destroy(p);
	/* Without the warmer's head start (destroyed at once, or a read first)
	 * the pieces are registered once in all, by one side or the other. */
	p = make(&o, &rc);
	REQUIRE(p && rc == 0);
	CHECK_EQ_INT(decode(p, 2, 10, 0), 0);
	mp_pager_destroy(p);
}

static void test_page_cache_tiers(void)
{
	const struct mp_io_ops *ops = tp_pool_backend(backends, n_backends);
	if (!ops)
		SKIP_CASE("no backend with a pool is usable here");
	struct opts o = { .ops = ops, .budget = 2 * slot1 + 2 * slot2, .page_cache = 1,
	                  .low_mem = UINT64_MAX };   /* "always low": drop after copying */
	int rc;
	/* Warm the page cache: read both files. */
	tp_drop_cache(path_a);
	tp_drop_cache(path_b);
	struct mp_pager *p = make(&o, &rc);
	REQUIRE(p && rc == 0);
	CHECK_EQ_INT(mp_pager_tier(p, 1, 3), MP_TIER_DISK);
	char buf[65536];
	FILE *f = fopen(path_a, "rb");
	while (f && fread(buf, 1, sizeof buf, f) > 0) {}
	if (f)
		fclose(f);
	f = fopen(path_b, "rb");
	while (f && fread(buf, 1, sizeof buf, f) > 0) {}
	if (f)
		fclose(f);
	CHECK_EQ_INT(mp_pager_tier(p, 1, 3), MP_TIER_PAGE_CACHE);
	uint32_t x[2] = { 3, 5 };
	CHECK_EQ_INT(mp_pager_acquire(p, 1, x, 2), 0);
	const void *ptr[3];
	CHECK_EQ_INT(mp_pager_wait(p, 1, 3, ptr, 3), 0);
	CHECK_EQ_INT(bytes_ok(ptr, 1, 3), 0);
	CHECK_EQ_INT(mp_pager_wait(p, 1, 5, ptr, 3), 0);
	CHECK_EQ_INT(bytes_ok(ptr, 1, 5), 0);
	CHECK_EQ_INT(mp_pager_tier(p, 1, 3), MP_TIER_POOL);
	struct mp_pager_info in;
	mp_pager_info(p, &in);
	CHECK_EQ_U64(in.pc_hits, 2);
	CHECK_EQ_U64(in.misses, 0);
	CHECK_EQ_U64(in.pc_bytes, 2 * (20000 + 20000 + 24000));
	CHECK_EQ_U64(in.pc_dropped, in.pc_bytes);
	mp_pager_release(p, 1, x, 2);
	mp_pager_destroy(p);
}

static void test_eio(void)
{
	for (int b = 0; b < n_backends; b++) {
		tp_drop_cache(path_a);
		tp_drop_cache(path_b);
		struct mp_io_fault f = { .eio_at = 4 };
		struct opts o = { .ops = backends[b], .budget = 2 * slot1 + 2 * slot2, .fault = &f,
		                  .depth = 1 };
		int rc;
		struct mp_pager *p = make(&o, &rc);
		REQUIRE(p && rc == 0);
		uint32_t x[2] = { 6, 7 };
		CHECK_EQ_INT(mp_pager_acquire(p, 2, x, 2), 0);
		const void *ptr[3];
		int r6 = mp_pager_wait(p, 2, 6, ptr, 3);
		int r7 = mp_pager_wait(p, 2, 7, ptr, 3);
		/* Depth 1, three reads per expert: request 4 is expert 7's first. */
		CHECK_EQ_INT(r6, 0);
		CHECK_EQ_INT(r7, -EIO);
		const char *m = mp_pager_message(p);
		CHECK_CONTAINS(m, "layer 2 expert 7");
		CHECK_CONTAINS(m, path_a);
		char off[64];
		uint64_t at = ranges[2][7][0].offset;   /* NOPOOL reads the range itself */
		snprintf(off, sizeof off, "at offset %llu", (unsigned long long)
		         (backends[b]->caps & MP_IO_CAP_NOPOOL ? at : at & ~4095ull));
		CHECK_CONTAINS(m, off);
		mp_pager_release(p, 2, x, 2);
		CHECK_EQ_INT(mp_pager_check(p, 2), 0);
		/* Still usable: the next acquire reads it again. */
		CHECK_EQ_INT(mp_pager_acquire(p, 2, x, 2), 0);
		CHECK_EQ_INT(mp_pager_wait(p, 2, 7, ptr, 3), 0);
		CHECK_EQ_INT(bytes_ok(ptr, 2, 7), 0);
		mp_pager_release(p, 2, x, 2);
		CHECK_EQ_INT(decode(p, 3, 4, 1), 0);
		mp_pager_destroy(p);
	}
}

static void test_short_reorder_delay(void)
{
	for (int b = 0; b < n_backends; b++) {
		tp_drop_cache(path_a);
		tp_drop_cache(path_b);
		struct mp_io_fault f = { .short_every = 2, .eagain_every = 7, .reorder = 1, .delay_us = 20 };
		struct opts o = { .ops = backends[b], .budget = 3 * slot1 + 2 * slot2, .fault = &f,
		                  .depth = 6 };
		int rc;
		struct mp_pager *p = make(&o, &rc);
		REQUIRE(p && rc == 0);
		int bad = decode(p, 8, 5, 1);
		if (bad)
			MP_TEST_FAIL("%s: %d experts wrong under faults", backends[b]->name, bad);
		mp_pager_destroy(p);
	}
}

static void test_truncated(void)
{
	for (int b = 0; b < n_backends; b++) {
		if (backends[b] == &mp_io_memory_ops)
			continue;
		for (int pc = 0; pc < 2; pc++) {
			char tb[4096];
			REQUIRE(tp_make_file(tb, sizeof tb, "pager-trunc", SEED_B, size_b) == 0);
			if (!pc)
				tp_drop_cache(tb);
			struct opts o = { .ops = backends[b], .budget = 2 * slot1 + 2 * slot2,
			                  .page_cache = pc, .b = tb };
			int rc;
			struct mp_pager *p = make(&o, &rc);
			REQUIRE(p && rc == 0);
			REQUIRE(truncate(tb, (off_t)(size_b - 15000)) == 0);   /* cuts expert 7 only */
			uint32_t x[2] = { 0, 7 };           /* layer 2 expert 7: past the new end */
			CHECK_EQ_INT(mp_pager_acquire(p, 2, x, 2), 0);
			const void *ptr[3];
			CHECK_EQ_INT(mp_pager_wait(p, 2, 7, ptr, 3), -ENODATA);
			CHECK_CONTAINS(mp_pager_message(p), "layer 2 expert 7");
			CHECK_CONTAINS(mp_pager_message(p), tb);
			CHECK_CONTAINS(mp_pager_message(p), "truncated");
			mp_pager_release(p, 2, x, 2);
			CHECK_EQ_INT(mp_pager_check(p, 2), 0);
			mp_pager_destroy(p);
			unlink(tb);
		}
	}
}

/* keep_score keeps expert 0 of each layer; on_access sees each set. */
static uint32_t seen_layer, seen_n;
static double keep_zero(void *ctx, uint32_t layer, uint32_t expert)
{
	(void)ctx;
	(void)layer;
	return expert == 0 ? 1e9 : (double)expert;
}

static void on_access(void *ctx, uint32_t layer, const uint32_t *x, uint32_t n)
{
	(void)x;
	*(int *)ctx += 1;
	seen_layer = layer;
	seen_n = n;
}

static void test_hooks_and_current_set(void)
{
	int calls = 0;
	struct opts o = { .ops = &mp_io_memory_ops, .budget = 3 * slot1 + 2 * slot2,
	                  .keep = keep_zero, .access = on_access, .ctx = &calls };
	int rc;
	struct mp_pager *p = make(&o, &rc);
	REQUIRE(p && rc == 0);
	uint32_t a[2] = { 0, 1 }, b2[2] = { 2, 3 }, c[2] = { 4, 5 };
	for (int k = 0; k < 3; k++) {
		const uint32_t *s = k == 0 ? a : k == 1 ? b2 : c;
		CHECK_EQ_INT(mp_pager_acquire(p, 1, s, 2), 0);
		CHECK_EQ_INT(mp_pager_wait(p, 1, s[0], NULL, 0), 0);
		CHECK_EQ_INT(mp_pager_wait(p, 1, s[1], NULL, 0), 0);
		mp_pager_release(p, 1, s, 2);
	}
	CHECK_EQ_INT(calls, 3);
	CHECK_EQ_INT(seen_layer, 1);
	CHECK_EQ_INT(seen_n, 2);
	/* Three slots of class 1: expert 0 survived (score 1e9), 4 and 5 are in. */
	CHECK_EQ_INT(mp_pager_tier(p, 1, 0), MP_TIER_POOL);
	CHECK_EQ_INT(mp_pager_tier(p, 1, 4), MP_TIER_POOL);
	CHECK_EQ_INT(mp_pager_tier(p, 1, 5), MP_TIER_POOL);
	CHECK(mp_pager_tier(p, 1, 1) != MP_TIER_POOL);
	/* The current set {4, 5} is never evicted by a prefetch, even for a
	 * hint scored above every keep score. */
	uint32_t h[3] = { 6, 7, 2 };
	double s[3] = { 2e9, 2e9, 2e9 };
	CHECK_EQ_INT(mp_pager_hint(p, 1, h, s, 3), 1);   /* only expert 0's slot can go */
	CHECK_EQ_INT(mp_pager_tier(p, 1, 4), MP_TIER_POOL);
	CHECK_EQ_INT(mp_pager_tier(p, 1, 5), MP_TIER_POOL);
	/* A hint scored below every keep score starts nothing. */
	uint32_t h2[1] = { 3 };
	double s2[1] = { 0.5 };
	CHECK_EQ_INT(mp_pager_hint(p, 1, h2, s2, 1), 0);
	struct mp_pager_info in;
	mp_pager_info(p, &in);
	CHECK_EQ_U64(in.pf_issued, 1);
	CHECK_EQ_INT(mp_pager_check(p, 2), 0);
	mp_pager_destroy(p);
}

/* Prefetches queued behind a slow disk never delay a demand read: the
 * demand expert's reads are promoted and submitted first. */
static void test_demand_before_prefetch(void)
{
	const struct mp_io_ops *ops = tp_pool_backend(backends, n_backends);
	if (!ops)
		SKIP_CASE("no backend with a pool is usable here");
	tp_drop_cache(path_a);
	tp_drop_cache(path_b);
	struct mp_io_fault f = { .delay_us = 200 };
	struct opts o = { .ops = ops, .budget = 8 * (slot1 + slot2) - 1, .depth = 4,
	                  .io_block = 4096, .fault = &f };
	int rc;
	struct mp_pager *p = make(&o, &rc);
	REQUIRE(p && rc == 0);
	uint32_t h[6] = { 0, 1, 2, 3, 4, 5 };
	double s[6] = { 0.9, 0.9, 0.9, 0.9, 0.9, 0.9 };
	CHECK_EQ_INT(mp_pager_hint(p, 1, h, s, 6), 6);
	uint32_t x[2] = { 5, 7 };       /* 5: prefetched, promoted; 7: a fresh demand read */
	CHECK_EQ_INT(mp_pager_acquire(p, 1, x, 2), 0);
	CHECK_EQ_INT(mp_pager_check(p, 2), 0);
	const void *ptr[3];
	CHECK_EQ_INT(mp_pager_wait(p, 1, 7, ptr, 3), 0);
	CHECK_EQ_INT(bytes_ok(ptr, 1, 7), 0);
	CHECK_EQ_INT(mp_pager_wait(p, 1, 5, ptr, 3), 0);
	CHECK_EQ_INT(bytes_ok(ptr, 1, 5), 0);
	/* Some of the other prefetches are still on their way: the demand
	 * reads did not wait for all of them. */
	struct mp_pager_info in;
	mp_pager_info(p, &in);
	CHECK(in.n_loading > 0);
	CHECK_EQ_U64(in.pf_used, 1);
	mp_pager_release(p, 1, x, 2);
	mp_pager_destroy(p);
}

/* The speculation cap: with reads pending, a hint starts only what fits
 * under it (best score first) and counts the rest in pf_capped, evicting
 * nothing for them; with nothing pending one load always starts; pending
 * bytes are accounted exactly (invariant 8, checked at level 2). */
static void test_prefetch_cap(void)
{
	const struct mp_io_ops *ops = tp_pool_backend(backends, n_backends);
	if (!ops)
		SKIP_CASE("no backend with a pool is usable here");
	tp_drop_cache(path_a);
	tp_drop_cache(path_b);
	struct mp_io_fault f = { .delay_us = 300 };
	struct opts o = { .ops = ops, .budget = 8 * (slot1 + slot2) - 1, .depth = 4, .io_block = 4096,
	                  .fault = &f, .prefetch_cap = 2 * slot1 };
	int rc;
	struct mp_pager *p = make(&o, &rc);
	REQUIRE(p && rc == 0);
	uint32_t h[4] = { 3, 2, 1, 0 };
	double s[4] = { 0.6, 0.7, 0.8, 0.9 };     /* 0 is the best */
	CHECK_EQ_INT(mp_pager_hint(p, 1, h, s, 4), 2);   /* 0 (nothing pending), 1 (fits) */
	struct mp_pager_info in;
	mp_pager_info(p, &in);
	CHECK_EQ_U64(in.pf_capped, 2);
	CHECK_EQ_U64(in.n_loading, 2);
	CHECK_EQ_INT(mp_pager_check(p, 2), 0);
	CHECK(mp_pager_tier(p, 1, 0) == MP_TIER_LOADING && mp_pager_tier(p, 1, 1) == MP_TIER_LOADING);
	CHECK(mp_pager_tier(p, 1, 2) == MP_TIER_DISK && mp_pager_tier(p, 1, 3) == MP_TIER_DISK);
	uint32_t x[2] = { 0, 1 };                 /* both land; then nothing is pending */
	CHECK_EQ_INT(mp_pager_acquire(p, 1, x, 2), 0);
	const void *ptr[3];
	for (int i = 0; i < 2; i++) {
		CHECK_EQ_INT(mp_pager_wait(p, 1, x[i], ptr, 3), 0);
		CHECK_EQ_INT(bytes_ok(ptr, 1, x[i]), 0);
	}
	mp_pager_release(p, 1, x, 2);
	CHECK_EQ_INT(mp_pager_hint(p, 1, h, s, 2), 2);   /* 3 and 2 now */
	CHECK_EQ_INT(mp_pager_check(p, 2), 0);
	CHECK_EQ_INT(decode(p, 4, 12, 1), 0);
	CHECK_EQ_INT(mp_pager_check(p, 2), 0);
	mp_pager_destroy(p);
}

static double keep_half(void *ctx, uint32_t layer, uint32_t expert)
{
	(void)ctx;
	(void)layer;
	(void)expert;
	return 0.5;
}

/* A prefetch evicts only below its hint's score times the measured share
 * of prefetches used: while fewer than 16 are known it counts in full
 * (score 0.9 beats keep 0.5); once 16 were evicted unused (precision 0)
 * the same hint starts nothing. */
static void test_prefetch_precision(void)
{
	struct opts o = { .ops = &mp_io_memory_ops, .budget = 3 * slot1 + 2 * slot2, .keep = keep_half };
	int rc;
	struct mp_pager *p = make(&o, &rc);
	REQUIRE(p && rc == 0);
	uint32_t a[2] = { 0, 1 };       /* the current set: never evicted */
	CHECK_EQ_INT(mp_pager_acquire(p, 1, a, 2), 0);
	for (int i = 0; i < 2; i++)
		CHECK_EQ_INT(mp_pager_wait(p, 1, a[i], NULL, 0), 0);
	mp_pager_release(p, 1, a, 2);
	double sc = 0.9;
	for (uint32_t k = 0; k < 17; k++) {   /* 6, 7, 6, ...: each evicts the last */
		uint32_t h = 6 + k % 2;
		CHECK_EQ_INT(mp_pager_hint(p, 1, &h, &sc, 1), 1);
	}
	struct mp_pager_info in;
	mp_pager_info(p, &in);
	CHECK_EQ_U64(in.pf_wasted, 16);
	CHECK_EQ_U64(in.pf_used, 0);
	uint32_t h = 7;                       /* 6 is in, 7 is not: it would evict 6 */
	CHECK_EQ_INT(mp_pager_hint(p, 1, &h, &sc, 1), 0);
	CHECK_EQ_INT(mp_pager_tier(p, 1, 6), MP_TIER_POOL);   /* kept */
	CHECK(mp_pager_tier(p, 1, 7) != MP_TIER_POOL);
	CHECK_EQ_INT(mp_pager_check(p, 2), 0);
	mp_pager_destroy(p);
}

/* Stale prefetches cancelled: their slots come back FREE; one acquired
 * right after its cancel is read again and served whole. */
static void test_cancel_prefetch(void)
{
	for (int b = 0; b < n_backends; b++) {
		if (backends[b]->caps & MP_IO_CAP_NOPOOL)
			continue;
		tp_drop_cache(path_a);
		tp_drop_cache(path_b);
		struct mp_io_fault f = { .delay_us = 100 };
		struct opts o = { .ops = backends[b], .budget = 8 * (slot1 + slot2) - 1, .depth = 4,
		                  .io_block = 4096, .fault = &f };
		int rc;
		struct mp_pager *p = make(&o, &rc);
		REQUIRE(p && rc == 0);
		uint32_t h[4] = { 0, 1, 2, 3 };
		double s[4] = { 0.9, 0.8, 0.7, 0.6 };
		CHECK_EQ_INT(mp_pager_hint(p, 2, h, s, 4), 4);
		CHECK_EQ_INT(mp_pager_cancel(p, 2, h, 4), 4);
		CHECK_EQ_INT(mp_pager_check(p, 2), 0);
		uint32_t x[2] = { 1, 5 };
		CHECK_EQ_INT(mp_pager_acquire(p, 2, x, 2), 0);
		const void *ptr[3];
		CHECK_EQ_INT(mp_pager_wait(p, 2, 1, ptr, 3), 0);
		CHECK_EQ_INT(bytes_ok(ptr, 2, 1), 0);
		CHECK_EQ_INT(mp_pager_wait(p, 2, 5, ptr, 3), 0);
		CHECK_EQ_INT(bytes_ok(ptr, 2, 5), 0);
		mp_pager_release(p, 2, x, 2);
		/* Let the cancelled ones drain: acquire and wait on another layer. */
		CHECK_EQ_INT(decode(p, 2, 11, 0), 0);
		struct mp_pager_info in;
		mp_pager_info(p, &in);
		CHECK_EQ_U64(in.pf_wasted, 4);
		CHECK_EQ_INT(mp_pager_check(p, 2), 0);
		mp_pager_destroy(p);
	}
}

/* Open descriptors and mappings of path in this process (/proc/self). */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static int count_maps(const char *path)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	int n = 0;
	while (f && fgets(line, sizeof line, f))
		n += strstr(line, base) != NULL;
	if (f)
		fclose(f);
	return n;
}

/* Out of memory while adding a file: -ENOMEM, and neither its descriptor nor
 * its mapping is left behind (the file was not added); the next add works. */
static void test_add_file_oom(void)
{
	struct mp_pager_config cfg = { .budget = 1 << 20, .backend = backends[0], .n_layers = NL,
				       .n_experts = NE, .top_k = TOPK };
	char msg[256];
	struct mp_pager *p = NULL;
	REQUIRE(mp_pager_create(&cfg, &p, msg, sizeof msg) == 0);
	int fds = count_fds(), maps = count_maps(path_a);
	for (uint64_t k = 1; k <= 3; k++) {   /* whichever allocation add_file makes fails */
		mp_alloc_fail_after(k);
		int rc = mp_pager_add_file(p, path_a);
		mp_alloc_fail_after(0);
		if (rc >= 0)
			break;                    /* made fewer than k allocations: done */
		CHECK_EQ_INT(rc, -ENOMEM);
		CHECK_EQ_INT(count_fds(), fds);
		CHECK_EQ_INT(count_maps(path_a), maps);
	}
	mp_pager_destroy(p);
	CHECK_EQ_INT(count_fds(), fds);
	CHECK_EQ_INT(count_maps(path_a), maps);
}

static void test_stats_segment(void)
{
	char sp[4096];
	const char *dir = getenv("MP_BUILDDIR");
	snprintf(sp, sizeof sp, "%s/tests/pager-%d.stats", dir && *dir ? dir : ".", (int)getpid());
	struct mp_stats_config sc = { .path = sp, .n_layers = NL, .n_experts = NE, .backend = "?" };
	struct mp_stats *st = NULL;
	char msg[256];
	REQUIRE(mp_stats_create(&sc, &st, msg, sizeof msg) == 0);
	tp_drop_cache(path_a);
	tp_drop_cache(path_b);
	struct opts o = { .ops = backends[0], .budget = 3 * slot1 + 3 * slot2, .stats = st };
	int rc;
	struct mp_pager *p = make(&o, &rc);
	REQUIRE(p && rc == 0);
	CHECK_EQ_INT(decode(p, 10, 6, 1), 0);
	struct mp_pager_info in;
	mp_pager_info(p, &in);
	struct mp_stats_reader *r = NULL;
	REQUIRE(mp_stats_open(sp, &r, msg, sizeof msg) == 0);
	struct mp_stats_snap snap;
	REQUIRE(mp_stats_snapshot(r, &snap) == 0);
	CHECK_STR(snap.h->backend, backends[0]->name);
	uint64_t hits = 0, misses = 0, pc = 0, uses = 0, hist = 0;
	for (uint32_t l = 0; l < NL; l++) {
		hits += mp_stats_snap_layer(&snap, l)->hits;
		misses += mp_stats_snap_layer(&snap, l)->misses;
		pc += mp_stats_snap_layer(&snap, l)->pc_hits;
		for (uint32_t e = 0; e < NE; e++)
			uses += mp_stats_snap_expert(&snap, l, e)->uses;
	}
	for (int i = 0; i < MP_STATS_HIST; i++)
		hist += snap.g->io_hist[i];
	CHECK_EQ_U64(hits, in.hits);
	CHECK_EQ_U64(misses, in.misses);
	CHECK_EQ_U64(pc, in.pc_hits);
	CHECK_EQ_U64(uses, 10 * 2 * TOPK);
	CHECK_EQ_U64(snap.g->io_reads, hist);
	CHECK_EQ_U64(snap.g->pool_total, in.pool_bytes);
	CHECK(snap.g->pool_used <= snap.g->pool_total);
	if (!(backends[0]->caps & MP_IO_CAP_NOPOOL))
		CHECK_EQ_U64(snap.g->io_bytes, in.bytes_read);
	mp_stats_snap_free(&snap);
	mp_stats_close(r);
	mp_pager_destroy(p);
	mp_stats_destroy(st);
}

/* Three threads on one pager, two of them on the same layer, each
 * acquiring, waiting, checking bytes, releasing and hinting while the
 * backend's completions arrive (TSan runs this). */
struct thr {
	struct mp_pager *p;
	uint32_t layer;
	int bad;
};

static void *decode_thread(void *arg)
{
	struct thr *t = arg;
	struct mp_rng rng;
	mp_rng_seed(&rng, 100 + t->layer);
	for (int i = 0; i < 30; i++) {
		uint32_t x[TOPK];
		x[0] = (uint32_t)mp_rng_below(&rng, NE);
		do
			x[1] = (uint32_t)mp_rng_below(&rng, NE);
		while (x[1] == x[0]);
		if (mp_pager_acquire(t->p, t->layer, x, TOPK) != 0) {
			t->bad++;
			continue;
		}
		for (int k = 0; k < TOPK; k++) {
			const void *ptr[3];
			if (mp_pager_wait(t->p, t->layer, x[k], ptr, 3) != 0 || bytes_ok(ptr, t->layer, x[k]))
				t->bad++;
		}
		mp_pager_release(t->p, t->layer, x, TOPK);
		uint32_t h = (uint32_t)mp_rng_below(&rng, NE);
		double s = 0.7;
		mp_pager_hint(t->p, t->layer, &h, &s, 1);
		mp_pager_tier(t->p, t->layer, h);
	}
	return NULL;
}

static void test_threads(void)
{
	for (int b = 0; b < n_backends; b++) {
		tp_drop_cache(path_a);
		tp_drop_cache(path_b);
		struct opts o = { .ops = backends[b], .budget = 5 * slot1 + 4 * slot2, .depth = 4,
		                  .io_block = 8192 };
		int rc;
		struct mp_pager *p = make(&o, &rc);
		REQUIRE(p && rc == 0);
		/* Two threads share layer 1: the same experts are acquired from both. */
		struct thr t[3] = { { p, 1, 0 }, { p, 2, 0 }, { p, 1, 0 } };
		pthread_t th[3];
		for (int i = 0; i < 3; i++)
			REQUIRE(pthread_create(&th[i], NULL, decode_thread, &t[i]) == 0);
		for (int i = 0; i < 3; i++)
			pthread_join(th[i], NULL);
		if (t[0].bad || t[1].bad || t[2].bad)
			MP_TEST_FAIL("%s: %d + %d + %d bad experts with three threads", backends[b]->name,
			             t[0].bad, t[1].bad, t[2].bad);
		CHECK_EQ_INT(mp_pager_check(p, 2), 0);
		mp_pager_destroy(p);
	}
}

/* --io auto when io_uring cannot be set up (open fails after a good probe,
 * or the probe is refused): the pager runs on the next backend and says why. */
static void test_auto_fallback(void)
{
	struct mp_io_fault f = { .fail_open = "uring" };
	struct opts o = { .ops = NULL, .budget = 2 * slot1 + 2 * slot2, .fault = &f };
	int rc;
	struct mp_pager *p = make(&o, &rc);
	REQUIRE(p);
	CHECK_EQ_INT(rc, 0);
	struct mp_pager_info in;
	mp_pager_info(p, &in);
	REQUIRE(in.backend);
	CHECK(strcmp(in.backend, "uring") != 0);
#ifdef HAVE_LIBURING
	char why[256] = "";
	if (mp_io_find("uring")->probe(why, sizeof why) != 0) {
		/* the kernel refuses io_uring: said at the probe; an open
		 * failing after a good probe cannot be reached here */
		CHECK_CONTAINS(mp_pager_message(p), "uring unusable (");
		mp_test_skip_part("test_auto_fallback on uring failing to open", why);
	} else {
		CHECK_CONTAINS(mp_pager_message(p), "uring unusable (uring: open failed");
	}
#endif
	CHECK_EQ_INT(decode(p, 3, 9, 1), 0);
	mp_pager_destroy(p);

	char prev[256];
	const char *env = getenv("MOEPAGER_IO_DISABLE");
	snprintf(prev, sizeof prev, "%s", env ? env : "");
	setenv("MOEPAGER_IO_DISABLE", "uring,aio", 1);
	o.fault = NULL;
	p = make(&o, &rc);
	REQUIRE(p);
	CHECK_EQ_INT(rc, 0);
	mp_pager_info(p, &in);
	CHECK_STR(in.backend, "sync");
	CHECK_EQ_INT(decode(p, 3, 10, 1), 0);
	mp_pager_destroy(p);
	if (env)
		setenv("MOEPAGER_IO_DISABLE", prev, 1);   /* the caller's setting back */
	else
		unsetenv("MOEPAGER_IO_DISABLE");
}

static void test_bad_registration(void)
{
	struct mp_pager_config cfg = { .budget = 1 << 20, .n_layers = NL, .n_experts = NE, .top_k = 0 };
	struct mp_pager *p = NULL;
	char msg[256];
	CHECK_EQ_INT(mp_pager_create(&cfg, &p, msg, sizeof msg), -MP_EARG);
	CHECK_CONTAINS(msg, "top_k");
	cfg.top_k = TOPK;
	REQUIRE(mp_pager_create(&cfg, &p, msg, sizeof msg) == 0);
	CHECK_EQ_INT(mp_pager_add_file(p, "/nonexistent/model.gguf"), -ENOENT);
	CHECK_CONTAINS(mp_pager_message(p), "/nonexistent/model.gguf");
	REQUIRE(mp_pager_add_file(p, path_a) == 0);
	struct mp_pager_range r = { .file = 0, .offset = size_a - 10, .len = 11 };
	CHECK_EQ_INT(mp_pager_register(p, 1, 0, &r, 1), -MP_EFORMAT);
	CHECK_CONTAINS(mp_pager_message(p), "outside");
	CHECK_CONTAINS(mp_pager_message(p), path_a);
	r.len = 10;
	CHECK_EQ_INT(mp_pager_register(p, 1, 0, &r, 1), 0);
	CHECK_EQ_INT(mp_pager_register(p, 1, 0, &r, 1), -MP_EARG);
	CHECK_EQ_INT(mp_pager_register(p, NL, 0, &r, 1), -MP_EARG);
	mp_pager_destroy(p);
}

int main(void)
{
	layout();
	if (tp_make_file(path_a, sizeof path_a, "pager-a", SEED_A, size_a) != 0 ||
	    tp_make_file(path_b, sizeof path_b, "pager-b", SEED_B, size_b) != 0) {
		fprintf(stderr, "FAIL: cannot write the test files\n");
		return 1;
	}
	n_backends = tp_backends(backends, 8, "the pager cases");
	RUN(test_bad_registration);
	RUN(test_budget_minimum);
	RUN(test_decode_every_backend);
	RUN(test_fits_whole);
	RUN(test_warm_pool);
	RUN(test_warm_registers);
	RUN(test_page_cache_tiers);
	RUN(test_eio);
	RUN(test_short_reorder_delay);
	RUN(test_truncated);
	RUN(test_hooks_and_current_set);
	RUN(test_demand_before_prefetch);
	RUN(test_cancel_prefetch);
	RUN(test_prefetch_cap);
	RUN(test_prefetch_precision);
	RUN(test_add_file_oom);
	RUN(test_stats_segment);
	RUN(test_threads);
	RUN(test_auto_fallback);
	unlink(path_a);
	unlink(path_b);
	return mp_test_end();
}
