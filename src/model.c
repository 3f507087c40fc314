/*
 * model.c — one decode step of the deepseek2 forward pass (FORMATS.md §4.3),
 * readable top to bottom:
 *
 *   h = token_embd[tok]
 *   per layer: h += attention(rmsnorm(h)); h += ffn_or_moe(rmsnorm(h))
 *   logits = output · rmsnorm(h)
 *
 * Attention runs in the absorbed form (§4.4): per head the query is carried
 * into the 512-wide latent space (q_lat = K_hᵀ q_nope), scores are taken
 * against the cached latents c(t) and rotated rope keys, and the output is
 * brought back through U_h once per step.  The `absorb = 0` option
 * decompresses every cached latent into per-head keys and values instead; it
 * exists so a test can show both forms agree.
 *
 * On several ranks (src/dist.c) a model runs one contiguous range of layers:
 * the first rank embeds, hands the state to the pipe after its last layer and
 * applies the head to what comes back; the others run mp_model_stage.
 *
 * Invariants:
 * 1. The cache holds positions 0 .. pos-1; step() writes position pos, then
 *    increments pos; nothing else raises pos (reset() sets it to 0,
 *    truncate() lowers it: positions past it are rewritten before they are
 *    read again; a pipeline stage may move it back to the position its
 *    input carries).
 * 2. Routed experts are reached only through m->src; expert outputs are summed
 *    in selection order, whatever order the source hands them out in, so the
 *    result never depends on I/O timing.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "fp16.h"
#include "matvec.h"
#include "model.h"
#include "model_impl.h"
#include "ops.h"
#include "quant.h"
#include "types.h"
#include "vecf32.h"

int mp_model_fail(struct mp_model *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->err, sizeof m->err, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- mat-vec over a row range of a weight ---------------------------------- */

/* y[r] = W[row0 + r] · x for r < nrows (x has W->ne[0] elements), rows shared
 * among the threads; bit-identical for any thread count (kernels/matvec.h).
 * With xc (a thread's own cache, pool NULL) x is quantized into its buffers
 * instead of a fresh allocation per call. */
static void linear_rows_on(struct mp_model *m, struct mp_threads *pool, struct mp_matvec_xcache *xc,
			   const struct mp_tensor *W, int64_t row0, int64_t nrows, const float *x, float *y)
{
	struct mp_mat mat = { mp_tensor_row(W, row0), W->type, nrows, W->ne[0] };
	int rc;
	if (xc) {
		const void *xq = NULL;
		mp_matvec_xcache_reset(xc, x, W->ne[0]);
		rc = mp_matvec_xcache_get(xc, W->type, &xq);
		if (rc == 0)
			rc = mp_matvec_q(pool, mp_dispatch_path(), &mat, xq, y);
	} else {
		rc = mp_matvec(pool, mp_dispatch_path(), &mat, x, y);
	}
	if (rc < 0 && !m->err[0])   /* shapes and types were checked at create */
		mp_model_fail(m, "matvec failed: %s", mp_strerror(rc));
}

static void linear_rows(struct mp_model *m, const struct mp_tensor *W, int64_t row0, int64_t nrows,
			const float *x, float *y)
{
	linear_rows_on(m, m->opts.threads, NULL, W, row0, nrows, x, y);
}

static void linear(struct mp_model *m, const struct mp_tensor *W, const float *x, float *y)
{
	linear_rows(m, W, 0, W->ne[1] * W->ne[2], x, y);
}

/* y[i] = W_i · x for n matrices on x quantized once per activation type
 * (m->ain), all their rows in one parallel region; the bits of n linear()
 * calls (kernels/matvec.h). */
static void linear_multi(struct mp_model *m, const struct mp_tensor *const *W, float *const *y, int n,
			 const float *x)
{
	struct mp_matvec_item it[4];
	int rc = 0;
	mp_matvec_xcache_reset(&m->ain, x, W[0]->ne[0]);
	for (int i = 0; i < n && rc == 0; i++) {
		const void *xq = NULL;
		rc = mp_matvec_xcache_get(&m->ain, W[i]->type, &xq);
		it[i] = (struct mp_matvec_item){ { W[i]->data, W[i]->type, W[i]->ne[1], W[i]->ne[0] }, xq, y[i] };
	}
	if (rc == 0)
		rc = mp_matvec_multi(m->opts.threads, mp_dispatch_path(), it, n);
	if (rc < 0 && !m->err[0])
		mp_model_fail(m, "matvec failed: %s", mp_strerror(rc));
}

/* y = down · (silu(gate · x) ⊙ (up · x)); gate and up in one region unless
 * opts.unfused */
static void swiglu(struct mp_model *m, const struct mp_tensor *gate, const struct mp_tensor *up,
		   const struct mp_tensor *down, const float *x, float *y)
{
	if (m->opts.unfused) {
		linear(m, gate, x, m->ff_a);
		linear(m, up, x, m->ff_b);
	} else {
		linear_multi(m, (const struct mp_tensor *[]){ gate, up }, (float *[]){ m->ff_a, m->ff_b }, 2, x);
	}
	mp_ops_silu_mul(m->ff_a, m->ff_b, gate->ne[1]);
	linear(m, down, m->ff_a, y);
}

/* ---- KV cache ----------------------------------------------------------------- */

uint64_t mp_model_kv_bytes(const struct mp_model *m)
{
	return m->kv_row_bytes * (m->l_end - m->l_begin) * m->opts.n_ctx;
}

uint8_t *mp_model_kv_slot(struct mp_model *m, uint32_t layer, uint32_t pos)
{
	return m->kv + ((uint64_t)(layer - m->l_begin) * m->opts.n_ctx + pos) * m->kv_row_bytes;
}

/* Reads cached position t of layer L as f32 into m->kv_row ([c | k_rope]). */
static const float *kv_read(struct mp_model *m, uint32_t layer, uint32_t t)
{
	mp_quant_ops((uint32_t)m->opts.kv_type)->dequant(mp_model_kv_slot(m, layer, t), m->kv_row, m->kv_width);
	return m->kv_row;
}

/* ---- attention ------------------------------------------------------------------ */

/* q_lat = K_hᵀ q_nope for head h (kv_lora_rank values), on the calling
 * thread (xc its input cache); tmp holds kv_lora_rank floats. */
static void absorb_query(struct mp_model *m, struct mp_matvec_xcache *xc, const struct mp_layer_weights *lw,
			 uint32_t h, const float *q_nope, float *q_lat, float *tmp)
{
	const struct mp_hparams *hp = m->hp;
	if (hp->mla_new) {
		linear_rows_on(m, NULL, xc, &lw->k_b, (int64_t)h * hp->kv_lora_rank, hp->kv_lora_rank, q_nope,
			       q_lat);
		return;
	}
	/* old files: accumulate q_nope[d] × kv_b row (h·(d_nope+d_v) + d) */
	mp_dequant_fn dequant = mp_quant_dequant(lw->kv_b.type, mp_dispatch_path());
	memset(q_lat, 0, sizeof(float) * hp->kv_lora_rank);
	for (uint32_t d = 0; d < hp->d_nope; d++) {
		dequant(mp_tensor_row(&lw->kv_b, (int64_t)h * (hp->d_nope + hp->d_v) + d), tmp, hp->kv_lora_rank);
		mp_ops_axpy(q_lat, tmp, q_nope[d], hp->kv_lora_rank);
	}
}

/* o_h = U_h · o_lat (d_v values), on the calling thread (xc its input cache). */
static void expand_value(struct mp_model *m, struct mp_matvec_xcache *xc, const struct mp_layer_weights *lw,
			 uint32_t h, const float *o_lat, float *o_h)
{
	const struct mp_hparams *hp = m->hp;
	if (hp->mla_new)
		linear_rows_on(m, NULL, xc, &lw->v_b, (int64_t)h * hp->d_v, hp->d_v, o_lat, o_h);
	else
		linear_rows_on(m, NULL, xc, &lw->kv_b, (int64_t)h * (hp->d_nope + hp->d_v) + hp->d_nope,
			       hp->d_v, o_lat, o_h);
}

/* One thread's scratch for the per-head attention work: slot k (of
 * MP_VF32_HEADS) serves the k-th head of the group the thread claimed. */
struct head_scratch {
	float *q_lat;   /* [MP_VF32_HEADS][kv_width]: absorbed query | rope query */
	float *o_lat;   /* [MP_VF32_HEADS][kv_lora_rank] */
	float *att;     /* [MP_VF32_HEADS][n_ctx] */
	float *tmp;     /* [kv_lora_rank] */
	struct mp_matvec_xcache xq; /* the head's small products' inputs, quantized */
};

struct heads_job {
	struct mp_model *m;
	const struct mp_layer_weights *lw;
	uint32_t n_pos;
	const void *qin;   /* fused: q's input in q's activation type, each head's
			      query computed in the region; NULL: m->q is ready */
	_Atomic uint32_t next;   /* next unclaimed head */
};

/* Head h's query (d_nope + d_rope values, rope applied) into m->q on the
 * calling thread: its rows of q_b (or q) on qin, then the rotation — the
 * bits of the whole-matrix product and the rotation of every head. */
static void head_query(struct mp_model *m, const struct mp_layer_weights *lw, uint32_t h, const void *qin)
{
	const struct mp_hparams *hp = m->hp;
	const struct mp_tensor *W = hp->q_lora_rank ? &lw->q_b : &lw->q;
	uint32_t d_qk = hp->d_nope + hp->d_rope;
	struct mp_mat mat = { mp_tensor_row(W, (int64_t)h * d_qk), W->type, d_qk, W->ne[0] };
	int rc = mp_matvec_q(NULL, mp_dispatch_path(), &mat, qin, m->q + (size_t)h * d_qk);
	if (rc < 0 && !m->err[0])
		mp_model_fail(m, "matvec failed: %s", mp_strerror(rc));
	mp_rope_apply(&m->rope, m->q + (size_t)h * d_qk + hp->d_nope, m->pos);
}

/* Scores, softmax and latent output of the n heads (1 or MP_VF32_HEADS) in
 * slots k0 .. k0+n-1 of hs, whose queries are ready: [q_lat | q_rope]
 * against each cached [c | k_rope] as one dot of kv_width, a group reading
 * each cached row once for all its heads (vecf32.h: the same bits as one
 * head at a time). */
static void heads_attend(struct mp_model *m, struct head_scratch *hs, uint32_t k0, uint32_t n, uint32_t n_pos,
			 const struct mp_vf32_ops *vf)
{
	uint32_t r = m->hp->kv_lora_rank, w = m->kv_width;
	const float *q[MP_VF32_HEADS];
	float *att[MP_VF32_HEADS], *o[MP_VF32_HEADS];
	for (uint32_t k = 0; k < n; k++) {
		q[k] = hs->q_lat + (size_t)(k0 + k) * w;
		att[k] = hs->att + (size_t)(k0 + k) * m->opts.n_ctx;
		o[k] = hs->o_lat + (size_t)(k0 + k) * r;
	}
	if (n == MP_VF32_HEADS)
		vf->dot_heads(q, m->kvf, w, n_pos, w, att);
	else
		vf->dot_rows(q[0], m->kvf, w, n_pos, w, att[0]);
	for (uint32_t k = 0; k < n; k++) {
		for (uint32_t t = 0; t < n_pos; t++)
			att[k][t] *= m->kq_scale;
		mp_ops_softmax(att[k], n_pos);
		memset(o[k], 0, sizeof(float) * r);
	}
	if (n == MP_VF32_HEADS)
		vf->axpy_heads(o, m->kvf, w, (const float *const *)att, n_pos, r);
	else
		vf->axpy_rows(o[0], m->kvf, w, att[0], n_pos, r);
}

/* Absorbed attention for the heads this thread claims (a group of
 * MP_VF32_HEADS at a time from a counter when there are at least two groups
 * per thread, else one, so a preempted thread does not hold the others up):
 * the cache rows are already dequantized in m->kvf; every head is computed
 * by one thread with the same operations, so the result does not depend on
 * the thread count, the grouping or on which thread took it. */
static void heads_worker(void *ctx, int ith, int nth)
{
	struct heads_job *j = ctx;
	struct mp_model *m = j->m;
	const struct mp_hparams *hp = m->hp;
	struct head_scratch *hs = &m->hs[ith];
	uint32_t d_qk = hp->d_nope + hp->d_rope, r = hp->kv_lora_rank, w = m->kv_width;
	uint32_t step = hp->n_head >= 2u * (uint32_t)nth * MP_VF32_HEADS ? MP_VF32_HEADS : 1;
	const struct mp_vf32_ops *vf = mp_vf32();
	for (;;) {
		uint32_t h0 = atomic_fetch_add_explicit(&j->next, step, memory_order_relaxed);
		if (h0 >= hp->n_head)
			return;
		uint32_t n = hp->n_head - h0 < step ? hp->n_head - h0 : step;
		for (uint32_t k = 0; k < n; k++) {
			const float *q_nope = m->q + (size_t)(h0 + k) * d_qk;
			float *q_lat = hs->q_lat + (size_t)k * w;
			if (j->qin)
				head_query(m, j->lw, h0 + k, j->qin);
			absorb_query(m, &hs->xq, j->lw, h0 + k, q_nope, q_lat, hs->tmp);
			memcpy(q_lat + r, q_nope + hp->d_nope, sizeof(float) * hp->d_rope);
		}
		if (n == MP_VF32_HEADS)
			heads_attend(m, hs, 0, n, j->n_pos, vf);
		else
			for (uint32_t k = 0; k < n; k++)
				heads_attend(m, hs, k, 1, j->n_pos, vf);
		for (uint32_t k = 0; k < n; k++)
			expand_value(m, &hs->xq, j->lw, h0 + k, hs->o_lat + (size_t)k * r,
				     m->o + (size_t)(h0 + k) * hp->d_v);
	}
}

/* Decompressed key-nope (d_nope) and value (d_v) of head h from latent c. */
static void decompress(struct mp_model *m, const struct mp_layer_weights *lw, uint32_t h,
		       const float *c, float *k_nope, float *v)
{
	const struct mp_hparams *hp = m->hp;
	if (hp->mla_new) {
		/* k_b head h is [kv_lora][d_nope]: k_nope[d] = Σ_c k_b[h][c][d] · c[c] */
		mp_dequant_fn dequant = mp_quant_dequant(lw->k_b.type, mp_dispatch_path());
		memset(k_nope, 0, sizeof(float) * hp->d_nope);
		for (uint32_t cc = 0; cc < hp->kv_lora_rank; cc++) {
			dequant(mp_tensor_row(&lw->k_b, (int64_t)h * hp->kv_lora_rank + cc), m->tmp, hp->d_nope);
			mp_ops_axpy(k_nope, m->tmp, c[cc], hp->d_nope);
		}
		linear_rows(m, &lw->v_b, (int64_t)h * hp->d_v, hp->d_v, c, v);
	} else {
		int64_t base = (int64_t)h * (hp->d_nope + hp->d_v);
		linear_rows(m, &lw->kv_b, base, hp->d_nope, c, k_nope);
		linear_rows(m, &lw->kv_b, base + hp->d_nope, hp->d_v, c, v);
	}
}

/* The fused start of attention: kv_a and q_a (with a query LoRA) on x
 * quantized once, in one parallel region, then q_a's norm.  Returns q's
 * input (the normed q_a, or x) in q's activation type for the heads region,
 * or NULL after an error (in m->err). */
static const void *attn_inputs(struct mp_model *m, const struct mp_layer_weights *lw, const float *x)
{
	const struct mp_hparams *hp = m->hp;
	const struct mp_tensor *W[2] = { &lw->kv_a_mqa, &lw->q_a };
	float *y[2] = { m->kv_a, m->qa };
	linear_multi(m, W, y, hp->q_lora_rank ? 2 : 1, x);
	if (hp->q_lora_rank) {
		mp_ops_rmsnorm(m->qa, m->qa, lw->q_a_norm.data, hp->q_lora_rank, hp->eps);
		mp_matvec_xcache_reset(&m->ain, m->qa, hp->q_lora_rank);
	}
	const void *qin = NULL;
	int rc = mp_matvec_xcache_get(&m->ain, hp->q_lora_rank ? lw->q_b.type : lw->q.type, &qin);
	if (rc < 0 && !m->err[0])
		mp_model_fail(m, "matvec failed: %s", mp_strerror(rc));
	return rc < 0 ? NULL : qin;
}

/* The unfused start: q (rotated) and kv_a, one region per matrix. */
static void attn_inputs_unfused(struct mp_model *m, const struct mp_layer_weights *lw, const float *x)
{
	const struct mp_hparams *hp = m->hp;
	uint32_t d_qk = hp->d_nope + hp->d_rope;
	if (hp->q_lora_rank) {
		linear(m, &lw->q_a, x, m->qa);
		mp_ops_rmsnorm(m->qa, m->qa, lw->q_a_norm.data, hp->q_lora_rank, hp->eps);
		linear(m, &lw->q_b, m->qa, m->q);
	} else {
		linear(m, &lw->q, x, m->q);
	}
	linear(m, &lw->kv_a_mqa, x, m->kv_a);
	for (uint32_t h = 0; h < hp->n_head; h++)
		mp_rope_apply(&m->rope, m->q + (size_t)h * d_qk + hp->d_nope, m->pos);
}

/* Rows of a layer's cache dequantized into m->kvf in one region, split in
 * contiguous shares (element-wise: the bits do not depend on the split). */
struct kv_job {
	struct mp_model *m;
	uint32_t layer, n_pos;
	mp_dequant_fn dequant;
};

static void kv_worker(void *ctx, int ith, int nth)
{
	struct kv_job *j = ctx;
	uint32_t t0 = (uint32_t)((uint64_t)j->n_pos * (uint32_t)ith / (uint32_t)nth);
	uint32_t t1 = (uint32_t)((uint64_t)j->n_pos * (uint32_t)(ith + 1) / (uint32_t)nth);
	for (uint32_t t = t0; t < t1; t++)
		j->dequant(mp_model_kv_slot(j->m, j->layer, t), j->m->kvf + (size_t)t * j->m->kv_width,
			   j->m->kv_width);
}

/* Below this many rows the caller dequantizes alone: the region would cost
 * more than the work (a few µs per hundred rows of 576 f16 values). */
enum { KV_PARALLEL_ROWS = 512 };

static void kv_dequant(struct mp_model *m, uint32_t L, uint32_t n_pos)
{
	struct kv_job job = { m, L, n_pos, mp_quant_dequant((uint32_t)m->opts.kv_type, mp_dispatch_path()) };
	if (n_pos >= KV_PARALLEL_ROWS)
		mp_threads_run(m->opts.threads, kv_worker, &job);
	else
		kv_worker(&job, 0, 1);
}

static void attention(struct mp_model *m, uint32_t L, const float *x, float *out)
{
	const struct mp_hparams *hp = m->hp;
	const struct mp_layer_weights *lw = &m->w->layer[L];
	uint32_t d_qk = hp->d_nope + hp->d_rope, r = hp->kv_lora_rank;
	uint32_t n_pos = m->pos + 1;

	/* query (fused: its input only; each head's rows come in the heads'
	 * region), latent and rope key */
	const void *qin = NULL;
	if (m->opts.absorb && !m->opts.unfused) {
		if (!(qin = attn_inputs(m, lw, x)))
			return;
	} else {
		attn_inputs_unfused(m, lw, x);
	}
	/* the latent and rope key, cached for this position */
	mp_ops_rmsnorm(m->kv_a, m->kv_a, lw->kv_a_norm.data, r, hp->eps);
	mp_rope_apply(&m->rope, m->kv_a + r, m->pos);
	mp_quant_ops((uint32_t)m->opts.kv_type)->quantize(m->kv_a, mp_model_kv_slot(m, L, m->pos), m->kv_width);

	if (m->opts.absorb) {
		/* dequantize this layer's cache once, then share the heads out */
		kv_dequant(m, L, n_pos);
		struct heads_job job = { .m = m, .lw = lw, .n_pos = n_pos, .qin = qin };
		atomic_init(&job.next, 0);
		mp_threads_run(m->opts.threads, heads_worker, &job);
	} else {
		for (uint32_t h = 0; h < hp->n_head; h++) {
			const float *q_nope = m->q + (size_t)h * d_qk, *q_rope = q_nope + hp->d_nope;
			float *o_h = m->o + (size_t)h * hp->d_v;
			for (uint32_t t = 0; t < n_pos; t++) {
				const float *kv = kv_read(m, L, t);
				decompress(m, lw, h, kv, m->k_dec, m->v_dec + (size_t)t * hp->d_v);
				m->att[t] = m->kq_scale * (mp_ops_dot(q_nope, m->k_dec, hp->d_nope) +
							   mp_ops_dot(q_rope, kv + r, hp->d_rope));
			}
			mp_ops_softmax(m->att, n_pos);
			memset(o_h, 0, sizeof(float) * hp->d_v);
			for (uint32_t t = 0; t < n_pos; t++)
				mp_ops_axpy(o_h, m->v_dec + (size_t)t * hp->d_v, m->att[t], hp->d_v);
		}
	}
	linear(m, &lw->attn_out, m->o, out);
}

/* ---- feed-forward ---------------------------------------------------------------- */

/* Router look-ahead (DESIGN.md §1): the residual stream changes slowly, so
 * layer L'’s router applied to the current state predicts its experts.  Hints
 * for L+1 .. L+depth, plus (prefetch_history) the previous token's experts of
 * those layers; the pager decides what is worth reading. */
void mp_model_lookahead(struct mp_model *m, uint32_t L)
{
	const struct mp_hparams *hp = m->hp;
	if (!m->src.hint || m->depth <= 0)
		return;
	for (uint32_t A = L + 1; A <= L + (uint32_t)m->depth && A < m->l_end; A++) {
		const struct mp_layer_weights *la = &m->w->layer[A];
		if (A < hp->n_dense_lead)
			continue;
		mp_ops_rmsnorm(m->la_x, m->h, la->ffn_norm.data, hp->n_embd, hp->eps);
		linear(m, &la->gate_inp, m->la_x, m->router_logits);
		/* the next layer gets its full predicted set; farther layers, whose
		 * prediction is weaker, only its most likely half */
		struct mp_router_cfg rc = m->router;
		if (A > L + 1)
			rc.n_used = (m->router.n_used + 1) / 2;
		struct mp_route pred;
		mp_router_select(&rc, m->router_logits, la->exp_probs_b.data, &pred);
		uint32_t ids[2 * MP_ROUTER_MAX_USED];
		float sc[2 * MP_ROUTER_MAX_USED];
		uint32_t n = 0;
		for (uint32_t i = 0; i < pred.n; i++) {
			ids[n] = pred.expert[i];
			sc[n++] = 1.0f - 0.5f * (float)i / (float)pred.n;   /* best first, in (0.5, 1] */
		}
		if (m->opts.prefetch_history)
			for (uint32_t i = 0; i < m->routes[A].n && n < 2 * MP_ROUTER_MAX_USED; i++) {
				uint32_t e = m->routes[A].expert[i], dup = 0;
				for (uint32_t j = 0; j < n; j++)
					dup |= ids[j] == e;
				if (!dup) {
					ids[n] = e;
					sc[n++] = 0.4f;
				}
			}
		m->src.hint(m->src.ctx, A, ids, sc, n);
	}
}

/* ---- the step ---------------------------------------------------------------------- */

/* --prefetch-depth auto: deepen the look-ahead while the step spends more than
 * a tenth of its time waiting for experts, shallow it when waits vanish. */
static void adapt_depth(struct mp_model *m, uint64_t step_ns)
{
	if (m->opts.prefetch_depth >= 0)
		return;
	double wait = step_ns ? (double)m->wait_ns / (double)step_ns : 0;
	if (wait > 0.10 && m->depth < 4)
		m->depth++;
	else if (wait < 0.02 && m->depth > 1)
		m->depth--;
}

uint64_t mp_model_wait_ns(const struct mp_model *m)
{
	return m->wait_total_ns;
}

int mp_model_prefetch_depth(const struct mp_model *m)
{
	return m->depth;
}

/* Layers [l0, l1) on m->h at position m->pos. */
const char *const mp_phase_names[MP_PHASE_N] = {
	"attention", "dense FFN", "shared expert", "router + look-ahead", "routed experts",
	"waiting for experts", "output head", "other",
};

/* Adds the time since *t to phase p and restarts *t. */
static void lap(struct mp_model *m, enum mp_phase p, uint64_t *t)
{
	uint64_t now = mp_clock_now_ns();
	m->ph[p] += now - *t;
	*t = now;
}

void mp_model_timings(const struct mp_model *m, struct mp_model_timings *out)
{
	*out = m->dec;
}

static int run_layers(struct mp_model *m, uint32_t l0, uint32_t l1)
{
	const struct mp_hparams *hp = m->hp;
	const struct mp_model_pipe *pp = m->opts.pipe;
	int rc;
	for (uint32_t L = l0; L < l1; L++) {
		const struct mp_layer_weights *lw = &m->w->layer[L];
		if (L + 1 == l1 && l1 < hp->n_layer && pp && pp->early)   /* the next rank's look-ahead */
			pp->early(pp->ctx, m->pos, m->h);
		mp_ops_rmsnorm(m->x, m->h, lw->attn_norm.data, hp->n_embd, hp->eps);
		uint64_t t = mp_clock_now_ns();
		attention(m, L, m->x, m->f);
		lap(m, MP_PHASE_ATTN, &t);
		mp_ops_axpy(m->h, m->f, 1.0f, hp->n_embd);
		mp_ops_rmsnorm(m->x, m->h, lw->ffn_norm.data, hp->n_embd, hp->eps);
		if (L < hp->n_dense_lead) {
			m->routes[L].n = 0;
			t = mp_clock_now_ns();
			swiglu(m, &lw->ffn_gate, &lw->ffn_up, &lw->ffn_down, m->x, m->f);
			lap(m, MP_PHASE_DENSE, &t);
		} else {
			/* the MoE layer prefill batches use, for one token */
			struct mp_moe_io io = { m->x, m->h, m->f, &m->routes[L], 0, 1, 1 };
			if ((rc = mp_model_moe(m, L, &io)) < 0)
				return rc;
		}
		mp_ops_axpy(m->h, m->f, 1.0f, hp->n_embd);
	}
	return 0;
}

/* A decode step's phases (the growth of m->ph since ph0) and its whole time. */
static void count_step(struct mp_model *m, const uint64_t *ph0, uint64_t total)
{
	uint64_t known = 0;
	for (int p = 0; p < MP_PHASE_N; p++) {
		uint64_t d = m->ph[p] - ph0[p];
		m->dec.ns[p] += d;
		known += d;
	}
	m->dec.ns[MP_PHASE_OTHER] += total > known ? total - known : 0;
	m->dec.total_ns += total;
	m->dec.tokens++;
}

/* The token is complete: position, source, stall accounting. */
static void end_step(struct mp_model *m, uint64_t step_t0)
{
	m->pos++;
	if (m->src.end_token)
		m->src.end_token(m->src.ctx);
	m->wait_total_ns += m->wait_ns;
	adapt_depth(m, mp_clock_now_ns() - step_t0);
}

int mp_model_step(struct mp_model *m, uint32_t tok, const float **logits)
{
	const struct mp_hparams *hp = m->hp;
	const struct mp_weights *w = m->w;
	if (m->l_begin > 0)
		return mp_model_fail(m, "this model runs layers %u-%u only: its input is a hidden "
				     "state (mp_model_stage)", m->l_begin, m->l_end - 1), -MP_EARG;
	if (tok >= (uint64_t)w->token_embd.ne[1])
		return mp_model_fail(m, "token id %u is outside the vocabulary (%lld tokens)", tok,
			    (long long)w->token_embd.ne[1]), -MP_EARG;
	if (m->pos >= m->opts.n_ctx)
		return mp_model_fail(m, "the context is full (%u tokens): raise --ctx-size", m->opts.n_ctx),
		       -MP_EBUDGET;

	int rc = mp_model_batch_ready(m);   /* the MoE layer's scratch */
	if (rc < 0)
		return rc;
	uint64_t ph0[MP_PHASE_N];
	memcpy(ph0, m->ph, sizeof ph0);
	uint64_t step_t0 = mp_clock_now_ns();
	m->wait_ns = 0;
	mp_quant_ops(w->token_embd.type)->dequant(mp_tensor_row(&w->token_embd, tok), m->h, hp->n_embd);
	rc = run_layers(m, 0, m->l_end);
	if (rc < 0)
		return rc;
	if (m->opts.pipe && (rc = m->opts.pipe->forward(m->opts.pipe->ctx, m->pos, m->h, 1)) < 0)
		return mp_model_fail(m, "%s", m->opts.pipe->err_msg(m->opts.pipe->ctx)), rc;
	uint64_t t = mp_clock_now_ns();
	mp_ops_rmsnorm(m->x, m->h, w->output_norm.data, hp->n_embd, hp->eps);
	linear(m, &w->output, m->x, m->logits);
	lap(m, MP_PHASE_HEAD, &t);
	*logits = m->logits;
	end_step(m, step_t0);
	count_step(m, ph0, t - step_t0);
	return 0;
}

int mp_model_stage(struct mp_model *m, uint32_t pos, float *h, uint32_t n)
{
	const struct mp_hparams *hp = m->hp;
	if (pos > m->pos)
		return mp_model_fail(m, "stage input at position %u, but only %u positions are cached",
				     pos, m->pos), -MP_EARG;
	if (n == 0 || (uint64_t)pos + n > m->opts.n_ctx)
		return mp_model_fail(m, "stage input of %u tokens at position %u does not fit in "
				     "--ctx-size %u", n, pos, m->opts.n_ctx), -MP_EBUDGET;
	m->pos = pos;   /* invariant 1: a rewind only forgets positions */
	if (n > 1)
		return mp_prefill_stage(m, h, n);
	int rc = mp_model_batch_ready(m);   /* the MoE layer's scratch */
	if (rc < 0)
		return rc;
	uint64_t ph0[MP_PHASE_N];
	memcpy(ph0, m->ph, sizeof ph0);
	uint64_t step_t0 = mp_clock_now_ns();
	m->wait_ns = 0;
	memcpy(m->h, h, sizeof(float) * hp->n_embd);
	/* the experts of this rank's first layers are read while its attention runs */
	if (m->l_begin > 0)
		mp_model_lookahead(m, m->l_begin - 1);
	rc = run_layers(m, m->l_begin, m->l_end);
	if (rc < 0)
		return rc;
	memcpy(h, m->h, sizeof(float) * hp->n_embd);
	end_step(m, step_t0);
	return 0;
}

void mp_model_stage_hint(struct mp_model *m, const float *h)
{
	if (m->l_begin == 0)
		return;
	memcpy(m->h, h, sizeof(float) * m->hp->n_embd);   /* scratch between steps */
	mp_model_lookahead(m, m->l_begin - 1);
}

uint32_t mp_model_pos(const struct mp_model *m) { return m->pos; }
void mp_model_reset(struct mp_model *m) { m->pos = 0; }

void mp_model_truncate(struct mp_model *m, uint32_t pos)
{
	if (pos < m->pos)
		m->pos = pos;
}
const char *mp_model_error(const struct mp_model *m) { return m->err; }

const struct mp_route *mp_model_route(const struct mp_model *m, uint32_t layer)
{
	if (m->pos_routes)   /* inside a prefill callback: that position's */
		return &m->pos_routes[layer];
	return &m->routes[layer];
}

float mp_hparams_kq_scale(const struct mp_hparams *hp)
{
	float d_qk = (float)(hp->d_nope + hp->d_rope);
	/* llama.cpp: mscale = attn_factor · (1 + 0.1 · mscale_all_dim · ln s) */
	float mscale = hp->rope_attn_factor > 0 ? hp->rope_attn_factor : 1.0f;
	if (hp->yarn && hp->yarn_factor > 1.0f)
		mscale *= 1.0f + 0.1f * hp->mscale_all_dim * logf(hp->yarn_factor);
	return mscale * mscale / sqrtf(d_qk);
}

uint64_t mp_model_kv_bytes_per_token(const struct mp_hparams *hp, enum mp_kv_type t)
{
	uint64_t row;
	if (mp_type_row_bytes((uint32_t)t, hp->kv_lora_rank + hp->d_rope, &row) < 0)
		return 0;
	return row * hp->n_layer;
}

/* ---- creation and shape checks ------------------------------------------------ */

/* Checks that tensor t (called name) exists, has kernels and the shape
 * [ne0, ne1, ne2]; names the first mismatch. */
static int expect(struct mp_model *m, const char *name, const struct mp_tensor *t, int64_t ne0,
		  int64_t ne1, int64_t ne2)
{
	if (!t->data)
		return mp_model_fail(m, "tensor %s is missing", name);
	if (!mp_quant_ops(t->type) || !mp_quant_vec_dot(t->type, MP_KPATH_SCALAR))
		return mp_model_fail(m, "tensor %s has type %s, which moepager cannot compute with", name,
			    mp_type_name(t->type));
	if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != ne2 || t->ne[3] != 1)
		return mp_model_fail(m, "tensor %s has shape [%lld, %lld, %lld, %lld]; the metadata implies "
			    "[%lld, %lld, %lld]", name, (long long)t->ne[0], (long long)t->ne[1],
			    (long long)t->ne[2], (long long)t->ne[3], (long long)ne0, (long long)ne1,
			    (long long)ne2);
	return 0;
}

/* 1-D f32 vectors (norms, biases) are read directly as float arrays. */
static int expect_f32(struct mp_model *m, const char *name, const struct mp_tensor *t, int64_t n)
{
	if (expect(m, name, t, n, 1, 1) < 0)
		return -1;
	if (t->type != MP_TYPE_F32)
		return mp_model_fail(m, "tensor %s has type %s; expected F32", name, mp_type_name(t->type));
	return 0;
}

static int check_layer(struct mp_model *m, uint32_t L)
{
	const struct mp_hparams *hp = m->hp;
	const struct mp_layer_weights *lw = &m->w->layer[L];
	int64_t D = hp->n_embd, H = hp->n_head, r = hp->kv_lora_rank;
	int64_t d_qk = hp->d_nope + hp->d_rope;
	char n[96];
	snprintf(n, sizeof n, "blk.%u.attn_norm.weight", L);
	if (expect_f32(m, n, &lw->attn_norm, D) < 0)
		return -1;
	if (hp->q_lora_rank) {
		snprintf(n, sizeof n, "blk.%u.attn_q_a.weight", L);
		if (expect(m, n, &lw->q_a, D, hp->q_lora_rank, 1) < 0)
			return -1;
		snprintf(n, sizeof n, "blk.%u.attn_q_a_norm.weight", L);
		if (expect_f32(m, n, &lw->q_a_norm, hp->q_lora_rank) < 0)
			return -1;
		snprintf(n, sizeof n, "blk.%u.attn_q_b.weight", L);
		if (expect(m, n, &lw->q_b, hp->q_lora_rank, H * d_qk, 1) < 0)
			return -1;
	} else {
		snprintf(n, sizeof n, "blk.%u.attn_q.weight", L);
		if (expect(m, n, &lw->q, D, H * d_qk, 1) < 0)
			return -1;
	}
	snprintf(n, sizeof n, "blk.%u.attn_kv_a_mqa.weight", L);
	if (expect(m, n, &lw->kv_a_mqa, D, r + hp->d_rope, 1) < 0)
		return -1;
	snprintf(n, sizeof n, "blk.%u.attn_kv_a_norm.weight", L);
	if (expect_f32(m, n, &lw->kv_a_norm, r) < 0)
		return -1;
	if (hp->mla_new) {
		snprintf(n, sizeof n, "blk.%u.attn_k_b.weight", L);
		if (expect(m, n, &lw->k_b, hp->d_nope, r, H) < 0)
			return -1;
		snprintf(n, sizeof n, "blk.%u.attn_v_b.weight", L);
		if (expect(m, n, &lw->v_b, r, hp->d_v, H) < 0)
			return -1;
	} else {
		snprintf(n, sizeof n, "blk.%u.attn_kv_b.weight", L);
		if (expect(m, n, &lw->kv_b, r, H * (hp->d_nope + hp->d_v), 1) < 0)
			return -1;
	}
	snprintf(n, sizeof n, "blk.%u.attn_output.weight", L);
	if (expect(m, n, &lw->attn_out, H * hp->d_v, D, 1) < 0)
		return -1;
	snprintf(n, sizeof n, "blk.%u.ffn_norm.weight", L);
	if (expect_f32(m, n, &lw->ffn_norm, D) < 0)
		return -1;
	if (L < hp->n_dense_lead) {
		snprintf(n, sizeof n, "blk.%u.ffn_gate.weight", L);
		if (expect(m, n, &lw->ffn_gate, D, hp->n_ff, 1) < 0)
			return -1;
		snprintf(n, sizeof n, "blk.%u.ffn_up.weight", L);
		if (expect(m, n, &lw->ffn_up, D, hp->n_ff, 1) < 0)
			return -1;
		snprintf(n, sizeof n, "blk.%u.ffn_down.weight", L);
		return expect(m, n, &lw->ffn_down, hp->n_ff, D, 1);
	}
	int64_t fs = (int64_t)hp->n_ff_exp * hp->n_expert_shared;
	snprintf(n, sizeof n, "blk.%u.ffn_gate_inp.weight", L);
	if (expect(m, n, &lw->gate_inp, D, hp->n_expert, 1) < 0)
		return -1;
	if (lw->gate_inp.type != MP_TYPE_F32)
		return mp_model_fail(m, "tensor %s has type %s; expected F32", n, mp_type_name(lw->gate_inp.type));
	if (lw->exp_probs_b.data) {
		snprintf(n, sizeof n, "blk.%u.exp_probs_b.bias", L);
		if (expect_f32(m, n, &lw->exp_probs_b, hp->n_expert) < 0)
			return -1;
	}
	snprintf(n, sizeof n, "blk.%u.ffn_gate_shexp.weight", L);
	if (expect(m, n, &lw->gate_shexp, D, fs, 1) < 0)
		return -1;
	snprintf(n, sizeof n, "blk.%u.ffn_up_shexp.weight", L);
	if (expect(m, n, &lw->up_shexp, D, fs, 1) < 0)
		return -1;
	snprintf(n, sizeof n, "blk.%u.ffn_down_shexp.weight", L);
	return expect(m, n, &lw->down_shexp, fs, D, 1);
}

static int check_hparams(struct mp_model *m)
{
	const struct mp_hparams *hp = m->hp;
	if (hp->n_layer == 0 || hp->n_layer > MP_MODEL_MAX_LAYERS)
		return mp_model_fail(m, "block_count %u: expected 1..%d", hp->n_layer, MP_MODEL_MAX_LAYERS);
	if (hp->n_dense_lead > hp->n_layer)
		return mp_model_fail(m, "leading_dense_block_count %u exceeds block_count %u", hp->n_dense_lead,
			    hp->n_layer);
	if (hp->n_expert > MP_ROUTER_MAX_EXPERTS)
		return mp_model_fail(m, "expert_count %u: at most %d supported", hp->n_expert, MP_ROUTER_MAX_EXPERTS);
	if (hp->n_dense_lead < hp->n_layer) {
		if (hp->n_expert_used == 0 || hp->n_expert_used > hp->n_expert ||
		    hp->n_expert_used > MP_ROUTER_MAX_USED)
			return mp_model_fail(m, "expert_used_count %u: expected 1..%u", hp->n_expert_used,
				    hp->n_expert < MP_ROUTER_MAX_USED ? hp->n_expert : MP_ROUTER_MAX_USED);
		if (hp->n_group > 1 && (hp->n_expert % hp->n_group || hp->n_group_used == 0 ||
					hp->n_group_used > hp->n_group))
			return mp_model_fail(m, "expert_group_count %u / expert_group_used_count %u do not divide "
				    "%u experts", hp->n_group, hp->n_group_used, hp->n_expert);
	}
	if (hp->d_rope % 2 || hp->d_rope == 0)
		return mp_model_fail(m, "rope.dimension_count %u: expected an even number > 0", hp->d_rope);
	return 0;
}

int mp_model_create(const struct mp_hparams *hp, const struct mp_weights *w,
		    const struct mp_expert_source *src, const struct mp_model_opts *opts,
		    struct mp_model **out, char *err, size_t err_len)
{
	*out = NULL;
	struct mp_model *m = mp_calloc(1, sizeof *m);
	if (!m) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	int rc = -MP_EFORMAT;
	m->hp = hp;
	m->w = w;
	m->src = *src;
	m->opts = *opts;
	if (m->opts.n_ctx == 0)
		m->opts.n_ctx = 4096;
	if (m->opts.n_batch == 0)
		m->opts.n_batch = 512;
	if (m->opts.kv_type != MP_KV_F32 && m->opts.kv_type != MP_KV_F16 &&
	    m->opts.kv_type != MP_KV_Q8_0) {
		mp_model_fail(m, "KV cache type %d: expected f32, f16 or q8_0", (int)m->opts.kv_type);
		rc = -MP_EARG;
		goto fail;
	}
	if (check_hparams(m) < 0)
		goto fail;
	m->l_begin = opts->layer_begin;
	m->l_end = opts->layer_end ? opts->layer_end : hp->n_layer;
	if (m->l_begin >= m->l_end || m->l_end > hp->n_layer ||
	    (m->l_begin == 0 && m->l_end < hp->n_layer && !(opts->pipe && opts->pipe->forward))) {
		mp_model_fail(m, "layers %u-%u of %u: expected a non-empty range, and a pipe to the "
			      "other ranks when the first rank ends early", m->l_begin, m->l_end,
			      hp->n_layer);
		rc = -MP_EARG;
		goto fail;
	}
	/* a rank checks what it runs: the embeddings and head are the first rank's,
	 * other layers' tensors may be on other hosts (src/dist.h) */
	if (m->l_begin == 0 &&
	    (expect(m, "token_embd.weight", &w->token_embd, hp->n_embd, hp->n_vocab, 1) < 0 ||
	     expect_f32(m, "output_norm.weight", &w->output_norm, hp->n_embd) < 0 ||
	     expect(m, "output.weight", &w->output, hp->n_embd, hp->n_vocab, 1) < 0))
		goto fail;
	for (uint32_t L = m->l_begin; L < m->l_end; L++)
		if (check_layer(m, L) < 0)
			goto fail;
	if (opts->n_expert_used && (opts->n_expert_used > hp->n_expert ||
				    opts->n_expert_used > MP_ROUTER_MAX_USED)) {
		mp_model_fail(m, "--experts %u: this model has %u experts per layer", opts->n_expert_used,
		     hp->n_expert);
		rc = -MP_EARG;
		goto fail;
	}

	m->router = (struct mp_router_cfg){
		.n_expert = hp->n_expert,
		.n_used = opts->n_expert_used ? opts->n_expert_used : hp->n_expert_used,
		.n_group = opts->no_groups ? 1 : hp->n_group,
		.n_group_used = hp->n_group_used,
		.gating = hp->gating,
		.norm = hp->expert_norm,
		.scale = hp->expert_scale,
	};
	m->rope = (struct mp_rope){
		.n_rot = (int32_t)hp->d_rope,
		.base = hp->rope_base,
		.factor = hp->yarn && hp->yarn_factor > 0 ? hp->yarn_factor : 1.0f,
		.orig_ctx = hp->yarn_orig_ctx > 0 ? hp->yarn_orig_ctx : 4096.0f,
		.beta_fast = hp->yarn_beta_fast > 0 ? hp->yarn_beta_fast : 32.0f,
		.beta_slow = hp->yarn_beta_slow > 0 ? hp->yarn_beta_slow : 1.0f,
		.mscale = 1.0f,
	};
	mp_rope_init(&m->rope);
	m->kq_scale = mp_hparams_kq_scale(hp);
	m->kv_width = hp->kv_lora_rank + hp->d_rope;
	if (mp_type_row_bytes((uint32_t)m->opts.kv_type, m->kv_width, &m->kv_row_bytes) < 0) {
		mp_model_fail(m, "--kv-type q8_0 needs kv_lora_rank + rope dims (%u) to be a multiple of 32",
		     m->kv_width);
		rc = -MP_EARG;
		goto fail;
	}

	/* KV cache (this rank's layers only) and scratch */
	uint64_t kv_bytes;
	if (__builtin_mul_overflow(m->kv_row_bytes, (uint64_t)(m->l_end - m->l_begin) * m->opts.n_ctx,
				   &kv_bytes))
		goto nomem;
	m->kv = mp_malloc(kv_bytes);
	m->routes = mp_calloc(hp->n_layer, sizeof *m->routes);
	size_t D = hp->n_embd, H = hp->n_head, dqk = hp->d_nope + hp->d_rope;
	size_t ff = hp->n_ff > hp->n_ff_exp * hp->n_expert_shared ? hp->n_ff
								   : (size_t)hp->n_ff_exp * hp->n_expert_shared;
	if (ff < hp->n_ff_exp)
		ff = hp->n_ff_exp;
	size_t widest = D > H * dqk ? D : H * dqk;
	if (widest < H * hp->d_v)
		widest = H * hp->d_v;
	if (widest < ff)
		widest = ff;
	if (widest < hp->n_vocab)
		widest = hp->n_vocab;
	m->h = mp_calloc(D, sizeof(float));
	m->x = mp_calloc(D, sizeof(float));
	m->f = mp_calloc(D, sizeof(float));
	m->q = mp_calloc(H * dqk, sizeof(float));
	m->qa = mp_calloc(hp->q_lora_rank + 1, sizeof(float));
	m->kv_a = mp_calloc(m->kv_width, sizeof(float));
	m->kv_row = mp_calloc(m->kv_width, sizeof(float));
	m->kvf = mp_calloc((size_t)m->opts.n_ctx * m->kv_width, sizeof(float));
	m->la_x = mp_calloc(D, sizeof(float));
	m->depth = m->opts.prefetch_depth < 0 ? 1 : m->opts.prefetch_depth;
	m->n_hs = mp_threads_count(m->opts.threads);
	m->hs = mp_calloc((size_t)m->n_hs, sizeof *m->hs);
	for (int i = 0; m->hs && i < m->n_hs; i++) {
		struct head_scratch *h = &m->hs[i];
		h->q_lat = mp_calloc((size_t)MP_VF32_HEADS * m->kv_width, sizeof(float));
		h->o_lat = mp_calloc((size_t)MP_VF32_HEADS * hp->kv_lora_rank, sizeof(float));
		h->att = mp_calloc((size_t)MP_VF32_HEADS * m->opts.n_ctx, sizeof(float));
		h->tmp = mp_calloc(hp->kv_lora_rank, sizeof(float));
		if (!h->q_lat || !h->o_lat || !h->att || !h->tmp)
			goto nomem;
	}
	m->o = mp_calloc(H * hp->d_v, sizeof(float));
	m->att = mp_calloc(m->opts.n_ctx, sizeof(float));
	m->tmp = mp_calloc(widest, sizeof(float));
	m->ff_a = mp_calloc(ff, sizeof(float));
	m->ff_b = mp_calloc(ff, sizeof(float));
	m->logits = mp_calloc(hp->n_vocab, sizeof(float));
	m->router_logits = mp_calloc(hp->n_expert + 1, sizeof(float));
	m->k_dec = mp_calloc(hp->d_nope, sizeof(float));
	m->v_dec = m->opts.absorb ? NULL : mp_calloc((size_t)m->opts.n_ctx * hp->d_v, sizeof(float));
	if (!m->kv || !m->routes || !m->h || !m->x || !m->f || !m->q || !m->qa || !m->kv_a ||
	    !m->kv_row || !m->kvf || !m->la_x || !m->hs || !m->o || !m->att || !m->tmp || !m->ff_a ||
	    !m->ff_b || !m->logits || !m->router_logits || !m->k_dec ||
	    (!m->opts.absorb && !m->v_dec))
		goto nomem;
	*out = m;
	return 0;
nomem:
	mp_model_fail(m, "out of memory for the KV cache (%u positions) and scratch", m->opts.n_ctx);
	rc = -ENOMEM;
fail:
	snprintf(err, err_len, "%s", m->err);
	mp_model_destroy(m);
	return rc;
}

void mp_model_destroy(struct mp_model *m)
{
	if (!m)
		return;
	void *bufs[] = { m->kv, m->routes, m->h, m->x, m->f, m->q, m->qa, m->kv_a, m->kv_row,
			 m->kvf, m->la_x, m->o, m->att, m->tmp, m->ff_a, m->ff_b,
			 m->logits, m->router_logits, m->k_dec, m->v_dec };
	for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
		mp_free(bufs[i]);
	for (int i = 0; m->hs && i < m->n_hs; i++) {
		mp_free(m->hs[i].q_lat);
		mp_free(m->hs[i].o_lat);
		mp_free(m->hs[i].att);
		mp_free(m->hs[i].tmp);
		mp_matvec_xcache_free(&m->hs[i].xq);
	}
	mp_free(m->hs);
	mp_matvec_xcache_free(&m->ain);
	mp_batch_destroy(m->batch);
	mp_free(m);
}

/* ---- experts served from resident tensors ------------------------------------------ */

struct mp_resident_experts {
	const struct mp_hparams *hp;
	const struct mp_weights *w;
	const uint32_t *set;          /* the acquired set (caller's array, valid until release) */
	uint32_t n, next;             /* set size; next index to hand out */
	char err[256];
};

static struct mp_tensor expert_slice(const struct mp_tensor *t, uint32_t e)
{
	struct mp_tensor s = *t;
	s.ne[2] = 1;
	s.data = mp_tensor_row(t, (int64_t)e * t->ne[1]);
	return s;
}

static int res_acquire(void *ctx, uint32_t layer, const uint32_t *experts, uint32_t n)
{
	struct mp_resident_experts *r = ctx;
	(void)layer;
	r->set = experts;
	r->n = n;
	r->next = 0;
	return 0;
}

static int res_next_ready(void *ctx, uint32_t layer, uint32_t *index, struct mp_expert_view *out)
{
	struct mp_resident_experts *r = ctx;
	if (r->next >= r->n) {
		snprintf(r->err, sizeof r->err, "no expert left to hand out");
		return -MP_EARG;
	}
	const struct mp_layer_weights *lw = &r->w->layer[layer];
	uint32_t e = r->set[r->next];
	*index = r->next++;
	out->gate = expert_slice(&lw->gate_exps, e);
	out->up = expert_slice(&lw->up_exps, e);
	out->down = expert_slice(&lw->down_exps, e);
	return 0;
}

/* Resident experts are always ready. */
static int res_try_ready(void *ctx, uint32_t layer, uint32_t *index, struct mp_expert_view *out)
{
	struct mp_resident_experts *r = ctx;
	if (r->next >= r->n)
		return 0;
	int rc = res_next_ready(ctx, layer, index, out);
	return rc < 0 ? rc : 1;
}

static void res_release(void *ctx, uint32_t layer, const uint32_t *experts, uint32_t n)
{
	struct mp_resident_experts *r = ctx;
	(void)layer;
	(void)experts;
	(void)n;
	r->set = NULL;
	r->n = r->next = 0;
}

static const char *res_err(void *ctx)
{
	return ((struct mp_resident_experts *)ctx)->err;
}

int mp_resident_experts_create(const struct mp_hparams *hp, const struct mp_weights *w,
			       struct mp_resident_experts **out, struct mp_expert_source *src)
{
	*out = NULL;
	int64_t D = hp->n_embd, F = hp->n_ff_exp, E = hp->n_expert;
	for (uint32_t L = hp->n_dense_lead; L < hp->n_layer; L++) {
		const struct mp_layer_weights *lw = &w->layer[L];
		const struct mp_tensor *t[3] = { &lw->gate_exps, &lw->up_exps, &lw->down_exps };
		int64_t shape[3][3] = { { D, F, E }, { D, F, E }, { F, D, E } };
		for (int i = 0; i < 3; i++)
			if (!t[i]->data || t[i]->ne[0] != shape[i][0] || t[i]->ne[1] != shape[i][1] ||
			    t[i]->ne[2] != shape[i][2] || !mp_quant_vec_dot(t[i]->type, MP_KPATH_SCALAR))
				return -MP_EFORMAT;
	}
	struct mp_resident_experts *r = mp_calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->hp = hp;
	r->w = w;
	*src = (struct mp_expert_source){ r, res_acquire, res_next_ready, res_release, res_err, NULL, NULL,
					  NULL, res_try_ready };
	*out = r;
	return 0;
}

void mp_resident_experts_destroy(struct mp_resident_experts *r)
{
	mp_free(r);
}
