/* test_prefill — mp_model_prefill (src/prefill.c) against the one-token path
 * on random tiny deepseek2 models held in memory: teacher-forced logits at
 * every position within a stated tolerance for batch sizes 1 (bit-identical),
 * 7, 64 and 512, f32 and q8_0 weights, both MLA layouts, f32/f16/q8_0 KV;
 * routing flips only at near-ties; prefill continued across calls; greedy
 * continuation after the prompt unchanged; each expert of a batch's union
 * acquired exactly once per layer, in waves no larger than n_expert_used; the
 * experts ready at once in one group with the per-expert path's bits; and
 * the errors.  (q4_k_m, the pager's backends and budgets: tests/prefill.test.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "model.h"
#include "quant.h"
#include "router.h"
#include "threads.h"
#include "model_fixture.h"
#include "tinymodel.h"
#include "mp_test.h"

#define NTOK 80
#define NCTX 96
#define NV 96   /* tinymodel's vocabulary */
#define NL 3    /* and layers */

/* What a run leaves per position: logits and the routing of every layer. */
struct run {
	float logits[NTOK][NV];
	struct mp_route route[NTOK][NL];
	uint32_t n;
};

static int record(void *ctx, uint32_t pos, const float *logits);

struct rec_ctx {
	struct run *r;
	struct mp_model *m;
};

static int record(void *ctx, uint32_t pos, const float *logits)
{
	struct rec_ctx *c = ctx;
	if (pos >= NTOK)
		return -MP_EARG;
	memcpy(c->r->logits[pos], logits, sizeof c->r->logits[pos]);
	for (uint32_t L = 0; L < NL; L++)
		c->r->route[pos][L] = *mp_model_route(c->m, L);
	c->r->n = pos + 1;
	return 0;
}

/* Counts the acquires of a wrapped source: per (layer, expert), and the
 * largest set. */
struct counting {
	struct mp_expert_source inner;
	uint32_t acquired[NL][8];
	uint32_t largest;
};

static int c_acquire(void *ctx, uint32_t layer, const uint32_t *experts, uint32_t n)
{
	struct counting *c = ctx;
	for (uint32_t i = 0; i < n; i++)
		c->acquired[layer][experts[i]]++;
	c->largest = n > c->largest ? n : c->largest;
	return c->inner.acquire(c->inner.ctx, layer, experts, n);
}

static int c_next(void *ctx, uint32_t layer, uint32_t *index, struct mp_expert_view *out)
{
	struct counting *c = ctx;
	return c->inner.next_ready(c->inner.ctx, layer, index, out);
}

static void c_release(void *ctx, uint32_t layer, const uint32_t *experts, uint32_t n)
{
	struct counting *c = ctx;
	c->inner.release(c->inner.ctx, layer, experts, n);
}

static const char *c_err(void *ctx)
{
	struct counting *c = ctx;
	return c->inner.err_msg(c->inner.ctx);
}

/* A model over src (NULL: the fixture's resident experts). */
static struct mp_model *make(struct model_fixture *fx, const struct mp_expert_source *src,
			     uint32_t n_batch, enum mp_kv_type kv)
{
	struct mp_model_opts o = { .n_ctx = NCTX, .kv_type = kv, .absorb = 1, .n_batch = n_batch };
	return fixture_model(fx, src, &o, "prefill test");
}

/* Prefills toks (in pieces of `split` tokens per call; 0: one call). */
static int prefill(struct mp_model *m, const uint32_t *toks, uint32_t n, uint32_t split, struct run *r)
{
	struct rec_ctx c = { r, m };
	const float *last;
	for (uint32_t i = 0; i < n;) {
		uint32_t k = split && n - i > split ? split : n - i;
		int rc = mp_model_prefill(m, toks + i, k, record, &c, &last);
		if (rc < 0) {
			MP_TEST_FAIL("prefill: %s", mp_model_error(m));
			return rc;
		}
		i += k;
	}
	if (memcmp(last, r->logits[n - 1], sizeof r->logits[0]) != 0)
		MP_TEST_FAIL("last_logits are not the last position's");
	return 0;
}

static struct run want_run, got_run;

/* Largest logit error relative to the logits' scale before the first routing
 * flip; a flip at a clear margin (≥ near: 0.02 for f32 weights, 0.05 where
 * the two paths round activations differently, as quality.test's q8_0 KV)
 * fails. */
static double near = 0.02;

static double diff(const struct run *a, const struct run *b, const char *what)
{
	double worst = 0;
	for (uint32_t p = 0; p < a->n; p++) {
		int flipped = 0;
		for (uint32_t L = 0; L < NL; L++) {
			const struct mp_route *x = &a->route[p][L], *y = &b->route[p][L];
			if (x->n != y->n || memcmp(x->expert, y->expert, sizeof x->expert[0] * x->n)) {
				flipped = 1;
				if (!(x->margin < near))
					MP_TEST_FAIL("%s: position %u layer %u: routing differs at margin %.4f",
						     what, p, L, x->margin);
			}
		}
		if (flipped)
			return worst;
		double scale = 0;
		for (uint32_t v = 0; v < NV; v++)
			scale = fmax(scale, fabs(a->logits[p][v]));
		for (uint32_t v = 0; v < NV; v++)
			worst = fmax(worst, fabs(a->logits[p][v] - b->logits[p][v]) / scale);
	}
	return worst;
}

/* The teacher-forced sequence: the one-token path's greedy choices. */
static void sequence(struct model_fixture *fx, uint32_t *toks)
{
	struct mp_model *m = make(fx, NULL, 1, MP_KV_F32);
	const float *lg;
	toks[0] = 1;
	for (uint32_t i = 0; m && i + 1 < NTOK; i++) {
		REQUIRE(mp_model_step(m, toks[i], &lg) == 0);
		toks[i + 1] = (uint32_t)((tiny_argmax(lg, NV) + i * 7) % NV);   /* keep it varied */
	}
	mp_model_destroy(m);
}

static void check_type(uint32_t wtype, int mla_new, enum mp_kv_type kv, double tol)
{
	struct model_fixture fx;
	if (fixture_open(&fx, wtype, mla_new, 1, 0, 101 + wtype * 3 + (uint64_t)mla_new) < 0) {
		fixture_close(&fx);
		return;
	}
	uint32_t toks[NTOK];
	sequence(&fx, toks);
	struct mp_model *ref = make(&fx, NULL, 1, kv);
	REQUIRE(ref);
	REQUIRE(prefill(ref, toks, NTOK, 0, &want_run) == 0);
	uint32_t batches[] = { 1, 7, 64, 512 };
	for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
		struct mp_model *m = make(&fx, NULL, batches[bi], kv);
		REQUIRE(m);
		memset(&got_run, 0, sizeof got_run);
		if (prefill(m, toks, NTOK, 0, &got_run) == 0) {
			char what[96];
			snprintf(what, sizeof what, "type %u mla_new %d kv %d batch %u", wtype, mla_new, kv,
				 batches[bi]);
			CHECK_EQ_INT(got_run.n, NTOK);
			CHECK_EQ_INT(mp_model_pos(m), NTOK);
			double e = diff(&want_run, &got_run, what);
			double limit = batches[bi] == 1 ? 0 : tol;
			if (getenv("MP_TEST_VERBOSE"))
				printf("%s: %.3g\n", what, e);
			if (!(e <= limit))
				MP_TEST_FAIL("%s: max relative logit error %.3g, tolerance %.3g", what, e, limit);
		}
		mp_model_destroy(m);
	}
	mp_model_destroy(ref);
	fixture_close(&fx);
}

/* f32 weights: only summation order differs from the one-token path. */
static void test_f32(void)
{
	for (int mla_new = 0; mla_new <= 1; mla_new++)
		check_type(MP_TYPE_F32, mla_new, MP_KV_F32, 1e-4);
	check_type(MP_TYPE_F32, 1, MP_KV_F16, 1e-4);
	check_type(MP_TYPE_F32, 0, MP_KV_Q8_0, 1e-4);
}

/* q8_0 weights: products over 64 or more tokens use f32 activations in
 * sgemm where the one-token path quantizes them to Q8_0, the others the
 * same direct path; the mixture stays within test_model's tolerance for
 * q8_0 against the f32 reference. */
static void test_q8_0(void)
{
	near = 0.05;
	for (int mla_new = 0; mla_new <= 1; mla_new++)
		check_type(MP_TYPE_Q8_0, mla_new, MP_KV_F16, 5e-2);
	near = 0.02;
}

/* Prefill continued over several calls (the cache of earlier calls is read
 * causally), each expert acquired once per batch and layer, waves no larger
 * than n_expert_used; greedy continuation after the prompt unchanged. */
static void test_continue_waves_greedy(void)
{
	struct model_fixture fx;
	if (fixture_open(&fx, MP_TYPE_F32, 1, 1, 0, 131) < 0) {
		fixture_close(&fx);
		return;
	}
	const struct mp_hparams *hp = &fx.tm.hp;
	struct counting cnt = { .inner = fx.src };
	struct mp_expert_source src = { &cnt, c_acquire, c_next, c_release, c_err, NULL, NULL, NULL, NULL };
	uint32_t toks[NTOK];
	sequence(&fx, toks);
	struct mp_model *ref = make(&fx, NULL, 1, MP_KV_F32);
	REQUIRE(prefill(ref, toks, NTOK, 0, &want_run) == 0);
	struct mp_model *m = make(&fx, &src, 16, MP_KV_F32);
	memset(&got_run, 0, sizeof got_run);
	REQUIRE(prefill(m, toks, 48, 20, &got_run) == 0);   /* batches 16,4 | 16,4 | 8 */
	CHECK_EQ_INT(mp_model_pos(m), 48);
	CHECK_EQ_INT(cnt.largest, hp->n_expert_used);
	/* every expert of a batch's union once: no more acquires than batches */
	for (uint32_t L = hp->n_dense_lead; L < NL; L++)
		for (uint32_t e = 0; e < 8; e++)
			if (cnt.acquired[L][e] > 5)
				MP_TEST_FAIL("layer %u expert %u acquired %u times in 5 batches", L, e,
					     cnt.acquired[L][e]);
	uint64_t ex, tk;
	mp_model_prefill_counts(m, &ex, &tk);
	CHECK_EQ_U64(tk, 48);
	uint64_t sum = 0;
	for (uint32_t L = 0; L < NL; L++)
		for (uint32_t e = 0; e < 8; e++)
			sum += cnt.acquired[L][e];
	CHECK_EQ_U64(ex, sum);
	struct run part = want_run;
	part.n = 48;
	double e = diff(&part, &got_run, "continued");
	if (!(e < 1e-4))
		MP_TEST_FAIL("prefill over several calls: max relative logit error %.3g", e);
	/* greedy decode after the prompt: the same 16 tokens as the one-token path */
	struct mp_model *a = make(&fx, NULL, 1, MP_KV_F32), *b = make(&fx, NULL, 512, MP_KV_F32);
	const float *la, *lb;
	REQUIRE(mp_model_prefill(a, toks, 40, NULL, NULL, &la) == 0);
	REQUIRE(mp_model_prefill(b, toks, 40, NULL, NULL, &lb) == 0);
	for (int i = 0; i < 16; i++) {
		int ta = tiny_argmax(la, NV), tb = tiny_argmax(lb, NV);
		CHECK_EQ_INT(tb, ta);
		REQUIRE(mp_model_step(a, (uint32_t)ta, &la) == 0);
		REQUIRE(mp_model_step(b, (uint32_t)ta, &lb) == 0);
	}
	mp_model_destroy(a);
	mp_model_destroy(b);
	mp_model_destroy(m);
	mp_model_destroy(ref);
	fixture_close(&fx);
}

/* The routed experts ready at once run as one group (one parallel region for
 * their gates and ups, one for their downs, on the batch input quantized
 * once): q8_0 weights, so groups of fewer than 64 tokens take the direct
 * path; every logit bit for bit the per-expert path's (opts.unfused), on 1
 * and 3 threads, and groups of several experts did form (try_ready). */
struct tries {
	struct counting c;
	uint32_t ready_more;   /* experts try_ready handed out */
};

static int t_try(void *ctx, uint32_t layer, uint32_t *index, struct mp_expert_view *out)
{
	struct tries *t = ctx;
	int rc = t->c.inner.try_ready(t->c.inner.ctx, layer, index, out);
	t->ready_more += rc > 0;
	return rc;
}

static void test_regions_bits(void)
{
	struct model_fixture fx;
	if (fixture_open(&fx, MP_TYPE_Q8_0, 1, 1, 0, 151) < 0) {
		fixture_close(&fx);
		return;
	}
	REQUIRE(fx.src.try_ready);
	uint32_t toks[NTOK];
	sequence(&fx, toks);
	struct mp_threads *pool = NULL;
	REQUIRE(mp_threads_create(3, &pool) == 0);
	for (int th = 0; th < 2; th++)
		for (uint32_t nb = 16; nb <= 64; nb *= 4) {
			struct mp_model_opts o = { .n_ctx = NCTX, .kv_type = MP_KV_F16, .absorb = 1, .n_batch = nb,
						   .unfused = 1, .threads = th ? pool : NULL };
			struct mp_model *ref = fixture_model(&fx, NULL, &o, "per-expert reference");
			REQUIRE(ref);
			memset(&want_run, 0, sizeof want_run);
			REQUIRE(prefill(ref, toks, NTOK, 0, &want_run) == 0);
			struct tries t = { .c = { .inner = fx.src } };
			struct mp_expert_source src = { &t, c_acquire, c_next, c_release, c_err,
							NULL, NULL, NULL, t_try };
			o.unfused = 0;
			struct mp_model *m = fixture_model(&fx, &src, &o, "grouped experts");
			REQUIRE(m);
			memset(&got_run, 0, sizeof got_run);
			REQUIRE(prefill(m, toks, NTOK, 0, &got_run) == 0);
			if (memcmp(want_run.logits, got_run.logits, sizeof want_run.logits) != 0)
				MP_TEST_FAIL("batch %u, %s: grouped experts' logits differ from the "
					     "per-expert path's", nb, th ? "3 threads" : "1 thread");
			if (t.ready_more == 0)
				MP_TEST_FAIL("batch %u: no expert was ready beside another (no group "
					     "of several formed)", nb);
			mp_model_destroy(m);
			mp_model_destroy(ref);
		}
	mp_threads_destroy(pool);
	fixture_close(&fx);
}

static int stop_at_3(void *ctx, uint32_t pos, const float *logits)
{
	(void)ctx;
	(void)logits;
	return pos == 3 ? -MP_ECANCELLED : 0;
}

/* Bad tokens, a full context and a callback's stop are reported. */
static void test_errors(void)
{
	struct model_fixture fx;
	if (fixture_open(&fx, MP_TYPE_F32, 1, 1, 0, 141) < 0) {
		fixture_close(&fx);
		return;
	}
	struct mp_model *m = make(&fx, NULL, 8, MP_KV_F32);
	const float *lg;
	uint32_t toks[NCTX + 1];
	for (uint32_t i = 0; i <= NCTX; i++)
		toks[i] = i % NV;
	toks[5] = 1000;
	CHECK_EQ_INT(mp_model_prefill(m, toks, 8, NULL, NULL, &lg), -MP_EARG);
	CHECK_CONTAINS(mp_model_error(m), "token id 1000 (position 5");
	CHECK_EQ_INT(mp_model_pos(m), 0);
	toks[5] = 5;
	CHECK_EQ_INT(mp_model_prefill(m, toks, NCTX + 1, NULL, NULL, &lg), -MP_EBUDGET);
	CHECK_CONTAINS(mp_model_error(m), "raise --ctx-size");
	CHECK_EQ_INT(mp_model_prefill(m, toks, 0, NULL, NULL, &lg), -MP_EARG);
	CHECK_EQ_INT(mp_model_prefill(m, toks, 6, stop_at_3, NULL, &lg), -MP_ECANCELLED);
	CHECK_EQ_INT(mp_model_prefill(m, toks, NCTX - 6, NULL, NULL, &lg) < 0 ? 1 : 0, 0);
	mp_model_destroy(m);
	fixture_close(&fx);
}

int main(void)
{
	RUN(test_f32);
	RUN(test_q8_0);
	RUN(test_continue_waves_greedy);
	RUN(test_regions_bits);
	RUN(test_errors);
	return mp_test_end();
}
