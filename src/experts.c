/*
 * experts.c — a struct mp_expert_source over the pager.
 *
 * acquire() pins the layer's set (hits at once, misses demand-read);
 * next_ready() blocks until any expert of the set not yet handed out is in
 * memory and returns it with tensor views over its slot; release() unpins.
 * The views carry the types and shapes of the 3-D expert tensors, so an expert
 * in a slot is computed exactly like the same bytes in a mapping.
 *
 * Stale prefetches: the experts last hinted for a layer are remembered until
 * that layer's acquire.  When a newer hint for the layer or the acquire itself
 * leaves some of them out (the prediction changed), their loads still in
 * flight are cancelled (mp_pager_cancel), so the disk serves what is needed
 * now; experts already read stay cached.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "clock.h"
#include "experts.h"
#include "policy.h"
#include "profile.h"
#include "trace.h"

#define HINT_MAX (2 * MP_ROUTER_MAX_USED)

/* The experts last hinted for one layer and not yet acquired. */
struct hinted {
	uint32_t ids[HINT_MAX];
	uint32_t n;
};

struct mp_experts {
	struct mp_pager *pager;
	struct hinted *hinted;        /* [n_layer] */
	struct mp_policy *policy;     /* eviction scores (NULL: the pager's LRU) */
	int prefetch;                 /* forward the model's hints */
	const struct mp_weights *w;
	uint32_t dense_lead;          /* first MoE layer (trace layer 0) */
	uint32_t l_begin, l_end;      /* the MoE layers registered (opts' range) */
	const uint32_t *set;          /* the acquired set (model's array, valid until release) */
	uint32_t n;                   /* its size */
	uint8_t taken[MP_ROUTER_MAX_USED]; /* handed out already */
	/* the trace (--trace-out): outcome and stall per use of the current set */
	struct mp_trace_writer *trace;
	uint8_t outcome[MP_ROUTER_MAX_USED];
	uint32_t stall[MP_ROUTER_MAX_USED];
	uint64_t wait_t0;             /* when next_ready started waiting */
	/* a prefill batch (model.h, batch): acquires are waves of a layer's union;
	 * the trace and the profile get each token's routing afterwards, with the
	 * outcome of the wave that brought the expert for its first use in the
	 * batch and a hit for later ones */
	int in_batch;                 /* 1 between the batch's start and its end */
	uint32_t n_expert, n_layers;
	uint8_t *batch_outcome;       /* [n_layers][n_expert]: 0 none yet, else outcome + 1 */
	uint32_t *batch_stall;        /* [n_layers][n_expert]: ns waited at that first use */
	struct mp_profile *profile;   /* use counts (NULL: no profile) */
	char profile_path[4096];      /* where it is saved */
	char err[512];
};

static double keep_score_hook(void *ctx, uint32_t layer, uint32_t expert)
{
	return mp_policy_keep_score(ctx, layer, expert);
}

static void on_access_hook(void *ctx, uint32_t layer, const uint32_t *experts, uint32_t n)
{
	mp_policy_on_access(ctx, layer, experts, n);
}

/* Cancels the loads of the experts last hinted for layer that keep[0..n)
 * leaves out, and forgets the hint. */
static void cancel_stale(struct mp_experts *x, uint32_t layer, const uint32_t *keep, uint32_t n)
{
	struct hinted *h = &x->hinted[layer];
	uint32_t stale[HINT_MAX], ns = 0;
	for (uint32_t i = 0; i < h->n; i++) {
		uint32_t kept = 0;
		for (uint32_t j = 0; j < n && !kept; j++)
			kept = keep[j] == h->ids[i];
		if (!kept)
			stale[ns++] = h->ids[i];
	}
	if (ns)
		mp_pager_cancel(x->pager, layer, stale, ns);
	h->n = 0;
}

static int x_acquire(void *ctx, uint32_t layer, const uint32_t *experts, uint32_t n)
{
	struct mp_experts *x = ctx;
	cancel_stale(x, layer, experts, n);
	x->set = experts;
	x->n = n;
	memset(x->taken, 0, sizeof x->taken);
	if (x->trace)
		for (uint32_t i = 0; i < n && i < MP_ROUTER_MAX_USED; i++) {
			/* where each expert is before the acquire decides the outcome */
			enum mp_pager_tier t = mp_pager_tier(x->pager, layer, experts[i]);
			x->outcome[i] = t == MP_TIER_POOL ? MP_TRACE_HIT : t == MP_TIER_LOADING ? MP_TRACE_LATE :
					t == MP_TIER_PAGE_CACHE ? MP_TRACE_PAGECACHE : MP_TRACE_MISS;
			x->stall[i] = 0;
		}
	if (x->profile && !x->in_batch)
		mp_profile_count(x->profile, layer, experts, n);
	int rc = mp_pager_acquire(x->pager, layer, experts, n);
	if (rc < 0)
		snprintf(x->err, sizeof x->err, "%s", mp_pager_message(x->pager));
	return rc;
}

static struct mp_tensor view(const struct mp_tensor *t3, const void *data)
{
	struct mp_tensor v = *t3;
	v.ne[2] = 1;
	v.data = data;
	return v;
}

/* Hands out set[i], whose data poll found in ptrs: views over its slot. */
static void hand_out(struct mp_experts *x, uint32_t layer, int i, const void *const *ptrs,
		     uint32_t *index, struct mp_expert_view *out)
{
	x->taken[i] = 1;
	*index = (uint32_t)i;
	const struct mp_layer_weights *lw = &x->w->layer[layer];
	out->gate = view(&lw->gate_exps, ptrs[0]);
	out->up = view(&lw->up_exps, ptrs[1]);
	out->down = view(&lw->down_exps, ptrs[2]);
}

static int x_next_ready(void *ctx, uint32_t layer, uint32_t *index, struct mp_expert_view *out)
{
	struct mp_experts *x = ctx;
	uint64_t t0 = x->trace ? mp_clock_now_ns() : 0;
	int i = mp_pager_wait_any(x->pager, layer, x->set, x->n, x->taken);
	if (i < 0) {
		snprintf(x->err, sizeof x->err, "layer %u: no expert left to hand out", layer);
		return i;
	}
	const void *ptrs[3];
	int rc = mp_pager_poll(x->pager, layer, x->set[i], ptrs, 3);
	if (rc <= 0) {
		snprintf(x->err, sizeof x->err, "%s", mp_pager_message(x->pager));
		return rc < 0 ? rc : -EIO;
	}
	hand_out(x, layer, i, ptrs, index, out);
	if (x->trace) {
		uint64_t waited = mp_clock_now_ns() - t0;
		x->stall[i] = waited > UINT32_MAX ? UINT32_MAX : (uint32_t)waited;
	}
	return 0;
}

/* The first expert of the set not yet handed out that is in memory now (its
 * stall stays 0: nothing waited for it). */
static int x_try_ready(void *ctx, uint32_t layer, uint32_t *index, struct mp_expert_view *out)
{
	struct mp_experts *x = ctx;
	for (uint32_t i = 0; i < x->n && i < MP_ROUTER_MAX_USED; i++) {
		if (x->taken[i])
			continue;
		const void *ptrs[3];
		int rc = mp_pager_poll(x->pager, layer, x->set[i], ptrs, 3);
		if (rc < 0) {
			snprintf(x->err, sizeof x->err, "%s", mp_pager_message(x->pager));
			return rc;
		}
		if (rc > 0) {
			hand_out(x, layer, (int)i, ptrs, index, out);
			return 1;
		}
	}
	return 0;
}

/* Writes one (token, layer) record; stops tracing on a write error. */
static void trace_add(struct mp_experts *x, uint32_t layer, const uint16_t *ids, const uint8_t *outcome,
		      const uint32_t *stall)
{
	if (mp_trace_writer_add(x->trace, layer - x->dense_lead, ids, NULL, outcome, stall) < 0) {
		fprintf(stderr, "moepager: --trace-out: %s; tracing stops\n",
			mp_trace_writer_error(x->trace));
		mp_trace_writer_destroy(x->trace);
		x->trace = NULL;
	}
}

static void x_release(void *ctx, uint32_t layer, const uint32_t *experts, uint32_t n)
{
	struct mp_experts *x = ctx;
	if (x->trace && x->in_batch)   /* a wave: kept for the tokens' records */
		for (uint32_t i = 0; i < n && i < MP_ROUTER_MAX_USED; i++) {
			size_t id = (size_t)layer * x->n_expert + experts[i];
			x->batch_outcome[id] = (uint8_t)(x->outcome[i] + 1);
			x->batch_stall[id] = x->stall[i];
		}
	if (x->trace && !x->in_batch && n <= MP_ROUTER_MAX_USED) {
		uint16_t ids[MP_ROUTER_MAX_USED];
		for (uint32_t i = 0; i < n; i++)
			ids[i] = (uint16_t)experts[i];
		trace_add(x, layer, ids, x->outcome, x->stall);
	}
	mp_pager_release(x->pager, layer, experts, n);
	x->set = NULL;
	x->n = 0;
}

static const char *x_err(void *ctx)
{
	return ((struct mp_experts *)ctx)->err;
}

static void x_hint(void *ctx, uint32_t layer, const uint32_t *experts, const float *scores, uint32_t n)
{
	struct mp_experts *x = ctx;
	double sc[HINT_MAX];
	if (!x->prefetch || n > HINT_MAX)
		return;
	cancel_stale(x, layer, experts, n);
	memcpy(x->hinted[layer].ids, experts, n * sizeof *experts);
	x->hinted[layer].n = n;
	for (uint32_t i = 0; i < n; i++) {
		sc[i] = scores[i];
		if (x->policy)   /* a predicted expert is kept at least as likely as predicted */
			mp_policy_hint(x->policy, layer, experts[i], scores[i]);
	}
	mp_pager_hint(x->pager, layer, experts, sc, n);
}

static void x_batch(void *ctx, uint32_t n, uint32_t layer, const uint32_t *experts, uint32_t k)
{
	struct mp_experts *x = ctx;
	if (n) {                                  /* a batch starts */
		x->in_batch = 1;
		if (x->batch_outcome)
			memset(x->batch_outcome, 0, (size_t)x->n_expert * x->n_layers);
		return;
	}
	if (layer == UINT32_MAX) {                /* it ends */
		x->in_batch = 0;
		return;
	}
	if (x->profile)
		mp_profile_count(x->profile, layer, experts, k);
	if (!x->trace || k > MP_ROUTER_MAX_USED)
		return;
	uint16_t ids[MP_ROUTER_MAX_USED];
	uint8_t outcome[MP_ROUTER_MAX_USED];
	uint32_t stall[MP_ROUTER_MAX_USED];
	for (uint32_t i = 0; i < k; i++) {
		size_t id = (size_t)layer * x->n_expert + experts[i];
		ids[i] = (uint16_t)experts[i];
		outcome[i] = x->batch_outcome[id] ? (uint8_t)(x->batch_outcome[id] - 1) : MP_TRACE_HIT;
		stall[i] = x->batch_outcome[id] ? x->batch_stall[id] : 0;
		x->batch_outcome[id] = MP_TRACE_HIT + 1;   /* later uses in the batch: hits */
		x->batch_stall[id] = 0;
	}
	trace_add(x, layer, ids, outcome, stall);
}

static void x_end_token(void *ctx)
{
	struct mp_experts *x = ctx;
	if (x->profile)
		mp_profile_count_token(x->profile);
}

/* Loads the profile and the learned policy, and warms the pool: hints for each
 * layer's most used experts, a fair share of the slots each, best first; the
 * pager reads them in the background behind any demand read. */
static void load_profile(struct mp_experts *x, const struct mp_hparams *hp, const char *path)
{
	char err[512];
	snprintf(x->profile_path, sizeof x->profile_path, "%s", path);
	int rc = mp_profile_load(x->profile, path, err, sizeof err);
	if (rc < 0) {
		fprintf(stderr, "moepager: %s; starting a new profile\n", err);
		return;
	}
	if (x->policy) {
		char pp[4200];
		snprintf(pp, sizeof pp, "%s.policy", path);
		if (access(pp, R_OK) == 0 && mp_policy_load(x->policy, pp) < 0)
			fprintf(stderr, "moepager: %s: %s; the policy learns from scratch\n", pp,
				mp_policy_error(x->policy));
	}
	if (rc == 0 || !mp_profile_tokens(x->profile))
		return;
	struct mp_pager_info pi;
	mp_pager_info(x->pager, &pi);
	uint32_t moe = x->l_end > x->l_begin ? x->l_end - x->l_begin : 0;
	uint32_t share = moe ? pi.n_slots / moe : 0;
	if (share > hp->n_expert)
		share = hp->n_expert;
	uint32_t ids[512];
	double sc[512];
	if (share > 512)
		share = 512;
	uint32_t warmed = 0;
	for (uint32_t L = x->l_begin; L < x->l_end; L++) {
		uint32_t n = mp_profile_top(x->profile, L, ids, share);
		for (uint32_t i = 0; i < n; i++)
			sc[i] = 0.3 * (1.0 - (double)i / (double)(n + 1));
		warmed += (uint32_t)(mp_pager_hint(x->pager, L, ids, sc, n) > 0 ? n : 0);
	}
	fprintf(stderr, "moepager: profile %s (%llu tokens): warming the pool with %u experts\n", path,
		(unsigned long long)mp_profile_tokens(x->profile), warmed);
}

int mp_experts_save_profile(struct mp_experts *x, char *err, size_t err_len)
{
	if (!x->profile || !x->profile_path[0])
		return 0;
	int rc = mp_profile_save(x->profile, x->profile_path, err, err_len);
	if (rc == 0 && x->policy) {
		char pp[4200];
		snprintf(pp, sizeof pp, "%s.policy", x->profile_path);
		if ((rc = mp_policy_save(x->policy, pp)) < 0)
			snprintf(err, err_len, "%s: %s", pp, mp_policy_error(x->policy));
	}
	return rc;
}

void mp_experts_end_sequence(struct mp_experts *x)
{
	if (x && x->trace)
		mp_trace_writer_end_sequence(x->trace);
}

int mp_experts_create(struct mp_gguf *g, const struct mp_hparams *hp, const struct mp_weights *w,
		      uint32_t top_k, const struct mp_pager_config *cfg,
		      const struct mp_experts_opts *opts, struct mp_experts **out,
		      struct mp_expert_source *src, char *err, size_t err_len)
{
	*out = NULL;
	struct mp_experts *x = mp_calloc(1, sizeof *x);
	if (!x) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	x->w = w;
	x->dense_lead = hp->n_dense_lead;
	x->l_begin = opts->layer_begin > hp->n_dense_lead ? opts->layer_begin : hp->n_dense_lead;
	x->l_end = opts->layer_end ? opts->layer_end : hp->n_layer;
	x->n_expert = hp->n_expert;
	x->n_layers = hp->n_layer;
	x->hinted = mp_calloc(hp->n_layer, sizeof *x->hinted);
	if (!x->hinted) {
		mp_free(x);
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	x->prefetch = opts->prefetch;
	struct mp_pager_config pc = *cfg;
	pc.n_layers = hp->n_layer;
	pc.n_experts = hp->n_expert;
	pc.top_k = top_k;
	int rc;
	if (opts->policy == MP_POLICY_MOEPAGER) {
		struct mp_policy_params pp;
		mp_policy_params_default(&pp);
		rc = mp_policy_create(MP_POLICY_MOEPAGER, hp->n_layer, hp->n_expert, top_k, &pp, &x->policy);
		if (rc < 0) {
			snprintf(err, err_len, "cannot create the eviction policy: %s", mp_strerror(rc));
			goto fail;
		}
		pc.keep_score = keep_score_hook;
		pc.on_access = on_access_hook;
		pc.policy_ctx = x->policy;
	}
	if (opts->trace_out) {
		struct mp_trace_info ti = {
			.version = MP_TRACE_V2, .layers = hp->n_layer - hp->n_dense_lead,
			.experts = hp->n_expert, .top_k = top_k, .flags = MP_TRACE_F_OUTCOMES,
			.layer_base = hp->n_dense_lead,
		};
		x->trace = mp_trace_writer_create();
		if (!x->trace || (rc = mp_trace_writer_open(x->trace, opts->trace_out, &ti)) < 0) {
			snprintf(err, err_len, "--trace-out %s: %s", opts->trace_out,
				 x->trace ? mp_trace_writer_error(x->trace) : "out of memory");
			rc = -EIO;
			goto fail;
		}
		x->batch_outcome = mp_calloc((size_t)hp->n_layer * hp->n_expert, 1);
		x->batch_stall = mp_calloc((size_t)hp->n_layer * hp->n_expert, sizeof(uint32_t));
		if (!x->batch_outcome || !x->batch_stall) {
			snprintf(err, err_len, "out of memory for --trace-out");
			rc = -ENOMEM;
			goto fail;
		}
	}
	rc = mp_pager_create(&pc, &x->pager, err, err_len);
	if (rc < 0)
		goto fail;
	int file_id[MP_GGUF_MAX_PARTS < 1024 ? MP_GGUF_MAX_PARTS : 1024];
	uint32_t parts = mp_gguf_part_count(g);
	if (parts > sizeof file_id / sizeof file_id[0]) {
		snprintf(err, err_len, "%s: %u parts; at most %zu supported", mp_gguf_part_path(g, 0), parts,
			 sizeof file_id / sizeof file_id[0]);
		rc = -MP_EUNAVAIL;
		goto fail;
	}
	/* only the parts holding this range's experts (a host may hold no others) */
	uint8_t used[sizeof file_id / sizeof file_id[0]] = { 0 };
	for (uint32_t L = x->l_begin; L < x->l_end; L++)
		for (int m = 0; m < 3; m++) {
			struct mp_gguf_range gr;
			if (mp_gguf_expert_range(g, L, 0, (enum mp_gguf_expert_mat)m, &gr) == 0)
				used[gr.part] = 1;
		}
	for (uint32_t p = 0; p < parts; p++) {
		file_id[p] = -1;
		if (!used[p])
			continue;
		file_id[p] = mp_pager_add_file(x->pager, mp_gguf_part_path(g, p));
		if (file_id[p] < 0) {
			rc = file_id[p];
			snprintf(err, err_len, "%s", mp_pager_message(x->pager));
			goto fail;
		}
	}
	for (uint32_t L = x->l_begin; L < x->l_end; L++)
		for (uint32_t e = 0; e < hp->n_expert; e++) {
			struct mp_pager_range r[3];
			for (int m = 0; m < 3; m++) {
				struct mp_gguf_range gr;
				rc = mp_gguf_expert_range(g, L, e, (enum mp_gguf_expert_mat)m, &gr);
				if (rc < 0) {
					snprintf(err, err_len, "%s", mp_gguf_error(g));
					goto fail;
				}
				r[m] = (struct mp_pager_range){ (uint32_t)file_id[gr.part], 0, gr.offset, gr.len };
			}
			if ((rc = mp_pager_register(x->pager, L, e, r, 3)) < 0) {
				snprintf(err, err_len, "%s", mp_pager_message(x->pager));
				goto fail;
			}
		}
	if ((rc = mp_pager_start(x->pager)) < 0) {
		snprintf(err, err_len, "%s", mp_pager_message(x->pager));
		goto fail;
	}
	if (opts->profile) {
		if ((rc = mp_profile_create(hp->n_layer, hp->n_expert, opts->fingerprint, &x->profile)) < 0) {
			snprintf(err, err_len, "out of memory for the usage profile");
			goto fail;
		}
		load_profile(x, hp, opts->profile);
	}
	*src = (struct mp_expert_source){ x, x_acquire, x_next_ready, x_release, x_err, x_hint,
					  x_end_token, x_batch, x_try_ready };
	*out = x;
	return 0;
fail:
	mp_experts_destroy(x);
	return rc;
}

void mp_experts_destroy(struct mp_experts *x)
{
	if (!x)
		return;
	char err[512];
	if (mp_experts_save_profile(x, err, sizeof err) < 0)
		fprintf(stderr, "moepager: the usage profile was not saved: %s\n", err);
	mp_profile_destroy(x->profile);
	mp_pager_destroy(x->pager);
	mp_policy_destroy(x->policy);
	if (x->trace && mp_trace_writer_close(x->trace) < 0)
		fprintf(stderr, "moepager: --trace-out: %s\n", mp_trace_writer_error(x->trace));
	mp_trace_writer_destroy(x->trace);
	mp_free(x->hinted);
	mp_free(x->batch_outcome);
	mp_free(x->batch_stall);
	mp_free(x);
}

struct mp_pager *mp_experts_pager(struct mp_experts *x)
{
	return x->pager;
}
