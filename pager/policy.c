/*
 * policy.c — eviction policies behind the pager's hook (policy.h): LRU, LFU,
 * moepager's learned policy, and Belady's clairvoyant optimum for the
 * simulator.
 *
 * The moepager policy, in one paragraph (docs/policy.md has the figures).
 * For each layer it keeps a logistic model that predicts, for every expert j,
 * y_j = "j is used within the next H tokens of this layer" from
 *     z_j = b_j + Σ_{i ∈ S_t} W[i][j] + Σ_{i ∈ X_t} V[i][j] + Σ_f a_f · 4·freq_f[j]
 * where S_t is the set the layer just used, X_t the set the layer below used
 * for the same token, and freq_f three exponentially decayed use frequencies
 * (time scales set by decay[]).  keep_score = σ(z_j).  Every prediction is
 * kept for H ticks of its layer; when its outcome is known it takes one SGD
 * step on the log loss (the stored probability stands in for σ(z) under the
 * current weights: a delayed gradient, which saves recomputing 64 dot
 * products and made no measurable difference).  Nothing looks ahead.
 *
 * Invariants (moepager state, per layer l):
 *   P1. tick[l] counts the on_access() calls of layer l ever made.
 *   P2. ring slot q holds the prediction made at tick rt[q] ≡ q (mod H), or
 *       rt[q] < 0 when empty; a slot is consumed (trained on) exactly when
 *       tick reaches rt[q] + H, just before it is overwritten.
 *   P3. last_use[j] is the tick of j's last use, or NEVER.
 *   P4. prob = the ring slot of the last prediction (σ(z_j) per expert), or
 *       half (all 0.5) before the first access of the sequence.
 *   P5. n_hints > 0 only between a hint and the layer's next access; then
 *       hinted[j] = max(prob[j], hints for j) and the scores come from it.
 * Belady:
 *   B1. cursor[l] is the trace token whose set layer l is given next.
 *   B2. next_use[u] is the token (relative to the first of the range) of the
 *       next use of use u's expert in its layer, or UINT32_MAX if none (in
 *       cold mode: none before the sequence ends).
 *   B3. score[l][e] = −(next use of e after its last use), −∞ if none;
 *       last_tok[l][e] = that last use (relative token).  With a lookahead D
 *       the keep score is derived from both and the layer's current token
 *       cursor[l] − 1, which changes only in on_access(l).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "policy.h"
#include "trace.h"

#define NF 3                     /* frequency features */
#define VB 8                     /* floats per vector block; ep is a multiple */
#define FEATURE_SCALE 4.0f       /* brings freq (≈ top_k/experts) near 1 */
#define NEVER (-((int64_t)1 << 40))

/* The moepager model and history of one layer. */
struct mp_layer {
	/* learned (kept across sequences) */
	float *w;        /* [experts][experts] S_t → next-use logit */
	float *v;        /* [experts][experts] X_t → next-use logit, or NULL */
	float *b;        /* [experts] bias */
	float a[NF];     /* weights of the frequency features */
	/* history (forgotten by on_sequence) */
	float *freq;     /* [NF][experts] decayed use frequency, 0..1 */
	int64_t *last_use; /* [experts] tick of the last use, or NEVER */
	uint64_t tick;   /* on_access calls so far */
	uint32_t *set;   /* [top_k] the last set (for the layer above's X) */
	uint32_t set_n;  /* its size, 0 = none this sequence */
	/* ring of pending predictions, [horizon] slots */
	int64_t *rt;     /* [H] tick of the prediction, -1 = empty */
	uint32_t *rs;    /* [H][top_k] its S_t */
	uint32_t *rs_n;  /* [H] */
	uint32_t *rx;    /* [H][top_k] its X_t */
	uint32_t *rx_n;  /* [H] */
	float *rf;       /* [H][NF][experts] its features */
	float *rp;       /* [H][experts] its probabilities */
	const float *prob; /* [experts] current keep scores: the newest rp slot, or half */
	float *half;     /* [experts] 0.5: the scores before any access */
	float *hinted;   /* [experts] max(prob, hints) when n_hints > 0 */
	uint32_t n_hints; /* hints since the last access */
};

struct mp_policy {
	/* fixed at create */
	enum mp_policy_kind kind;
	uint32_t layers, experts, top_k;   /* shape */
	uint32_t ep;                       /* experts rounded up to VB: row stride of the model */
	struct mp_policy_params prm;       /* moepager knobs */
	/* lru, lfu, belady */
	double *score;                     /* [layers][experts] keep score */
	uint64_t clock;                    /* lru: uses so far */
	/* moepager */
	struct mp_layer *ml;               /* [layers] */
	float *grad;                       /* [experts] scratch of moe_learn */
	/* belady */
	const struct mp_trace *trace;      /* the replayed trace */
	uint64_t first_token, end_token;   /* the replayed token range */
	uint32_t *next_use;                /* per use of the range (B2) */
	uint64_t *cursor;                  /* [layers] (B1) */
	uint32_t *last_tok;                /* [layers][experts] (B3) */
	uint32_t lookahead;                /* tokens of foresight, 0 = all */
	int desync;                        /* on_access disagreed with the trace */
	char error[256];                   /* last save/load error */
};

void mp_policy_params_default(struct mp_policy_params *out)
{
	/* Tuned on sequences 0-299 of the reference trace at 27 % (docs/policy.md). */
	out->horizon = 4;
	out->learn_rate = 0.01f;
	out->feature_rate = 1.0f;
	out->decay[0] = 0.5f;
	out->decay[1] = 0.9f;
	out->decay[2] = 0.98f;
	out->cross_layer = 1;
}

static const char *const kind_names[MP_POLICY_COUNT] = { "lru", "lfu", "moepager", "belady" };

const char *mp_policy_name(enum mp_policy_kind kind)
{
	return (unsigned)kind < MP_POLICY_COUNT ? kind_names[kind] : "?";
}

int mp_policy_parse(const char *name, enum mp_policy_kind *out)
{
	for (int k = 0; k < MP_POLICY_COUNT; k++)
		if (strcmp(name, kind_names[k]) == 0) {
			*out = (enum mp_policy_kind)k;
			return 0;
		}
	return -MP_EARG;
}

enum mp_policy_kind mp_policy_kind(const struct mp_policy *p)
{
	return p->kind;
}

int mp_policy_desynced(const struct mp_policy *p)
{
	return p->desync;
}

static void layer_free(struct mp_layer *m)
{
	mp_free(m->w);
	mp_free(m->v);
	mp_free(m->b);
	mp_free(m->freq);
	mp_free(m->last_use);
	mp_free(m->set);
	mp_free(m->rt);
	mp_free(m->rs);
	mp_free(m->rs_n);
	mp_free(m->rx);
	mp_free(m->rx_n);
	mp_free(m->rf);
	mp_free(m->rp);
	mp_free(m->half);
	mp_free(m->hinted);
}

void mp_policy_destroy(struct mp_policy *p)
{
	if (!p)
		return;
	if (p->ml)
		for (uint32_t l = 0; l < p->layers; l++)
			layer_free(&p->ml[l]);
	mp_free(p->ml);
	mp_free(p->grad);
	mp_free(p->score);
	mp_free(p->next_use);
	mp_free(p->cursor);
	mp_free(p->last_tok);
	mp_free(p);
}

/* Forgets a layer's history (not its model). */
static void layer_forget(struct mp_policy *p, struct mp_layer *m)
{
	uint32_t e = p->ep, h = p->prm.horizon;
	memset(m->freq, 0, sizeof(float) * NF * e);
	for (uint32_t j = 0; j < e; j++)
		m->last_use[j] = NEVER;
	m->prob = m->half;
	m->n_hints = 0;
	for (uint32_t q = 0; q < h; q++)
		m->rt[q] = -1;
	m->set_n = 0;
}

static int layer_init(struct mp_policy *p, struct mp_layer *m)
{
	size_t e = p->ep, k = p->top_k, h = p->prm.horizon;
	m->w = mp_calloc(e * e, sizeof(float));
	m->v = p->prm.cross_layer ? mp_calloc(e * e, sizeof(float)) : NULL;
	m->b = mp_calloc(e, sizeof(float));
	m->freq = mp_calloc(NF * e, sizeof(float));
	m->last_use = mp_calloc(e, sizeof(int64_t));
	m->set = mp_calloc(k, sizeof(uint32_t));
	m->rt = mp_calloc(h, sizeof(int64_t));
	m->rs = mp_calloc(h * k, sizeof(uint32_t));
	m->rs_n = mp_calloc(h, sizeof(uint32_t));
	m->rx = mp_calloc(h * k, sizeof(uint32_t));
	m->rx_n = mp_calloc(h, sizeof(uint32_t));
	m->rf = mp_calloc(h * NF * e, sizeof(float));
	m->rp = mp_calloc(h * e, sizeof(float));
	m->half = mp_calloc(e, sizeof(float));
	m->hinted = mp_calloc(e, sizeof(float));
	if (!m->w || (p->prm.cross_layer && !m->v) || !m->b || !m->freq || !m->last_use ||
	    !m->set || !m->rt || !m->rs || !m->rs_n || !m->rx || !m->rx_n || !m->rf || !m->rp ||
	    !m->half || !m->hinted)
		return -ENOMEM;
	for (size_t j = 0; j < e; j++)
		m->half[j] = 0.5f;
	layer_forget(p, m);
	return 0;
}

static int params_ok(const struct mp_policy_params *q)
{
	if (q->horizon < 1 || q->horizon > MP_POLICY_MAX_HORIZON || !(q->learn_rate > 0) ||
	    !(q->feature_rate >= 0))
		return 0;
	for (int f = 0; f < NF; f++)
		if (!(q->decay[f] >= 0 && q->decay[f] < 1))
			return 0;
	return 1;
}

int mp_policy_create(enum mp_policy_kind kind, uint32_t layers, uint32_t experts, uint32_t top_k,
                     const struct mp_policy_params *params, struct mp_policy **out)
{
	if (kind != MP_POLICY_LRU && kind != MP_POLICY_LFU && kind != MP_POLICY_MOEPAGER)
		return -MP_EARG;
	if (layers < 1 || layers > MP_TRACE_MAX_LAYERS || experts < 1 ||
	    experts > MP_TRACE_MAX_EXPERTS || top_k < 1 || top_k > experts)
		return -MP_EARG;
	if ((uint64_t)experts * experts > ((uint64_t)1 << 28))   /* W would pass 1 GiB a layer */
		return -MP_EARG;
	struct mp_policy *p = mp_calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->kind = kind;
	p->layers = layers;
	p->experts = experts;
	p->top_k = top_k;
	p->ep = (experts + VB - 1) / VB * VB;
	if (params)
		p->prm = *params;
	else
		mp_policy_params_default(&p->prm);
	int rc = 0;
	if (kind == MP_POLICY_MOEPAGER) {
		if (!params_ok(&p->prm)) {
			rc = -MP_EARG;
			goto fail;
		}
		p->ml = mp_calloc(layers, sizeof *p->ml);
		p->grad = mp_calloc(p->ep, sizeof *p->grad);
		if (!p->ml || !p->grad) {
			rc = -ENOMEM;
			goto fail;
		}
		for (uint32_t l = 0; l < layers; l++)
			if ((rc = layer_init(p, &p->ml[l])) < 0)
				goto fail;
	} else {
		p->score = mp_calloc((size_t)layers * experts, sizeof(double));
		if (!p->score) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	*out = p;
	return 0;
fail:
	mp_policy_destroy(p);
	return rc;
}

int mp_policy_create_belady(const struct mp_trace *trace, uint64_t first_seq, uint64_t n_seq,
                            int cold, struct mp_policy **out)
{
	const struct mp_trace_info *in = mp_trace_info(trace);
	if (first_seq > in->sequences || n_seq > in->sequences - first_seq)
		return -MP_EARG;
	uint64_t t0 = mp_trace_seq_start(trace, first_seq);
	uint64_t t1 = mp_trace_seq_start(trace, first_seq + n_seq);
	if (t1 - t0 >= UINT32_MAX)
		return -MP_EARG;
	struct mp_policy *p = mp_calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->kind = MP_POLICY_BELADY;
	p->layers = in->layers;
	p->experts = in->experts;
	p->top_k = in->top_k;
	p->trace = trace;
	p->first_token = t0;
	p->end_token = t1;
	uint32_t L = in->layers, E = in->experts, K = in->top_k;
	uint32_t *last = mp_malloc_array((size_t)L * E, sizeof(uint32_t));
	p->score = mp_calloc((size_t)L * E, sizeof(double));
	p->cursor = mp_malloc_array(L, sizeof(uint64_t));
	p->next_use = mp_malloc_array((t1 - t0) * L * K + 1, sizeof(uint32_t));
	p->last_tok = mp_calloc((size_t)L * E, sizeof(uint32_t));
	if (!last || !p->score || !p->cursor || !p->next_use || !p->last_tok) {
		mp_free(last);
		mp_policy_destroy(p);
		return -ENOMEM;
	}
	for (uint32_t l = 0; l < L; l++)
		p->cursor[l] = t0;
	/* One backward pass: the next use of (layer, expert) seen so far. */
	for (size_t i = 0; i < (size_t)L * E; i++)
		last[i] = UINT32_MAX;
	for (uint64_t seq = first_seq + n_seq; seq-- > first_seq;) {
		if (cold)   /* the future ends with the sequence */
			for (size_t i = 0; i < (size_t)L * E; i++)
				last[i] = UINT32_MAX;
		uint64_t a = mp_trace_seq_start(trace, seq), z = mp_trace_seq_start(trace, seq + 1);
		for (uint64_t t = z; t-- > a;)
			for (uint32_t l = 0; l < L; l++) {
				const uint16_t *ids = mp_trace_ids(trace, t, l);
				uint32_t *nu = p->next_use + ((t - t0) * L + l) * K;
				for (uint32_t j = 0; j < K; j++) {
					nu[j] = last[(size_t)l * E + ids[j]];
					last[(size_t)l * E + ids[j]] = (uint32_t)(t - t0);
				}
			}
	}
	mp_free(last);
	*out = p;
	return 0;
}

/* ---- the hook ------------------------------------------------------------ */

static float sigmoid(float z)
{
	return 1.0f / (1.0f + expf(-z));
}

/* Vector helpers over n floats, n a multiple of VB: GNU vector types (GCC and
 * clang lower them to whatever SIMD the target has, SSE2 at least), because
 * -O2's cheap auto-vectoriser leaves these loops scalar and they are most of
 * the policy's time.  memcpy keeps the loads and stores unaligned-safe. */
typedef float vbf __attribute__((vector_size(VB * sizeof(float))));

static inline void vadd(float *z, const float *x, uint32_t n)
{
	for (uint32_t j = 0; j < n; j += VB) {
		vbf a, b;
		memcpy(&a, z + j, sizeof a);
		memcpy(&b, x + j, sizeof b);
		a += b;
		memcpy(z + j, &a, sizeof a);
	}
}

static inline void vaxpy(float *z, float s, const float *x, uint32_t n)
{
	for (uint32_t j = 0; j < n; j += VB) {
		vbf a, b;
		memcpy(&a, z + j, sizeof a);
		memcpy(&b, x + j, sizeof b);
		a += b * s;
		memcpy(z + j, &a, sizeof a);
	}
}

static inline void vscale(float *z, float s, const float *x, uint32_t n)
{
	for (uint32_t j = 0; j < n; j += VB) {
		vbf b;
		memcpy(&b, x + j, sizeof b);
		b *= s;
		memcpy(z + j, &b, sizeof b);
	}
}

static inline float vdot(const float *x, const float *y, uint32_t n)
{
	vbf acc = { 0 };
	for (uint32_t j = 0; j < n; j += VB) {
		vbf a, b;
		memcpy(&a, x + j, sizeof a);
		memcpy(&b, y + j, sizeof b);
		acc += a * b;
	}
	float s = 0;
	for (uint32_t i = 0; i < VB; i++)
		s += acc[i];
	return s;
}

/* Trains on the prediction whose horizon ends now (P2). */
static void moe_learn(struct mp_policy *p, struct mp_layer *m, uint32_t q, int64_t now)
{
	uint32_t E = p->experts, ep = p->ep, H = p->prm.horizon;
	if (m->rt[q] < 0 || m->rt[q] + (int64_t)H != now)
		return;
	float lr = p->prm.learn_rate;
	float *gp = p->grad;                 /* padding stays 0 */
	const float *rp = m->rp + (size_t)q * ep;
	for (uint32_t j = 0; j < E; j++) {
		float y = m->last_use[j] > now - (int64_t)H ? 1.0f : 0.0f;
		gp[j] = lr * (y - rp[j]);
	}
	vadd(m->b, gp, ep);
	for (uint32_t k = 0; k < m->rs_n[q]; k++)
		vadd(m->w + (size_t)m->rs[(size_t)q * p->top_k + k] * ep, gp, ep);
	for (uint32_t k = 0; m->v && k < m->rx_n[q]; k++)
		vadd(m->v + (size_t)m->rx[(size_t)q * p->top_k + k] * ep, gp, ep);
	for (int f = 0; f < NF; f++)
		m->a[f] += p->prm.feature_rate * vdot(gp, m->rf + ((size_t)q * NF + f) * ep, ep);
	m->rt[q] = -1;
}

static void moe_access(struct mp_policy *p, uint32_t layer, const uint32_t *s, uint32_t n)
{
	struct mp_layer *m = &p->ml[layer];
	uint32_t ep = p->ep, K = p->top_k, H = p->prm.horizon;
	int64_t now = (int64_t)m->tick++;
	for (uint32_t k = 0; k < n; k++)
		m->last_use[s[k]] = now;
	uint32_t q = (uint32_t)(now % H);
	moe_learn(p, m, q, now);
	float *rf = m->rf + (size_t)q * NF * ep;
	for (int f = 0; f < NF; f++) {
		float d = p->prm.decay[f], *fr = m->freq + (size_t)f * ep;
		vscale(fr, d, fr, ep);
		for (uint32_t k = 0; k < n; k++)
			fr[s[k]] += 1.0f - d;
		vscale(rf + (size_t)f * ep, FEATURE_SCALE, fr, ep);
	}
	/* Record this prediction's inputs in slot q. */
	const struct mp_layer *below = layer > 0 ? &p->ml[layer - 1] : NULL;
	m->rt[q] = now;
	m->rs_n[q] = n;
	memcpy(m->rs + (size_t)q * K, s, n * sizeof *s);
	m->rx_n[q] = m->v && below ? below->set_n : 0;
	if (m->rx_n[q])
		memcpy(m->rx + (size_t)q * K, below->set, m->rx_n[q] * sizeof *s);
	/* z = b + Σ W rows + Σ V rows + a·features */
	float *z = m->rp + (size_t)q * ep;
	memcpy(z, m->b, ep * sizeof *z);
	for (uint32_t k = 0; k < n; k++)
		vadd(z, m->w + (size_t)s[k] * ep, ep);
	for (uint32_t k = 0; k < m->rx_n[q]; k++)
		vadd(z, m->v + (size_t)m->rx[(size_t)q * K + k] * ep, ep);
	for (int f = 0; f < NF; f++)
		vaxpy(z, m->a[f], rf + (size_t)f * ep, ep);
	for (uint32_t j = 0; j < ep; j++)
		z[j] = sigmoid(z[j]);
	m->prob = z;   /* slot q is next written H accesses from now (P2) */
	m->n_hints = 0;
	memcpy(m->set, s, n * sizeof *s);
	m->set_n = n;
}

static void belady_access(struct mp_policy *p, uint32_t layer, const uint32_t *s, uint32_t n)
{
	uint64_t t = p->cursor[layer]++;
	uint32_t K = p->top_k;
	if (t >= p->end_token || n != K) {
		p->desync = 1;
		return;
	}
	const uint16_t *ids = mp_trace_ids(p->trace, t, layer);
	const uint32_t *nu = p->next_use + ((t - p->first_token) * p->layers + layer) * K;
	double *sc = p->score + (size_t)layer * p->experts;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t j = 0;
		while (j < K && ids[j] != s[k])
			j++;
		if (j == K) {
			p->desync = 1;
			return;
		}
		sc[s[k]] = nu[j] == UINT32_MAX ? -INFINITY : -(double)nu[j];
		p->last_tok[(size_t)layer * p->experts + s[k]] = (uint32_t)(t - p->first_token);
	}
}

void mp_policy_belady_lookahead(struct mp_policy *p, uint32_t tokens)
{
	if (p->kind == MP_POLICY_BELADY)
		p->lookahead = tokens;
}

/* Belady's keep score under a lookahead (B3): known next uses as they are,
 * the rest below all of them in LRU order. */
static double belady_score(const struct mp_policy *p, uint32_t layer, uint32_t e)
{
	size_t i = (size_t)layer * p->experts + e;
	double v = p->score[i];
	if (!p->lookahead || p->cursor[layer] == p->first_token)
		return v;
	double now = (double)(p->cursor[layer] - 1 - p->first_token);
	if (v == -INFINITY || -v - now > (double)p->lookahead)
		return -1e15 + (double)p->last_tok[i];
	return v;
}

void mp_policy_on_access(struct mp_policy *p, uint32_t layer, const uint32_t *experts, uint32_t n)
{
	double *sc = p->score ? p->score + (size_t)layer * p->experts : NULL;
	switch (p->kind) {
	case MP_POLICY_LRU:
		for (uint32_t k = 0; k < n; k++)
			sc[experts[k]] = (double)++p->clock;
		break;
	case MP_POLICY_LFU:
		for (uint32_t k = 0; k < n; k++)
			sc[experts[k]] += 1.0;
		break;
	case MP_POLICY_MOEPAGER:
		moe_access(p, layer, experts, n < p->top_k ? n : p->top_k);
		break;
	case MP_POLICY_BELADY:
		belady_access(p, layer, experts, n);
		break;
	default:
		break;
	}
}

void mp_policy_hint(struct mp_policy *p, uint32_t layer, uint32_t expert, double prob)
{
	if (p->kind != MP_POLICY_MOEPAGER || !(prob >= 0))
		return;
	struct mp_layer *m = &p->ml[layer];
	if (m->n_hints++ == 0)
		memcpy(m->hinted, m->prob, p->ep * sizeof *m->hinted);
	if ((float)prob > m->hinted[expert])
		m->hinted[expert] = prob > 1 ? 1.0f : (float)prob;
}

/* The moepager scores of a layer: the model's, or with the hints. */
static const float *moe_scores(const struct mp_layer *m)
{
	return m->n_hints ? m->hinted : m->prob;
}

double mp_policy_keep_score(const struct mp_policy *p, uint32_t layer, uint32_t expert)
{
	if (p->kind == MP_POLICY_MOEPAGER)
		return moe_scores(&p->ml[layer])[expert];
	if (p->kind == MP_POLICY_BELADY)
		return belady_score(p, layer, expert);
	return p->score[(size_t)layer * p->experts + expert];
}

void mp_policy_keep_scores(const struct mp_policy *p, uint32_t layer, const uint32_t *experts,
                           uint32_t n, double *out)
{
	if (p->kind == MP_POLICY_MOEPAGER) {
		const float *prob = moe_scores(&p->ml[layer]);
		for (uint32_t i = 0; i < n; i++)
			out[i] = prob[experts[i]];
	} else if (p->kind == MP_POLICY_BELADY) {
		for (uint32_t i = 0; i < n; i++)
			out[i] = belady_score(p, layer, experts[i]);
	} else {
		const double *sc = p->score + (size_t)layer * p->experts;
		for (uint32_t i = 0; i < n; i++)
			out[i] = sc[experts[i]];
	}
}

void mp_policy_on_sequence(struct mp_policy *p)
{
	switch (p->kind) {
	case MP_POLICY_LFU:
		memset(p->score, 0, sizeof(double) * p->layers * p->experts);
		break;
	case MP_POLICY_MOEPAGER:
		for (uint32_t l = 0; l < p->layers; l++)
			layer_forget(p, &p->ml[l]);
		break;
	default:
		break;   /* lru: recency needs no reset; belady: the future is fixed */
	}
}

/* ---- the model file -------------------------------------------------------- */

#define MODEL_MAGIC "MPPOLICY"
#define MODEL_VERSION 1u
#define MODEL_HEADER 64u

static int policy_fail(struct mp_policy *p, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int policy_fail(struct mp_policy *p, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->error, sizeof p->error, fmt, ap);
	va_end(ap);
	return rc;
}

const char *mp_policy_error(const struct mp_policy *p)
{
	return p->error;
}

static void put32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint32_t fbits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float bitsf(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static void model_header(const struct mp_policy *p, uint8_t *h)
{
	memset(h, 0, MODEL_HEADER);
	memcpy(h, MODEL_MAGIC, 8);
	put32(h + 8, MODEL_VERSION);
	put32(h + 12, p->layers);
	put32(h + 16, p->experts);
	put32(h + 20, p->top_k);
	put32(h + 24, p->prm.horizon);
	put32(h + 28, p->prm.cross_layer ? 1u : 0u);
	for (int f = 0; f < NF; f++)
		put32(h + 32 + 4 * f, fbits(p->prm.decay[f]));
}

/* Streams n floats at stride 1 to or from f through buf. */
static int model_io(FILE *f, float *x, size_t n, int write)
{
	uint8_t buf[4096];
	for (size_t i = 0; i < n;) {
		size_t m = n - i < sizeof buf / 4 ? n - i : sizeof buf / 4;
		if (write) {
			for (size_t j = 0; j < m; j++)
				put32(buf + 4 * j, fbits(x[i + j]));
			if (fwrite(buf, 4, m, f) != m)
				return -1;
		} else {
			if (fread(buf, 4, m, f) != m)
				return -1;
			for (size_t j = 0; j < m; j++)
				x[i + j] = bitsf(get32(buf + 4 * j));
		}
		i += m;
	}
	return 0;
}

/* Each layer's a, b, W rows, V rows (only the experts columns of each row). */
static int model_body(struct mp_policy *p, FILE *f, int write)
{
	size_t E = p->experts, ep = p->ep;
	for (uint32_t l = 0; l < p->layers; l++) {
		struct mp_layer *m = &p->ml[l];
		if (model_io(f, m->a, NF, write) < 0 || model_io(f, m->b, E, write) < 0)
			return -1;
		for (size_t i = 0; i < E; i++)
			if (model_io(f, m->w + i * ep, E, write) < 0)
				return -1;
		for (size_t i = 0; m->v && i < E; i++)
			if (model_io(f, m->v + i * ep, E, write) < 0)
				return -1;
	}
	return 0;
}

int mp_policy_save(struct mp_policy *p, const char *path)
{
	p->error[0] = 0;
	if (p->kind != MP_POLICY_MOEPAGER)
		return policy_fail(p, -MP_EARG, "%s: only the moepager policy has a model", path);
	FILE *f = fopen(path, "wb");
	if (!f)
		return policy_fail(p, -errno, "%s: cannot create: %s", path, strerror(errno));
	uint8_t h[MODEL_HEADER];
	model_header(p, h);
	int bad = fwrite(h, 1, sizeof h, f) != sizeof h || model_body(p, f, 1) < 0;
	if (fclose(f) != 0)
		bad = 1;
	return bad ? policy_fail(p, -EIO, "%s: write failed", path) : 0;
}

int mp_policy_load(struct mp_policy *p, const char *path)
{
	p->error[0] = 0;
	if (p->kind != MP_POLICY_MOEPAGER)
		return policy_fail(p, -MP_EARG, "%s: only the moepager policy has a model", path);
	FILE *f = fopen(path, "rb");
	if (!f)
		return policy_fail(p, -errno, "%s: cannot open: %s", path, strerror(errno));
	uint8_t h[MODEL_HEADER], want[MODEL_HEADER];
	int rc = 0;
	model_header(p, want);
	static const char *const fields[] = { "layers", "experts", "top_k", "horizon", "cross_layer",
	                                      "decay0", "decay1", "decay2" };
	if (fread(h, 1, sizeof h, f) != sizeof h) {
		rc = policy_fail(p, -MP_EFORMAT, "%s: header: expected %u bytes, the file is shorter", path,
		                 MODEL_HEADER);
	} else if (memcmp(h, MODEL_MAGIC, 8) != 0) {
		rc = policy_fail(p, -MP_EFORMAT, "%s: magic: expected \"MPPOLICY\", found \"%.8s\"", path,
		                 (const char *)h);
	} else if (get32(h + 8) != MODEL_VERSION) {
		rc = policy_fail(p, -MP_EFORMAT, "%s: version: expected %u, found %u", path, MODEL_VERSION,
		                 get32(h + 8));
	} else {
		for (int i = 0; i < 8 && rc == 0; i++) {
			uint32_t got = get32(h + 12 + 4 * i), exp = get32(want + 12 + 4 * i);
			if (got != exp)
				rc = i < 5 ? policy_fail(p, -MP_EFORMAT, "%s: %s: this policy has %u, the file %u",
				                         path, fields[i], exp, got)
				           : policy_fail(p, -MP_EFORMAT, "%s: %s: this policy has %g, the file %g",
				                         path, fields[i], bitsf(exp), bitsf(got));
		}
	}
	/* Read into the live model only once the header matched; a short body
	 * leaves a partly loaded model, so it is zeroed again. */
	if (rc == 0 && (model_body(p, f, 0) < 0 || fgetc(f) != EOF)) {
		for (uint32_t l = 0; l < p->layers; l++) {
			struct mp_layer *m = &p->ml[l];
			memset(m->a, 0, sizeof m->a);
			memset(m->b, 0, sizeof(float) * p->ep);
			memset(m->w, 0, sizeof(float) * p->ep * p->ep);
			if (m->v)
				memset(m->v, 0, sizeof(float) * p->ep * p->ep);
		}
		rc = policy_fail(p, -MP_EFORMAT, "%s: body: expected %u layers of weights exactly; the file is %s",
		                 path, p->layers, feof(f) ? "truncated" : "longer");
	}
	fclose(f);
	return rc;
}
