/*
 * test_session.c — src/session.c on a tiny synthetic model (made by
 * moepager-mkmodel): prefix reuse gives exactly the logits of a fresh run,
 * reuses what it should, refuses prompts that do not fit without touching
 * the cache, gives up a prompt when asked, and the sampling loop ends the way
 * it reports; the shared flag table is well formed.  Paged and resident.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "mp_test.h"
#include "session.h"

static char model[256];

static struct mp_session *open_session(uint64_t budget, uint32_t ctx)
{
	struct mp_session_flags f;
	mp_session_flags_init(&f);
	f.model = model;
	f.ctx = ctx;
	f.threads = 1;
	f.cache_budget = budget;
	f.no_profile = 1;
	static int n_opened;
	char stats[64];              /* two sessions may be open at once: one segment each */
	snprintf(stats, sizeof stats, "test-session.%d.%d.stats", (int)getpid(), n_opened++);
	f.stats_file = stats;
	struct mp_session_opts o;
	struct mp_sampler_params sp;
	mp_session_flags_apply(&f, "test_session", &o, &sp);
	struct mp_session *s = NULL;
	char err[1024];
	if (mp_session_open(&o, &s, err, sizeof err) < 0)
		MP_TEST_FAIL("mp_session_open: %s", err);
	return s;
}

static struct mp_sampler *greedy(const struct mp_session *s)
{
	struct mp_sampler_params p;
	mp_sampler_params_r1(&p);
	p.temperature = 0;
	struct mp_sampler *sp = NULL;
	char err[256];
	mp_sampler_create(&p, mp_session_hparams(s)->n_vocab, &sp, err, sizeof err);
	return sp;
}

/* A fresh session's logits for ids (copied to out). */
static int fresh_logits(uint64_t budget, const int32_t *ids, size_t n, float *out)
{
	struct mp_session *s = open_session(budget, 256);
	const float *lg;
	uint32_t reused;
	if (!s || mp_session_prompt(s, ids, n, NULL, &lg, &reused) < 0 || reused != 0) {
		mp_session_close(s);
		return -1;
	}
	memcpy(out, lg, sizeof(float) * mp_session_hparams(s)->n_vocab);
	mp_session_close(s);
	return 0;
}

static void check_reuse(uint64_t budget)
{
	struct mp_session *s = open_session(budget, 256);
	REQUIRE(s != NULL);
	int32_t *a, *b;
	size_t na, nb;
	REQUIRE(mp_session_encode(s, "The quick brown fox jumps over the lazy dog", MP_TOK_ADD_BOS, &a, &na) == 0);
	REQUIRE(mp_session_encode(s, "The quick brown fox sleeps all day long", MP_TOK_ADD_BOS, &b, &nb) == 0);
	size_t common = 0;
	while (common < na && common < nb && a[common] == b[common])
		common++;
	REQUIRE(common >= 3 && common < na && common < nb);
	const float *lg;
	uint32_t reused;
	REQUIRE(mp_session_prompt(s, a, na, NULL, &lg, &reused) == 0);
	CHECK_EQ_INT(reused, 0);
	REQUIRE(mp_session_prompt(s, b, nb, NULL, &lg, &reused) == 0);
	CHECK_EQ_U64(reused, common);
	CHECK_EQ_U64(mp_model_pos(mp_session_model(s)), nb);
	CHECK(memcmp(mp_session_ids(s), b, nb * sizeof *b) == 0);
	uint32_t nv = mp_session_hparams(s)->n_vocab;
	float *want = mp_malloc_array(nv, sizeof *want);
	REQUIRE(want != NULL);
	if (fresh_logits(budget, b, nb, want) < 0)
		MP_TEST_FAIL("the fresh run failed");
	else if (memcmp(lg, want, nv * sizeof *want) != 0)
		MP_TEST_FAIL("budget %llu: logits after reusing %zu tokens differ from a fresh run",
			     (unsigned long long)budget, common);
	/* the same prompt again: all but its last token reused (its logits are needed) */
	REQUIRE(mp_session_prompt(s, b, nb, NULL, &lg, &reused) == 0);
	CHECK_EQ_U64(reused, nb - 1);
	CHECK(memcmp(lg, want, nv * sizeof *want) == 0);
	struct mp_session_counts c;
	mp_session_counts(s, &c);
	CHECK_EQ_U64(c.reused_tokens, common + nb - 1);
	CHECK_EQ_U64(c.prompt_tokens, na + (nb - common) + 1);
	mp_free(want);
	mp_free(a);
	mp_free(b);
	mp_session_close(s);
}

static void test_reuse_resident(void) { check_reuse(0); }
static void test_reuse_paged(void) { check_reuse(3 << 20); }

static int cancel_after(void *ctx)
{
	int *left = ctx;
	return (*left)-- <= 0;
}

static void test_limits_and_cancel(void)
{
	struct mp_session *s = open_session(0, 32);
	REQUIRE(s != NULL);
	int32_t ids[40];
	for (int i = 0; i < 40; i++)
		ids[i] = 10 + i;
	const float *lg;
	uint32_t reused;
	REQUIRE(mp_session_prompt(s, ids, 10, NULL, &lg, &reused) == 0);
	CHECK_EQ_INT(mp_session_prompt(s, ids, 32, NULL, &lg, &reused), -MP_EBUDGET);
	CHECK_EQ_INT(mp_session_feed(s, ids, 25, NULL, &lg), -MP_EBUDGET);
	CHECK_EQ_U64(mp_model_pos(mp_session_model(s)), 10);    /* untouched */
	CHECK(strstr(mp_session_error(s), "--ctx-size") != NULL);
	int left = 3;
	mp_session_set_cancel(s, cancel_after, &left);
	CHECK_EQ_INT(mp_session_feed(s, ids + 10, 8, NULL, &lg), -MP_ECANCELLED);
	/* given up inside the batch (between its layers): none of it is cached */
	CHECK_EQ_U64(mp_model_pos(mp_session_model(s)), 10);
	CHECK(memcmp(mp_session_ids(s), ids, 10 * sizeof *ids) == 0);
	CHECK(strstr(mp_session_error(s), "given up") != NULL);
	mp_session_set_cancel(s, NULL, NULL);
	mp_session_close(s);
}

struct seen { int n, stop_at; };

static int on_token(void *ctx, int32_t id, const char *text, size_t n)
{
	(void)text;
	(void)n;
	struct seen *v = ctx;
	if (id < 0)
		return 0;
	return ++v->n == v->stop_at;
}

static void test_generate_ends(void)
{
	struct mp_session *s = open_session(0, 64);
	REQUIRE(s != NULL);
	struct mp_sampler *sp = greedy(s);
	REQUIRE(sp != NULL);
	mp_sampler_ban(sp, mp_tok_eos(mp_session_tok(s)));
	int32_t ids[] = { 10, 11, 12 };
	const float *lg;
	REQUIRE(mp_session_feed(s, ids, 3, sp, &lg) == 0);
	struct seen v = { 0, 0 };
	struct mp_session_gen g = { .n_predict = 5, .fn = on_token, .ctx = &v };
	REQUIRE(mp_session_generate(s, sp, lg, &g) == 0);
	CHECK_EQ_INT(g.end, MP_SESSION_LENGTH);
	CHECK_EQ_U64(g.n_tokens, 5);
	CHECK_EQ_INT(v.n, 5);
	CHECK_EQ_U64(mp_model_pos(mp_session_model(s)), 8);
	v = (struct seen){ 0, 2 };
	g = (struct mp_session_gen){ .n_predict = -1, .fn = on_token, .ctx = &v };
	mp_model_truncate(mp_session_model(s), 2);
	REQUIRE(mp_session_feed(s, ids + 2, 1, sp, &lg) == 0);
	REQUIRE(mp_session_generate(s, sp, lg, &g) == 0);
	CHECK_EQ_INT(g.end, MP_SESSION_STOPPED);
	CHECK_EQ_U64(g.n_tokens, 2);
	v = (struct seen){ 0, 0 };
	g = (struct mp_session_gen){ .n_predict = -1, .fn = on_token, .ctx = &v };
	REQUIRE(mp_session_generate(s, sp, lg, &g) == 0);
	CHECK_EQ_INT(g.end, MP_SESSION_CTX_FULL);
	CHECK_EQ_U64(mp_model_pos(mp_session_model(s)), 63);
	mp_sampler_destroy(sp);
	mp_session_close(s);
}

static void test_flag_table(void)
{
	struct mp_session_flags f;
	mp_session_flags_init(&f);
	struct mp_opt t[MP_SESSION_N_FLAGS];
	mp_session_flag_table(&f, t);
	CHECK(strcmp(t[0].name, "model") == 0);
	for (size_t i = 0; i < MP_SESSION_N_FLAGS; i++) {
		CHECK(t[i].name && t[i].help && t[i].target);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(t[i].name, t[j].name) || (t[i].short_name && t[i].short_name == t[j].short_name))
				MP_TEST_FAIL("flags %zu and %zu clash (--%s)", j, i, t[i].name);
	}
	char *argv[] = { "x", "-m", "m.gguf", "--kv-type", "q8_0", "--io", "sync", "--seed", "5", "--cache-budget", "2M", NULL };
	char err[256];
	REQUIRE(mp_opt_parse(t, MP_SESSION_N_FLAGS, 11, argv, NULL, 0, NULL, err, sizeof err) == 0);
	struct mp_session_opts o;
	struct mp_sampler_params sp;
	mp_session_flags_apply(&f, "x", &o, &sp);
	CHECK(strcmp(o.model, "m.gguf") == 0 && o.kv_q8 == 1 && strcmp(o.io, "sync") == 0);
	CHECK_EQ_U64(o.cache_budget, 2 << 20);
	CHECK_EQ_U64(sp.seed, 5);
	CHECK_EQ_U64(o.n_ctx, 4096);
}

int main(void)
{
	const char *b = getenv("MP_BUILDDIR");
	snprintf(model, sizeof model, "test-session.%d.gguf", (int)getpid());
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s/moepager-mkmodel --preset tiny --quant q8_0 --quiet -o %s",
		 b && *b ? b : ".", model);
	if (system(cmd) != 0) {
		fprintf(stderr, "FAIL: %s\n", cmd);
		return 1;
	}
	RUN(test_reuse_resident);
	RUN(test_reuse_paged);
	RUN(test_limits_and_cancel);
	RUN(test_generate_ends);
	RUN(test_flag_table);
	remove(model);
	return mp_test_end();
}
