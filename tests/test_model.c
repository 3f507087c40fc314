/* test_model — src/model against tests/reference on random tiny deepseek2
 * models held in memory: logits at every position within a stated tolerance
 * (f32 and q8_0 weights, f32/f16/q8_0 KV), greedy tokens identical on f32,
 * absorbed vs decompressed attention, old vs new MLA generations, softmax
 * (V2) routing, --experts, the fused decode step bit for bit the unfused
 * one, and shape errors that name the tensor. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "model.h"
#include "ops.h"
#include "quant.h"
#include "reference.h"
#include "rng.h"
#include "router.h"
#include "model_fixture.h"
#include "tinymodel.h"
#include "mp_test.h"

#define MAXT 64

/* Runs the real path and the reference on the same tokens (teacher-forced:
 * the reference's greedy choice feeds both) and returns the largest logit
 * error relative to the logits' scale over the positions before the first
 * routing flip; counts greedy disagreements and flips.  A flip (a near-tie in
 * expert selection decided the other way by rounding) changes everything after
 * it, so it is excused only where the real path's routing margin was small
 * (< 0.02); a flip at a clear margin is a failure. */
static double compare(struct model_fixture *fx, const struct mp_model_opts *opts, int steps,
		      int *greedy_diff, int *route_diff)
{
	const struct test_model *tm = &fx->tm;
	struct mp_model *m = fixture_model(fx, NULL, opts, "compare");
	if (!m)
		return INFINITY;
	struct ref_model *ref = ref_create(&tm->hp, tm->w, opts->n_ctx, opts->n_expert_used,
					   opts->no_groups);
	if (!ref) {
		MP_TEST_FAIL("ref_create failed");
		mp_model_destroy(m);
		return INFINITY;
	}
	float want[MAXT * 2];
	double worst = 0;
	uint32_t tok = 1;
	*greedy_diff = *route_diff = 0;
	int flipped = 0;
	for (int s = 0; s < steps && !flipped; s++) {
		const float *got;
		int rc = mp_model_step(m, tok, &got);
		if (rc < 0) {
			MP_TEST_FAIL("step %d: %s", s, mp_model_error(m));
			break;
		}
		if (ref_step(ref, tok, want) < 0) {
			MP_TEST_FAIL("reference step %d failed", s);
			break;
		}
		/* fmax drops a NaN: a non-finite logit is a failure of its own */
		double scale = 0, step_worst = 0;
		int nonfinite = 0;
		for (uint32_t v = 0; v < tm->hp.n_vocab; v++) {
			nonfinite += !isfinite(got[v]) || !isfinite(want[v]);
			scale = fmax(scale, fabs(want[v]));
		}
		if (nonfinite || !(scale > 0)) {
			MP_TEST_FAIL("step %d: %d non-finite logits, scale %g", s, nonfinite, scale);
			worst = INFINITY;
			break;
		}
		for (uint32_t v = 0; v < tm->hp.n_vocab; v++)
			step_worst = fmax(step_worst, fabs(got[v] - want[v]) / scale);
		for (uint32_t L = tm->hp.n_dense_lead; L < tm->hp.n_layer; L++) {
			const struct mp_route *rt = mp_model_route(m, L);
			if (!ref_same_route(ref, L, rt)) {
				(*route_diff)++;
				flipped = 1;
				if (!(rt->margin < 0.02f))
					MP_TEST_FAIL("step %d layer %u: routing differs from the reference at "
						     "margin %.4f", s, L, rt->margin);
			}
		}
		if (!flipped) {
			worst = fmax(worst, step_worst);
			if (tiny_argmax(got, (int)tm->hp.n_vocab) != tiny_argmax(want, (int)tm->hp.n_vocab))
				(*greedy_diff)++;
		} else if (s < 3) {
			MP_TEST_FAIL("routing flipped at step %d: too early for a useful comparison", s);
		}
		tok = (uint32_t)tiny_argmax(want, (int)tm->hp.n_vocab);
	}
	ref_destroy(ref);
	mp_model_destroy(m);
	return worst;
}

static const struct mp_model_opts base_opts = { .n_ctx = 24, .kv_type = MP_KV_F32, .absorb = 1 };

/* f32 weights, f32 KV: only summation order differs from the reference. */
static void test_f32_matches_reference(void)
{
	struct model_fixture fx;
	for (int mla_new = 0; mla_new <= 1; mla_new++) {
		if (fixture_open(&fx, MP_TYPE_F32, mla_new, 1, 0, 11 + (uint64_t)mla_new) < 0) {
			fixture_close(&fx);
			return;
		}
		int gd, rd;
		double err = compare(&fx, &base_opts, 20, &gd, &rd);
		if (!(err < 1e-4))
			MP_TEST_FAIL("mla_new=%d: max relative logit error %.3g, tolerance 1e-4", mla_new, err);
		CHECK_EQ_INT(gd, 0);
		CHECK_EQ_INT(rd, 0);
		fixture_close(&fx);
	}
}

/* KV in f16 and q8_0 add their rounding; still close, still the same routes. */
static void test_kv_types(void)
{
	struct model_fixture fx;
	if (fixture_open(&fx, MP_TYPE_F32, 1, 1, 0, 21) < 0)
		goto out;
	const struct test_model *tm = &fx.tm;
	struct mp_model_opts o = base_opts;
	int gd, rd;
	o.kv_type = MP_KV_F16;
	double e16 = compare(&fx, &o, 16, &gd, &rd);
	if (!(e16 < 5e-3))
		MP_TEST_FAIL("f16 KV: max relative logit error %.3g, tolerance 5e-3", e16);
	CHECK_EQ_INT(rd, 0);   /* "still the same routes": asserted, not only said */
	o.kv_type = MP_KV_Q8_0;
	double e8 = compare(&fx, &o, 16, &gd, &rd);
	if (!(e8 < 3e-2))
		MP_TEST_FAIL("q8_0 KV: max relative logit error %.3g, tolerance 3e-2", e8);
	CHECK_EQ_INT(rd, 0);
	CHECK(mp_model_kv_bytes_per_token(&tm->hp, MP_KV_Q8_0) * 2 < mp_model_kv_bytes_per_token(&tm->hp, MP_KV_F16) * 1.2);
out:
	fixture_close(&fx);
}

/* q8_0 weights: the reference dequantizes the same blocks, the real path also
 * quantizes activations to Q8_0 (FORMATS.md §4.9). */
static void test_q8_0_matches_reference(void)
{
	struct model_fixture fx;
	int gd, rd;
	if (fixture_open(&fx, MP_TYPE_Q8_0, 1, 1, 0, 31) == 0) {
		double err = compare(&fx, &base_opts, 16, &gd, &rd);
		if (!(err < 5e-2))
			MP_TEST_FAIL("q8_0: max relative logit error %.3g, tolerance 5e-2 (greedy diffs %d, route diffs %d)", err, gd, rd);
	}
	fixture_close(&fx);
}

/* The absorbed and decompressed attention forms agree. */
static void test_absorbed_equals_naive(void)
{
	struct model_fixture fx;
	for (int mla_new = 0; mla_new <= 1; mla_new++) {
		int rc = fixture_open(&fx, MP_TYPE_F32, mla_new, 1, 0, 41);
		struct mp_model_opts oa = base_opts, ob = base_opts;
		ob.absorb = 0;
		struct mp_model *a = rc ? NULL : fixture_model(&fx, NULL, &oa, "absorbed");
		struct mp_model *b = rc ? NULL : fixture_model(&fx, NULL, &ob, "naive");
		if (!a || !b) {
			mp_model_destroy(a);
			mp_model_destroy(b);
			fixture_close(&fx);
			return;
		}
		double worst = 0;
		for (uint32_t s = 0; s < 12; s++) {
			const float *la, *lb;
			REQUIRE(mp_model_step(a, s % 7 + 2, &la) == 0);
			REQUIRE(mp_model_step(b, s % 7 + 2, &lb) == 0);
			for (uint32_t v = 0; v < fx.tm.hp.n_vocab; v++)
				worst = fmax(worst, fabs(la[v] - lb[v]));
		}
		if (!(worst < 1e-4))
			MP_TEST_FAIL("mla_new=%d: absorbed vs naive differ by %.3g", mla_new, worst);
		mp_model_destroy(a);
		mp_model_destroy(b);
		fixture_close(&fx);
	}
}

/* Steps a and b through the same tokens (s·mul mod 31 + 2 at step s) and
 * returns the first step whose logits differ in any bit, or −1 (−2: a step
 * failed). */
static int differing_step(struct mp_model *a, struct mp_model *b, uint32_t steps, uint32_t mul, uint32_t n_vocab)
{
	for (uint32_t s = 0; s < steps; s++) {
		const float *la, *lb;
		if (mp_model_step(a, s * mul % 31 + 2, &la) != 0 || mp_model_step(b, s * mul % 31 + 2, &lb) != 0)
			return -2;
		if (memcmp(la, lb, sizeof(float) * n_vocab) != 0)
			return (int)s;
	}
	return -1;
}

/* The fused decode step (one quantization of each input per activation
 * type, one parallel region per batch of ready experts, merged attention
 * regions) gives the bits of the one-region-per-matrix step: logits compared
 * with memcmp at every step, for several weight types, both MLA layouts,
 * with and without a query LoRA, on the caller alone and on 2 and 3 threads. */
static void test_fused_equals_unfused(void)
{
	static const uint32_t types[] = { MP_TYPE_F32, MP_TYPE_Q8_0, MP_TYPE_Q5_0, MP_TYPE_Q4_1 };
	struct mp_threads *pool[4] = { NULL };
	for (int n = 2; n <= 3; n++)
		REQUIRE(mp_threads_create(n, &pool[n]) == 0);
	for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
		for (int variant = 0; variant < 3; variant++) {
			struct test_model tm;
			int mla_new = variant != 1, q_lora = variant != 2;
			tiny_build(&tm, types[ti], mla_new, q_lora, 0, 43 + ti);
			struct mp_resident_experts *ra, *rb;
			struct mp_expert_source sa, sb;
			char err[256];
			REQUIRE(mp_resident_experts_create(&tm.hp, tm.w, &ra, &sa) == 0);
			REQUIRE(mp_resident_experts_create(&tm.hp, tm.w, &rb, &sb) == 0);
			for (int th = 1; th <= 3; th++) {
				struct mp_model *a, *b;
				struct mp_model_opts oa = base_opts, ob = base_opts;
				oa.threads = ob.threads = pool[th];
				oa.kv_type = ob.kv_type = MP_KV_F16;
				ob.unfused = 1;
				REQUIRE(mp_model_create(&tm.hp, tm.w, &sa, &oa, &a, err, sizeof err) == 0);
				REQUIRE(mp_model_create(&tm.hp, tm.w, &sb, &ob, &b, err, sizeof err) == 0);
				int s = differing_step(a, b, 16, 5, tm.hp.n_vocab);
				if (s != -1)
					MP_TEST_FAIL("%s mla_new %d q_lora %d, %d threads: step %d logits "
						     "differ from the unfused step", mp_type_name(types[ti]),
						     mla_new, q_lora, th, s);
				mp_model_destroy(a);
				mp_model_destroy(b);
			}
			mp_resident_experts_destroy(ra);
			mp_resident_experts_destroy(rb);
			tiny_drop(&tm);
		}
	for (int n = 2; n <= 3; n++)
		mp_threads_destroy(pool[n]);
}

/* Heads in groups of four (one thread, 10 heads: two groups, then two
 * single heads) give the bits of one head at a time (3 threads: too few
 * heads per thread to group), for both MLA layouts, f16, f32 and q8_0
 * caches, and at 540 positions a cache dequantized by 3 threads. */
static void test_head_groups(void)
{
	struct mp_threads *pool;
	REQUIRE(mp_threads_create(3, &pool) == 0);
	for (int variant = 0; variant < 4; variant++) {
		struct test_model tm;
		tiny_build_heads(&tm, MP_TYPE_Q8_0, variant & 1, 1, 0, 51 + variant, 10);
		struct mp_resident_experts *ra, *rb;
		struct mp_expert_source sa, sb;
		char err[256];
		REQUIRE(mp_resident_experts_create(&tm.hp, tm.w, &ra, &sa) == 0);
		REQUIRE(mp_resident_experts_create(&tm.hp, tm.w, &rb, &sb) == 0);
		struct mp_model *a, *b;
		struct mp_model_opts oa = base_opts, ob = base_opts;
		ob.threads = pool;
		oa.kv_type = ob.kv_type = variant & 2 ? MP_KV_Q8_0 : variant ? MP_KV_F32 : MP_KV_F16;
		/* variant 0 goes past 512 positions: the cache rows are then
		 * dequantized in a region of 3 threads on b, by the caller on a */
		uint32_t steps = variant ? 24 : 540;
		oa.n_ctx = ob.n_ctx = steps;
		REQUIRE(mp_model_create(&tm.hp, tm.w, &sa, &oa, &a, err, sizeof err) == 0);
		REQUIRE(mp_model_create(&tm.hp, tm.w, &sb, &ob, &b, err, sizeof err) == 0);
		int s = differing_step(a, b, steps, 7, tm.hp.n_vocab);
		if (s != -1)
			MP_TEST_FAIL("variant %d: step %d logits of grouped heads differ", variant, s);
		mp_model_destroy(a);
		mp_model_destroy(b);
		mp_resident_experts_destroy(ra);
		mp_resident_experts_destroy(rb);
		tiny_drop(&tm);
	}
	mp_threads_destroy(pool);
}

/* A source whose experts become ready in stages: mode 0 none until waited
 * for, 1 every second one of the set at once, 2 all at once. */
struct staged {
	const struct mp_weights *w;
	const uint32_t *set;
	uint32_t n, waits, polled;
	uint8_t taken[MP_ROUTER_MAX_USED];
	int mode;
	char err[64];
};

static struct mp_tensor st_view(const struct mp_tensor *t3, uint32_t e)
{
	struct mp_tensor v = *t3;
	v.ne[2] = 1;
	v.data = mp_tensor_row(t3, (int64_t)e * t3->ne[1]);
	return v;
}

static void st_give(struct staged *s, uint32_t layer, uint32_t i, uint32_t *index, struct mp_expert_view *out)
{
	const struct mp_layer_weights *lw = &s->w->layer[layer];
	s->taken[i] = 1;
	*index = i;
	out->gate = st_view(&lw->gate_exps, s->set[i]);
	out->up = st_view(&lw->up_exps, s->set[i]);
	out->down = st_view(&lw->down_exps, s->set[i]);
}

static int st_acquire(void *ctx, uint32_t layer, const uint32_t *experts, uint32_t n)
{
	struct staged *s = ctx;
	(void)layer;
	s->set = experts;
	s->n = n;
	memset(s->taken, 0, sizeof s->taken);
	return 0;
}

static int st_next(void *ctx, uint32_t layer, uint32_t *index, struct mp_expert_view *out)
{
	struct staged *s = ctx;
	for (uint32_t i = 0; i < s->n; i++)
		if (!s->taken[i]) {
			s->waits++;
			st_give(s, layer, i, index, out);
			return 0;
		}
	snprintf(s->err, sizeof s->err, "nothing left");
	return -MP_EARG;
}

static int st_try(void *ctx, uint32_t layer, uint32_t *index, struct mp_expert_view *out)
{
	struct staged *s = ctx;
	for (uint32_t i = 0; i < s->n; i++)
		if (!s->taken[i] && (s->mode == 2 || (s->mode == 1 && i % 2 == 1))) {
			s->polled++;
			st_give(s, layer, i, index, out);
			return 1;
		}
	return 0;
}

static void st_release(void *ctx, uint32_t layer, const uint32_t *experts, uint32_t n)
{
	struct staged *s = ctx;
	(void)layer;
	(void)experts;
	for (uint32_t i = 0; i < n; i++)
		if (!s->taken[i])
			MP_TEST_FAIL("expert %u of the set released without being handed out", i);
	s->set = NULL;
}

static const char *st_err(void *ctx)
{
	return ((struct staged *)ctx)->err;
}

/* Experts handed out in stages (none ready, every second one, all): each
 * ready batch is taken without waiting, an expert not ready is waited for,
 * and the logits are those of the resident source, bit for bit. */
static void test_fused_ready_batches(void)
{
	struct test_model tm;
	tiny_build(&tm, MP_TYPE_Q8_0, 1, 1, 0, 47);
	struct mp_resident_experts *res;
	struct mp_expert_source rsrc;
	char err[256];
	REQUIRE(mp_resident_experts_create(&tm.hp, tm.w, &res, &rsrc) == 0);
	struct mp_threads *pool;
	REQUIRE(mp_threads_create(2, &pool) == 0);
	struct mp_model_opts o = base_opts;
	o.threads = pool;
	enum { STEPS = 10 };
	static float want[STEPS][256];
	REQUIRE(tm.hp.n_vocab <= 256);
	struct mp_model *r;
	REQUIRE(mp_model_create(&tm.hp, tm.w, &rsrc, &o, &r, err, sizeof err) == 0);
	for (uint32_t s = 0; s < STEPS; s++) {
		const float *lg;
		REQUIRE(mp_model_step(r, s * 3 % 29 + 1, &lg) == 0);
		memcpy(want[s], lg, sizeof(float) * tm.hp.n_vocab);
	}
	mp_model_destroy(r);
	uint32_t K = tm.hp.n_expert_used, uses = STEPS * (tm.hp.n_layer - tm.hp.n_dense_lead) * K;
	for (int mode = 0; mode <= 2; mode++) {
		struct staged st = { .w = tm.w, .mode = mode };
		struct mp_expert_source src = { .ctx = &st, .acquire = st_acquire, .next_ready = st_next,
						.release = st_release, .err_msg = st_err, .try_ready = st_try };
		struct mp_model *m;
		REQUIRE(mp_model_create(&tm.hp, tm.w, &src, &o, &m, err, sizeof err) == 0);
		for (uint32_t s = 0; s < STEPS; s++) {
			const float *lg;
			REQUIRE(mp_model_step(m, s * 3 % 29 + 1, &lg) == 0);
			if (memcmp(lg, want[s], sizeof(float) * tm.hp.n_vocab) != 0) {
				MP_TEST_FAIL("mode %d step %u: logits differ from the resident source's", mode, s);
				break;
			}
		}
		uint32_t want_waits = mode == 2 ? 0 : mode == 1 ? uses - uses / K * (K / 2) : uses;
		CHECK_EQ_INT(st.waits, want_waits);
		CHECK_EQ_INT(st.waits + st.polled, uses);
		mp_model_destroy(m);
	}
	mp_threads_destroy(pool);
	mp_resident_experts_destroy(res);
	tiny_drop(&tm);
}

/* V2-Lite style: softmax gating, no groups, no query LoRA; and --experts K. */
static void test_softmax_and_experts_override(void)
{
	struct model_fixture fx;
	if (fixture_open(&fx, MP_TYPE_F32, 0, 0, 1, 51) < 0)
		goto out;
	int gd, rd;
	double err = compare(&fx, &base_opts, 12, &gd, &rd);
	if (!(err < 1e-4))
		MP_TEST_FAIL("softmax gating: max relative logit error %.3g", err);
	CHECK_EQ_INT(rd, 0);
	struct mp_model_opts o = base_opts;
	o.n_expert_used = 4;
	err = compare(&fx, &o, 12, &gd, &rd);
	if (!(err < 1e-4))
		MP_TEST_FAIL("--experts 4: max relative logit error %.3g", err);
	CHECK_EQ_INT(rd, 0);
	fixture_close(&fx);
	if (fixture_open(&fx, MP_TYPE_F32, 1, 1, 0, 52) < 0)
		goto out;
	o.no_groups = 1;
	err = compare(&fx, &o, 12, &gd, &rd);
	if (!(err < 1e-4))
		MP_TEST_FAIL("no groups: max relative logit error %.3g", err);
out:
	fixture_close(&fx);
}

/* A tiny f32 model with resident experts, for the cases that only step it. */
struct tiny_run {
	struct model_fixture fx;
	struct mp_model *m;
};

static int tiny_open(struct tiny_run *r, uint64_t seed)
{
	r->m = NULL;
	if (fixture_open(&r->fx, MP_TYPE_F32, 1, 1, 0, seed) < 0)
		return -1;
	r->m = fixture_model(&r->fx, NULL, &base_opts, "tiny_open");
	return r->m ? 0 : -1;
}

static void tiny_close(struct tiny_run *r)
{
	mp_model_destroy(r->m);
	fixture_close(&r->fx);
}

/* Rewinding: A B C, truncate to 1, then D E gives exactly the logits of a
 * fresh A D E (the cache past the cut is rewritten, never read stale). */
static void test_truncate(void)
{
	struct tiny_run r;
	REQUIRE(tiny_open(&r, 31) == 0);
	struct mp_model *m = r.m;
	const struct test_model *tm = &r.fx.tm;
	const uint32_t fresh[] = { 3, 9, 14 }, first[] = { 3, 5, 7, 11 }, then[] = { 9, 14 };
	const float *lg;
	float want[2][MAXT * 2];
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(mp_model_step(m, fresh[i], &lg), 0);
		if (i)
			memcpy(want[i - 1], lg, sizeof(float) * tm->hp.n_vocab);
	}
	mp_model_reset(m);
	for (int i = 0; i < 4; i++)
		CHECK_EQ_INT(mp_model_step(m, first[i], &lg), 0);
	mp_model_truncate(m, 9);                     /* above pos: nothing happens */
	CHECK_EQ_INT(mp_model_pos(m), 4);
	mp_model_truncate(m, 1);
	CHECK_EQ_INT(mp_model_pos(m), 1);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ_INT(mp_model_step(m, then[i], &lg), 0);
		CHECK(memcmp(lg, want[i], sizeof(float) * tm->hp.n_vocab) == 0);
	}
	CHECK_EQ_INT(mp_model_pos(m), 3);
	tiny_close(&r);
}

/* --timings: every decode step is counted; the phases that run in every
 * step took time; together they are the steps' whole time. */
static void test_timings(void)
{
	struct tiny_run r;
	REQUIRE(tiny_open(&r, 41) == 0);
	struct mp_model *m = r.m;
	const float *lg;
	for (uint32_t i = 0; i < 5; i++)
		CHECK_EQ_INT(mp_model_step(m, 3 + i, &lg), 0);
	struct mp_model_timings t;
	mp_model_timings(m, &t);
	CHECK_EQ_U64(t.tokens, 5);
	uint64_t sum = 0;
	for (int p = 0; p < MP_PHASE_N; p++)
		sum += t.ns[p];
	CHECK_EQ_U64(sum, t.total_ns);
	CHECK(t.ns[MP_PHASE_ATTN] > 0 && t.ns[MP_PHASE_DENSE] > 0 && t.ns[MP_PHASE_SHARED] > 0);
	CHECK(t.ns[MP_PHASE_ROUTER] > 0 && t.ns[MP_PHASE_EXPERTS] > 0 && t.ns[MP_PHASE_HEAD] > 0);
	CHECK(t.total_ns > t.ns[MP_PHASE_OTHER]);
	tiny_close(&r);
}

/* Wrong shapes, missing tensors and bad options are named. */
static void test_bad_input(void)
{
	struct model_fixture fx;
	if (fixture_open(&fx, MP_TYPE_F32, 1, 1, 0, 61) < 0) {
		fixture_close(&fx);
		return;
	}
	struct test_model *tm = &fx.tm;
	struct mp_model *m;
	char err[256];
	struct mp_tensor saved = tm->w->layer[2].attn_out;
	tm->w->layer[2].attn_out.ne[1] = 64;
	CHECK(mp_model_create(&tm->hp, tm->w, &fx.src, &base_opts, &m, err, sizeof err) < 0);
	CHECK_CONTAINS(err, "blk.2.attn_output.weight has shape [128, 64, 1, 1]");
	tm->w->layer[2].attn_out = saved;
	tm->w->layer[1].k_b.data = NULL;
	CHECK(mp_model_create(&tm->hp, tm->w, &fx.src, &base_opts, &m, err, sizeof err) < 0);
	CHECK_CONTAINS(err, "blk.1.attn_k_b.weight is missing");
	tm->w->layer[1].k_b = tm->w->layer[0].k_b;
	struct mp_model_opts o = base_opts;
	o.n_expert_used = 9;
	CHECK_EQ_INT(mp_model_create(&tm->hp, tm->w, &fx.src, &o, &m, err, sizeof err), -MP_EARG);
	CHECK_CONTAINS(err, "--experts 9");
	o = base_opts;
	o.n_ctx = 2;
	REQUIRE(mp_model_create(&tm->hp, tm->w, &fx.src, &o, &m, err, sizeof err) == 0);
	const float *lg;
	CHECK_EQ_INT(mp_model_step(m, 1, &lg), 0);
	CHECK_EQ_INT(mp_model_step(m, 1000, &lg), -MP_EARG);
	CHECK_CONTAINS(mp_model_error(m), "token id 1000");
	CHECK_EQ_INT(mp_model_step(m, 1, &lg), 0);
	CHECK_EQ_INT(mp_model_step(m, 1, &lg), -MP_EBUDGET);
	CHECK_CONTAINS(mp_model_error(m), "context is full");
	mp_model_reset(m);
	CHECK_EQ_INT(mp_model_step(m, 1, &lg), 0);
	mp_model_destroy(m);
	fixture_close(&fx);
}

/* Routing: groups, bias used for selection only, normalized and scaled weights. */
static void test_router(void)
{
	struct mp_router_cfg cfg = { 8, 2, 4, 2, MP_GATING_SIGMOID, 1, 2.5f };
	float logits[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
	float bias[8] = { 0.9f, 0.0f, 0.3f, 0.3f, 0.5f, 0.45f, 0.0f, 0.0f };
	struct mp_route rt;
	/* group sums: g0 .9, g1 .6, g2 .95, g3 0 → keep g2 and g0; best: 0 (.9+.5), 4 (.5+.5) */
	mp_router_select(&cfg, logits, bias, &rt);
	CHECK_EQ_INT(rt.n, 2);
	CHECK_EQ_INT(rt.expert[0], 0);
	CHECK_EQ_INT(rt.expert[1], 4);
	/* weights from unbiased scores: both 0.5 → normalized 0.5 each × 2.5 */
	CHECK_NEAR(rt.weight[0], 1.25, 1e-6);
	CHECK_NEAR(rt.weight[1], 1.25, 1e-6);
	CHECK_NEAR(rt.margin, 0.05, 1e-6);       /* 4 (.5) vs 5 (.45) */
	cfg.n_group = 1;                           /* no groups: 0, 4 still; 2/3 next */
	mp_router_select(&cfg, logits, bias, &rt);
	CHECK_EQ_INT(rt.expert[1], 4);
	struct mp_router_cfg sm = { 8, 3, 1, 1, MP_GATING_SOFTMAX, 0, 1.0f };
	float l2[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	mp_router_select(&sm, l2, NULL, &rt);
	CHECK_EQ_INT(rt.expert[0], 7);
	CHECK_EQ_INT(rt.expert[2], 5);
	double z = 0;
	for (int i = 0; i < 8; i++)
		z += exp(l2[i] - 8.0);
	CHECK_NEAR(rt.weight[0], 1.0 / z, 1e-6);  /* not renormalized */
}

/* YaRN ramp bounds for R1 (FORMATS.md §4.5: lo = 10, hi = 23) and kq_scale. */
static void test_rope_constants(void)
{
	struct mp_rope r = { 64, 10000.0f, 40.0f, 4096.0f, 32.0f, 1.0f, 1.0f, 0, 0 };
	mp_rope_init(&r);
	CHECK_NEAR(r.lo, 10, 0);
	CHECK_NEAR(r.hi, 23, 0);
	struct mp_hparams hp = { .d_nope = 128, .d_rope = 64, .yarn = 1, .yarn_factor = 40.0f,
				 .mscale_all_dim = 1.0f, .rope_attn_factor = 1.0f };
	CHECK_NEAR(mp_hparams_kq_scale(&hp), 0.13523378, 1e-6);
	hp.mscale_all_dim = 0.707f;
	CHECK_NEAR(mp_hparams_kq_scale(&hp), 0.11472, 1e-4);
	/* rotation keeps length */
	float v[64];
	for (int i = 0; i < 64; i++)
		v[i] = (float)(i % 5) - 2.0f;
	double n0 = 0, n1 = 0, moved = 0;
	float v0[64];
	memcpy(v0, v, sizeof v);
	for (int i = 0; i < 64; i++)
		n0 += v[i] * v[i];
	mp_rope_apply(&r, v, 1234);
	for (int i = 0; i < 64; i++) {
		n1 += v[i] * v[i];
		moved += fabs(v[i] - v0[i]);
	}
	CHECK_NEAR(n1, n0, 1e-3);
	CHECK(moved > 1.0);   /* it rotated: the identity keeps the length too */
	struct mp_hparams r1 = { .n_layer = 61, .kv_lora_rank = 512, .d_rope = 64 };
	CHECK_EQ_U64(mp_model_kv_bytes_per_token(&r1, MP_KV_F16), 70272);
}

int main(void)
{
	/* the kernel path the CPU (or MOEPAGER_CPU) picks, as moepager runs:
	 * test_head_groups then covers that path's grouped attention kernels */
	char why[256];
	if (mp_dispatch_init(why, sizeof why) < 0) {
		fprintf(stderr, "test_model: %s\n", why);
		return 1;
	}
	printf("note: kernel path %s\n", why);
	RUN(test_router);
	RUN(test_rope_constants);
	RUN(test_f32_matches_reference);
	RUN(test_kv_types);
	RUN(test_q8_0_matches_reference);
	RUN(test_absorbed_equals_naive);
	RUN(test_fused_equals_unfused);
	RUN(test_head_groups);
	RUN(test_fused_ready_batches);
	RUN(test_softmax_and_experts_override);
	RUN(test_truncate);
	RUN(test_timings);
	RUN(test_bad_input);
	return mp_test_end();
}
