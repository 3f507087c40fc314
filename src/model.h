/*
 * model.h — the deepseek2 forward pass (DeepSeek-V2/V2-Lite/V3/R1 and kin),
 * one token at a time, with MLA in its absorbed (latent) form and a KV cache
 * that keeps only the normalized latent c and the rotated rope key per token
 * per layer (FORMATS.md §4).
 *
 * The model knows tensors, not files: whoever opens the GGUF fills in
 * struct mp_hparams and struct mp_weights.  Routed experts are never read
 * through the weights struct: every expert FFN call goes through the narrow
 * struct mp_expert_source ("give me expert e of layer L"), served today by
 * pointers into resident tensors and by the pager when the model is larger
 * than memory.
 */
#ifndef MP_MODEL_H
#define MP_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "router.h"
#include "threads.h"
#include "tensor.h"

#define MP_MODEL_MAX_LAYERS 512

/* Hyperparameters, already interpreted (FORMATS.md §3.1-3.2). */
struct mp_hparams {
	uint32_t n_layer;         /* blocks (61) */
	uint32_t n_dense_lead;    /* leading dense blocks (3) */
	uint32_t n_embd;          /* hidden size D (7168) */
	uint32_t n_head;          /* attention heads H (128) */
	uint32_t q_lora_rank;     /* 1536; 0 = no query LoRA (V2-Lite: attn_q) */
	uint32_t kv_lora_rank;    /* 512 */
	uint32_t d_nope;          /* per-head non-rope query/key dims (128) */
	uint32_t d_rope;          /* rope dims (64) */
	uint32_t d_v;             /* per-head value dims (128) */
	uint32_t n_ff;            /* dense FFN width (18432) */
	uint32_t n_ff_exp;        /* expert FFN width (2048) */
	uint32_t n_expert;        /* routed experts per MoE layer (256) */
	uint32_t n_expert_used;   /* experts per token (8) */
	uint32_t n_expert_shared; /* shared experts (1): the shexp width is n_ff_exp × this */
	uint32_t n_group;         /* expert groups (8); ≤ 1 = none */
	uint32_t n_group_used;    /* groups kept (4) */
	enum mp_gating gating;    /* sigmoid (V3/R1) or softmax (V2) */
	int expert_norm;          /* normalize chosen weights */
	float expert_scale;       /* routed scaling factor (2.5) */
	uint32_t n_vocab;         /* output rows (129280) */
	uint32_t n_ctx_train;     /* context length of training (163840) */
	float eps;                /* RMSNorm epsilon (1e-6) */
	float rope_base;          /* 10000 */
	int yarn;                 /* rope.scaling.type == yarn */
	float yarn_factor;        /* s (40) */
	float yarn_orig_ctx;      /* 4096 */
	float yarn_beta_fast;     /* 32 */
	float yarn_beta_slow;     /* 1 */
	float mscale_all_dim;     /* 1.0 for R1, 0.707 for V2 (= log multiplier / 0.1) */
	float rope_attn_factor;   /* rope.scaling.attn_factor (1) */
	int mla_new;              /* 1: attn_k_b + attn_v_b; 0: attn_kv_b */
};

/* Per layer; absent tensors have data == NULL. */
struct mp_layer_weights {
	struct mp_tensor attn_norm, q, q_a, q_a_norm, q_b, kv_a_mqa, kv_a_norm;
	struct mp_tensor kv_b, k_b, v_b, attn_out, ffn_norm;
	struct mp_tensor ffn_gate, ffn_up, ffn_down;              /* dense layers */
	struct mp_tensor gate_inp, exp_probs_b;                   /* MoE router */
	struct mp_tensor gate_shexp, up_shexp, down_shexp;        /* shared expert */
	struct mp_tensor gate_exps, up_exps, down_exps;           /* only for the resident source */
};

struct mp_weights {
	struct mp_tensor token_embd, output_norm, output;
	struct mp_layer_weights layer[MP_MODEL_MAX_LAYERS];
};

/* One routed expert's three matrices (2-D tensors: ne0 = in, ne1 = out). */
struct mp_expert_view {
	struct mp_tensor gate, up, down;
};

/* Serves routed experts.  acquire() announces the layer's chosen set (the
 * pager starts reads for misses); next_ready() hands out one expert of the set
 * not yet handed out, whichever is ready first, with its index in the set;
 * release() ends the use of the set.  Errors are -errno / -MP_E*; the source
 * keeps the sentence that explains them (err_msg). */
struct mp_expert_source {
	void *ctx;
	int (*acquire)(void *ctx, uint32_t layer, const uint32_t *experts, uint32_t n);
	int (*next_ready)(void *ctx, uint32_t layer, uint32_t *index, struct mp_expert_view *out);
	void (*release)(void *ctx, uint32_t layer, const uint32_t *experts, uint32_t n);
	const char *(*err_msg)(void *ctx);
	/* Optional (NULL: none): the experts that layer will probably need, most
	 * likely first, with scores in [0, 1] (prefetch).  Never blocks. */
	void (*hint)(void *ctx, uint32_t layer, const uint32_t *experts, const float *scores,
		     uint32_t n);
	/* Optional: a token is complete (the source may record or learn). */
	void (*end_token)(void *ctx);
	/* Optional, for prefill batches (prefill.c): batch(ctx, n > 0, ...) says a
	 * batch of n tokens starts, so the acquires that follow are waves of each
	 * layer's union rather than one token's set; after the batch, each token's
	 * routing is given token-major as batch(ctx, 0, layer, experts, k) for its
	 * MoE layers in order, then batch(ctx, 0, UINT32_MAX, NULL, 0) ends it. */
	void (*batch)(void *ctx, uint32_t n, uint32_t layer, const uint32_t *experts, uint32_t k);
	/* Optional (NULL: none): next_ready that never blocks — 1 and an expert
	 * of the set not yet handed out when one is in memory now, 0 when none
	 * is (or none is left), or a negative error.  A decode step gathers
	 * every ready expert with it and computes them in one parallel region. */
	int (*try_ready)(void *ctx, uint32_t layer, uint32_t *index, struct mp_expert_view *out);
};

/* A source serving experts from resident 3-D expert tensors (w must outlive
 * it).  Returns 0 or -MP_EFORMAT when a MoE layer lacks its expert tensors. */
struct mp_resident_experts;
int mp_resident_experts_create(const struct mp_hparams *hp, const struct mp_weights *w,
			       struct mp_resident_experts **out, struct mp_expert_source *src);
void mp_resident_experts_destroy(struct mp_resident_experts *r);

/* KV cache element types (GGUF type ids); f32 exists for exactness tests. */
enum mp_kv_type { MP_KV_F32 = 0, MP_KV_F16 = 1, MP_KV_Q8_0 = 8 };

struct mp_model_opts {
	uint32_t n_ctx;           /* KV cache positions */
	enum mp_kv_type kv_type;  /* f16 (the CLI default), q8_0, or f32 */
	uint32_t n_expert_used;   /* 0 = the file's; else --experts K */
	int no_groups;            /* 1: ignore expert groups (--no-expert-groups) */
	int absorb;               /* 1 (default): latent attention; 0: decompress keys (test) */
	struct mp_threads *threads; /* pool for the mat-vecs, or NULL (caller only) */
	int prefetch_depth;       /* router look-ahead: hint layers L+1..L+d; 0 = none,
				     -1 = auto (adapts to the time spent waiting for experts) */
	int prefetch_history;     /* also hint the previous token's experts of those layers */
	uint32_t n_batch;         /* prefill: tokens per batch at most; 0 = 512, 1 = one
				     token at a time through mp_model_step (-b) */
	/* Several ranks (src/dist.c): this model runs layers [layer_begin,
	 * layer_end) only (0, 0 = all).  The first rank (layer_begin 0, ending
	 * before the last layer) needs pipe; later ranks run mp_model_stage. */
	uint32_t layer_begin, layer_end;
	const struct mp_model_pipe *pipe;
	int unfused;              /* 1: a decode step runs one parallel region per matrix,
				     as before the fused layer (tests compare the two bit
				     for bit); 0 (default): fused */
};

/* Carries hidden states through the layers other ranks own: h holds n rows
 * of n_embd floats leaving layer layer_end - 1 at positions pos .. pos+n-1;
 * on return they are the rows leaving the model's last layer.  Returns 0, or
 * a negative error with the sentence from err_msg(). */
struct mp_model_pipe {
	void *ctx;
	int (*forward)(void *ctx, uint32_t pos, float *h, uint32_t n);
	const char *(*err_msg)(void *ctx);
	/* Optional (NULL: none; also on ranks after the first, which have no
	 * forward): one token's state entering this model's last layer, handed
	 * on before that layer runs so the next rank's look-ahead starts one
	 * layer early (mp_model_stage_hint there). */
	void (*early)(void *ctx, uint32_t pos, const float *h);
	/* Optional (NULL: forward every batch): a prefill batch whose rows
	 * leaving the last layer nobody reads (not the prompt's last batch, no
	 * logits per position) is handed on without waiting for it to come back,
	 * so this rank runs the next batch while the others run this one.  h may
	 * be reused on return.  The next forward comes back after every batch
	 * sent before it. */
	int (*send)(void *ctx, uint32_t pos, const float *h, uint32_t n);
};


struct mp_model;

/* Validates shapes against the hyperparameters (every mismatch is named in
 * err) and allocates the KV cache and scratch.  hp, w and src must outlive
 * the model. */
int mp_model_create(const struct mp_hparams *hp, const struct mp_weights *w,
		    const struct mp_expert_source *src, const struct mp_model_opts *opts,
		    struct mp_model **out, char *err, size_t err_len);
void mp_model_destroy(struct mp_model *m);

/* Runs token tok at the next position (= tokens cached so far) and returns
 * the logits (n_vocab floats, valid until the next call) in *logits.
 * Errors: -MP_EARG (token out of range), -MP_EBUDGET (context full), or the
 * expert source's error; mp_model_error() says what happened. */
int mp_model_step(struct mp_model *m, uint32_t tok, const float **logits);

/* Called by mp_model_prefill for each position in order, with that position's
 * logits (n_vocab floats, valid during the call); mp_model_route() gives that
 * position's routing during the call.  A negative return stops the prefill
 * and is returned by it. */
typedef int (*mp_model_pos_fn)(void *ctx, uint32_t pos, const float *logits);

/* Runs n tokens at positions pos .. pos+n-1, layer by layer in batches of up
 * to opts.n_batch (prefill.c): each layer's attention, dense / shared FFN and
 * router as matrix products over the batch, then the routed experts grouped
 * by expert: the union of the batch's experts is acquired from the source in
 * waves of at most n_expert_used (each expert once per batch) and applied to
 * exactly its tokens.  The logits of the last position are in *last_logits
 * (as mp_model_step's); with on_pos every position's logits are computed and
 * handed to it (perplexity, --logits-out).  Numbers match n calls of
 * mp_model_step within float tolerance (identical with n_batch = 1).
 * Errors as mp_model_step; on error no position is added. */
int mp_model_prefill(struct mp_model *m, const uint32_t *toks, uint32_t n, mp_model_pos_fn on_pos,
		     void *ctx, const float **last_logits);

/* Bytes of the scratch the first prefill allocates (the memory plan counts
 * them): n_batch (0 = 512) tokens at most, n_ctx positions, threads, n_used
 * experts per token (0 = the file's). */
uint64_t mp_model_batch_bytes(const struct mp_hparams *hp, uint32_t n_batch, uint32_t n_ctx,
			      int threads, uint32_t n_used);

/* Optional: asked before each layer of a prefill batch (and before each
 * token of the one-token path) whether to give up (a client left); nonzero
 * makes mp_model_prefill return -MP_ECANCELLED with the batch under way not
 * cached (earlier batches stay).  NULL: never. */
void mp_model_set_cancel(struct mp_model *m, int (*cancel)(void *ctx), void *ctx);

/* Prefill counters since create: distinct routed experts acquired (the sum
 * over batches and MoE layers of each batch's union) and tokens prefilled in
 * batches; for the bytes-read ratio (bench/prefill.sh). */
void mp_model_prefill_counts(const struct mp_model *m, uint64_t *experts, uint64_t *tokens);

/* A pipeline stage (src/dist.c): the hidden states h (n rows of n_embd
 * floats entering layer layer_begin, positions pos .. pos+n-1) go through
 * layers [layer_begin, layer_end) and are replaced by the rows leaving
 * layer_end - 1 — one token as mp_model_step runs it, several as a prefill
 * batch.  pos may be below mp_model_pos() (the first rank reset its cache), not
 * above.  The look-ahead of the first layers starts from h before anything
 * else.  Errors as mp_model_step. */
int mp_model_stage(struct mp_model *m, uint32_t pos, float *h, uint32_t n);

/* The look-ahead of a stage's first layers from h (n_embd floats: the state
 * entering the previous rank's last layer, its pipe's early()): hints only,
 * nothing else changes. */
void mp_model_stage_hint(struct mp_model *m, const float *h);

/* Positions cached so far; mp_model_reset() empties the cache;
 * mp_model_truncate() keeps only positions 0 .. pos-1 (no-op when pos is not
 * below the cached count), so a conversation can be rewound to a common
 * prefix and continued. */
uint32_t mp_model_pos(const struct mp_model *m);
void mp_model_reset(struct mp_model *m);
void mp_model_truncate(struct mp_model *m, uint32_t pos);
const char *mp_model_error(const struct mp_model *m);

/* Where a decode token's time goes (--timings): nanoseconds summed over the
 * mp_model_step calls since create, by phase.  Every phase but OTHER is
 * measured where it runs; OTHER is the rest of the step (norms, residual
 * additions, the embedding row, the pipe to other ranks). */
enum mp_phase {
	MP_PHASE_ATTN,        /* attention: projections, scores, values, output */
	MP_PHASE_DENSE,       /* the dense layers' FFN */
	MP_PHASE_SHARED,      /* the shared expert */
	MP_PHASE_ROUTER,      /* the router, the look-ahead and the hints */
	MP_PHASE_EXPERTS,     /* the routed experts' arithmetic (waits excluded) */
	MP_PHASE_WAIT,        /* waiting for routed experts to be read */
	MP_PHASE_HEAD,        /* output norm and head */
	MP_PHASE_OTHER,
	MP_PHASE_N
};
extern const char *const mp_phase_names[MP_PHASE_N];

struct mp_model_timings {
	uint64_t tokens;              /* decode steps measured */
	uint64_t total_ns;            /* their whole time */
	uint64_t ns[MP_PHASE_N];
};
void mp_model_timings(const struct mp_model *m, struct mp_model_timings *out);

/* Nanoseconds spent waiting for routed experts since create (stalls). */
uint64_t mp_model_wait_ns(const struct mp_model *m);

/* Prefetch depth in use (with auto: the one it has settled on). */
int mp_model_prefetch_depth(const struct mp_model *m);

/* The routing of the last step at layer L (n == 0 for dense layers). */
const struct mp_route *mp_model_route(const struct mp_model *m, uint32_t layer);

/* KV bytes per cached token (all layers) for a cache type. */
uint64_t mp_model_kv_bytes_per_token(const struct mp_hparams *hp, enum mp_kv_type t);
/* Bytes of the KV cache m allocated: its own layers' rows only (several ranks:
 * [layer_begin, layer_end), src/dist.h). */
uint64_t mp_model_kv_bytes(const struct mp_model *m);

/* kq_scale and the rope parameters derived from hp (FORMATS.md §4.5). */
float mp_hparams_kq_scale(const struct mp_hparams *hp);

#endif
