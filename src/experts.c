/*
 * experts.c — a struct mp_expert_source over the pager.
 *
 * acquire() pins the layer's set (hits at once, misses demand-read);
 * next_ready() blocks until any expert of the set not yet handed out is in
 * memory and returns it with tensor views over its slot; release() unpins.
 * The views carry the types and shapes of the 3-D expert tensors, so an expert
 * in a slot is computed exactly like the same bytes in a mapping.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "experts.h"

struct mp_experts {
	struct mp_pager *pager;
	const struct mp_weights *w;
	const uint32_t *set;          /* the acquired set (model's array, valid until release) */
	uint32_t n;                   /* its size */
	uint8_t taken[MP_ROUTER_MAX_USED]; /* handed out already */
	char err[512];
};

static int x_acquire(void *ctx, uint32_t layer, const uint32_t *experts, uint32_t n)
{
	struct mp_experts *x = ctx;
	x->set = experts;
	x->n = n;
	memset(x->taken, 0, sizeof x->taken);
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

static int x_next_ready(void *ctx, uint32_t layer, uint32_t *index, struct mp_expert_view *out)
{
	struct mp_experts *x = ctx;
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
	x->taken[i] = 1;
	*index = (uint32_t)i;
	const struct mp_layer_weights *lw = &x->w->layer[layer];
	out->gate = view(&lw->gate_exps, ptrs[0]);
	out->up = view(&lw->up_exps, ptrs[1]);
	out->down = view(&lw->down_exps, ptrs[2]);
	return 0;
}

static void x_release(void *ctx, uint32_t layer, const uint32_t *experts, uint32_t n)
{
	struct mp_experts *x = ctx;
	mp_pager_release(x->pager, layer, experts, n);
	x->set = NULL;
	x->n = 0;
}

static const char *x_err(void *ctx)
{
	return ((struct mp_experts *)ctx)->err;
}

int mp_experts_create(struct mp_gguf *g, const struct mp_hparams *hp, const struct mp_weights *w,
		      uint32_t top_k, const struct mp_pager_config *cfg, struct mp_experts **out,
		      struct mp_expert_source *src, char *err, size_t err_len)
{
	*out = NULL;
	struct mp_experts *x = mp_calloc(1, sizeof *x);
	if (!x) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	x->w = w;
	struct mp_pager_config pc = *cfg;
	pc.n_layers = hp->n_layer;
	pc.n_experts = hp->n_expert;
	pc.top_k = top_k;
	int rc = mp_pager_create(&pc, &x->pager, err, err_len);
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
	for (uint32_t p = 0; p < parts; p++) {
		file_id[p] = mp_pager_add_file(x->pager, mp_gguf_part_path(g, p));
		if (file_id[p] < 0) {
			rc = file_id[p];
			snprintf(err, err_len, "%s", mp_pager_message(x->pager));
			goto fail;
		}
	}
	for (uint32_t L = hp->n_dense_lead; L < hp->n_layer; L++)
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
	*src = (struct mp_expert_source){ x, x_acquire, x_next_ready, x_release, x_err };
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
	mp_pager_destroy(x->pager);
	mp_free(x);
}

struct mp_pager *mp_experts_pager(struct mp_experts *x)
{
	return x->pager;
}
