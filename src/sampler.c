/*
 * sampler.c — the sampling chain of sampler.h.
 *
 * Invariants:
 *  1. Between steps of one chain run, cand[0..n) holds the survivors; before
 *     the filters it is in id order (so penalties index it by id).
 *  2. Candidates compare by logit descending, then id ascending: every
 *     selection, sort and argmax uses this one order, so results never depend
 *     on qsort's instability.
 *  3. The history ring holds the last min(accepted, penalty_last_n) tokens.
 *
 * top-p and min-p see the distribution at temperature 1 (llama.cpp applies
 * temperature after them).  top-p avoids sorting the whole vocabulary: a
 * weighted quickselect finds the cut in expected linear time.
 */
#include "sampler.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "rng.h"

struct cand {
	float logit;   /* after the steps applied so far */
	float w;       /* top-p scratch: exp(logit - max logit) */
	int32_t id;
};

struct mp_sampler {
	/* Fixed at create. */
	struct mp_sampler_params p;
	uint32_t n_vocab;        /* logits per call */
	int32_t banned;          /* a token never chosen (--ignore-eos), or -1 */
	/* Changes every step. */
	struct cand *cand;       /* [n_vocab] working candidates */
	struct cand *heap;       /* [n_vocab] top-k scratch */
	size_t n;                /* survivors in cand */
	int32_t *hist;           /* [penalty_last_n] ring of accepted tokens */
	uint32_t hist_n;         /* valid entries, <= penalty_last_n */
	uint32_t hist_pos;       /* next slot to write */
	struct mp_rng rng;
};

void mp_sampler_params_r1(struct mp_sampler_params *p)
{
	*p = (struct mp_sampler_params){
		.temperature = 0.6f, .top_k = 0, .top_p = 0.95f, .min_p = 0.01f,
		.repeat_penalty = 1.0f, .penalty_last_n = 64, .seed = 0,
	};
}

void mp_sampler_params_llama(struct mp_sampler_params *p)
{
	*p = (struct mp_sampler_params){
		.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
		.repeat_penalty = 1.0f, .penalty_last_n = 64, .seed = 0,
	};
}

static int bad(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -MP_EARG;
}

int mp_sampler_create(const struct mp_sampler_params *p, uint32_t n_vocab,
		      struct mp_sampler **out, char *err, size_t errlen)
{
	*out = NULL;
	if (n_vocab == 0 || n_vocab > (uint32_t)INT32_MAX)
		return bad(err, errlen, "sampler: vocabulary size: expected 1..%d, found %u", INT32_MAX, n_vocab);
	if (!isfinite(p->temperature))
		return bad(err, errlen, "--temp: expected a finite number, found %g", (double)p->temperature);
	if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
		return bad(err, errlen, "--top-p: expected a value in (0, 1], found %g", (double)p->top_p);
	if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
		return bad(err, errlen, "--min-p: expected a value in [0, 1], found %g", (double)p->min_p);
	if (!(p->repeat_penalty > 0.0f) || !isfinite(p->repeat_penalty))
		return bad(err, errlen, "--repeat-penalty: expected a value > 0, found %g", (double)p->repeat_penalty);
	if (!isfinite(p->freq_penalty) || !isfinite(p->presence_penalty))
		return bad(err, errlen, "--frequency-penalty/--presence-penalty: expected finite numbers");
	if (p->penalty_last_n < 0)
		return bad(err, errlen, "--repeat-last-n: expected >= 0, found %d", p->penalty_last_n);
	struct mp_sampler *s = mp_calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->p = *p;
	s->n_vocab = n_vocab;
	s->cand = mp_malloc_array(n_vocab, sizeof *s->cand);
	s->heap = mp_malloc_array(n_vocab, sizeof *s->heap);
	s->hist = mp_malloc_array(p->penalty_last_n ? (size_t)p->penalty_last_n : 1, sizeof *s->hist);
	if (!s->cand || !s->heap || !s->hist) {
		mp_sampler_destroy(s);
		return -ENOMEM;
	}
	mp_rng_seed(&s->rng, p->seed);
	s->banned = -1;
	*out = s;
	return 0;
}

void mp_sampler_destroy(struct mp_sampler *s)
{
	if (!s)
		return;
	mp_free(s->cand);
	mp_free(s->heap);
	mp_free(s->hist);
	mp_free(s);
}

void mp_sampler_accept(struct mp_sampler *s, int32_t id)
{
	uint32_t cap = (uint32_t)s->p.penalty_last_n;
	if (!cap)
		return;
	s->hist[s->hist_pos] = id;
	s->hist_pos = (s->hist_pos + 1) % cap;
	if (s->hist_n < cap)
		s->hist_n++;
}

void mp_sampler_reset(struct mp_sampler *s, uint64_t seed)
{
	s->hist_n = 0;
	s->hist_pos = 0;
	mp_rng_seed(&s->rng, seed);
}

/* Invariant 2: a ranks before b. */
static bool better(const struct cand *a, const struct cand *b)
{
	return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cmp_cand(const void *pa, const void *pb)
{
	const struct cand *a = pa, *b = pb;
	return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

/* Penalties (llama.cpp): for each token seen with count c in the history,
 * logit <= 0 ? logit * repeat : logit / repeat, then - c*freq - present. */
static void apply_penalties(struct mp_sampler *s)
{
	const struct mp_sampler_params *p = &s->p;
	if (!s->hist_n || (p->repeat_penalty == 1.0f && p->freq_penalty == 0.0f && p->presence_penalty == 0.0f))
		return;
	for (uint32_t i = 0; i < s->hist_n; i++) {
		int32_t id = s->hist[i];
		if (id < 0 || (uint32_t)id >= s->n_vocab)
			continue;
		/* Count it once, at its first occurrence in the ring. */
		bool first = true;
		for (uint32_t k = 0; k < i && first; k++)
			first = s->hist[k] != id;
		if (!first)
			continue;
		uint32_t count = 0;
		for (uint32_t k = i; k < s->hist_n; k++)
			count += s->hist[k] == id;
		float *l = &s->cand[id].logit;
		*l = *l <= 0.0f ? *l * p->repeat_penalty : *l / p->repeat_penalty;
		*l -= (float)count * p->freq_penalty + p->presence_penalty;
	}
}

/* Keeps the k best of cand[0..n) (unsorted) with a k-entry min-heap. */
static void top_k(struct mp_sampler *s, size_t k)
{
	struct cand *h = s->heap;
	size_t hn = 0;
	for (size_t i = 0; i < s->n; i++) {
		struct cand c = s->cand[i];
		size_t j;
		if (hn < k) {
			/* Sift up: the worst candidate stays at the root. */
			for (j = hn++; j > 0 && better(&h[(j - 1) / 2], &c); j = (j - 1) / 2)
				h[j] = h[(j - 1) / 2];
			h[j] = c;
			continue;
		}
		if (!better(&c, &h[0]))
			continue;
		for (j = 0;;) {
			size_t ch = 2 * j + 1;
			if (ch >= hn)
				break;
			if (ch + 1 < hn && better(&h[ch], &h[ch + 1]))
				ch++;
			if (!better(&c, &h[ch]))
				break;
			h[j] = h[ch];
			j = ch;
		}
		h[j] = c;
	}
	memcpy(s->cand, h, hn * sizeof *h);
	s->n = hn;
}

static float max_logit(const struct mp_sampler *s)
{
	float m = -INFINITY;
	for (size_t i = 0; i < s->n; i++)
		if (s->cand[i].logit > m)
			m = s->cand[i].logit;
	return m;
}

static void swap_cand(struct cand *a, struct cand *b)
{
	struct cand t = *a;
	*a = *b;
	*b = t;
}

/* Partitions c[lo..hi) (hi - lo >= 3) around a median-of-three pivot:
 * returns k with c[lo..k) ranked before c[k] and c(k..hi) after it. */
static size_t partition(struct cand *c, size_t lo, size_t hi)
{
	size_t mid = lo + (hi - lo) / 2, last = hi - 1;
	if (better(&c[mid], &c[lo]))
		swap_cand(&c[mid], &c[lo]);
	if (better(&c[last], &c[lo]))
		swap_cand(&c[last], &c[lo]);
	if (better(&c[mid], &c[last]))
		swap_cand(&c[mid], &c[last]);   /* the median now sits at last */
	size_t k = lo;
	for (size_t i = lo; i < last; i++)
		if (better(&c[i], &c[last]))
			swap_cand(&c[i], &c[k++]);
	swap_cand(&c[k], &c[last]);
	return k;
}

/* Keeps the smallest rank-order prefix whose probability reaches p, found by
 * a weighted quickselect (expected linear time, no full sort); the kept
 * candidates end up in cand[0..n), in no particular order. */
static void top_p(struct mp_sampler *s, float p)
{
	struct cand *c = s->cand;
	float m = max_logit(s);
	if (!isfinite(m))
		return;
	double sum = 0;
	for (size_t i = 0; i < s->n; i++) {
		c[i].w = expf(c[i].logit - m);
		sum += c[i].w;
	}
	double target = (double)p * sum, above = 0;   /* mass of c[0..lo) */
	size_t lo = 0, hi = s->n;
	while (hi - lo > 32) {
		size_t k = partition(c, lo, hi);
		double mass = 0;
		for (size_t i = lo; i < k; i++)
			mass += c[i].w;
		if (above + mass >= target) {
			hi = k;
		} else if (above + mass + c[k].w >= target) {
			s->n = k + 1;
			return;
		} else {
			above += mass + c[k].w;
			lo = k + 1;
		}
	}
	qsort(c + lo, hi - lo, sizeof *c, cmp_cand);
	for (size_t i = lo; i < hi; i++) {
		above += c[i].w;
		if (above >= target) {
			s->n = i + 1;
			return;
		}
	}
	/* Rounding left the whole mass just short of p * sum: keep everything. */
}

/* Keeps p >= min_p * p_max, i.e. logit >= max + ln(min_p); order kept. */
static void min_p(struct mp_sampler *s, float mp)
{
	float thr = max_logit(s) + logf(mp);
	size_t w = 0;
	for (size_t i = 0; i < s->n; i++)
		if (s->cand[i].logit >= thr)
			s->cand[w++] = s->cand[i];
	if (w)
		s->n = w;
}

/* Runs the chain on logits; leaves the survivors in cand[0..n) with their
 * final logits.  Greedy leaves exactly the argmax. */
static void chain(struct mp_sampler *s, const float *logits)
{
	const struct mp_sampler_params *p = &s->p;
	for (uint32_t i = 0; i < s->n_vocab; i++)
		s->cand[i] = (struct cand){ isnan(logits[i]) ? -INFINITY : logits[i], 0.0f, (int32_t)i };
	s->n = s->n_vocab;
	if (s->banned >= 0)
		s->cand[s->banned].logit = -INFINITY;
	apply_penalties(s);
	if (p->temperature <= 0.0f) {
		size_t best = 0;
		for (size_t i = 1; i < s->n; i++)
			if (better(&s->cand[i], &s->cand[best]))
				best = i;
		s->cand[0] = s->cand[best];
		s->n = 1;
		return;
	}
	if (p->top_k > 0 && (size_t)p->top_k < s->n)
		top_k(s, (size_t)p->top_k);
	if (p->top_p < 1.0f)
		top_p(s, p->top_p);
	if (p->min_p > 0.0f)
		min_p(s, p->min_p);
	for (size_t i = 0; i < s->n; i++)
		s->cand[i].logit /= p->temperature;
}

void mp_sampler_ban(struct mp_sampler *s, int32_t id)
{
	s->banned = id >= 0 && (uint32_t)id < s->n_vocab ? id : -1;
}

int32_t mp_sampler_sample(struct mp_sampler *s, const float *logits)
{
	chain(s, logits);
	if (s->n == 1)
		return s->cand[0].id;
	float m = max_logit(s);
	if (!isfinite(m)) {
		/* Nothing is possible: the lowest-ranked rule still picks one. */
		qsort(s->cand, s->n, sizeof *s->cand, cmp_cand);
		return s->cand[0].id;
	}
	double sum = 0;
	for (size_t i = 0; i < s->n; i++)
		sum += exp((double)(s->cand[i].logit - m));
	double u = mp_rng_uniform(&s->rng) * sum, cum = 0;
	for (size_t i = 0; i < s->n; i++) {
		cum += exp((double)(s->cand[i].logit - m));
		if (u < cum)
			return s->cand[i].id;
	}
	/* u fell into the rounding gap at the top: the last candidate. */
	return s->cand[s->n - 1].id;
}

size_t mp_sampler_probs(struct mp_sampler *s, const float *logits, int32_t *ids, float *probs,
			size_t cap)
{
	chain(s, logits);
	qsort(s->cand, s->n, sizeof *s->cand, cmp_cand);
	float m = max_logit(s);
	double sum = 0;
	for (size_t i = 0; i < s->n; i++)
		sum += isfinite(m) ? exp((double)(s->cand[i].logit - m)) : 1.0;
	for (size_t i = 0; i < s->n && i < cap; i++) {
		ids[i] = s->cand[i].id;
		probs[i] = (float)((isfinite(m) ? exp((double)(s->cand[i].logit - m)) : 1.0) / sum);
	}
	return s->n;
}
