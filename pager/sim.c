/*
 * sim.c — trace replay against per-layer caches or one global pool (sim.h).
 *
 * Kept cheap because the tests replay the reference trace many times (also
 * under the sanitizers): flat arrays, no hashing, a victim search over the
 * resident list of one layer; in global mode each layer's best victim is
 * cached and recomputed only for layers whose scores or residents changed
 * (policy.h promises that on_access(l) changes layer l's scores only).
 *
 * Invariants, per layer l:
 *   S1. res[l][0..n_res[l]) are the resident experts of l, distinct, and
 *       pos[l][e] is e's index there, or -1 when e is not resident.
 *   S2. per-layer mode: n_res[l] <= slots; global: Σ n_res <= global_slots.
 *   S3. global mode: when vok[l], (vidx[l], vscore[l]) is l's lowest keep
 *       score among all its residents; the acquiring layer's is never
 *       cached (its current set must be left out) and its vok is 0.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "sim.h"
#include "trace.h"

struct cache {
	uint32_t L, E, K;      /* trace shape */
	int32_t *pos;          /* [L][E] index into res, -1 = not resident (S1) */
	uint32_t *res;         /* [L][E] resident experts */
	uint32_t *n_res;       /* [L] */
	uint64_t total;        /* Σ n_res */
	uint64_t *stamp;       /* [E] == acq: in the current set */
	uint64_t acq;          /* acquire counter (stamps) */
	int *vok;              /* [L] global mode: cached victim valid (S3) */
	uint32_t *vidx;        /* [L] its index in res */
	double *vscore;        /* [L] its score */
};

uint32_t mp_sim_slots(double fraction, uint32_t experts)
{
	double s = floor(fraction * experts + 0.5);
	return s < 0 ? 0 : s > experts ? experts : (uint32_t)s;
}

static void cache_free(struct cache *c)
{
	mp_free(c->pos);
	mp_free(c->res);
	mp_free(c->n_res);
	mp_free(c->stamp);
	mp_free(c->vok);
	mp_free(c->vidx);
	mp_free(c->vscore);
}

static void cache_clear(struct cache *c)
{
	for (size_t i = 0; i < (size_t)c->L * c->E; i++)
		c->pos[i] = -1;
	memset(c->n_res, 0, c->L * sizeof *c->n_res);
	memset(c->vok, 0, c->L * sizeof *c->vok);
	c->total = 0;
}

/* Lowest keep score of layer l among residents outside the current set
 * (when l is the acquiring layer); ties to the lower id.  Returns the index
 * in res, or -1 when every resident is in the current set. */
static int64_t layer_victim(const struct cache *c, const struct mp_policy *p, uint32_t l,
                            int acquiring, double *score)
{
	const uint32_t *res = c->res + (size_t)l * c->E;
	int64_t best = -1;
	double bs = 0;
	for (uint32_t i = 0; i < c->n_res[l]; i++) {
		uint32_t e = res[i];
		if (acquiring && c->stamp[e] == c->acq)
			continue;
		double s = mp_policy_keep_score(p, l, e);
		if (best < 0 || s < bs || (s == bs && e < res[best])) {
			best = i;
			bs = s;
		}
	}
	*score = bs;
	return best;
}

static void insert(struct cache *c, uint32_t l, uint32_t e)
{
	uint32_t i = c->n_res[l]++;
	c->res[(size_t)l * c->E + i] = e;
	c->pos[(size_t)l * c->E + e] = (int32_t)i;
	c->total++;
}

/* Removes res[l][i] (swap with the last). */
static void remove_at(struct cache *c, uint32_t l, uint32_t i)
{
	uint32_t *res = c->res + (size_t)l * c->E;
	uint32_t last = --c->n_res[l];
	c->pos[(size_t)l * c->E + res[i]] = -1;
	if (i != last) {
		res[i] = res[last];
		c->pos[(size_t)l * c->E + res[i]] = (int32_t)i;
	}
	c->total--;
}

/* Global mode: the (layer, index) with the lowest score over all layers. */
static int global_victim(struct cache *c, const struct mp_policy *p, uint32_t acq_layer,
                         uint32_t *vl, uint32_t *vi)
{
	int found = 0;
	double bs = 0;
	for (uint32_t l = 0; l < c->L; l++) {
		if (c->n_res[l] == 0)
			continue;
		if (l == acq_layer) {
			/* its current set is not evictable: computed fresh, never cached */
			double s;
			int64_t i = layer_victim(c, p, l, 1, &s);
			if (i < 0)
				continue;
			if (!found || s < bs) {
				found = 1;
				bs = s;
				*vl = l;
				*vi = (uint32_t)i;
			}
			continue;
		}
		if (!c->vok[l]) {
			double s;
			int64_t i = layer_victim(c, p, l, 0, &s);
			c->vidx[l] = (uint32_t)i;
			c->vscore[l] = s;
			c->vok[l] = 1;
		}
		/* strict <: ties go to the lower layer */
		if (!found || c->vscore[l] < bs) {
			found = 1;
			bs = c->vscore[l];
			*vl = l;
			*vi = c->vidx[l];
		}
	}
	return found;
}

/* Per-layer mode: makes room for the missing experts of set in layer l and
 * inserts them.  The scores of l's residents cannot change during one
 * acquire, so one batch of scores serves every eviction of the acquire; the
 * victims are the lowest scores, ties to the lower id, exactly as evicting
 * one at a time would choose them. */
static void layer_acquire(struct cache *c, const struct mp_policy *p, uint32_t l, const uint32_t *set,
                          uint64_t cap, uint32_t *cand, double *cscore)
{
	const int32_t *pos = c->pos + (size_t)l * c->E;
	uint32_t missing = 0;
	for (uint32_t k = 0; k < c->K; k++)
		missing += pos[set[k]] < 0;
	if (missing == 0)
		return;
	uint64_t room = cap > c->n_res[l] ? cap - c->n_res[l] : 0;
	if (missing > room) {
		uint32_t need = (uint32_t)(missing - room), n = 0;
		const uint32_t *res = c->res + (size_t)l * c->E;
		for (uint32_t i = 0; i < c->n_res[l]; i++)
			if (c->stamp[res[i]] != c->acq)
				cand[n++] = res[i];
		if (need >= n) {   /* every candidate goes: no scores needed */
			for (uint32_t i = 0; i < n; i++)
				remove_at(c, l, (uint32_t)pos[cand[i]]);
			need = 0;
		} else {
			mp_policy_keep_scores(p, l, cand, n, cscore);
		}
		for (uint32_t v = 0; v < need; v++) {
			uint32_t best = v;
			for (uint32_t i = v + 1; i < n; i++)
				if (cscore[i] < cscore[best] || (cscore[i] == cscore[best] && cand[i] < cand[best]))
					best = i;
			remove_at(c, l, (uint32_t)pos[cand[best]]);
			cand[best] = cand[v];
			cscore[best] = cscore[v];
		}
	}
	for (uint32_t k = 0; k < c->K; k++)
		if (pos[set[k]] < 0 && c->n_res[l] < cap)
			insert(c, l, set[k]);
}

/* Global mode: the same, one eviction at a time against every layer's best
 * victim. */
static void global_acquire(struct cache *c, const struct mp_policy *p, uint32_t l, const uint32_t *set,
                           uint64_t cap)
{
	const int32_t *pos = c->pos + (size_t)l * c->E;
	for (uint32_t k = 0; k < c->K; k++) {
		uint32_t e = set[k], vl = 0, vi = 0;
		if (pos[e] >= 0)
			continue;
		if (c->total >= cap) {
			if (!global_victim(c, p, l, &vl, &vi))
				continue;
			c->vok[vl] = 0;
			remove_at(c, vl, vi);
		}
		insert(c, l, e);
	}
}

static int sim_fail(struct mp_sim_result *r, int rc, const char *msg)
{
	snprintf(r->error, sizeof r->error, "%s", msg);
	return rc;
}

int mp_sim_run(const struct mp_sim_config *cfg, struct mp_sim_result *r)
{
	memset(r, 0, sizeof *r);
	const struct mp_trace_info *in = mp_trace_info(cfg->trace);
	if (cfg->first_seq > in->sequences || cfg->n_seq > in->sequences - cfg->first_seq)
		return sim_fail(r, -MP_EARG, "sequence range beyond the trace");
	int global = cfg->global_slots > 0;
	if (!global && cfg->slots == 0)
		return sim_fail(r, -MP_EARG, "slots: expected >= 1");
	struct cache c = { .L = in->layers, .E = in->experts, .K = in->top_k };
	size_t le = (size_t)c.L * c.E;
	c.pos = mp_malloc_array(le, sizeof *c.pos);
	c.res = mp_malloc_array(le, sizeof *c.res);
	c.n_res = mp_calloc(c.L, sizeof *c.n_res);
	c.stamp = mp_calloc(c.E, sizeof *c.stamp);
	c.vok = mp_calloc(c.L, sizeof *c.vok);
	c.vidx = mp_calloc(c.L, sizeof *c.vidx);
	c.vscore = mp_calloc(c.L, sizeof *c.vscore);
	struct mp_policy *p = NULL;
	uint32_t *cand = NULL;
	double *cscore = NULL;
	int rc = 0;
	if (!c.pos || !c.res || !c.n_res || !c.stamp || !c.vok || !c.vidx || !c.vscore) {
		rc = sim_fail(r, -ENOMEM, "out of memory for the cache");
		goto out;
	}
	if (cfg->policy == MP_POLICY_BELADY) {
		rc = mp_policy_create_belady(cfg->trace, cfg->first_seq, cfg->n_seq, cfg->cold, &p);
		if (rc == 0)
			mp_policy_belady_lookahead(p, cfg->belady_lookahead);
	} else
		rc = mp_policy_create(cfg->policy, c.L, c.E, c.K, cfg->params, &p);
	if (rc < 0) {
		sim_fail(r, rc, rc == -ENOMEM ? "out of memory for the policy" : "bad policy or parameters");
		goto out;
	}
	if (cfg->policy == MP_POLICY_MOEPAGER && cfg->model_in && (rc = mp_policy_load(p, cfg->model_in)) < 0) {
		sim_fail(r, rc, mp_policy_error(p));
		goto out;
	}
	cache_clear(&c);
	uint64_t cap = global ? cfg->global_slots : cfg->slots;
	uint32_t set[MP_TRACE_MAX_TOPK];
	cand = mp_malloc_array(c.E, sizeof *cand);
	cscore = mp_malloc_array(c.E, sizeof *cscore);
	if (!cand || !cscore) {
		rc = sim_fail(r, -ENOMEM, "out of memory for the cache");
		goto out;
	}
	for (uint64_t s = cfg->first_seq; s < cfg->first_seq + cfg->n_seq; s++) {
		if (cfg->cold) {
			cache_clear(&c);
			mp_policy_on_sequence(p);
		}
		uint64_t t1 = mp_trace_seq_start(cfg->trace, s + 1);
		for (uint64_t t = mp_trace_seq_start(cfg->trace, s); t < t1; t++) {
			for (uint32_t l = 0; l < c.L; l++) {
				const uint16_t *ids = mp_trace_ids(cfg->trace, t, l);
				int32_t *pos = c.pos + (size_t)l * c.E;
				c.acq++;
				for (uint32_t k = 0; k < c.K; k++) {
					set[k] = ids[k];
					c.stamp[ids[k]] = c.acq;
					r->hits += pos[ids[k]] >= 0;
				}
				mp_policy_on_access(p, l, set, c.K);
				c.vok[l] = 0;
				if (global)
					global_acquire(&c, p, l, set, cap);
				else
					layer_acquire(&c, p, l, set, cap, cand, cscore);
			}
		}
		r->tokens += t1 - mp_trace_seq_start(cfg->trace, s);
	}
	if (mp_policy_desynced(p)) {
		rc = sim_fail(r, -MP_EARG, "belady: replay and trace disagree");
		goto out;
	}
	if (cfg->policy == MP_POLICY_MOEPAGER && cfg->model_out && (rc = mp_policy_save(p, cfg->model_out)) < 0) {
		sim_fail(r, rc, mp_policy_error(p));
		goto out;
	}
	r->acquires = r->tokens * c.L;
	r->uses = r->acquires * c.K;
	r->misses = r->uses - r->hits;
	r->hit_rate = r->uses ? (double)r->hits / (double)r->uses : 0;
out:
	mp_free(cand);
	mp_free(cscore);
	mp_policy_destroy(p);
	cache_free(&c);
	return rc;
}

/* ---- routing statistics --------------------------------------------------------- */

static int cmp_desc_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* Share of the uses in counts[E] carried by the top k entries (counts sorted). */
static double top_share(uint64_t *counts, uint32_t E, uint32_t k)
{
	uint64_t total = 0, top = 0;
	qsort(counts, E, sizeof *counts, cmp_desc_u64);
	for (uint32_t e = 0; e < E; e++) {
		total += counts[e];
		if (e < k)
			top += counts[e];
	}
	return total ? (double)top / (double)total : 0.0;
}

int mp_sim_routing(const struct mp_trace *t, uint64_t first, uint64_t n, struct mp_sim_routing *out)
{
	memset(out, 0, sizeof *out);
	const struct mp_trace_info *in = mp_trace_info(t);
	if (first > in->sequences || n > in->sequences - first || in->layers > MP_SIM_MAX_LAYERS)
		return -MP_EARG;
	uint32_t L = in->layers, E = in->experts, K = in->top_k;
	uint32_t k10 = (uint32_t)(0.10 * E + 0.5), k25 = (uint32_t)(0.25 * E + 0.5);
	if (k10 < 1)
		k10 = 1;
	if (k25 < 1)
		k25 = 1;
	uint64_t *all = mp_calloc((size_t)L * E, sizeof *all);
	uint64_t *seq = mp_calloc((size_t)L * E, sizeof *seq);
	uint64_t *reused = mp_calloc(L, sizeof *reused), *pairs = mp_calloc(L, sizeof *pairs);
	uint8_t *prev = mp_calloc((size_t)L * E, 1);
	if (!all || !seq || !reused || !pairs || !prev) {
		mp_free(all); mp_free(seq); mp_free(reused); mp_free(pairs); mp_free(prev);
		return -ENOMEM;
	}
	double seq_share = 0, mean_share = 0;
	uint64_t seq_cells = 0, mean_cells = 0;
	for (uint64_t s = first; s < first + n; s++) {
		uint64_t t0 = mp_trace_seq_start(t, s), t1 = mp_trace_seq_start(t, s + 1);
		memset(seq, 0, sizeof *seq * (size_t)L * E);
		memset(prev, 0, (size_t)L * E);
		for (uint64_t tok = t0; tok < t1; tok++)
			for (uint32_t l = 0; l < L; l++) {
				const uint16_t *ids = mp_trace_ids(t, tok, l);
				uint8_t *pv = prev + (size_t)l * E;
				for (uint32_t i = 0; i < K; i++) {
					all[(size_t)l * E + ids[i]]++;
					seq[(size_t)l * E + ids[i]]++;
					if (tok > t0)
						reused[l] += pv[ids[i]];
				}
				if (tok > t0)
					pairs[l] += K;
				memset(pv, 0, E);
				for (uint32_t i = 0; i < K; i++)
					pv[ids[i]] = 1;
			}
		/* weighted by the sequence's tokens: the share of all uses that
		 * went to their sequence's top 10% */
		if (t1 > t0)
			for (uint32_t l = 0; l < L; l++) {
				double sh = top_share(seq + (size_t)l * E, E, k10);
				seq_share += sh * (double)(t1 - t0);
				seq_cells += t1 - t0;
				mean_share += sh;
				mean_cells++;
			}
		out->tokens += t1 - t0;
	}
	double reuse_sum = 0;
	for (uint32_t l = 0; l < L; l++) {
		uint64_t *row = mp_malloc_array(E, sizeof *row);
		if (row) {
			memcpy(row, all + (size_t)l * E, sizeof *row * E);
			out->share10 += top_share(row, E, k10) / L;
			memcpy(row, all + (size_t)l * E, sizeof *row * E);
			out->share25 += top_share(row, E, k25) / L;
			mp_free(row);
		}
		out->reuse_layer[l] = pairs[l] ? (double)reused[l] / (double)pairs[l] : 0.0;
		reuse_sum += out->reuse_layer[l];
	}
	out->reuse = L ? reuse_sum / L : 0.0;
	out->share10_seq = seq_cells ? seq_share / (double)seq_cells : 0.0;
	out->share10_seq_mean = mean_cells ? mean_share / (double)mean_cells : 0.0;
	mp_free(all); mp_free(seq); mp_free(reused); mp_free(pairs); mp_free(prev);
	return 0;
}
