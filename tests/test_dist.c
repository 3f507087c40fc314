/*
 * test_dist.c — the pieces of several ranks that need no MPI: the layer
 * split and a rank's memory plan (src/dist.h): contiguous non-empty ranges
 * that follow the ranks' memory, rank 0 carrying the embeddings and head, a
 * clear error for a rank whose limit is too small for its share; and the
 * model's layer ranges (model.h: layer_begin/end, the pipe, mp_model_stage)
 * chained in one process, bit-identical to the whole model for decode,
 * prefill batches and a reset.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "err.h"
#include "model.h"
#include "model_fixture.h"
#include "tinymodel.h"
#include "types.h"
#include "mp_test.h"

static void check_ranges(const uint32_t *begin, uint32_t n_rank, uint32_t n_layer)
{
	CHECK_EQ_INT(begin[0], 0);
	CHECK_EQ_INT(begin[n_rank], n_layer);
	for (uint32_t r = 0; r < n_rank; r++)
		CHECK(begin[r] < begin[r + 1]);
}

static void test_equal_split(void)
{
	uint64_t w[8] = { 10, 10, 10, 10, 10, 10, 10, 10 }, cap[4] = { 0, 0, 0, 0 };
	uint32_t begin[5];
	REQUIRE(mp_dist_split(8, w, 0, 2, cap, begin) == 0);
	check_ranges(begin, 2, 8);
	CHECK_EQ_INT(begin[1], 4);
	REQUIRE(mp_dist_split(8, w, 0, 4, cap, begin) == 0);
	check_ranges(begin, 4, 8);
	CHECK_EQ_INT(begin[1], 2);
	CHECK_EQ_INT(begin[2], 4);
	CHECK_EQ_INT(begin[3], 6);
	/* three ranks on eight layers: 3 + 3 + 2 or thereabouts, none empty */
	REQUIRE(mp_dist_split(8, w, 0, 3, cap, begin) == 0);
	check_ranges(begin, 3, 8);
	CHECK(begin[1] >= 2 && begin[1] <= 3);
}

static void test_memory_follows(void)
{
	uint64_t w[12], cap[2] = { 300, 100 };
	for (int i = 0; i < 12; i++)
		w[i] = 10;
	uint32_t begin[3];
	/* three times the memory: three times the layers */
	REQUIRE(mp_dist_split(12, w, 0, 2, cap, begin) == 0);
	check_ranges(begin, 2, 12);
	CHECK_EQ_INT(begin[1], 9);
	/* rank 0's embeddings and head count against it */
	cap[0] = cap[1] = 100;
	REQUIRE(mp_dist_split(12, w, 40, 2, cap, begin) == 0);
	check_ranges(begin, 2, 12);
	CHECK_EQ_INT(begin[1], 4);   /* 40 + 4·10 = 80 against 8·10 */
	/* a heavy first layer still leaves every later rank one */
	uint64_t heavy[3] = { 1000, 1, 1 }, c3[3] = { 1, 1, 1 };
	uint32_t b3[4];
	REQUIRE(mp_dist_split(3, heavy, 0, 3, c3, b3) == 0);
	check_ranges(b3, 3, 3);
}

static void test_too_many_ranks(void)
{
	uint64_t w[2] = { 1, 1 }, cap[3] = { 0, 0, 0 };
	uint32_t begin[4];
	CHECK_EQ_INT(mp_dist_split(2, w, 0, 3, cap, begin), -MP_EARG);
}

/* A two-layer plan by hand: a dense layer and a MoE layer of 8 experts. */
static struct mp_plan plan_of(struct mp_plan_layer *ly)
{
	memset(ly, 0, 2 * sizeof *ly);
	ly[0] = (struct mp_plan_layer){ .resident_bytes = 1000 };
	ly[1] = (struct mp_plan_layer){ .moe = 1, .resident_bytes = 500, .routed_bytes = 8000,
					.expert_bytes = 1000 };
	return (struct mp_plan){ .n_layer = 2, .n_moe = 1, .n_expert = 8, .n_used = 2,
				 .resident_bytes = 1500 + 300, .routed_bytes = 8000,
				 .expert_bytes_max = 1000, .kv_bytes = 200, .scratch_bytes = 100,
				 .min_pool_bytes = 2000, .layers = ly };
}

/* Three parts' merged table, two layers: per part the layers' bytes, the
 * embeddings' and head's, "present"; layer 1 straddles parts 1 and 2. */
static void test_parts_sum(void)
{
	const uint64_t w[3][4] = { { 1000, 0, 200, 1 }, { 0, 4000, 0, 1 }, { 0, 4500, 100, 1 } };
	uint64_t weight[2], fixed;
	mp_dist_parts_sum(&w[0][0], 3, 2, weight, &fixed);
	CHECK_EQ_U64(weight[0], 1000);
	CHECK_EQ_U64(weight[1], 8500);
	CHECK_EQ_U64(fixed, 300);
}

static void test_rank_plan(void)
{
	struct mp_plan_layer ly[2];
	char err[512];
	struct mp_plan p = plan_of(ly);
	/* rank 0, the dense layer: embeddings + layer 0, half the KV, no pool */
	REQUIRE(mp_dist_plan(&p, 0, "h0", 0, 1, 0, 5000, err, sizeof err) == 0);
	CHECK_EQ_U64(p.resident_bytes, 1300);
	CHECK_EQ_U64(p.kv_bytes, 100);
	CHECK_EQ_U64(p.routed_bytes, 0);
	CHECK_EQ_U64(p.pool_bytes, 0);
	CHECK_EQ_U64(p.pool_experts, 0);
	/* rank 1, the MoE layer: 500 + 100 + 100 fixed; 4000 of memory leaves 3300 */
	p = plan_of(ly);
	REQUIRE(mp_dist_plan(&p, 1, "h1", 1, 2, 0, 4000, err, sizeof err) == 0);
	CHECK_EQ_U64(p.resident_bytes, 500);
	CHECK_EQ_U64(p.pool_bytes, 3300);
	CHECK_EQ_U64(ly[1].fit, 3);
	CHECK_EQ_U64(ly[0].fit, 0);
	/* too little for the share: rank, host, layers and the minimum are named */
	p = plan_of(ly);
	CHECK_EQ_INT(mp_dist_plan(&p, 1, "h1", 1, 2, 0, 2000, err, sizeof err), -MP_EBUDGET);
	CHECK_CONTAINS(err, "rank 1 on h1 (layers 1-1)");
	CHECK_CONTAINS(err, "smallest workable --mem-limit for this share");
}

/* ---- layer ranges chained in one process ------------------------------------------- */

enum { NCTX = 64, NTOK = 12 };

/* The "other ranks": stages run in turn, as dist_mpi.c's messages would.
 * hop[i] is model i's pipe (model 0 = the first rank): its forward (model 0
 * only) runs every stage, its early hands the state to stage i. */
struct chain;
struct hop {
	struct chain *c;
	int i;
};
struct chain {
	struct mp_model *stage[2];
	int n;
	struct hop hop[3];
	struct mp_expert_source inner;   /* the resident experts, hints counted */
	uint32_t hints[8];               /* hint calls per layer */
	uint32_t early, early_hinted;    /* early() calls; of those, hints they caused */
	uint32_t sent;                   /* send() calls: prefill batches without a reply */
	uint32_t n_embd;
	char err[256];
};

static int chain_forward(void *ctx, uint32_t pos, float *h, uint32_t n)
{
	struct chain *c = ((struct hop *)ctx)->c;
	for (int i = 0; i < c->n; i++)
		if (mp_model_stage(c->stage[i], pos, h, n) < 0) {
			snprintf(c->err, sizeof c->err, "%s", mp_model_error(c->stage[i]));
			return -MP_EARG;
		}
	return 0;
}

/* A batch nobody reads: the stages run it (their KV caches need it), the
 * rows leaving the last layer are dropped. */
static int chain_send(void *ctx, uint32_t pos, const float *h, uint32_t n)
{
	struct chain *c = ((struct hop *)ctx)->c;
	size_t bytes = sizeof(float) * n * c->n_embd;
	float *rows = malloc(bytes);
	if (!rows)
		return -ENOMEM;
	memcpy(rows, h, bytes);
	c->sent++;
	int rc = chain_forward(ctx, pos, rows, n);
	free(rows);
	return rc;
}

static void chain_early(void *ctx, uint32_t pos, const float *h)
{
	struct hop *hp = ctx;
	struct chain *c = hp->c;
	uint32_t before = 0, after = 0;
	(void)pos;
	for (int L = 0; L < 8; L++)
		before += c->hints[L];
	mp_model_stage_hint(c->stage[hp->i], h);
	for (int L = 0; L < 8; L++)
		after += c->hints[L];
	c->early++;
	c->early_hinted += after > before;
}

static const char *chain_err(void *ctx)
{
	return ((struct hop *)ctx)->c->err;
}

/* The counting source: the resident experts, plus a hint() that counts. */
static int s_acquire(void *ctx, uint32_t l, const uint32_t *e, uint32_t n)
{
	struct chain *c = ctx;
	return c->inner.acquire(c->inner.ctx, l, e, n);
}
static int s_next(void *ctx, uint32_t l, uint32_t *i, struct mp_expert_view *v)
{
	struct chain *c = ctx;
	return c->inner.next_ready(c->inner.ctx, l, i, v);
}
static void s_release(void *ctx, uint32_t l, const uint32_t *e, uint32_t n)
{
	struct chain *c = ctx;
	c->inner.release(c->inner.ctx, l, e, n);
}
static const char *s_err(void *ctx)
{
	struct chain *c = ctx;
	return c->inner.err_msg(c->inner.ctx);
}
static void s_hint(void *ctx, uint32_t l, const uint32_t *e, const float *sc, uint32_t n)
{
	struct chain *c = ctx;
	(void)e, (void)sc, (void)n;
	if (l < 8)
		c->hints[l]++;
}

static struct mp_model *make(struct model_fixture *fx, const struct mp_expert_source *src,
			     uint32_t l0, uint32_t l1, const struct mp_model_pipe *pipe, uint32_t n_batch)
{
	struct mp_model_opts o = { .n_ctx = NCTX, .kv_type = MP_KV_F32, .absorb = 1,
				   .n_batch = n_batch, .layer_begin = l0, .layer_end = l1,
				   .pipe = pipe, .prefetch_depth = 2 };
	char what[48];
	snprintf(what, sizeof what, "layers %u-%u", l0, l1);
	struct mp_model *m = fixture_model(fx, src, &o, what);
	if (!m)
		return NULL;
	/* the KV cache holds this range's layers only */
	const struct mp_hparams *hp = &fx->tm.hp;
	uint64_t all = mp_model_kv_bytes_per_token(hp, MP_KV_F32) * NCTX;
	CHECK_EQ_U64(mp_model_kv_bytes(m), all / hp->n_layer * ((l1 ? l1 : hp->n_layer) - l0));
	return m;
}

/* Prompt (prefill) then greedy decode; every step's logits into out[NTOK][vocab]. */
static int run(struct mp_model *m, uint32_t nv, float *out)
{
	uint32_t toks[6] = { 1, 5, 9, 17, 33, 2 };
	const float *lg;
	if (mp_model_prefill(m, toks, 6, NULL, NULL, &lg) < 0) {
		MP_TEST_FAIL("prefill: %s", mp_model_error(m));
		return -1;
	}
	memcpy(out, lg, sizeof(float) * nv);
	for (int i = 1; i < NTOK; i++) {
		if (mp_model_step(m, (uint32_t)tiny_argmax(lg, (int)nv), &lg) < 0) {
			MP_TEST_FAIL("step: %s", mp_model_error(m));
			return -1;
		}
		memcpy(out + (size_t)i * nv, lg, sizeof(float) * nv);
	}
	return 0;
}

static void chained(uint32_t wtype, uint32_t n_batch, const uint32_t *cut, int n_stage)
{
	struct model_fixture fx;
	if (fixture_open(&fx, wtype, 1, 1, 0, 7 + wtype) < 0) {
		fixture_close(&fx);
		return;
	}
	const struct test_model *tm = &fx.tm;
	uint32_t nv = tm->hp.n_vocab, nl = tm->hp.n_layer;
	struct chain c;
	memset(&c, 0, sizeof c);
	c.n = n_stage;
	c.inner = fx.src;
	c.n_embd = fx.tm.hp.n_embd;
	struct mp_expert_source src = { .ctx = &c, .acquire = s_acquire, .next_ready = s_next,
					.release = s_release, .err_msg = s_err, .hint = s_hint };
	float *want = malloc(sizeof(float) * nv * NTOK), *got = malloc(sizeof(float) * nv * NTOK);
	REQUIRE(want && got);
	struct mp_model *whole = make(&fx, &src, 0, 0, NULL, n_batch);
	REQUIRE(whole && run(whole, nv, want) == 0);
	struct mp_model_pipe pipe[3];
	for (int i = 0; i <= n_stage; i++) {
		c.hop[i] = (struct hop){ &c, i };
		pipe[i] = (struct mp_model_pipe){ &c.hop[i], i == 0 ? chain_forward : NULL, chain_err,
						  chain_early, i == 0 ? chain_send : NULL };
	}
	struct mp_model *first = make(&fx, &src, 0, cut[0], &pipe[0], n_batch);
	for (int i = 0; i < n_stage; i++)
		c.stage[i] = make(&fx, &src, cut[i], i + 1 < n_stage ? cut[i + 1] : nl,
				  i + 1 < n_stage ? &pipe[i + 1] : NULL, n_batch);
	REQUIRE(first && c.stage[0] && (n_stage < 2 || c.stage[1]));
	CHECK(run(first, nv, got) == 0);
	CHECK(memcmp(want, got, sizeof(float) * nv * NTOK) == 0);
	/* each decode token's state went ahead to every stage and hinted its experts */
	CHECK(c.early >= (uint32_t)(NTOK - 1) * (uint32_t)n_stage);
	CHECK_EQ_INT(c.early_hinted, c.early);
	/* a prompt of several batches: all but the last went on without a reply */
	uint32_t n_pf = n_batch > 1 ? (6 + n_batch - 1) / n_batch : 0;
	CHECK_EQ_INT(c.sent, n_pf ? n_pf - 1 : 0);
	/* a new sequence: rank 0 resets, the stages rewind with the positions */
	mp_model_reset(first);
	memset(got, 0, sizeof(float) * nv * NTOK);
	CHECK(run(first, nv, got) == 0);
	CHECK(memcmp(want, got, sizeof(float) * nv * NTOK) == 0);
	CHECK_EQ_INT(mp_model_pos(c.stage[n_stage - 1]), mp_model_pos(first));
	/* a stage takes hidden states, not tokens; positions never jump ahead */
	const float *lg;
	CHECK_EQ_INT(mp_model_step(c.stage[0], 1, &lg), -MP_EARG);
	CHECK_CONTAINS(mp_model_error(c.stage[0]), "its input is a hidden state");
	float h[1024] = { 0 };
	REQUIRE(tm->hp.n_embd <= 1024);
	CHECK(mp_model_stage(c.stage[0], mp_model_pos(c.stage[0]) + 1, h, 1) < 0);
	CHECK_CONTAINS(mp_model_error(c.stage[0]), "only");
	for (int i = 0; i < n_stage; i++)
		mp_model_destroy(c.stage[i]);
	mp_model_destroy(first);
	mp_model_destroy(whole);
	free(want);
	free(got);
	fixture_close(&fx);
}

static void test_two_stages_decode(void)
{
	uint32_t cut[1] = { 1 };
	chained(MP_TYPE_F32, 1, cut, 1);     /* the prompt one token at a time */
	chained(MP_TYPE_Q8_0, 4, cut, 1);    /* batches of 4 through the stage */
}

static void test_three_stages_batches(void)
{
	uint32_t cut[2] = { 1, 2 };
	chained(MP_TYPE_F32, 512, cut, 2);
	chained(MP_TYPE_Q8_0, 3, cut, 2);
}

static void test_range_checked(void)
{
	struct model_fixture fx;
	if (fixture_open(&fx, MP_TYPE_F32, 1, 1, 0, 3) < 0) {
		fixture_close(&fx);
		return;
	}
	const struct test_model *tm = &fx.tm;
	struct mp_model *m;
	char err[256];
	/* the first rank ending early needs a pipe; ranges must be non-empty and inside */
	struct mp_model_opts o = { .n_ctx = NCTX, .absorb = 1, .layer_begin = 0, .layer_end = 1 };
	CHECK_EQ_INT(mp_model_create(&tm->hp, tm->w, &fx.src, &o, &m, err, sizeof err), -MP_EARG);
	CHECK_CONTAINS(err, "layers 0-1 of 3");
	o.layer_begin = 2;
	o.layer_end = 2;
	CHECK_EQ_INT(mp_model_create(&tm->hp, tm->w, &fx.src, &o, &m, err, sizeof err), -MP_EARG);
	o.layer_end = 4;
	CHECK_EQ_INT(mp_model_create(&tm->hp, tm->w, &fx.src, &o, &m, err, sizeof err), -MP_EARG);
	fixture_close(&fx);
}

int main(void)
{
	RUN(test_equal_split);
	RUN(test_memory_follows);
	RUN(test_too_many_ranks);
	RUN(test_parts_sum);
	RUN(test_rank_plan);
	RUN(test_two_stages_decode);
	RUN(test_three_stages_batches);
	RUN(test_range_checked);
	return mp_test_end();
}
