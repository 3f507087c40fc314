/*
 * sim.h — replays a routing trace against an expert cache driven by a policy
 * (policy.h), the same policy code the pager links.  The engine of
 * tools/moepager-sim and of the policy tests.
 *
 * Cache model (ROUTING.md, "how these were computed"):
 *   - per layer: one cache of `slots` experts per layer; or, with
 *     global_slots > 0, one pool of that many experts shared by all layers;
 *   - each (token, layer) is one acquire of its whole set: hits are counted
 *     against the cache as it was before the token; then the policy sees the
 *     access (on_access) and each missing expert is inserted, evicting the
 *     lowest keep score among experts outside the current set (ties: lower
 *     layer, then lower id); with fewer slots than a set, the overflow is not
 *     cached;
 *   - cold: caches emptied and on_sequence() called at each sequence start;
 *     warm: the sequences run back to back;
 *   - hit rate = hits / uses over all layers and tokens.
 * Demand loading only: no prefetch is simulated.
 */
#ifndef MP_SIM_H
#define MP_SIM_H

#include <stdint.h>

#include "policy.h"

struct mp_trace;

struct mp_sim_config {
	const struct mp_trace *trace;            /* the trace to replay */
	uint64_t first_seq;                      /* first sequence replayed */
	uint64_t n_seq;                          /* sequences replayed, in file order */
	enum mp_policy_kind policy;              /* who chooses the victim */
	const struct mp_policy_params *params;   /* moepager knobs, NULL = defaults */
	uint32_t slots;                          /* experts cached per layer */
	uint64_t global_slots;                   /* > 0: one shared pool of this many instead */
	int cold;                                /* 1 cold, 0 warm (see above) */
	const char *model_in;                    /* moepager: start from this saved model, or NULL */
	const char *model_out;                   /* moepager: save the model here at the end, or NULL */
	uint32_t belady_lookahead;               /* belady: tokens of foresight, 0 = all */
};

struct mp_sim_result {
	uint64_t tokens;       /* tokens replayed */
	uint64_t acquires;     /* (token, layer) acquires */
	uint64_t uses;         /* expert uses = acquires × top_k */
	uint64_t hits;         /* uses found resident */
	uint64_t misses;       /* uses - hits: experts read */
	double hit_rate;       /* hits / uses, 0 when no use */
	char error[256];       /* why mp_sim_run failed, "" on success */
};

/* Rounds fraction × experts to slots (ROUTING.md: round(0.27 × 64) = 17). */
uint32_t mp_sim_slots(double fraction, uint32_t experts);

/* Replays c and fills *r.  Returns 0, -MP_EARG (sequence range, slots) or
 * -ENOMEM, with the sentence in r->error. */
int mp_sim_run(const struct mp_sim_config *c, struct mp_sim_result *r);

/* How a trace's routing behaves (ROUTING.md's statistics): popularity skew
 * over the whole range and within one sequence, and reuse between
 * consecutive tokens.  "Top 10%" is the round(0.10 × experts) most used
 * experts of a layer; shares are averaged over layers (and sequences). */
#define MP_SIM_MAX_LAYERS 1024
struct mp_sim_routing {
	uint64_t tokens;                 /* tokens in the range */
	double share10;                  /* top 10% of a layer's experts, whole range */
	double share25;                  /* top 25%, whole range */
	double share10_seq;              /* top 10% within one sequence, weighted by its tokens */
	double share10_seq_mean;         /* the same, plain mean over (sequence, layer) */
	double reuse;                    /* P(used at t+1 | used at t), mean over layers */
	double reuse_layer[MP_SIM_MAX_LAYERS]; /* the same per layer */
};

/* Measures the routing of sequences [first, first + n).  Returns 0 or
 * -MP_EARG / -ENOMEM. */
int mp_sim_routing(const struct mp_trace *t, uint64_t first, uint64_t n, struct mp_sim_routing *out);

#endif
