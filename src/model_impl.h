/*
 * model_impl.h — the model's state, shared by the files of the forward pass
 * (model.c: the one-token step, creation and checks; prefill.c: the batched,
 * layer-major path).  Private to src/: nothing outside the model includes it.
 */
#ifndef MP_MODEL_IMPL_H
#define MP_MODEL_IMPL_H

#include "matvec.h"
#include "model.h"
#include "ops.h"

struct mp_batch;

struct mp_model {
	/* ---- fixed at create ---- */
	const struct mp_hparams *hp;
	const struct mp_weights *w;
	struct mp_expert_source src;
	struct mp_model_opts opts;
	struct mp_router_cfg router;
	struct mp_rope rope;
	float kq_scale;
	uint32_t l_begin, l_end;      /* the layers this model runs (opts, 0/0 = all) */
	uint32_t kv_width;            /* kv_lora_rank + d_rope values per cached token */
	uint64_t kv_row_bytes;        /* bytes per cached token per layer */
	uint8_t *kv;                  /* [l_end - l_begin][n_ctx][kv_row_bytes]: own layers */
	char err[512];

	/* ---- changes every step ---- */
	uint32_t pos;                 /* tokens cached (invariant 1) */
	struct mp_route *routes;      /* [n_layer]: last step's routing */
	/* scratch, f32 unless noted */
	float *h, *x, *q, *qa, *kv_a, *q_lat, *o_lat, *o, *att, *f, *tmp;
	float *ff_a, *ff_b, *logits, *kv_row, *router_logits;
	float *k_dec, *v_dec;         /* absorb == 0 only: one position's keys / values */
	float *kvf;                   /* [n_ctx][kv_width]: the current layer's cache in f32 */
	struct head_scratch *hs;      /* [threads]: per-thread attention scratch */
	struct mp_matvec_xcache ain;  /* an attention or dense FFN input, quantized once
					 per activation type (fused decode) */
	float *la_x;                  /* [n_embd]: look-ahead normed state */
	int depth;                    /* current prefetch depth */
	uint64_t wait_ns;             /* ns waiting for experts, this step */
	uint64_t wait_total_ns;       /* ns waiting for experts since create */
	int n_hs;                     /* entries in hs */
	struct mp_batch *batch;       /* prefill scratch; NULL until the first prefill */
	uint64_t pf_experts;          /* prefill: experts acquired (sum of unions) */
	uint64_t pf_tokens;           /* prefill: tokens run in batches */
	uint64_t ph[MP_PHASE_N];      /* ns by phase, every path (model.h mp_phase) */
	struct mp_model_timings dec;  /* the decode steps' share of ph */
	int (*cancel)(void *ctx);     /* asked before each prefill layer (NULL: never) */
	void *cancel_ctx;
	const struct mp_route *pos_routes; /* [n_layer] during a prefill callback: that
					      position's routing (mp_model_route); else NULL */
};


/* Stores the sentence in m->err; returns -1. */
__attribute__((format(printf, 2, 3)))
int mp_model_fail(struct mp_model *m, const char *fmt, ...);

/* Cached row of position pos in layer L. */
uint8_t *mp_model_kv_slot(struct mp_model *m, uint32_t layer, uint32_t pos);

/* Batched scratch (prefill.c): allocated at the first prefill or step
 * (mp_model_batch_ready: 0 or -ENOMEM with the sentence in m->err), freed
 * by destroy. */
int mp_model_batch_ready(struct mp_model *m);
void mp_batch_destroy(struct mp_batch *b);

/* mp_model_stage of n > 1 rows (prefill.c), at position m->pos. */
int mp_prefill_stage(struct mp_model *m, float *h, uint32_t n);

/* One MoE layer for n tokens — the one implementation that prefill batches
 * and decode steps share (prefill.c): router, shared expert, routed experts
 * grouped by expert and acquired in waves, outputs summed per token in
 * selection order. */
struct mp_moe_io {
	const float *x;            /* [n][n_embd]: the layer's normed inputs */
	const float *h;            /* [n][n_embd]: the residual stream (look-ahead) */
	float *out;                /* [n][n_embd] */
	struct mp_route *rt;       /* token i's routing is rt[i * stride] */
	size_t stride;
	uint32_t n;                /* tokens */
	int decode;                /* 1: a decode step (model.c's look-ahead, not counted
				      as prefill) */
};
int mp_model_moe(struct mp_model *m, uint32_t L, const struct mp_moe_io *io);

/* The one-token router look-ahead after layer L's routing (model.c). */
void mp_model_lookahead(struct mp_model *m, uint32_t L);

#endif
