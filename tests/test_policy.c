/* test_policy — pager/policy and pager/sim: the hook's semantics on small
 * synthetic patterns, ROUTING.md's LRU/LFU/Belady figures reproduced on the
 * reference trace, the moepager policy's targets (>= 0.55 cold and warm at a
 * 27 % cache, never below LRU from 10 % to 75 %), determinism, the global
 * pool, and argument errors. */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "mp_test.h"
#include "policy.h"
#include "sim.h"
#include "trace.h"

/* ThreadSanitizer makes this single-threaded numeric replay about 15 times
 * slower (minutes); there the figure checks, which the plain, ASan and
 * no-backend trees make, give way to the same comparisons on 20 sequences. */
#if defined(__SANITIZE_THREAD__)
#define MP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MP_TSAN 1
#endif
#endif
#ifndef MP_TSAN
#define MP_TSAN 0
#endif

static struct mp_trace *ref;   /* the reference trace, read once */

static const struct mp_trace *reference(void)
{
	if (!ref) {
		ref = mp_trace_create();
		if (ref && mp_trace_read(ref, mp_test_data_build("traces/deepseek-v2-lite.trace")) < 0) {
			fprintf(stderr, "%s\n", mp_trace_error(ref));
			exit(1);
		}
	}
	return ref;
}

static double hit_rate(enum mp_policy_kind kind, double fraction, int cold, uint64_t first,
                       uint64_t n)
{
	struct mp_sim_config c = { .trace = reference(), .first_seq = first, .n_seq = n,
	                           .policy = kind, .slots = mp_sim_slots(fraction, 64), .cold = cold };
	struct mp_sim_result r;
	int rc = mp_sim_run(&c, &r);
	if (rc < 0) {
		MP_TEST_FAIL("mp_sim_run(%s, %.2f): %s", mp_policy_name(kind), fraction, r.error);
		return -1;
	}
	return r.hit_rate;
}

/* Belady seeing only the next `look` tokens of each layer. */
static double belady_look(uint32_t look, int cold, uint64_t first, uint64_t n)
{
	struct mp_sim_config c = { .trace = reference(), .first_seq = first, .n_seq = n,
	                           .policy = MP_POLICY_BELADY, .slots = 17, .cold = cold,
	                           .belady_lookahead = look };
	struct mp_sim_result r;
	if (mp_sim_run(&c, &r) < 0) {
		MP_TEST_FAIL("mp_sim_run(belady, lookahead %u): %s", look, r.error);
		return -1;
	}
	return r.hit_rate;
}

static void test_lru_lfu_hook(void)
{
	struct mp_policy *p;
	REQUIRE(mp_policy_create(MP_POLICY_LRU, 2, 8, 2, NULL, &p) == 0);
	uint32_t a[2] = { 1, 2 }, b[2] = { 3, 1 };
	mp_policy_on_access(p, 0, a, 2);
	mp_policy_on_access(p, 0, b, 2);
	CHECK(mp_policy_keep_score(p, 0, 2) < mp_policy_keep_score(p, 0, 3));
	CHECK(mp_policy_keep_score(p, 0, 3) < mp_policy_keep_score(p, 0, 1));   /* router order */
	CHECK(mp_policy_keep_score(p, 0, 0) < mp_policy_keep_score(p, 0, 2));   /* never used */
	CHECK_EQ_INT(mp_policy_keep_score(p, 1, 1), 0);                         /* other layer */
	mp_policy_destroy(p);
	REQUIRE(mp_policy_create(MP_POLICY_LFU, 1, 8, 2, NULL, &p) == 0);
	mp_policy_on_access(p, 0, a, 2);
	mp_policy_on_access(p, 0, b, 2);
	CHECK_EQ_INT(mp_policy_keep_score(p, 0, 1), 2);
	CHECK_EQ_INT(mp_policy_keep_score(p, 0, 3), 1);
	mp_policy_on_sequence(p);
	CHECK_EQ_INT(mp_policy_keep_score(p, 0, 1), 0);
	CHECK_EQ_INT(mp_policy_kind(p), MP_POLICY_LFU);
	mp_policy_destroy(p);
}

/* A layer that alternates between two sets: once trained with horizon 1, the
 * expert after A is B's, not A's or an unused one. */
static void test_moepager_learns(void)
{
	struct mp_policy_params prm;
	mp_policy_params_default(&prm);
	prm.horizon = 1;
	struct mp_policy *p;
	REQUIRE(mp_policy_create(MP_POLICY_MOEPAGER, 2, 16, 2, &prm, &p) == 0);
	CHECK_NEAR(mp_policy_keep_score(p, 0, 5), 0.5, 1e-9);   /* no knowledge yet */
	uint32_t a[2] = { 1, 2 }, b[2] = { 7, 9 };
	for (int i = 0; i < 400; i++) {
		mp_policy_on_access(p, 0, a, 2);
		mp_policy_on_access(p, 1, b, 2);
		mp_policy_on_access(p, 0, b, 2);
		mp_policy_on_access(p, 1, a, 2);
	}
	mp_policy_on_access(p, 0, a, 2);
	double pb = mp_policy_keep_score(p, 0, 7), pa = mp_policy_keep_score(p, 0, 1);
	double pn = mp_policy_keep_score(p, 0, 12);
	CHECK(pb > 0.8);
	CHECK(pa < 0.3);
	CHECK(pn < 0.1);
	/* a look-ahead hint lifts a score until the layer's next access */
	mp_policy_hint(p, 0, 12, 0.95);
	CHECK_NEAR(mp_policy_keep_score(p, 0, 12), 0.95, 1e-6);
	CHECK_NEAR(mp_policy_keep_score(p, 0, 7), pb, 1e-9);
	mp_policy_hint(p, 0, 7, 0.01);                           /* never lowers */
	CHECK_NEAR(mp_policy_keep_score(p, 0, 7), pb, 1e-9);
	uint32_t e12 = 12;
	double s12;
	mp_policy_keep_scores(p, 0, &e12, 1, &s12);
	CHECK_NEAR(s12, 0.95, 1e-6);
	mp_policy_on_access(p, 1, b, 2);                         /* other layer: kept */
	CHECK_NEAR(mp_policy_keep_score(p, 0, 12), 0.95, 1e-6);
	mp_policy_on_access(p, 0, b, 2);
	CHECK(mp_policy_keep_score(p, 0, 12) < 0.1);
	/* on_sequence forgets the history but keeps the model */
	mp_policy_on_sequence(p);
	CHECK_NEAR(mp_policy_keep_score(p, 0, 7), 0.5, 1e-9);
	mp_policy_on_access(p, 0, a, 2);
	CHECK(mp_policy_keep_score(p, 0, 7) > 0.8);
	mp_policy_destroy(p);
}

/* A saved model starts a new policy where the old one stopped; files that do
 * not fit are refused with the field named. */
static void test_model_file(void)
{
	struct mp_policy_params prm;
	mp_policy_params_default(&prm);
	prm.horizon = 1;
	struct mp_policy *p, *q, *r;
	REQUIRE(mp_policy_create(MP_POLICY_MOEPAGER, 2, 12, 2, &prm, &p) == 0);
	uint32_t a[2] = { 1, 2 }, b[2] = { 7, 9 };
	for (int i = 0; i < 300; i++) {
		mp_policy_on_access(p, 0, a, 2);
		mp_policy_on_access(p, 0, b, 2);
	}
	char path[512];
	const char *dir = getenv("TMPDIR");
	snprintf(path, sizeof path, "%s/mp-test-policy-%ld.model", dir && *dir ? dir : "/tmp", (long)getpid());
	CHECK_EQ_INT(mp_policy_save(p, path), 0);
	REQUIRE(mp_policy_create(MP_POLICY_MOEPAGER, 2, 12, 2, &prm, &q) == 0);
	CHECK_EQ_INT(mp_policy_load(q, path), 0);
	mp_policy_on_sequence(p);   /* same (empty) history on both sides */
	mp_policy_on_access(p, 0, a, 2);
	mp_policy_on_access(q, 0, a, 2);
	CHECK(mp_policy_keep_score(q, 0, 7) > 0.8);
	for (uint32_t e = 0; e < 12; e++)
		CHECK_EQ_INT(mp_policy_keep_score(q, 0, e) == mp_policy_keep_score(p, 0, e), 1);
	/* another shape or decay, another policy kind */
	REQUIRE(mp_policy_create(MP_POLICY_MOEPAGER, 2, 13, 2, &prm, &r) == 0);
	CHECK_EQ_INT(mp_policy_load(r, path), -MP_EFORMAT);
	CHECK_CONTAINS(mp_policy_error(r), "experts: this policy has 13, the file 12");
	mp_policy_destroy(r);
	prm.decay[1] = 0.8f;
	REQUIRE(mp_policy_create(MP_POLICY_MOEPAGER, 2, 12, 2, &prm, &r) == 0);
	CHECK_EQ_INT(mp_policy_load(r, path), -MP_EFORMAT);
	CHECK_CONTAINS(mp_policy_error(r), "decay1: this policy has 0.8");
	mp_policy_destroy(r);
	REQUIRE(mp_policy_create(MP_POLICY_LRU, 2, 12, 2, NULL, &r) == 0);
	CHECK_EQ_INT(mp_policy_save(r, path), -MP_EARG);
	mp_policy_destroy(r);
	/* truncated, and not a model at all */
	FILE *f = fopen(path, "r+b");
	REQUIRE(f);
	REQUIRE(ftruncate(fileno(f), 64 + 100) == 0);
	fclose(f);
	CHECK_EQ_INT(mp_policy_load(q, path), -MP_EFORMAT);
	CHECK_CONTAINS(mp_policy_error(q), "truncated");
	mp_policy_on_sequence(q);   /* a failed load leaves an empty model, not half of one */
	mp_policy_on_access(q, 0, a, 2);
	CHECK_NEAR(mp_policy_keep_score(q, 0, 7), 0.5, 1e-6);
	f = fopen(path, "wb");
	REQUIRE(f);
	fputs("MOETRACE and more than sixty-four bytes of something else entirely.....", f);
	fclose(f);
	CHECK_EQ_INT(mp_policy_load(q, path), -MP_EFORMAT);
	CHECK_CONTAINS(mp_policy_error(q), "magic");
	unlink(path);
	CHECK_EQ_INT(mp_policy_load(q, path), -ENOENT);
	CHECK_CONTAINS(mp_policy_error(q), "cannot open");
	mp_policy_destroy(p);
	mp_policy_destroy(q);
}

static void test_args(void)
{
	struct mp_policy *p = NULL;
	CHECK_EQ_INT(mp_policy_create(MP_POLICY_BELADY, 2, 8, 2, NULL, &p), -MP_EARG);
	CHECK_EQ_INT(mp_policy_create(MP_POLICY_LRU, 2, 8, 9, NULL, &p), -MP_EARG);
	struct mp_policy_params prm;
	mp_policy_params_default(&prm);
	prm.horizon = 0;
	CHECK_EQ_INT(mp_policy_create(MP_POLICY_MOEPAGER, 2, 8, 2, &prm, &p), -MP_EARG);
	mp_policy_params_default(&prm);
	prm.decay[1] = 1.5f;
	CHECK_EQ_INT(mp_policy_create(MP_POLICY_MOEPAGER, 2, 8, 2, &prm, &p), -MP_EARG);
	CHECK(p == NULL);
	enum mp_policy_kind k;
	CHECK_EQ_INT(mp_policy_parse("moepager", &k), 0);
	CHECK_EQ_INT(k, MP_POLICY_MOEPAGER);
	CHECK_EQ_INT(mp_policy_parse("arc", &k), -MP_EARG);
	CHECK_STR(mp_policy_name(MP_POLICY_BELADY), "belady");
	CHECK_EQ_INT(mp_sim_slots(0.27, 64), 17);
	CHECK_EQ_INT(mp_sim_slots(0.10, 64), 6);
	CHECK_EQ_INT(mp_sim_slots(2.0, 64), 64);
	struct mp_sim_config c = { .trace = reference(), .first_seq = 799, .n_seq = 2,
	                           .policy = MP_POLICY_LRU, .slots = 17 };
	struct mp_sim_result r;
	CHECK_EQ_INT(mp_sim_run(&c, &r), -MP_EARG);
	CHECK_CONTAINS(r.error, "sequence range");
	mp_policy_destroy(NULL);
}

/* Belady refuses to score a replay that is not the trace. */
static void test_belady_desync(void)
{
	struct mp_policy *p;
	REQUIRE(mp_policy_create_belady(reference(), 0, 1, 1, &p) == 0);
	const uint16_t *ids = mp_trace_ids(reference(), 0, 0);
	uint32_t set[6];
	for (int j = 0; j < 6; j++)
		set[j] = ids[5 - j];                 /* same set, another order: fine */
	mp_policy_on_access(p, 0, set, 6);
	CHECK_EQ_INT(mp_policy_desynced(p), 0);
	/* replace one expert by the next one not in the set (the check ran
	 * only when +1 happened not to be in it) */
	int dup;
	do {
		set[0] = (set[0] + 1) % 64;
		dup = 0;
		for (int j = 1; j < 6; j++)
			dup |= set[j] == set[0];
	} while (dup);
	mp_policy_on_access(p, 1, set, 6);
	CHECK_EQ_INT(mp_policy_desynced(p), 1);
	mp_policy_destroy(p);
}

/* ROUTING.md's table, first 300 sequences, within 0.01. */
static void test_reference_figures(void)
{
	static const struct { enum mp_policy_kind k; double frac, cold, warm; } rows[] = {
		{ MP_POLICY_LRU, 0.10, 0.27, 0.27 },
		{ MP_POLICY_LRU, 0.27, 0.49, 0.50 },
		{ MP_POLICY_LRU, 0.50, 0.70, 0.72 },
		{ MP_POLICY_LFU, 0.27, 0.52, 0.46 },
		{ MP_POLICY_BELADY, 0.10, 0.27, 0.27 },
		{ MP_POLICY_BELADY, 0.27, 0.67, 0.69 },
		{ MP_POLICY_BELADY, 0.50, 0.83, 0.87 },
	};
	if (MP_TSAN) {
		printf("  (TSan build: Belady >= LRU on 20 sequences instead of the figures)\n");
		for (int cold = 0; cold < 2; cold++)
			CHECK(hit_rate(MP_POLICY_BELADY, 0.27, cold, 0, 20) > hit_rate(MP_POLICY_LRU, 0.27, cold, 0, 20));
		return;
	}
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		double c = hit_rate(rows[i].k, rows[i].frac, 1, 0, 300);
		double w = hit_rate(rows[i].k, rows[i].frac, 0, 0, 300);
		printf("  %-8s %2.0f%%  cold %.4f (ROUTING.md %.2f)  warm %.4f (%.2f)\n",
		       mp_policy_name(rows[i].k), rows[i].frac * 100, c, rows[i].cold, w, rows[i].warm);
		CHECK_NEAR(c, rows[i].cold, 0.01);
		CHECK_NEAR(w, rows[i].warm, 0.01);
	}
}

/* The targets of issue 7 on the tuning range (sequences 0-299): >= 0.55 cold
 * and warm at 27 % and not below LRU there; the other sizes (docs/policy.md
 * has the full 300-sequence table) are checked on sequences 0-59 to keep the
 * test fast under the sanitizers. */
static void test_moepager_targets(void)
{
	static const double fr[] = { 0.10, 0.20, 0.27, 0.40, 0.50, 0.60, 0.75 };
	for (size_t i = 0; i < sizeof fr / sizeof fr[0]; i++)
		for (int cold = 1; cold >= 0; cold--) {
			uint64_t n = MP_TSAN ? 20 : fr[i] == 0.27 ? 300 : 60;
			double m = hit_rate(MP_POLICY_MOEPAGER, fr[i], cold, 0, n);
			double l = hit_rate(MP_POLICY_LRU, fr[i], cold, 0, n);
			printf("  %2.0f%% %s, %3" PRIu64 " sequences: moepager %.4f  lru %.4f\n", fr[i] * 100,
			       cold ? "cold" : "warm", n, m, l);
			CHECK(m >= l);
			if (fr[i] == 0.27 && n == 300)
				CHECK(m >= 0.55);
		}
}

static void test_determinism(void)
{
	struct mp_sim_config c = { .trace = reference(), .first_seq = 100, .n_seq = MP_TSAN ? 10 : 40,
	                           .policy = MP_POLICY_MOEPAGER, .slots = 17, .cold = 0 };
	struct mp_sim_result a, b;
	REQUIRE(mp_sim_run(&c, &a) == 0);
	REQUIRE(mp_sim_run(&c, &b) == 0);
	CHECK_EQ_U64(a.hits, b.hits);
	CHECK_EQ_U64(a.uses, b.uses);
	CHECK_EQ_U64(a.misses, a.uses - a.hits);
	CHECK_EQ_U64(a.acquires, a.tokens * 26);
}

/* One pool for all layers: sane, and Belady still beats LRU. */
static void test_global_pool(void)
{
	double hr[3];
	enum mp_policy_kind ks[3] = { MP_POLICY_LRU, MP_POLICY_MOEPAGER, MP_POLICY_BELADY };
	for (int i = 0; i < 3; i++) {
		struct mp_sim_config c = { .trace = reference(), .first_seq = 0, .n_seq = MP_TSAN ? 20 : 60,
		                           .policy = ks[i], .global_slots = 17 * 26, .cold = 1 };
		struct mp_sim_result r;
		REQUIRE(mp_sim_run(&c, &r) == 0);
		hr[i] = r.hit_rate;
		printf("  global pool %s: %.4f\n", mp_policy_name(ks[i]), hr[i]);
	}
	CHECK(hr[0] > 0.35 && hr[0] < 0.65);
	CHECK(hr[2] > hr[0] + 0.1);
	CHECK(hr[1] > hr[0]);
}

/* Limited foresight: more of it never hurts here, one token of it beats
 * LRU, 32 tokens are as good as all; docs/policy.md's figures at 27 %. */
static void test_belady_lookahead(void)
{
	uint64_t n = MP_TSAN ? 20 : 300;
	double lru = hit_rate(MP_POLICY_LRU, 0.27, 1, 0, n), full = belady_look(0, 1, 0, n);
	double h[5];
	static const uint32_t looks[5] = { 1, 2, 3, 4, 32 };
	for (int i = 0; i < 5; i++)
		h[i] = belady_look(looks[i], 1, 0, n);
	printf("  lru %.4f, lookahead 1..4: %.4f %.4f %.4f %.4f, 32: %.4f, all: %.4f\n", lru, h[0], h[1],
	       h[2], h[3], h[4], full);
	CHECK(h[0] > lru);
	for (int i = 1; i < 5; i++)
		CHECK(h[i] > h[i - 1]);
	CHECK_NEAR(h[4], full, 0.001);
	if (!MP_TSAN) {
		CHECK_NEAR(h[0], 0.5366, 0.0005);
		CHECK_NEAR(h[1], 0.5705, 0.0005);
		CHECK_NEAR(h[2], 0.5988, 0.0005);
		CHECK_NEAR(h[3], 0.6225, 0.0005);
	}
	/* the knob belongs to Belady: others ignore it */
	struct mp_policy *p;
	REQUIRE(mp_policy_create(MP_POLICY_LRU, 2, 8, 2, NULL, &p) == 0);
	mp_policy_belady_lookahead(p, 3);
	uint32_t set[2] = { 1, 2 };
	mp_policy_on_access(p, 0, set, 2);
	CHECK(mp_policy_keep_score(p, 0, 2) > mp_policy_keep_score(p, 0, 1));
	mp_policy_destroy(p);
}

int main(void)
{
	RUN(test_lru_lfu_hook);
	RUN(test_moepager_learns);
	RUN(test_model_file);
	RUN(test_args);
	RUN(test_belady_desync);
	RUN(test_belady_lookahead);
	RUN(test_reference_figures);
	RUN(test_moepager_targets);
	RUN(test_determinism);
	RUN(test_global_pool);
	mp_trace_destroy(ref);
	return mp_test_end();
}
