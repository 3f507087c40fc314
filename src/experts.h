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

/* Creates the pager from cfg (its n_layers, n_experts and top_k are filled in
 * here from hp and top_k), registers every expert of g and starts it.
 * Returns 0 with *out and the source in *src, or an error with the sentence
 * in err (e.g. the budget is too small: the smallest that works is named). */
int mp_experts_create(struct mp_gguf *g, const struct mp_hparams *hp, const struct mp_weights *w,
		      uint32_t top_k, const struct mp_pager_config *cfg, struct mp_experts **out,
		      struct mp_expert_source *src, char *err, size_t err_len);
void mp_experts_destroy(struct mp_experts *x);

struct mp_pager *mp_experts_pager(struct mp_experts *x);

#endif
