/*
 * test_sampler.c — the sampling chain: greedy is argmax, each filter's effect
 * on a known distribution, penalties, determinism per seed, and the observed
 * frequencies of many draws against the filtered distribution (chi-square).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "mp_test.h"
#include "rng.h"
#include "sampler.h"

/* p = 0.4 0.3 0.15 0.1 0.05 as logits. */
static const double P5[5] = { 0.4, 0.3, 0.15, 0.1, 0.05 };

static void logits5(float *l, float shift)
{
	for (int i = 0; i < 5; i++)
		l[i] = (float)log(P5[i]) + shift;
}

static struct mp_sampler_params plain(void)
{
	return (struct mp_sampler_params){ .temperature = 1.0f, .top_p = 1.0f, .repeat_penalty = 1.0f,
					   .penalty_last_n = 64, .seed = 1 };
}

static struct mp_sampler *make(const struct mp_sampler_params *p, uint32_t n)
{
	struct mp_sampler *s = NULL;
	char err[200] = "";
	int rc = mp_sampler_create(p, n, &s, err, sizeof err);
	if (rc)
		MP_TEST_FAIL("mp_sampler_create: %s", err);
	return s;
}

/* Survivors of the chain on logits l[5]; want[i] = expected probability of
 * token i (0 = filtered out). */
static void expect_probs(const struct mp_sampler_params *p, const float *l, const double *want)
{
	struct mp_sampler *s = make(p, 5);
	if (!s)
		return;
	int32_t ids[5];
	float pr[5];
	size_t n = mp_sampler_probs(s, l, ids, pr, 5);
	size_t nwant = 0;
	for (int i = 0; i < 5; i++)
		nwant += want[i] > 0;
	CHECK_EQ_U64(n, nwant);
	for (size_t i = 0; i < n && i < 5; i++)
		CHECK_NEAR(pr[i], want[ids[i]], 1e-5);
	mp_sampler_destroy(s);
}

static void test_greedy_is_argmax(void)
{
	struct mp_sampler_params p = plain();
	p.temperature = 0.0f;
	float l[5] = { 0.5f, 3.0f, -1.0f, 3.0f, 2.9f };
	struct mp_sampler *s = make(&p, 5);
	REQUIRE(s);
	for (int i = 0; i < 10; i++)
		CHECK_EQ_INT(mp_sampler_sample(s, l), 1);   /* tie 1 vs 3: lower id */
	l[3] = 3.5f;
	CHECK_EQ_INT(mp_sampler_sample(s, l), 3);
	int32_t id;
	float pr;
	CHECK_EQ_U64(mp_sampler_probs(s, l, &id, &pr, 1), 1);
	CHECK_EQ_INT(id, 3);
	CHECK_NEAR(pr, 1.0, 0);
	mp_sampler_destroy(s);
	/* Negative temperature is greedy too. */
	p.temperature = -1.0f;
	s = make(&p, 5);
	REQUIRE(s);
	CHECK_EQ_INT(mp_sampler_sample(s, l), 3);
	mp_sampler_destroy(s);
}

/* A banned token (--ignore-eos) is never chosen, greedy or sampled, even
 * when it holds all the probability; lifting the ban restores it. */
static void test_ban(void)
{
	struct mp_sampler_params p = plain();
	p.temperature = 0.0f;
	float l[4] = { 0.0f, 9.0f, 1.0f, -2.0f };
	struct mp_sampler *s = make(&p, 4);
	REQUIRE(s);
	CHECK_EQ_INT(mp_sampler_sample(s, l), 1);
	mp_sampler_ban(s, 1);
	CHECK_EQ_INT(mp_sampler_sample(s, l), 2);
	mp_sampler_ban(s, -1);
	CHECK_EQ_INT(mp_sampler_sample(s, l), 1);
	mp_sampler_destroy(s);
	p.temperature = 1.0f;
	p.seed = 5;
	s = make(&p, 4);
	REQUIRE(s);
	mp_sampler_ban(s, 1);
	for (int i = 0; i < 200; i++)
		CHECK(mp_sampler_sample(s, l) != 1);
	mp_sampler_destroy(s);
}

static void test_filters(void)
{
	float l[5];
	logits5(l, 0.0f);
	struct mp_sampler_params p = plain();
	expect_probs(&p, l, P5);                       /* no filter: the distribution */
	p.top_k = 2;
	expect_probs(&p, l, (double[5]){ 0.4 / 0.7, 0.3 / 0.7, 0, 0, 0 });
	p.top_k = 0;
	p.top_p = 0.65f;                                /* 0.4 < 0.65 <= 0.7 */
	expect_probs(&p, l, (double[5]){ 0.4 / 0.7, 0.3 / 0.7, 0, 0, 0 });
	p.top_p = 0.75f;                                /* needs 0.85 */
	expect_probs(&p, l, (double[5]){ 0.4 / 0.85, 0.3 / 0.85, 0.15 / 0.85, 0, 0 });
	p.top_p = 0.3f;
	expect_probs(&p, l, (double[5]){ 1, 0, 0, 0, 0 });
	p.top_p = 1.0f;
	p.min_p = 0.3f;                                 /* p >= 0.12 */
	expect_probs(&p, l, (double[5]){ 0.4 / 0.85, 0.3 / 0.85, 0.15 / 0.85, 0, 0 });
	p.min_p = 0.5f;                                 /* p >= 0.2 */
	expect_probs(&p, l, (double[5]){ 0.4 / 0.7, 0.3 / 0.7, 0, 0, 0 });
	p.min_p = 0.0f;
	p.temperature = 0.5f;                           /* p^2 renormalized */
	double sq = 0.16 + 0.09 + 0.0225 + 0.01 + 0.0025;
	expect_probs(&p, l, (double[5]){ 0.16 / sq, 0.09 / sq, 0.0225 / sq, 0.01 / sq, 0.0025 / sq });
	/* Filters see temperature-1 probabilities: at T = 2, top-p 0.65 still
	 * keeps two, which then get sqrt-flattened. */
	p.temperature = 2.0f;
	p.top_p = 0.65f;
	double a = sqrt(0.4), b = sqrt(0.3);
	expect_probs(&p, l, (double[5]){ a / (a + b), b / (a + b), 0, 0, 0 });
	/* Combined: top-k 4, top-p 0.8 (0.4/0.95, 0.7/0.95=0.737, 0.85/0.95=0.895). */
	p.temperature = 1.0f;
	p.top_k = 4;
	p.top_p = 0.8f;
	expect_probs(&p, l, (double[5]){ 0.4 / 0.85, 0.3 / 0.85, 0.15 / 0.85, 0, 0 });
}

/* Rank order of the sampler: logit descending, then id ascending. */
static const float *naive_l;

static int naive_cmp(const void *pa, const void *pb)
{
	int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
	if (naive_l[a] != naive_l[b])
		return naive_l[a] > naive_l[b] ? -1 : 1;
	return a < b ? -1 : 1;
}

/* top-k then top-p on a large vocabulary (the quickselect and heap paths)
 * against a plain sort-and-scan reference. */
static void test_filters_match_naive(void)
{
	enum { V = 6000 };
	float *l = mp_malloc_array(V, sizeof *l);
	int32_t *order = mp_malloc_array(V, sizeof *order), *ids = mp_malloc_array(V, sizeof *ids);
	float *pr = mp_malloc_array(V, sizeof *pr);
	REQUIRE(l && order && ids && pr);
	struct mp_rng r;
	mp_rng_seed(&r, 77);
	static const float ps[] = { 0.1f, 0.5f, 0.9f, 0.95f, 0.999f };
	static const int ks[] = { 0, 7, 100, 5999 };
	for (int trial = 0; trial < 4; trial++) {
		for (int i = 0; i < V; i++)   /* ties on purpose: quantized logits */
			l[i] = (float)floor(mp_rng_normal(&r) * (1.0 + trial) * 8.0) / 8.0f;
		for (size_t pi = 0; pi < sizeof ps / sizeof ps[0]; pi++) {
			for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
				struct mp_sampler_params p = plain();
				p.top_p = ps[pi];
				p.top_k = ks[ki];
				struct mp_sampler *s = make(&p, V);
				REQUIRE(s);
				size_t n = mp_sampler_probs(s, l, ids, pr, V);
				mp_sampler_destroy(s);
				/* Reference. */
				for (int i = 0; i < V; i++)
					order[i] = i;
				naive_l = l;
				qsort(order, V, sizeof *order, naive_cmp);
				size_t kept = ks[ki] > 0 ? (size_t)ks[ki] : V;
				double m = l[order[0]], sum = 0, cum = 0;
				for (size_t i = 0; i < kept; i++)
					sum += exp(l[order[i]] - m);
				size_t want = kept;
				for (size_t i = 0; i < kept; i++) {
					cum += exp(l[order[i]] - m);
					if (cum >= ps[pi] * sum) {
						want = i + 1;
						break;
					}
				}
				CHECK_EQ_U64(n, want);
				int same = n == want;
				for (size_t i = 0; same && i < n; i++)
					same = ids[i] == order[i];
				if (!same)
					MP_TEST_FAIL("trial %d top_p %.3f top_k %d: survivors differ", trial,
						     (double)ps[pi], ks[ki]);
			}
		}
	}
	mp_free(l);
	mp_free(order);
	mp_free(ids);
	mp_free(pr);
}

static void test_penalties(void)
{
	float l[5];
	struct mp_sampler_params p = plain();
	p.repeat_penalty = 2.0f;
	struct mp_sampler *s = make(&p, 5);
	REQUIRE(s);
	int32_t ids[5];
	float pr[5];
	/* Negative logit is multiplied: ln 0.4 * 2 -> 0.16 relative weight. */
	logits5(l, 0.0f);
	mp_sampler_accept(s, 0);
	mp_sampler_accept(s, 0);   /* the repeat penalty does not depend on count */
	CHECK_EQ_U64(mp_sampler_probs(s, l, ids, pr, 5), 5);
	double w0 = 0.16, rest = 0.3 + 0.15 + 0.1 + 0.05;
	for (int i = 0; i < 5; i++)
		if (ids[i] == 0)
			CHECK_NEAR(pr[i], w0 / (w0 + rest), 1e-5);
	/* Positive logit is divided. */
	float q[5] = { 4.0f, 3.0f, 0, 0, 0 };
	CHECK_EQ_U64(mp_sampler_probs(s, q, ids, pr, 5), 5);
	double e0 = exp(2.0), e1 = exp(3.0), z = e0 + e1 + 3.0;
	CHECK_EQ_INT(ids[0], 1);
	CHECK_NEAR(pr[0], e1 / z, 1e-5);
	CHECK_NEAR(pr[1], e0 / z, 1e-5);
	mp_sampler_destroy(s);
	/* Frequency and presence: minus count*freq + present. */
	p = plain();
	p.freq_penalty = 0.5f;
	p.presence_penalty = 0.25f;
	p.temperature = 0.0f;
	s = make(&p, 5);
	REQUIRE(s);
	float r[5] = { 1.0f, 0.1f, 0, 0, 0 };
	CHECK_EQ_INT(mp_sampler_sample(s, r), 0);
	mp_sampler_accept(s, 0);   /* 1.0 - 0.5 - 0.25 = 0.25 > 0.1 */
	CHECK_EQ_INT(mp_sampler_sample(s, r), 0);
	mp_sampler_accept(s, 0);   /* 1.0 - 1.0 - 0.25 < 0.1 */
	CHECK_EQ_INT(mp_sampler_sample(s, r), 1);
	/* reset forgets the history. */
	mp_sampler_reset(s, 7);
	CHECK_EQ_INT(mp_sampler_sample(s, r), 0);
	mp_sampler_destroy(s);
	/* Only the last penalty_last_n tokens count. */
	p = plain();
	p.repeat_penalty = 100.0f;
	p.penalty_last_n = 2;
	p.temperature = 0.0f;
	s = make(&p, 5);
	REQUIRE(s);
	float t[5] = { 5.0f, 4.0f, 3.0f, 0, 0 };
	mp_sampler_accept(s, 0);
	mp_sampler_accept(s, 1);
	CHECK_EQ_INT(mp_sampler_sample(s, t), 2);
	mp_sampler_accept(s, 2);   /* 0 leaves the window */
	CHECK_EQ_INT(mp_sampler_sample(s, t), 0);
	mp_sampler_destroy(s);
}

static void test_same_seed_same_sequence(void)
{
	enum { V = 1000, STEPS = 200 };
	struct mp_sampler_params p;
	mp_sampler_params_r1(&p);
	p.seed = 42;
	struct mp_sampler *a = make(&p, V), *b = make(&p, V);
	p.seed = 43;
	struct mp_sampler *c = make(&p, V);
	REQUIRE(a && b && c);
	float *l = mp_malloc_array(V, sizeof *l);
	REQUIRE(l);
	struct mp_rng r;
	mp_rng_seed(&r, 5);
	int same_ab = 1, same_ac = 1;
	for (int step = 0; step < STEPS; step++) {
		for (int i = 0; i < V; i++)
			l[i] = (float)mp_rng_normal(&r) * 2.0f;
		int32_t x = mp_sampler_sample(a, l), y = mp_sampler_sample(b, l), z = mp_sampler_sample(c, l);
		same_ab &= x == y;
		same_ac &= x == z;
	}
	CHECK(same_ab);
	CHECK(!same_ac);
	/* reset with the seed replays the sequence. */
	mp_sampler_reset(a, 42);
	mp_sampler_reset(b, 42);
	for (int i = 0; i < V; i++)
		l[i] = (float)mp_rng_normal(&r);
	for (int step = 0; step < 20; step++)
		CHECK_EQ_INT(mp_sampler_sample(a, l), mp_sampler_sample(b, l));
	mp_free(l);
	mp_sampler_destroy(a);
	mp_sampler_destroy(b);
	mp_sampler_destroy(c);
}

/* Draw frequencies match the filtered distribution: chi-square with the
 * survivors as bins.  Seeded, so the outcome is fixed; the bound is the
 * 0.1% critical value for 9 degrees of freedom (27.9), rounded up. */
static void test_frequencies(void)
{
	enum { V = 12, DRAWS = 40000 };
	float l[V] = { 2.0f, 1.7f, 1.5f, 1.0f, 0.9f, 0.5f, 0.0f, -0.5f, -1.0f, -2.0f, -3.0f, -6.0f };
	struct mp_sampler_params p = plain();
	p.temperature = 0.7f;
	p.top_k = 10;
	p.top_p = 0.97f;
	p.min_p = 0.02f;
	p.seed = 2024;
	struct mp_sampler *s = make(&p, V);
	REQUIRE(s);
	int32_t ids[V];
	float pr[V];
	size_t n = mp_sampler_probs(s, l, ids, pr, V);
	CHECK(n >= 5 && n < 10);   /* the filters cut something */
	double want[V] = { 0 };
	for (size_t i = 0; i < n; i++)
		want[ids[i]] = pr[i];
	long count[V] = { 0 };
	for (int d = 0; d < DRAWS; d++) {
		int32_t id = mp_sampler_sample(s, l);
		REQUIRE(id >= 0 && id < V);
		count[id]++;
	}
	double chi2 = 0;
	for (int i = 0; i < V; i++) {
		if (want[i] == 0) {
			CHECK_EQ_INT(count[i], 0);   /* filtered tokens never come */
			continue;
		}
		double e = want[i] * DRAWS;
		chi2 += (count[i] - e) * (count[i] - e) / e;
	}
	printf("  %zu survivors, chi-square %.2f over %d draws\n", n, chi2, DRAWS);
	CHECK(chi2 < 30.0);
	mp_sampler_destroy(s);
}

/* R1 defaults on a vocabulary of R1's size: the draw is one of top-p's survivors. */
static void test_r1_defaults_full_vocab(void)
{
	enum { V = 129280 };
	struct mp_sampler_params p;
	mp_sampler_params_r1(&p);
	CHECK_NEAR(p.temperature, 0.6, 1e-7);
	CHECK_NEAR(p.top_p, 0.95, 1e-7);
	CHECK_NEAR(p.repeat_penalty, 1.0, 0);
	struct mp_sampler *s = make(&p, V);
	float *l = mp_malloc_array(V, sizeof *l);
	int32_t *ids = mp_malloc_array(V, sizeof *ids);
	float *pr = mp_malloc_array(V, sizeof *pr);
	REQUIRE(s && l && ids && pr);
	struct mp_rng r;
	mp_rng_seed(&r, 9);
	for (int i = 0; i < V; i++)
		l[i] = (float)mp_rng_normal(&r) * 3.0f;
	size_t n = mp_sampler_probs(s, l, ids, pr, V);
	CHECK(n >= 1 && n < V);
	double sum = 0;
	for (size_t i = 0; i < n; i++) {
		sum += pr[i];
		if (i)
			CHECK(pr[i] <= pr[i - 1]);
	}
	CHECK_NEAR(sum, 1.0, 1e-4);
	for (int k = 0; k < 5; k++) {
		int32_t id = mp_sampler_sample(s, l);
		int found = 0;
		for (size_t i = 0; i < n && !found; i++)
			found = ids[i] == id;
		CHECK(found);
	}
	mp_free(l);
	mp_free(ids);
	mp_free(pr);
	mp_sampler_destroy(s);
}

static void test_bad_params(void)
{
	struct mp_sampler *s = NULL;
	char err[200] = "";
	struct mp_sampler_params p = plain();
	p.top_p = 0.0f;
	CHECK_EQ_INT(mp_sampler_create(&p, 5, &s, err, sizeof err), -MP_EARG);
	CHECK(s == NULL);
	CHECK_CONTAINS(err, "--top-p");
	p = plain();
	p.min_p = 1.5f;
	CHECK_EQ_INT(mp_sampler_create(&p, 5, &s, err, sizeof err), -MP_EARG);
	CHECK_CONTAINS(err, "--min-p");
	p = plain();
	p.temperature = NAN;
	CHECK_EQ_INT(mp_sampler_create(&p, 5, &s, err, sizeof err), -MP_EARG);
	CHECK_CONTAINS(err, "--temp");
	p = plain();
	p.repeat_penalty = 0.0f;
	CHECK_EQ_INT(mp_sampler_create(&p, 5, &s, err, sizeof err), -MP_EARG);
	CHECK_CONTAINS(err, "--repeat-penalty");
	p = plain();
	CHECK_EQ_INT(mp_sampler_create(&p, 0, &s, err, sizeof err), -MP_EARG);
	CHECK_CONTAINS(err, "vocabulary size");
	/* NaN logits never win. */
	p.temperature = 0.0f;
	s = make(&p, 3);
	REQUIRE(s);
	float l[3] = { NAN, -1.0f, NAN };
	CHECK_EQ_INT(mp_sampler_sample(s, l), 1);
	mp_sampler_destroy(s);
	mp_sampler_destroy(NULL);
}

static void test_no_leaks(void)
{
	struct mp_alloc_stats st;
	mp_alloc_stats(&st);
	CHECK_EQ_U64(st.live_count, 0);
}

int main(void)
{
	RUN(test_greedy_is_argmax);
	RUN(test_ban);
	RUN(test_filters);
	RUN(test_filters_match_naive);
	RUN(test_penalties);
	RUN(test_same_seed_same_sequence);
	RUN(test_frequencies);
	RUN(test_r1_defaults_full_vocab);
	RUN(test_bad_params);
	RUN(test_no_leaks);
	return mp_test_end();
}
