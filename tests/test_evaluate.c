/* test_evaluate — src/evaluate: the perplexity arithmetic and chunking (as
 * llama.cpp scores them), the logits recorder's JSON (docs/logits-format.md),
 * the comparison's self-tests (identical files pass, an injected near-tie
 * routing flip is excused, a flip at a clear margin and a real logit
 * difference are reported and fail, diverging inputs stop the alignment,
 * foreign files are refused with their name), token-list parsing, and
 * moepager's forward pass against the naive reference of tests/reference.c
 * on a tiny model written with tiny_write_gguf, both dumped as logit files
 * and compared by mp_eval_compare. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "alloc.h"
#include "err.h"
#include "evaluate.h"
#include "loader.h"
#include "model.h"
#include "reference.h"
#include "tinymodel.h"
#include "types.h"
#include "mp_test.h"

#define NV 8        /* vocabulary of the synthetic files */
#define NL 3        /* layers of the synthetic files: 0 dense, 1 and 2 MoE */

static char path_a[64], path_b[64], path_m[64];

/* ---- perplexity ----------------------------------------------------------------- */

static void test_lse_and_ppl(void)
{
	float u[NV] = { 0 };
	CHECK_NEAR(mp_eval_lse(u, NV), log(NV), 1e-12);
	float big[2] = { 1000.0f, 1000.0f };
	CHECK_NEAR(mp_eval_lse(big, 2), 1000.0 + log(2.0), 1e-9);   /* no overflow */
	struct mp_eval_ppl p = { 0, 0, 0 };
	double e;
	for (int i = 0; i < 5; i++)
		CHECK_NEAR(mp_eval_ppl_add(&p, u, NV, i), log(NV), 1e-12);
	CHECK_NEAR(mp_eval_ppl_value(&p, &e), NV, 1e-9);   /* uniform: PPL = vocabulary */
	CHECK_NEAR(e, 0, 1e-12);
	/* two tokens with NLL a and b: PPL = exp((a+b)/2), stderr = PPL·|a−b|/2 */
	struct mp_eval_ppl q = { 0, 0, 0 };
	float l[NV] = { 2.0f, 0.0f };
	double a = mp_eval_ppl_add(&q, l, NV, 0), b = mp_eval_ppl_add(&q, l, NV, 1);
	CHECK_NEAR(b - a, 2.0, 1e-9);
	double ppl = mp_eval_ppl_value(&q, &e);
	CHECK_NEAR(ppl, exp((a + b) / 2), 1e-9);
	CHECK_NEAR(e, ppl * fabs(a - b) / 2, 1e-9);
}

/* A tiny model from a GGUF file, run through the real forward pass. */
struct filemodel {
	struct test_model tm;
	struct mp_modelfile *mf;
	struct mp_resident_experts *res;
	struct mp_model *m;
};

static int open_model(struct filemodel *fm, uint64_t seed, enum mp_kv_type kv, uint32_t n_ctx)
{
	char err[512];
	memset(fm, 0, sizeof *fm);
	tiny_build(&fm->tm, MP_TYPE_F32, 1, 1, 0, seed);
	if (tiny_write_gguf(&fm->tm, path_m, err, sizeof err) < 0 ||
	    mp_modelfile_open(path_m, &fm->mf, err, sizeof err) < 0) {
		MP_TEST_FAIL("%s: %s", path_m, err);
		return -1;
	}
	struct mp_expert_source src;
	const struct mp_hparams *hp = mp_modelfile_hparams(fm->mf);
	struct mp_model_opts mo = { .n_ctx = n_ctx, .kv_type = kv, .absorb = 1 };
	if (mp_resident_experts_create(hp, mp_modelfile_weights(fm->mf), &fm->res, &src) < 0 ||
	    mp_model_create(hp, mp_modelfile_weights(fm->mf), &src, &mo, &fm->m, err, sizeof err) < 0) {
		MP_TEST_FAIL("model: %s", err);
		return -1;
	}
	return 0;
}

static void close_model(struct filemodel *fm)
{
	mp_model_destroy(fm->m);
	mp_resident_experts_destroy(fm->res);
	mp_modelfile_close(fm->mf);
	tiny_drop(&fm->tm);
	unlink(path_m);
}

/* mp_eval_perplexity against the same sums done by hand: chunks restart the
 * cache, the first token becomes BOS, only the second half is scored. */
static void test_perplexity_chunks(void)
{
	struct filemodel fm;
	if (open_model(&fm, 61, MP_KV_F32, 16) < 0)
		return;
	uint32_t nv = fm.tm.hp.n_vocab, n_ctx = 8;
	int32_t ids[21];
	for (int i = 0; i < 21; i++)
		ids[i] = (i * 37 + 5) % (int32_t)nv;
	struct mp_eval_ppl want = { 0, 0, 0 };
	for (int c = 0; c < 2; c++) {   /* 21 tokens: two chunks of 8, the rest unused */
		mp_model_reset(fm.m);
		for (uint32_t j = 0; j + 1 < n_ctx; j++) {
			const float *lg;
			REQUIRE(mp_model_step(fm.m, j == 0 ? 1u : (uint32_t)ids[c * 8 + (int)j], &lg) == 0);
			if (j >= n_ctx / 2)
				mp_eval_ppl_add(&want, lg, nv, ids[c * 8 + (int)j + 1]);
		}
	}
	double want_err, want_ppl = mp_eval_ppl_value(&want, &want_err);
	struct mp_eval_ppl_opts o = { n_ctx, 1, NULL, NULL };
	struct mp_eval_ppl_result r;
	char err[256];
	REQUIRE(mp_eval_perplexity(fm.m, nv, ids, 21, &o, &r, err, sizeof err) == 0);
	CHECK_EQ_U64(r.chunks, 2);
	CHECK_EQ_U64(r.scored, 2 * 3);     /* positions 4, 5, 6 predict 5, 6, 7 */
	CHECK_EQ_U64(r.evaluated, 2 * 7);
	/* the chunks go through batched prefill: f32 summation order differs */
	CHECK_NEAR(r.ppl, want_ppl, 1e-5 * want_ppl);
	CHECK_NEAR(r.err, want_err, 1e-5 * want_ppl);
	CHECK(r.ppl > 1 && r.err > 0);
	/* too short a text, and ids outside the vocabulary */
	CHECK_EQ_INT(mp_eval_perplexity(fm.m, nv, ids, 7, &o, &r, err, sizeof err), -MP_EARG);
	CHECK_CONTAINS(err, "at least one chunk");
	ids[3] = (int32_t)nv;
	CHECK_EQ_INT(mp_eval_perplexity(fm.m, nv, ids, 21, &o, &r, err, sizeof err), -MP_EARG);
	CHECK_CONTAINS(err, "token 3");
	close_model(&fm);
}

/* ---- the recorder ---------------------------------------------------------------- */

/* Writes a synthetic file of n positions: logits[v] = base − v/4 with a
 * bump, two MoE layers choosing {1,2} and {3,4}.  Position flip_at (if ≥ 0)
 * chooses {1,5} at layer 1 with reference margin flip_margin; position
 * diff_at adds delta to logit 2; position tok_at feeds a different token. */
struct synth {
	int n, flip_at, diff_at, tok_at;
	int seq;            /* > 0: pos restarts at 0 every seq positions */
	float flip_margin, delta;
	float margin_nan;   /* 1: margins unknown and no weights (like the reference) */
};

static int write_synth(const char *path, const struct synth *s)
{
	struct mp_eval_rec_config cfg = { path, 4, NV, NL, "test", "synthetic", NULL };
	struct mp_eval_rec *r;
	char err[256];
	if (mp_eval_rec_create(&cfg, &r, err, sizeof err) < 0) {
		MP_TEST_FAIL("%s", err);
		return -1;
	}
	for (int p = 0; p < s->n; p++) {
		float lg[NV];
		for (int v = 0; v < NV; v++)
			lg[v] = 1.0f - (float)v / 4 + (v == (p % 3) + 1 ? 1.0f : 0.0f);
		if (p == s->diff_at)
			lg[2] += s->delta;
		struct mp_route r1 = { 2, { 1, 2 }, { 0.6f, 0.4f }, 0.3f };
		struct mp_route r2 = { 2, { 4, 3 }, { 0.7f, 0.3f }, 0.2f };
		if (p == s->flip_at) {
			r1.expert[1] = 5;
			r1.margin = s->flip_margin;
		}
		if (s->margin_nan) {
			r1.margin = r2.margin = NAN;
			r1.weight[0] = r2.weight[0] = NAN;
		}
		const struct mp_route *routes[NL] = { NULL, &r1, &r2 };
		struct mp_eval_target tg = { (p + 1) % 5, p >= 2 };
		if (mp_eval_rec_add(r, (uint32_t)(s->seq ? p % s->seq : p), p == s->tok_at ? 7 : p % 5, lg, routes, &tg) < 0)
			MP_TEST_FAIL("rec_add");
	}
	if (mp_eval_rec_close(r, err, sizeof err) < 0) {
		MP_TEST_FAIL("%s", err);
		return -1;
	}
	return 0;
}

static const struct synth plain = { 6, -1, -1, -1, 0, 0, 0, 0 };

static void test_recorder_json(void)
{
	struct synth s = plain;
	s.flip_at = 1;
	s.flip_margin = 0.125f;
	REQUIRE(write_synth(path_a, &s) == 0);
	json_error_t je;
	json_t *root = json_load_file(path_a, 0, &je);
	if (!root) {
		MP_TEST_FAIL("%s:%d: %s", path_a, je.line, je.text);
		return;
	}
	CHECK_STR(json_string_value(json_object_get(root, "format")), MP_EVAL_FORMAT);
	CHECK_EQ_INT(json_integer_value(json_object_get(root, "version")), MP_EVAL_VERSION);
	CHECK_EQ_INT(json_integer_value(json_object_get(root, "top_k")), 4);
	CHECK_EQ_INT(json_integer_value(json_object_get(root, "n_vocab")), NV);
	json_t *pos = json_object_get(root, "positions");
	CHECK_EQ_INT(json_array_size(pos), 6);
	json_t *p1 = json_array_get(pos, 1);   /* logits 1, 0.75+1, 0.5, 0.25, ... */
	CHECK_EQ_INT(json_integer_value(json_object_get(p1, "i")), 1);
	CHECK_EQ_INT(json_integer_value(json_object_get(p1, "token")), 1);
	CHECK_EQ_INT(json_integer_value(json_object_get(p1, "argmax")), 2);
	CHECK_NEAR(json_real_value(json_object_get(p1, "margin")), 0.5, 1e-7);   /* 1.5 − 1.0 */
	float lg[NV];
	for (int v = 0; v < NV; v++)
		lg[v] = 1.0f - (float)v / 4 + (v == 2 ? 1.0f : 0.0f);
	CHECK_NEAR(json_real_value(json_object_get(p1, "lse")), mp_eval_lse(lg, NV), 1e-7);
	CHECK_EQ_INT(json_integer_value(json_object_get(p1, "target")), 2);
	CHECK_NEAR(json_real_value(json_object_get(p1, "logprob")), lg[2] - mp_eval_lse(lg, NV), 1e-7);
	CHECK(json_is_false(json_object_get(p1, "scored")));
	CHECK(json_is_true(json_object_get(json_array_get(pos, 2), "scored")));
	json_t *top = json_object_get(p1, "top");
	CHECK_EQ_INT(json_array_size(top), 4);
	int ids[4] = { 2, 0, 1, 3 };   /* 1.5, 1, 0.75, 0.25: descending */
	for (int i = 0; i < 4; i++)
		CHECK_EQ_INT(json_integer_value(json_array_get(json_array_get(top, (size_t)i), 0)), ids[i]);
	json_t *moe = json_object_get(p1, "moe");
	CHECK_EQ_INT(json_array_size(moe), 2);   /* the dense layer 0 is not written */
	json_t *l1 = json_array_get(moe, 0);
	CHECK_EQ_INT(json_integer_value(json_object_get(l1, "layer")), 1);
	CHECK_EQ_INT(json_integer_value(json_array_get(json_object_get(l1, "experts"), 1)), 5);
	CHECK_NEAR(json_real_value(json_array_get(json_object_get(l1, "weights"), 0)), 0.6, 1e-7);
	CHECK_NEAR(json_real_value(json_object_get(l1, "margin")), 0.125, 1e-9);
	json_decref(root);

	/* unknown margins are null, unknown weights absent */
	s = plain;
	s.margin_nan = 1;
	REQUIRE(write_synth(path_a, &s) == 0);
	root = json_load_file(path_a, 0, &je);
	REQUIRE(root != NULL);
	l1 = json_array_get(json_object_get(json_array_get(json_object_get(root, "positions"), 0), "moe"), 0);
	CHECK(json_is_null(json_object_get(l1, "margin")));
	CHECK(json_object_get(l1, "weights") == NULL);
	json_decref(root);

	/* a file that cannot be created is named */
	struct mp_eval_rec_config bad = { "no-such-dir/x.json", 4, NV, NL, "test", NULL, NULL };
	struct mp_eval_rec *r;
	char err[256];
	CHECK(mp_eval_rec_create(&bad, &r, err, sizeof err) < 0);
	CHECK_CONTAINS(err, "no-such-dir/x.json");
	bad.path = path_b;
	bad.top_k = 0;
	CHECK_EQ_INT(mp_eval_rec_create(&bad, &r, err, sizeof err), -MP_EARG);
}

/* ---- the comparison's self-tests ------------------------------------------------- */

static const struct mp_eval_cmp_opts defaults = { 0.01, 0.01 };

static int compare(const struct synth *a, const struct synth *b, struct mp_eval_cmp *r)
{
	char err[256];
	if (write_synth(path_a, a) < 0 || write_synth(path_b, b) < 0)
		return -1;
	int rc = mp_eval_compare(path_a, path_b, &defaults, r, err, sizeof err);
	if (rc < 0)
		MP_TEST_FAIL("mp_eval_compare: %s", err);
	return rc;
}

static void test_compare_identical(void)
{
	struct mp_eval_cmp r;
	REQUIRE(compare(&plain, &plain, &r) == 0);
	CHECK(r.pass);
	CHECK_EQ_U64(r.aligned, 6);
	CHECK_EQ_U64(r.clean, 6);
	CHECK_EQ_U64(r.flips, 0);
	CHECK_EQ_INT(r.first_flip, -1);
	CHECK_EQ_INT(r.diverge, -1);
	CHECK_NEAR(r.max_diff, 0, 0);
	CHECK_EQ_U64(r.argmax_same, 6);
	CHECK_EQ_U64(r.paired, 4);        /* positions 2..5 are scored */
	CHECK_NEAR(r.dlogp, 0, 0);
}

/* The reference had a near-tie (margin 0.001) at position 3 layer 1; the
 * other side decided it the other way: excused, and checked before it. */
static void test_compare_near_tie_flip_excused(void)
{
	struct synth a = plain, b = plain;
	a.flip_at = 3;               /* a chose {1,5} at layer 1, at a near-tie */
	a.flip_margin = 0.001f;
	b.diff_at = 4;               /* after the flip: reported, not checked */
	b.delta = 0.5f;
	struct mp_eval_cmp r;
	REQUIRE(compare(&a, &b, &r) == 0);
	CHECK(r.pass);
	CHECK_EQ_U64(r.flips, 1);
	CHECK_EQ_INT(r.first_flip, 3);
	CHECK_EQ_INT(r.first_flip_layer, 1);
	CHECK_NEAR(r.first_flip_margin, 0.001, 1e-6);
	CHECK(r.first_flip_excused);
	CHECK_EQ_U64(r.clean, 3);
	CHECK_NEAR(r.max_diff_after, 0.5, 1e-6);
	char out[2048] = "";
	FILE *f = fmemopen(out, sizeof out - 1, "w");
	REQUIRE(f != NULL);
	mp_eval_compare_print(f, &r, &defaults);
	fclose(f);
	CHECK_CONTAINS(out, "first flip: position 3, layer 1");
	CHECK_CONTAINS(out, "excused (a near-tie)");
	CHECK_CONTAINS(out, "PASS");
}

/* The same flip where the reference's margin was clear (0.3): a failure. */
static void test_compare_clear_flip_fails(void)
{
	struct synth a = plain, b = plain;
	a.flip_at = 3;
	a.flip_margin = 0.3f;
	struct mp_eval_cmp r;
	REQUIRE(compare(&a, &b, &r) == 0);
	CHECK(!r.pass);
	CHECK_EQ_INT(r.first_flip, 3);
	CHECK(!r.first_flip_excused);
	/* unknown margins (an implementation that does not report them) never excuse */
	a.margin_nan = 1;
	a.flip_margin = 0.001f;
	REQUIRE(compare(&a, &b, &r) == 0);
	CHECK(!r.pass);
	CHECK(isnan(r.first_flip_margin));
}

/* A real logit difference of 0.05 at position 2 without any flip. */
static void test_compare_logit_difference_reported(void)
{
	struct synth a = plain, b = plain;
	b.diff_at = 2;
	b.delta = 0.05f;
	struct mp_eval_cmp r;
	REQUIRE(compare(&a, &b, &r) == 0);
	CHECK(!r.pass);
	CHECK_EQ_INT(r.max_diff_at, 2);
	CHECK_NEAR(r.max_diff, 0.05, 1e-3);   /* logit 2 and the lse move */
	/* position 2 predicts token 3, whose logit stayed: log p moves by −Δlse,
	 * averaged over the 4 scored positions */
	float la[NV], lb[NV];
	for (int v = 0; v < NV; v++)
		la[v] = lb[v] = 1.0f - (float)v / 4 + (v == 3 ? 1.0f : 0.0f);
	lb[2] += 0.05f;
	CHECK_EQ_U64(r.paired, 4);
	CHECK_NEAR(r.dlogp, -(mp_eval_lse(lb, NV) - mp_eval_lse(la, NV)) / 4, 1e-6);
	CHECK(r.dlogp < 0 && r.dlogp_err > 0);
	char out[2048] = "";
	FILE *f = fmemopen(out, sizeof out - 1, "w");
	REQUIRE(f != NULL);
	mp_eval_compare_print(f, &r, &defaults);
	fclose(f);
	CHECK_CONTAINS(out, "at position 2");
	CHECK_CONTAINS(out, "TOO LARGE");
	CHECK_CONTAINS(out, "FAIL");
	/* below the tolerance it passes; a difference pushing an id out of the
	 * other's top list still counts (the bound from the list's smallest entry) */
	b.delta = 0.004f;
	REQUIRE(compare(&a, &b, &r) == 0);
	CHECK(r.pass);
	b.diff_at = 0;
	b.delta = -3.0f;   /* logit 2 (0.5) falls out of b's top 4 */
	REQUIRE(compare(&a, &b, &r) == 0);
	CHECK(!r.pass);
	CHECK(r.max_diff >= 0.5 - 1e-6);   /* 0.5 above b's smallest kept logit, 0 */
}

/* Two sequences (perplexity chunks): a near-tie flip in the first does not
 * excuse a logit difference in the second, which starts from a clean cache. */
static void test_compare_sequences(void)
{
	struct synth a = plain, b = plain;
	a.n = b.n = 8;
	a.seq = b.seq = 4;
	a.flip_at = 1;
	a.flip_margin = 0.001f;
	b.diff_at = 5;
	b.delta = 0.05f;
	struct mp_eval_cmp r;
	REQUIRE(compare(&a, &b, &r) == 0);
	CHECK_EQ_U64(r.seqs, 2);
	CHECK_EQ_U64(r.seq_flips, 1);
	CHECK_EQ_U64(r.unexcused, 0);
	CHECK_EQ_U64(r.clean, 1 + 4);
	CHECK_EQ_INT(r.max_diff_at, 5);
	CHECK(!r.pass);
	b.delta = 0.004f;
	REQUIRE(compare(&a, &b, &r) == 0);
	CHECK(r.pass);
	/* a clear-margin flip in the second sequence is its own first flip */
	b.diff_at = -1;
	b.flip_at = 6;
	b.flip_margin = 0.3f;   /* only the reference's margin counts: a's is 0.3 at 6 */
	REQUIRE(compare(&a, &b, &r) == 0);
	CHECK_EQ_U64(r.seq_flips, 2);
	CHECK_EQ_U64(r.unexcused, 1);
	CHECK_EQ_INT(r.first_flip, 6);
	CHECK(!r.pass);
}

static void test_compare_alignment_and_errors(void)
{
	struct synth a = plain, b = plain;
	b.tok_at = 4;
	b.n = 9;
	struct mp_eval_cmp r;
	REQUIRE(compare(&a, &b, &r) == 0);
	CHECK_EQ_U64(r.n_a, 6);
	CHECK_EQ_U64(r.n_b, 9);
	CHECK_EQ_U64(r.aligned, 4);
	CHECK_EQ_INT(r.diverge, 4);
	CHECK(r.pass);
	b.tok_at = 0;
	REQUIRE(compare(&a, &b, &r) == 0);
	CHECK_EQ_U64(r.aligned, 0);
	CHECK(!r.pass);

	char err[256];
	FILE *f = fopen(path_b, "w");
	REQUIRE(f != NULL);
	fputs("{\"format\":\"something-else\",\"version\":1,\"positions\":[]}", f);
	fclose(f);
	CHECK_EQ_INT(mp_eval_compare(path_a, path_b, &defaults, &r, err, sizeof err), -MP_EFORMAT);
	CHECK_CONTAINS(err, path_b);
	f = fopen(path_b, "w");
	REQUIRE(f != NULL);
	fputs("{\"format\":\"moepager-logits\",\"version\":99,\"positions\":[]}", f);
	fclose(f);
	CHECK_EQ_INT(mp_eval_compare(path_a, path_b, &defaults, &r, err, sizeof err), -MP_EVERSION);
	CHECK_CONTAINS(err, "version 99");
	f = fopen(path_b, "w");
	REQUIRE(f != NULL);
	fputs("{\"format\":", f);
	fclose(f);
	CHECK_EQ_INT(mp_eval_compare(path_a, path_b, &defaults, &r, err, sizeof err), -MP_EFORMAT);
	CHECK_CONTAINS(err, path_b);
}

static void test_parse_ids(void)
{
	int32_t *ids;
	char err[256];
	CHECK_EQ_INT(mp_eval_parse_ids("1,2, 3", 10, &ids, err, sizeof err), 3);
	CHECK_EQ_INT(ids[2], 3);
	mp_free(ids);
	CHECK_EQ_INT(mp_eval_parse_ids("1,10", 10, &ids, err, sizeof err), -MP_EARG);
	CHECK_CONTAINS(err, "\"10\" is not a token id from 0 to 9");
	CHECK_EQ_INT(mp_eval_parse_ids("1,x", 10, &ids, err, sizeof err), -MP_EARG);
	CHECK_EQ_INT(mp_eval_parse_ids(",", 10, &ids, err, sizeof err), -MP_EARG);
	CHECK_CONTAINS(err, "no token ids");
	FILE *f = fopen(path_b, "w");
	REQUIRE(f != NULL);
	fputs("4 5\n6,\n", f);
	fclose(f);
	char spec[80];
	snprintf(spec, sizeof spec, "@%s", path_b);
	CHECK_EQ_INT(mp_eval_parse_ids(spec, 10, &ids, err, sizeof err), 3);
	CHECK_EQ_INT(ids[0], 4);
	CHECK_EQ_INT(ids[2], 6);
	mp_free(ids);
	CHECK(mp_eval_parse_ids("@no-such-file", 10, &ids, err, sizeof err) < 0);
	CHECK_CONTAINS(err, "no-such-file");
}

/* ---- moepager against the reference forward pass ---------------------------------- */

/* Teacher-forced: both run the same 20 tokens; moepager's file is the
 * reference of the comparison because the naive pass does not report routing
 * margins (a flip can only be excused by a known margin). */
static void run_against_reference(enum mp_kv_type kv, double tol)
{
	struct filemodel fm;
	if (open_model(&fm, 71, kv, 32) < 0)
		return;
	const struct mp_hparams *hp = mp_modelfile_hparams(fm.mf);
	struct ref_model *ref = ref_create(&fm.tm.hp, fm.tm.w, 32, 0, 0);
	struct mp_eval_rec_config cm = { path_a, 20, hp->n_vocab, hp->n_layer, "moepager", path_m, NULL };
	struct mp_eval_rec_config cr = { path_b, 20, hp->n_vocab, hp->n_layer, "reference", path_m, NULL };
	struct mp_eval_rec *rm, *rr;
	char err[256];
	REQUIRE(mp_eval_rec_create(&cm, &rm, err, sizeof err) == 0);
	REQUIRE(mp_eval_rec_create(&cr, &rr, err, sizeof err) == 0);
	float *want = mp_malloc_array(hp->n_vocab, sizeof *want);
	REQUIRE(want != NULL);
	for (uint32_t p = 0; p < 20; p++) {
		uint32_t tok = (p * 29 + 3) % hp->n_vocab;
		const float *got;
		REQUIRE(mp_model_step(fm.m, tok, &got) == 0);
		CHECK_EQ_INT(mp_eval_rec_step(rm, fm.m, (int32_t)tok, got, NULL), 0);
		REQUIRE(ref_step(ref, tok, want) == 0);
		struct mp_route rt[NL + 8];
		const struct mp_route *routes[NL + 8];
		REQUIRE(hp->n_layer <= NL + 8);
		for (uint32_t L = 0; L < hp->n_layer; L++) {
			uint32_t n = 0;
			const uint32_t *e = L >= hp->n_dense_lead ? ref_experts(ref, L, &n) : NULL;
			rt[L].n = n;
			for (uint32_t i = 0; i < n; i++)
				rt[L].expert[i] = e[i];
			rt[L].weight[0] = NAN;   /* the reference does not report weights ... */
			rt[L].margin = NAN;      /* ... nor margins */
			routes[L] = &rt[L];
		}
		CHECK_EQ_INT(mp_eval_rec_add(rr, p, (int32_t)tok, want, routes, NULL), 0);
	}
	CHECK_EQ_INT(mp_eval_rec_close(rm, err, sizeof err), 0);
	CHECK_EQ_INT(mp_eval_rec_close(rr, err, sizeof err), 0);
	struct mp_eval_cmp r;
	struct mp_eval_cmp_opts o = { 0.01, tol };
	REQUIRE(mp_eval_compare(path_a, path_b, &o, &r, err, sizeof err) == 0);
	if (!r.pass) {
		mp_eval_compare_print(stderr, &r, &o);
		MP_TEST_FAIL("kv type %d: moepager and the reference disagree", (int)kv);
	}
	CHECK_EQ_U64(r.aligned, 20);
	CHECK(r.clean >= 8);   /* a useful stretch before any near-tie flip */
	mp_free(want);
	ref_destroy(ref);
	close_model(&fm);
}

static void test_against_reference_f32_kv(void)
{
	run_against_reference(MP_KV_F32, 1e-4);
}

static void test_against_reference_q8_0_kv(void)
{
	run_against_reference(MP_KV_Q8_0, 0.1);
}

int main(void)
{
	snprintf(path_a, sizeof path_a, "test_evaluate.%d.a.json", (int)getpid());
	snprintf(path_b, sizeof path_b, "test_evaluate.%d.b.json", (int)getpid());
	snprintf(path_m, sizeof path_m, "test_evaluate.%d.gguf", (int)getpid());
	RUN(test_lse_and_ppl);
	RUN(test_perplexity_chunks);
	RUN(test_recorder_json);
	RUN(test_compare_identical);
	RUN(test_compare_near_tie_flip_excused);
	RUN(test_compare_clear_flip_fails);
	RUN(test_compare_logit_difference_reported);
	RUN(test_compare_sequences);
	RUN(test_compare_alignment_and_errors);
	RUN(test_parse_ids);
	RUN(test_against_reference_f32_kv);
	RUN(test_against_reference_q8_0_kv);
	unlink(path_a);
	unlink(path_b);
	return mp_test_end();
}
