/*
 * experts.h — the routed experts of a GGUF model served by the pager: every
 * (layer, expert) is registered as its three byte ranges (gate, up, down
 * slices of the 3-D expert tensors, FORMATS.md §2.9), and the model's narrow
 * expert source (model.h) is answered from pager slots.
 *
 * The pager never sees a transformer type; this file is the only place that
 * knows both.
 */
#ifndef MP_EXPERTS_H
#define MP_EXPERTS_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "model.h"
#include "pager.h"

struct mp_experts;

/* What the experts do besides serving: the eviction policy, prefetch and the
 * trace. */
struct mp_experts_opts {
	int policy;               /* enum mp_policy_kind: MP_POLICY_MOEPAGER (default) or _LRU */
	int prefetch;             /* 1: pass the model's hints to the pager */
	const char *trace_out;    /* NULL or a MOETRACE v2 file to write */
	const char *profile;      /* usage profile path (NULL: none); the learned policy
				     model is kept beside it as PATH.policy */
	uint64_t fingerprint;     /* the model's (loader.h), keys the profile */
	uint32_t layer_begin, layer_end; /* register and warm only these layers (a rank's
					    share, src/dist.h); 0, 0 = all */
};

/* Creates the pager from cfg (its n_layers, n_experts and top_k are filled in
 * here from hp and top_k), registers every expert of g and starts it.
 * Returns 0 with *out and the source in *src, or an error with the sentence
 * in err (e.g. the budget is too small: the smallest that works is named). */
int mp_experts_create(struct mp_gguf *g, const struct mp_hparams *hp, const struct mp_weights *w,
		      uint32_t top_k, const struct mp_pager_config *cfg,
		      const struct mp_experts_opts *opts, struct mp_experts **out,
		      struct mp_expert_source *src, char *err, size_t err_len);

/* Saves the usage profile and the learned policy now (also done by destroy).
 * Returns 0 or an error with the sentence in err. */
int mp_experts_save_profile(struct mp_experts *x, char *err, size_t err_len);

/* Ends a sequence in the trace (a new prompt or chat turn starts). */
void mp_experts_end_sequence(struct mp_experts *x);
void mp_experts_destroy(struct mp_experts *x);

struct mp_pager *mp_experts_pager(struct mp_experts *x);

#endif
