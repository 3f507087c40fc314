/*
 * prefill.c — the batched, layer-major forward pass (mp_model_prefill): a
 * batch of prompt tokens goes through the model one layer at a time, so each
 * weight — above all each routed expert, which may have to come from disk —
 * is used once for all the tokens that need it instead of once per token.
 *
 * Per layer, for the n tokens of the batch at positions p .. p+n-1:
 *
 *   X = rmsnorm(H)                               n × D
 *   attention: Q, latent KV by matrix products; every position's latent and
 *     rotated rope key written to the cache; per head the absorbed scores
 *     S = Q_lat·Cᵀ + Q_rope·K_ropeᵀ over cache rows 0 .. p+i (causal), softmax,
 *     O_lat = P·C, O_h = O_lat·U_hᵀ; H += O·W_oᵀ
 *   X = rmsnorm(H)
 *   dense layer: H += swiglu(X) as matrix products
 *   MoE layer: router for every token; shared expert as matrix products;
 *     the union of the routed experts, in expert order (file order), acquired
 *     in waves of at most n_expert_used; each expert applied to exactly the
 *     tokens routed to it as soon as it is ready (the experts ready at once
 *     whose products all take the direct path as one group: their gates and
 *     ups in one parallel region over the batch input quantized once into
 *     attention's buffer o, their downs in one more); while a wave computes, the
 *     next wave (or, for the last, layer L+1's router on the whole batch) is
 *     hinted to the source so its reads overlap this compute
 *
 * Products go through mp_matmul_auto (kernels/matvec.h): few tokens take the
 * direct quantized dot loop (bit-identical to the one-token path), more take
 * dequantize + sgemm.  Attention's small f32 products go to mp_sgemm.
 *
 * One token (a decode step, or a batch of one) takes the fused MoE layer
 * (moe_fused): the input quantized once per activation type, the gate and up
 * of every expert ready at once (the shared one with the first) in one
 * parallel region, their downs in one more — the bits of the general path.
 *
 * Invariants:
 * 1. A batch at position p writes cache rows p .. p+n-1 of every layer, then
 *    sets pos = p + n; on error pos stays p (rows past pos are never read).
 * 2. Each expert of a layer's union is in exactly one wave, so it is acquired
 *    once per batch; its output for token i's selection slot k lands in
 *    eout[i][k], and token i sums its experts in selection order after the
 *    shared expert (as model.c, invariant 2): the result depends neither on
 *    the order experts become ready nor on the wave size.
 * 3. Our thread pool and OpenBLAS's never run at once: the pool dequantizes
 *    or runs the direct dot loop, then returns before sgemm starts.
 * 4. A group gives each output the bits apply_expert would: the same
 *    vec_dot on the same quantized bytes (the batch quantized as one vector
 *    is each token's row quantized alone, checked by direct_expert), and
 *    experts that would take sgemm in any product stay out of groups.
 */
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "matvec.h"
#include "model_impl.h"
#include "quant.h"

enum {
	LOGIT_CHUNK = 32,   /* positions whose logits are computed at once */
	QBLOCK = 64,        /* query rows whose attention scores are held at once */
};

/* One thread's scratch for one head of the batch. */
struct head_buf {
	float *qn, *qr;               /* [cap][d_nope], [cap][d_rope]: the head's query */
	float *qlat, *olat;           /* [cap][kv_lora_rank] */
	float *s;                     /* [QBLOCK][n_ctx]: scores, then probabilities */
	float *oh;                    /* [cap][d_v]: the head's output */
	int rc;                       /* first product error (0: none) */
};

struct mp_batch {
	uint32_t cap;                 /* tokens per batch at most */
	int rc;                       /* first product error of the batch (0: none) */
	float *h, *x, *f;             /* [cap][D]: residual, normed input, block output */
	float *q;                     /* [cap][H·(d_nope+d_rope)] */
	float *qa;                    /* [cap][q_lora_rank] */
	float *kv;                    /* [cap][kv_width]: new latents and rope keys */
	struct head_buf *hb;          /* [threads]: one head's work each */
	int n_hb;                     /* entries in hb */
	float *o;                     /* [cap][H·d_v] */
	float *ffa, *ffb;             /* [ff_cap]: FFN hidden rows */
	size_t ff_cap;                /* floats in each: cap × the widest expert FFN */
	float *rl;                    /* [cap][n_expert]: router logits */
	struct mp_route *routes;      /* [cap][n_layer] */
	float *eout;                  /* [cap][n_used][D]: routed outputs by selection slot */
	float *xe, *ye;               /* [cap][D]: one expert's tokens in / out */
	float *logits;                /* [LOGIT_CHUNK][n_vocab] */
	uint32_t *cnt, *first, *fill; /* [n_expert]: tokens per expert, start in use[], cursor */
	uint32_t *use;                /* [cap·n_used]: i·n_used + k, grouped by expert */
	uint32_t *uni;                /* [n_expert]: the layer's union, ascending */
	float *sc;                    /* [n_expert]: hint scores */
	/* the fused one-token MoE layer: slot 0 the shared expert, 1..K routed */
	struct mp_matvec_xcache xin;  /* the layer input in each activation type */
	float *fg, *fu;               /* [K+1][F]: gate (then silu(gate)·up), up */
	uint8_t *fq;                  /* [K+1][4F]: fg in the down matrix's activation type */
	/* the batched routed experts' regions (n > 1) */
	uint32_t xq_vt;               /* 1 + the vec_dot type of the layer inputs in o (0: none) */
	const void **xp, **hq;        /* [cap·K]: a group's gate/up inputs, down inputs */
};

void mp_batch_destroy(struct mp_batch *b)
{
	if (!b)
		return;
	for (int i = 0; b->hb && i < b->n_hb; i++) {
		struct head_buf *hb = &b->hb[i];
		void *hbufs[] = { hb->qn, hb->qr, hb->qlat, hb->olat, hb->s, hb->oh };
		for (size_t k = 0; k < sizeof hbufs / sizeof hbufs[0]; k++)
			mp_free(hbufs[k]);
	}
	mp_free(b->hb);
	mp_matvec_xcache_free(&b->xin);
	mp_free(b->xp);
	mp_free(b->hq);
	void *bufs[] = { b->h, b->x, b->f, b->q, b->qa, b->kv, b->o, b->ffa, b->ffb, b->rl, b->routes, b->eout, b->xe,
			 b->ye, b->logits, b->cnt, b->first, b->fill, b->use, b->uni, b->sc, b->fg, b->fu, b->fq };
	for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
		mp_free(bufs[i]);
	mp_free(b);
}

/* cap × n floats, zeroed (NULL on overflow or no memory) */
static void *fa(size_t cap, size_t n)
{
	size_t c;
	return __builtin_mul_overflow(cap, n ? n : 1, &c) ? NULL : mp_calloc(c, sizeof(float));
}

/* Floats per batch token of the shared buffers, and of one thread's head
 * scratch; batch_create allocates exactly these (and mp_model_batch_bytes
 * counts them). */
static size_t expert_ff(const struct mp_hparams *hp)
{
	size_t fe = (size_t)hp->n_ff_exp * (hp->n_expert_shared ? hp->n_expert_shared : 1);
	fe = fe > hp->n_ff_exp ? fe : hp->n_ff_exp;
	return fe ? fe : 1;
}

/* Floats in each FFN hidden buffer: every token of an expert, or the dense
 * FFN (wider) in blocks of at least QBLOCK rows, so its products stay in
 * sgemm rather than drop to the direct path for a few rows. */
static size_t ff_floats(const struct mp_hparams *hp, size_t cap)
{
	size_t a = cap * expert_ff(hp), rows = cap < QBLOCK ? cap : QBLOCK;
	size_t d = rows * hp->n_ff;
	return a > d ? a : d;
}

static size_t token_floats(const struct mp_hparams *hp, size_t K, size_t kv_width)
{
	size_t D = hp->n_embd, H = hp->n_head;
	return D * 5 + H * (hp->d_nope + hp->d_rope) + hp->q_lora_rank + kv_width + H * hp->d_v +
	       (hp->n_expert ? hp->n_expert : 1) + K * D;
}

/* per token, then per thread apart from the tokens */
static size_t head_floats(const struct mp_hparams *hp)
{
	return hp->d_nope + hp->d_rope + 2 * (size_t)hp->kv_lora_rank + hp->d_v;
}

uint64_t mp_model_batch_bytes(const struct mp_hparams *hp, uint32_t n_batch, uint32_t n_ctx,
			      int threads, uint32_t n_used)
{
	uint64_t cap = n_batch ? n_batch : 512, K = n_used ? n_used : hp->n_expert_used;
	n_ctx = n_ctx ? n_ctx : 4096;
	cap = cap < n_ctx ? cap : n_ctx;
	K = K ? K : 1;
	uint64_t th = threads > 0 ? (uint64_t)threads : 1;
	uint64_t per_tok = 4 * (token_floats(hp, K, hp->kv_lora_rank + hp->d_rope) +
				th * head_floats(hp)) +
			   hp->n_layer * sizeof(struct mp_route) + K * sizeof(uint32_t) +
			   K * 2 * sizeof(void *);    /* xp, hq */
	uint64_t fixed = 4ull * 2 * ff_floats(hp, cap) + 4ull * 3 * (K + 1) * expert_ff(hp) + 4ull * LOGIT_CHUNK * hp->n_vocab + 16ull * (hp->n_expert + 1) +
			 th * (4ull * QBLOCK * n_ctx) +   /* each thread's scores */
			 th * (1ull << 20);   /* each worker's dequantized chunk (matvec.c) */
	return cap * per_tok + fixed;
}

static int batch_create(struct mp_model *m)
{
	const struct mp_hparams *hp = m->hp;
	struct mp_batch *b = mp_calloc(1, sizeof *b);
	if (!b)
		return -ENOMEM;
	size_t cap = m->opts.n_batch < m->opts.n_ctx ? m->opts.n_batch : m->opts.n_ctx;
	size_t D = hp->n_embd, H = hp->n_head, K = m->router.n_used ? m->router.n_used : 1;
	size_t E = hp->n_expert ? hp->n_expert : 1;
	b->cap = (uint32_t)cap;
	b->h = fa(cap, D), b->x = fa(cap, D), b->f = fa(cap, D);
	b->q = fa(cap, H * (hp->d_nope + hp->d_rope)), b->qa = fa(cap, hp->q_lora_rank);
	b->kv = fa(cap, m->kv_width), b->o = fa(cap, H * hp->d_v);
	b->n_hb = mp_threads_count(m->opts.threads);
	b->hb = mp_calloc((size_t)b->n_hb, sizeof *b->hb);
	int hb_ok = b->hb != NULL;
	for (int i = 0; hb_ok && i < b->n_hb; i++) {
		struct head_buf *hb = &b->hb[i];
		hb->qn = fa(cap, hp->d_nope), hb->qr = fa(cap, hp->d_rope);
		hb->qlat = fa(cap, hp->kv_lora_rank), hb->olat = fa(cap, hp->kv_lora_rank);
		hb->s = fa(QBLOCK, m->opts.n_ctx), hb->oh = fa(cap, hp->d_v);
		hb_ok = hb->qn && hb->qr && hb->qlat && hb->olat && hb->s && hb->oh;
	}
	b->ff_cap = ff_floats(hp, cap);
	b->ffa = fa(b->ff_cap, 1), b->ffb = fa(b->ff_cap, 1), b->rl = fa(cap, E);
	b->routes = mp_calloc(cap * hp->n_layer, sizeof *b->routes);
	b->eout = fa(cap * K, D), b->xe = fa(cap, D), b->ye = fa(cap, D);
	b->logits = fa(LOGIT_CHUNK, hp->n_vocab);
	b->cnt = mp_calloc(E, sizeof(uint32_t));
	b->first = mp_calloc(E, sizeof(uint32_t));
	b->fill = mp_calloc(E, sizeof(uint32_t));
	b->use = mp_calloc(cap * K, sizeof(uint32_t));
	b->uni = mp_calloc(E, sizeof(uint32_t));
	b->sc = fa(E, 1);
	b->fg = fa(K + 1, expert_ff(hp)), b->fu = fa(K + 1, expert_ff(hp)), b->fq = fa(K + 1, expert_ff(hp));
	b->xp = mp_calloc(cap * K, sizeof *b->xp), b->hq = mp_calloc(cap * K, sizeof *b->hq);
	m->batch = b;
	if (!b->h || !b->x || !b->f || !b->q || !b->qa || !b->kv || !hb_ok || !b->o || !b->ffa || !b->ffb || !b->rl || !b->routes ||
	    !b->eout || !b->xe || !b->ye || !b->logits || !b->cnt || !b->first || !b->fill ||
	    !b->use || !b->uni || !b->sc || !b->fg || !b->fu || !b->fq || !b->xp || !b->hq) {
		mp_batch_destroy(b);
		m->batch = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* ---- products -------------------------------------------------------------------- */

/* Y[i] = W[row0 .. row0+nrows) · X[i] for i < n (Y: n × nrows) on pool; a
 * failure (shapes were checked at create, so only memory) is kept in *err. */
static void mm_on(struct mp_threads *pool, int *err, const struct mp_tensor *W, int64_t row0,
		  int64_t nrows, const float *x, uint32_t n, float *y)
{
	struct mp_mat mat = { mp_tensor_row(W, row0), W->type, nrows, W->ne[0] };
	int rc = mp_matmul_auto(pool, mp_dispatch_path(), &mat, x, n, y);
	if (rc < 0 && !*err)
		*err = rc;
}

static void mm(struct mp_model *m, const struct mp_tensor *W, int64_t row0, int64_t nrows,
	       const float *x, uint32_t n, float *y)
{
	mm_on(m->opts.threads, &m->batch->rc, W, row0, nrows, x, n, y);
}

/* Y = down · (silu(gate · X) ⊙ (up · X)) for n rows of X, in blocks of rows
 * whose hidden values fit ffa (the dense FFN is wider than the experts'). */
static void swiglu_batch(struct mp_model *m, const struct mp_tensor *gate, const struct mp_tensor *up,
			 const struct mp_tensor *down, const float *x, uint32_t n, float *y)
{
	struct mp_batch *b = m->batch;
	int64_t F = gate->ne[1], D = down->ne[1], in = gate->ne[0];
	uint32_t rows = (uint32_t)(b->ff_cap / (size_t)F);
	rows = rows ? rows : 1;
	for (uint32_t i0 = 0; i0 < n; i0 += rows) {
		uint32_t nr = n - i0 < rows ? n - i0 : rows;
		/* gate and up in one pass over one quantized input */
		struct mp_mat g = { gate->data, gate->type, F, in }, u = { up->data, up->type, up->ne[1], in };
		int rc = mp_matmul_auto_pair(m->opts.threads, mp_dispatch_path(), &g, &u, x + i0 * in, nr,
					     b->ffa, b->ffb);
		if (rc < 0 && !b->rc)
			b->rc = rc;
		mp_ops_silu_mul(b->ffa, b->ffb, F * nr);
		mm(m, down, 0, D, b->ffa, nr, y + i0 * D);
	}
}

static void rmsnorm_rows(float *y, const float *x, const float *g, uint32_t n, int64_t d, float eps)
{
	for (uint32_t i = 0; i < n; i++)
		mp_ops_rmsnorm(y + i * d, x + i * d, g, d, eps);
}

/* ---- attention ------------------------------------------------------------------- */

/* Absorbed attention of head h for the batch on the calling thread, in its
 * scratch hb; the cache rows 0 .. p0+n-1 are in m->kvf.  Writes the head's
 * d_v outputs into b->o. */
static void head_batch(struct mp_model *m, const struct mp_layer_weights *lw, uint32_t h,
		       uint32_t n, uint32_t p0, struct head_buf *hb)
{
	const struct mp_hparams *hp = m->hp;
	struct mp_batch *b = m->batch;
	uint32_t dn = hp->d_nope, dr = hp->d_rope, dv = hp->d_v, r = hp->kv_lora_rank, w = m->kv_width;
	size_t dqk = dn + dr;
	for (uint32_t i = 0; i < n; i++) {
		const float *qi = b->q + (i * (size_t)hp->n_head + h) * dqk;
		memcpy(hb->qn + (size_t)i * dn, qi, sizeof(float) * dn);
		memcpy(hb->qr + (size_t)i * dr, qi + dn, sizeof(float) * dr);
	}
	/* q_lat = K_hᵀ q_nope */
	if (hp->mla_new) {
		mm_on(NULL, &hb->rc, &lw->k_b, (int64_t)h * r, r, hb->qn, n, hb->qlat);
	} else {
		struct mp_mat blk = { mp_tensor_row(&lw->kv_b, (int64_t)h * (dn + dv)), lw->kv_b.type, dn, r };
		int rc = mp_matmul_xw(&blk, hb->qn, n, hb->qlat);
		if (rc < 0 && !hb->rc)
			hb->rc = rc;
	}
	/* scores of QBLOCK query rows at a time over the cache rows they may see
	 * (0 .. p0+i0+nq-1), then the causal cut per row */
	for (uint32_t i0 = 0; i0 < n; i0 += QBLOCK) {
		uint32_t nq = n - i0 < QBLOCK ? n - i0 : QBLOCK;
		int64_t T = (int64_t)p0 + i0 + nq;
		mp_sgemm(1, nq, T, r, m->kq_scale, hb->qlat + (size_t)i0 * r, r, m->kvf, w, 0.0f, hb->s, T);
		mp_sgemm(1, nq, T, dr, m->kq_scale, hb->qr + (size_t)i0 * dr, dr, m->kvf + r, w, 1.0f,
			 hb->s, T);
		for (uint32_t i = 0; i < nq; i++) {
			float *row = hb->s + i * (size_t)T;
			int64_t valid = (int64_t)p0 + i0 + i + 1;
			mp_ops_softmax(row, valid);
			memset(row + valid, 0, sizeof(float) * (size_t)(T - valid));
		}
		mp_sgemm(0, nq, r, T, 1.0f, hb->s, T, m->kvf, w, 0.0f, hb->olat + (size_t)i0 * r, r);
	}
	/* o_h = U_h · o_lat */
	if (hp->mla_new)
		mm_on(NULL, &hb->rc, &lw->v_b, (int64_t)h * dv, dv, hb->olat, n, hb->oh);
	else
		mm_on(NULL, &hb->rc, &lw->kv_b, (int64_t)h * (dn + dv) + dn, dv, hb->olat, n, hb->oh);
	for (uint32_t i = 0; i < n; i++)
		memcpy(b->o + ((size_t)i * hp->n_head + h) * dv, hb->oh + (size_t)i * dv, sizeof(float) * dv);
}

struct heads_job {
	struct mp_model *m;
	const struct mp_layer_weights *lw;
	uint32_t n, p0;
};

/* Heads ith, ith+nth, ...: each head is computed by one thread with the same
 * calls, so the result does not depend on the thread count. */
static void heads_worker(void *ctx, int ith, int nth)
{
	struct heads_job *j = ctx;
	for (uint32_t h = (uint32_t)ith; h < j->m->hp->n_head; h += (uint32_t)nth)
		head_batch(j->m, j->lw, h, j->n, j->p0, &j->m->batch->hb[ith]);
}

/* b->f = attention(b->x) for the batch; writes the batch's cache rows. */
static void attn_batch(struct mp_model *m, uint32_t L, uint32_t n)
{
	const struct mp_hparams *hp = m->hp;
	const struct mp_layer_weights *lw = &m->w->layer[L];
	struct mp_batch *b = m->batch;
	uint32_t r = hp->kv_lora_rank, w = m->kv_width, p0 = m->pos;
	size_t dqk = hp->d_nope + hp->d_rope, qw = hp->n_head * dqk;
	if (hp->q_lora_rank) {
		mm(m, &lw->q_a, 0, hp->q_lora_rank, b->x, n, b->qa);
		rmsnorm_rows(b->qa, b->qa, lw->q_a_norm.data, n, hp->q_lora_rank, hp->eps);
		mm(m, &lw->q_b, 0, (int64_t)qw, b->qa, n, b->q);
	} else {
		mm(m, &lw->q, 0, (int64_t)qw, b->x, n, b->q);
	}
	mm(m, &lw->kv_a_mqa, 0, w, b->x, n, b->kv);
	const struct mp_quant_ops *kv_ops = mp_quant_ops((uint32_t)m->opts.kv_type);
	for (uint32_t i = 0; i < n; i++) {
		float *kv = b->kv + (size_t)i * w;
		mp_ops_rmsnorm(kv, kv, lw->kv_a_norm.data, r, hp->eps);
		mp_rope_apply(&m->rope, kv + r, p0 + i);
		for (uint32_t h = 0; h < hp->n_head; h++)
			mp_rope_apply(&m->rope, b->q + i * qw + h * dqk + hp->d_nope, p0 + i);
		kv_ops->quantize(kv, mp_model_kv_slot(m, L, p0 + i), w);
	}
	/* the heads read the cache as the one-token path does: rounded to its type */
	for (uint32_t t = 0; t < p0 + n; t++)
		kv_ops->dequant(mp_model_kv_slot(m, L, t), m->kvf + (size_t)t * w, w);
	struct heads_job job = { m, lw, n, p0 };
	for (int i = 0; i < b->n_hb; i++)
		b->hb[i].rc = 0;
	mp_threads_run(m->opts.threads, heads_worker, &job);
	for (int i = 0; i < b->n_hb; i++)
		if (b->hb[i].rc && !b->rc)
			b->rc = b->hb[i].rc;
	mm(m, &lw->attn_out, 0, hp->n_embd, b->o, n, b->f);
}

/* ---- routed experts ---------------------------------------------------------------- */

/* Groups the tokens' selections by expert: b->uni (ascending; for one token
 * its selection order, as the one-token path always acquired) and, per
 * expert, its (token, slot) pairs in b->use.  Returns the union's size. */
static uint32_t group(struct mp_model *m, const struct mp_moe_io *io)
{
	const struct mp_hparams *hp = m->hp;
	struct mp_batch *b = m->batch;
	uint32_t K = m->router.n_used, nu = 0, at = 0;
	memset(b->cnt, 0, sizeof(uint32_t) * hp->n_expert);
	for (uint32_t i = 0; i < io->n; i++) {
		const struct mp_route *rt = &io->rt[i * io->stride];
		for (uint32_t k = 0; k < rt->n; k++)
			b->cnt[rt->expert[k]]++;
	}
	for (uint32_t e = 0; e < hp->n_expert; e++) {
		b->first[e] = b->fill[e] = at;
		at += b->cnt[e];
		if (b->cnt[e])
			b->uni[nu++] = e;
	}
	for (uint32_t i = 0; i < io->n; i++) {
		const struct mp_route *rt = &io->rt[i * io->stride];
		for (uint32_t k = 0; k < rt->n; k++)
			b->use[b->fill[rt->expert[k]]++] = i * K + k;
	}
	if (io->n == 1)
		memcpy(b->uni, io->rt->expert, sizeof(uint32_t) * nu);
	return nu;
}

/* Applies expert e (ready in ev) to exactly its tokens; outputs by slot. */
static void apply_expert(struct mp_model *m, const float *x, uint32_t e, const struct mp_expert_view *ev)
{
	const struct mp_hparams *hp = m->hp;
	struct mp_batch *b = m->batch;
	size_t D = hp->n_embd;
	uint32_t K = m->router.n_used, cnt = b->cnt[e];
	const uint32_t *use = b->use + b->first[e];
	for (uint32_t t = 0; t < cnt; t++)
		memcpy(b->xe + t * D, x + (size_t)(use[t] / K) * D, sizeof(float) * D);
	swiglu_batch(m, &ev->gate, &ev->up, &ev->down, b->xe, cnt, b->ye);
	for (uint32_t t = 0; t < cnt; t++)
		memcpy(b->eout + (size_t)use[t] * D, b->ye + t * D, sizeof(float) * D);
}

/* Look-ahead for the batch: layer L+1's router on every token's current
 * state; its experts hinted by how many tokens pick them (most first). */
static void lookahead_batch(struct mp_model *m, uint32_t L, const float *h, uint32_t n)
{
	const struct mp_hparams *hp = m->hp;
	struct mp_batch *b = m->batch;
	uint32_t A = L + 1;
	if (!m->src.hint || m->depth <= 0 || A >= m->l_end || A < hp->n_dense_lead)
		return;
	const struct mp_layer_weights *la = &m->w->layer[A];
	rmsnorm_rows(b->xe, h, la->ffn_norm.data, n, hp->n_embd, hp->eps);
	mm(m, &la->gate_inp, 0, hp->n_expert, b->xe, n, b->rl);
	memset(b->fill, 0, sizeof(uint32_t) * hp->n_expert);
	for (uint32_t i = 0; i < n; i++) {
		struct mp_route pred;
		mp_router_select(&m->router, b->rl + (size_t)i * hp->n_expert, la->exp_probs_b.data, &pred);
		for (uint32_t k = 0; k < pred.n; k++)
			b->fill[pred.expert[k]]++;
	}
	uint32_t ids[2 * MP_ROUTER_MAX_USED], nh = 0, cap = 2 * MP_ROUTER_MAX_USED;
	for (uint32_t votes = n; votes > 0 && nh < cap; votes--)   /* most votes first */
		for (uint32_t e = 0; e < hp->n_expert && nh < cap; e++)
			if (b->fill[e] == votes) {
				ids[nh] = e;
				b->sc[nh++] = 0.5f + 0.5f * (float)votes / (float)n;
			}
	m->src.hint(m->src.ctx, A, ids, b->sc, nh);
}

/* The next wave's experts of the same layer, so their reads overlap this
 * wave's compute (the source decides what fits). */
static void hint_wave(struct mp_model *m, uint32_t L, const uint32_t *ids, uint32_t n)
{
	float sc[2 * MP_ROUTER_MAX_USED];
	if (!m->src.hint)
		return;
	n = n < 2 * MP_ROUTER_MAX_USED ? n : 2 * MP_ROUTER_MAX_USED;
	for (uint32_t i = 0; i < n; i++)
		sc[i] = 0.95f;
	m->src.hint(m->src.ctx, L, ids, sc, n);
}

/* Hints what comes after a wave: the next wave of the layer, or for the
 * last one layer L+1 (the one-token path's look-ahead for a decode step). */
static void hint_after(struct mp_model *m, uint32_t L, const struct mp_moe_io *io,
		       const uint32_t *next, uint32_t n_next)
{
	if (n_next)
		hint_wave(m, L, next, n_next);
	else if (io->decode)
		mp_model_lookahead(m, L);
	else
		lookahead_batch(m, L, io->h, io->n);
}

/* Experts of the acquired set that are ready now (try_ready), after waiting
 * for one when block: ev[i] their views, k[i] their index in the acquired
 * list.  Returns the count or a negative error (the sentence in m->err). */
static int ready_views(struct mp_model *m, uint32_t L, int block, uint32_t left,
		       struct mp_expert_view *ev, uint32_t *k)
{
	uint32_t got = 0;
	if (block && left) {
		uint64_t t0 = mp_clock_now_ns();
		int rc = m->src.next_ready(m->src.ctx, L, &k[0], &ev[0]);
		uint64_t waited = mp_clock_now_ns() - t0;
		m->wait_ns += waited;
		m->ph[MP_PHASE_WAIT] += waited;
		if (rc < 0)
			return mp_model_fail(m, "layer %u: %s", L, m->src.err_msg(m->src.ctx)), rc;
		got = 1;
	}
	while (got < left && m->src.try_ready) {
		int rc = m->src.try_ready(m->src.ctx, L, &k[got], &ev[got]);
		if (rc < 0)
			return mp_model_fail(m, "layer %u: %s", L, m->src.err_msg(m->src.ctx)), rc;
		if (rc == 0)
			break;
		got++;
	}
	return (int)got;
}

/* The layer's n inputs x in the vec_dot type of wtype, quantized as one
 * vector into b->o (attention's output, free during the MoE layer) at the
 * first request for that type since the layer began (b->xq_vt), or x itself
 * for f32 activations; NULL when they do not fit o.  A request for another
 * type quantizes over the first: groups ask for one type each (wave_ready). */
static const uint8_t *batch_xq(struct mp_model *m, uint32_t wtype, const float *x, uint32_t n)
{
	struct mp_batch *b = m->batch;
	const struct mp_hparams *hp = m->hp;
	uint32_t vt = mp_type_info(wtype)->vec_dot_type;
	int64_t bytes = mp_matvec_x_bytes(wtype, (int64_t)hp->n_embd * n);
	if (vt == MP_TYPE_F32)
		return (const uint8_t *)x;
	if (bytes < 0 || (uint64_t)bytes > (uint64_t)b->cap * hp->n_head * hp->d_v * sizeof(float))
		return NULL;
	if (b->xq_vt != vt + 1) {
		mp_matvec_quantize_x(wtype, x, (int64_t)hp->n_embd * n, b->o);
		b->xq_vt = vt + 1;
	}
	return (const uint8_t *)b->o;
}

/* Whether expert e (matrices in ev) joins a wave's regions: every product of
 * its cnt tokens takes the direct path, as swiglu_batch would choose, and
 * the batch input quantized as one vector gives each token's bytes (so the
 * outputs keep apply_expert's bits). */
static int direct_expert(const struct mp_model *m, uint32_t e, const struct mp_expert_view *ev, uint32_t n)
{
	const struct mp_tensor *g = &ev->gate, *u = &ev->up, *d = &ev->down;
	uint32_t cnt = m->batch->cnt[e];
	int64_t D = m->hp->n_embd, xb = mp_matvec_x_bytes(g->type, D);
	return !m->opts.unfused && cnt < mp_matmul_crossover(g->type) && u->type == g->type &&
	       u->ne[0] == g->ne[0] && u->ne[1] == g->ne[1] && g->ne[0] == D && d->ne[1] == D &&
	       d->ne[0] == g->ne[1] && cnt < mp_matmul_crossover(d->type) && xb > 0 &&
	       mp_matvec_x_bytes(g->type, D * n) == xb * n &&
	       (mp_type_info(g->type)->vec_dot_type == MP_TYPE_F32 ||
		(uint64_t)xb * n <= (uint64_t)m->batch->cap * m->hp->n_head * m->hp->d_v * sizeof(float));
}

/* The gate and up items of experts ex[0..ne) on their tokens' rows of the
 * quantized batch input (batch_xq); hidden values at ffa/ffb in order. */
static int group_gate_up(struct mp_model *m, const float *x, uint32_t n, const uint32_t *ex,
			 const struct mp_expert_view *ev, uint32_t ne, struct mp_matmul_q_item *it)
{
	struct mp_batch *b = m->batch;
	uint32_t K = m->router.n_used;
	size_t off = 0, fo = 0;   /* vectors, floats before expert s */
	for (uint32_t s = 0; s < ne; s++) {
		const struct mp_tensor *g = &ev[s].gate, *u = &ev[s].up;
		uint32_t cnt = b->cnt[ex[s]];
		const uint32_t *use = b->use + b->first[ex[s]];
		const uint8_t *xq = batch_xq(m, g->type, x, n);
		if (!xq)
			return -MP_EARG;   /* direct_expert checked it fits */
		uint64_t xb = (uint64_t)mp_matvec_x_bytes(g->type, g->ne[0]);
		for (uint32_t t = 0; t < cnt; t++)
			b->xp[off + t] = xq + (uint64_t)(use[t] / K) * xb;
		it[2 * s] = (struct mp_matmul_q_item){ { g->data, g->type, g->ne[1], g->ne[0] }, cnt,
						       b->xp + off, b->ffa + fo, g->ne[1], NULL };
		it[2 * s + 1] = (struct mp_matmul_q_item){ { u->data, u->type, u->ne[1], u->ne[0] }, cnt,
							   b->xp + off, b->ffb + fo, u->ne[1], NULL };
		off += cnt;
		fo += (size_t)cnt * (size_t)g->ne[1];
	}
	return 0;
}

/* silu(gate)·up of each expert, each token's row quantized for its down
 * matrix into ffb (behind the up values still to be read: no activation
 * type takes more bytes than f32), and the down items, scattered to eout by
 * selection slot. */
static int group_down(struct mp_model *m, const uint32_t *ex, const struct mp_expert_view *ev,
		      uint32_t ne, struct mp_matmul_q_item *it)
{
	struct mp_batch *b = m->batch;
	size_t off = 0, fo = 0, qo = 0;   /* vectors, floats, bytes in ffb before expert s */
	for (uint32_t s = 0; s < ne; s++) {
		const struct mp_tensor *d = &ev[s].down;
		int64_t F = ev[s].gate.ne[1], hb = mp_matvec_x_bytes(d->type, F);
		uint32_t cnt = b->cnt[ex[s]];
		if (hb < 0 || hb > 4 * F)
			return hb < 0 ? (int)hb : -MP_EFORMAT;
		float *h = b->ffa + fo;
		mp_ops_silu_mul(h, b->ffb + fo, F * cnt);
		int f32 = mp_type_info(d->type)->vec_dot_type == MP_TYPE_F32;
		for (uint32_t t = 0; t < cnt; t++) {
			uint8_t *q = (uint8_t *)b->ffb + qo + (uint64_t)t * (uint64_t)hb;
			if (!f32)
				mp_matvec_quantize_x(d->type, h + t * F, F, q);
			b->hq[off + t] = f32 ? (const void *)(h + t * F) : q;
		}
		it[s] = (struct mp_matmul_q_item){ { d->data, d->type, d->ne[1], d->ne[0] }, cnt, b->hq + off,
						   b->eout, m->hp->n_embd, b->use + b->first[ex[s]] };
		off += cnt;
		fo += (size_t)cnt * (size_t)F;
		qo += (size_t)cnt * (size_t)hb;
	}
	return 0;
}

/* Experts ex[0..ne) (direct_expert; Σ cnt·F ≤ ff_cap) applied to their
 * tokens: all gates and ups in one parallel region, all downs in one more.
 * Each output is the direct path's vec_dot on the bytes apply_expert would
 * give it, so the results are its bits.  An error is kept in b->rc. */
static void run_group(struct mp_model *m, const float *x, uint32_t n, const uint32_t *ex,
		      const struct mp_expert_view *ev, uint32_t ne)
{
	struct mp_batch *b = m->batch;
	struct mp_matmul_q_item it[2 * MP_ROUTER_MAX_USED];
	int rc = group_gate_up(m, x, n, ex, ev, ne, it);
	if (rc == 0)
		rc = mp_matmul_q_multi(m->opts.threads, mp_dispatch_path(), it, (int)(2 * ne));
	if (rc == 0)
		rc = group_down(m, ex, ev, ne, it);
	if (rc == 0)
		rc = mp_matmul_q_multi(m->opts.threads, mp_dispatch_path(), it, (int)ne);
	if (rc < 0 && !b->rc)
		b->rc = rc;
}

/* The experts ready at once: the direct ones in groups whose hidden values
 * fit ffa (run_group), the rest one by one through sgemm (apply_expert). */
static void wave_ready(struct mp_model *m, const struct mp_moe_io *io, const uint32_t *ids,
		       const struct mp_expert_view *ev, const uint32_t *k, uint32_t got)
{
	struct mp_batch *b = m->batch;
	uint32_t ex[MP_ROUTER_MAX_USED], ng = 0;
	struct mp_expert_view gv[MP_ROUTER_MAX_USED];
	size_t fill = 0;   /* floats of the group's hidden values */
	for (uint32_t i = 0; i < got; i++) {
		uint32_t e = ids[k[i]];
		if (!direct_expert(m, e, &ev[i], io->n)) {
			apply_expert(m, io->x, e, &ev[i]);
			continue;
		}
		size_t need = (size_t)b->cnt[e] * (size_t)ev[i].gate.ne[1];
		uint32_t vt = mp_type_info(ev[i].gate.type)->vec_dot_type;
		if (ng && (fill + need > b->ff_cap || vt != mp_type_info(gv[0].gate.type)->vec_dot_type)) {
			run_group(m, io->x, io->n, ex, gv, ng);
			ng = 0, fill = 0;
		}
		ex[ng] = e, gv[ng++] = ev[i], fill += need;
	}
	if (ng)
		run_group(m, io->x, io->n, ex, gv, ng);
}

/* Applies the experts of an acquired wave as they become ready, every set
 * ready at once together (wave_ready); releases. */
static int wave(struct mp_model *m, uint32_t L, const struct mp_moe_io *io, const uint32_t *ids,
		uint32_t nw)
{
	for (uint32_t done = 0; done < nw;) {
		struct mp_expert_view ev[MP_ROUTER_MAX_USED];
		uint32_t k[MP_ROUTER_MAX_USED];
		int got = ready_views(m, L, 1, nw - done, ev, k);
		if (got < 0) {
			m->src.release(m->src.ctx, L, ids, nw);
			return got;
		}
		wave_ready(m, io, ids, ev, k, (uint32_t)got);
		done += (uint32_t)got;
	}
	m->src.release(m->src.ctx, L, ids, nw);
	return 0;
}

/* ---- the fused one-token layer ---------------------------------------------------- */

/* One expert of a fused batch: its matrices and where its output goes. */
struct fslot {
	const struct mp_tensor *gate, *up, *down;
	float *out;                   /* [n_embd] */
};

/* down · (silu(gate · x) ⊙ (up · x)) for every slot: all gates and ups in one
 * parallel region on the layer input quantized once per activation type
 * (b->xin), then all downs in one region.  Each row is one vec_dot call on
 * the inputs the one-matrix path gives it, so every output has its bits. */
static int fused_batch(struct mp_model *m, const struct fslot *sl, uint32_t ns)
{
	struct mp_batch *b = m->batch;
	struct mp_matvec_item it[2 * (MP_ROUTER_MAX_USED + 1)];
	size_t F = expert_ff(m->hp);
	int rc = 0;
	for (uint32_t s = 0; s < ns && rc == 0; s++) {
		const struct mp_tensor *g = sl[s].gate, *u = sl[s].up;
		const void *xg = NULL, *xu = NULL;
		if ((rc = mp_matvec_xcache_get(&b->xin, g->type, &xg)) == 0)
			rc = mp_matvec_xcache_get(&b->xin, u->type, &xu);
		it[2 * s] = (struct mp_matvec_item){ { g->data, g->type, g->ne[1], g->ne[0] }, xg, b->fg + s * F };
		it[2 * s + 1] = (struct mp_matvec_item){ { u->data, u->type, u->ne[1], u->ne[0] }, xu,
							 b->fu + s * F };
	}
	if (rc < 0 || (rc = mp_matvec_multi(m->opts.threads, mp_dispatch_path(), it, (int)(2 * ns))) < 0)
		return rc;
	for (uint32_t s = 0; s < ns; s++) {
		const struct mp_tensor *d = sl[s].down;
		float *h = b->fg + s * F;
		uint8_t *hq = b->fq + s * 4 * F;
		mp_ops_silu_mul(h, b->fu + s * F, sl[s].gate->ne[1]);
		int64_t xb = mp_matvec_x_bytes(d->type, d->ne[0]);
		if (xb < 0 || (size_t)xb > 4 * F)   /* no activation type takes more than f32 */
			return xb < 0 ? (int)xb : -MP_EFORMAT;
		int f32 = mp_type_info(d->type)->vec_dot_type == MP_TYPE_F32;
		if (!f32)
			mp_matvec_quantize_x(d->type, h, d->ne[0], hq);
		it[s] = (struct mp_matvec_item){ { d->data, d->type, d->ne[1], d->ne[0] },
						 f32 ? (const void *)h : hq, sl[s].out };
	}
	return mp_matvec_multi(m->opts.threads, mp_dispatch_path(), it, (int)ns);
}

/* Adds to sl the experts of the set ready now (ready_views), after waiting
 * for one when block; k[] gets each one's selection slot.  Returns the count
 * added or a negative error (the sentence in m->err). */
static int gather(struct mp_model *m, uint32_t L, int block, uint32_t left, struct fslot *sl,
		  struct mp_expert_view *ev, uint32_t *k)
{
	int got = ready_views(m, L, block, left, ev, k);
	for (int i = 0; i < got; i++)
		sl[i] = (struct fslot){ &ev[i].gate, &ev[i].up, &ev[i].down,
					m->batch->eout + (size_t)k[i] * m->hp->n_embd };
	return got;
}

/* Bytes of a slot's three matrices. */
static uint64_t slot_bytes(const struct fslot *sl)
{
	return sl->gate->row_bytes * (uint64_t)sl->gate->ne[1] + sl->up->row_bytes * (uint64_t)sl->up->ne[1] +
	       sl->down->row_bytes * (uint64_t)sl->down->ne[1];
}

/* The shared and routed experts of one token after its acquire: every
 * batch of experts ready at once in two parallel regions; the shared expert
 * joins the first batch (alone, if no routed expert is ready yet, so it
 * overlaps the reads).  A batch's time (less waits) is split between the
 * shared and the routed experts' phases by their bytes of weights: the
 * products read each byte once, so time follows bytes. */
static int fused_experts(struct mp_model *m, uint32_t L, const struct mp_moe_io *io)
{
	const struct mp_layer_weights *lw = &m->w->layer[L];
	uint32_t n = io->rt->n, done = 0;
	int shared = 1;
	while (shared || done < n) {
		struct fslot sl[MP_ROUTER_MAX_USED + 1];
		struct mp_expert_view ev[MP_ROUTER_MAX_USED];
		uint32_t k[MP_ROUTER_MAX_USED], ns = 0;
		uint64_t t = mp_clock_now_ns(), w0 = m->ph[MP_PHASE_WAIT];
		if (shared)
			sl[ns++] = (struct fslot){ &lw->gate_shexp, &lw->up_shexp, &lw->down_shexp, io->out };
		int got = gather(m, L, !shared, n - done, sl + ns, ev, k);
		if (got < 0)
			return got;
		int rc = fused_batch(m, sl, ns + (uint32_t)got);
		if (rc < 0)
			return mp_model_fail(m, "layer %u: %s", L, mp_strerror(rc)), rc;
		uint64_t spent = mp_clock_now_ns() - t, waited = m->ph[MP_PHASE_WAIT] - w0;
		spent = spent > waited ? spent - waited : 0;
		uint64_t all = 0, sh = shared ? slot_bytes(&sl[0]) : 0;
		for (uint32_t i = 0; i < ns + (uint32_t)got; i++)
			all += slot_bytes(&sl[i]);
		uint64_t to_sh = all ? (uint64_t)((double)spent * (double)sh / (double)all) : 0;
		m->ph[MP_PHASE_SHARED] += to_sh;
		m->ph[MP_PHASE_EXPERTS] += spent - to_sh;
		done += (uint32_t)got;
		shared = 0;
	}
	return 0;
}

/* mp_model_moe for one token: the router on the layer input quantized once
 * for it and the experts (b->xin), the fused experts, the sum in selection
 * order (invariant 2) — the bits of the general path with n = 1. */
static int moe_fused(struct mp_model *m, uint32_t L, const struct mp_moe_io *io)
{
	const struct mp_hparams *hp = m->hp;
	const struct mp_layer_weights *lw = &m->w->layer[L];
	struct mp_batch *b = m->batch;
	const struct mp_route *rt = io->rt;
	uint64_t t = mp_clock_now_ns();
	const void *xq;
	mp_matvec_xcache_reset(&b->xin, io->x, hp->n_embd);
	struct mp_mat gi = { lw->gate_inp.data, lw->gate_inp.type, hp->n_expert, hp->n_embd };
	int rc = mp_matvec_xcache_get(&b->xin, gi.type, &xq);
	if (rc < 0 || (rc = mp_matvec_q(m->opts.threads, mp_dispatch_path(), &gi, xq, b->rl)) < 0)
		return mp_model_fail(m, "layer %u: router: %s", L, mp_strerror(rc)), rc;
	mp_router_select(&m->router, b->rl, lw->exp_probs_b.data, io->rt);
	if (!io->decode)
		m->pf_experts += rt->n;
	uint64_t now = mp_clock_now_ns();
	m->ph[MP_PHASE_ROUTER] += now - t;
	if ((rc = m->src.acquire(m->src.ctx, L, rt->expert, rt->n)) < 0)
		return mp_model_fail(m, "layer %u: %s", L, m->src.err_msg(m->src.ctx)), rc;
	t = mp_clock_now_ns();
	m->ph[MP_PHASE_EXPERTS] += t - now;
	hint_after(m, L, io, NULL, 0);
	now = mp_clock_now_ns();
	m->ph[MP_PHASE_ROUTER] += now - t;
	rc = fused_experts(m, L, io);
	m->src.release(m->src.ctx, L, rt->expert, rt->n);
	if (rc < 0)
		return rc;
	t = mp_clock_now_ns();
	for (uint32_t k = 0; k < rt->n; k++)
		mp_ops_axpy(io->out, b->eout + (size_t)k * hp->n_embd, rt->weight[k], (int64_t)hp->n_embd);
	m->ph[MP_PHASE_EXPERTS] += mp_clock_now_ns() - t;
	return 0;
}

int mp_model_moe(struct mp_model *m, uint32_t L, const struct mp_moe_io *io)
{
	if (io->n == 1 && !m->opts.unfused)
		return moe_fused(m, L, io);
	const struct mp_hparams *hp = m->hp;
	const struct mp_layer_weights *lw = &m->w->layer[L];
	struct mp_batch *b = m->batch;
	size_t D = hp->n_embd;
	uint32_t K = m->router.n_used, n = io->n;
	b->rc = 0;
	b->xq_vt = 0;   /* a new layer input */
	uint64_t t = mp_clock_now_ns(), wait0 = m->ph[MP_PHASE_WAIT];
	mm(m, &lw->gate_inp, 0, hp->n_expert, io->x, n, b->rl);
	for (uint32_t i = 0; i < n; i++)
		mp_router_select(&m->router, b->rl + (size_t)i * hp->n_expert, lw->exp_probs_b.data,
				 &io->rt[i * io->stride]);
	uint32_t nu = group(m, io);
	if (!io->decode)
		m->pf_experts += nu;
	uint64_t now = mp_clock_now_ns(), work = 0;
	m->ph[MP_PHASE_ROUTER] += now - t;
	t = now;
	/* each wave is acquired, and what follows it hinted, before the work it
	 * overlaps: the first before the shared expert computes */
	for (uint32_t w0 = 0; w0 < nu; w0 += K) {
		uint32_t nw = nu - w0 < K ? nu - w0 : K, rest = nu - w0 - nw;
		int rc = m->src.acquire(m->src.ctx, L, b->uni + w0, nw);
		if (rc < 0)
			return mp_model_fail(m, "layer %u: %s", L, m->src.err_msg(m->src.ctx)), rc;
		work += mp_clock_now_ns() - t;
		t = mp_clock_now_ns();
		hint_after(m, L, io, b->uni + w0 + nw, rest < K ? rest : K);
		now = mp_clock_now_ns();
		m->ph[MP_PHASE_ROUTER] += now - t;
		t = now;
		if (w0 == 0) {
			swiglu_batch(m, &lw->gate_shexp, &lw->up_shexp, &lw->down_shexp, io->x, n, io->out);
			now = mp_clock_now_ns();
			m->ph[MP_PHASE_SHARED] += now - t;
			t = now;
		}
		if ((rc = wave(m, L, io, b->uni + w0, nw)) < 0)
			return rc;
	}
	/* invariant 2: fixed selection order per token */
	for (uint32_t i = 0; i < n; i++) {
		const struct mp_route *rt = &io->rt[i * io->stride];
		for (uint32_t k = 0; k < rt->n; k++)
			mp_ops_axpy(io->out + i * D, b->eout + ((size_t)i * K + k) * D, rt->weight[k],
				    (int64_t)D);
	}
	/* the experts' share: acquires, waves and the sum, less the waits in them */
	work += mp_clock_now_ns() - t;
	uint64_t waited = m->ph[MP_PHASE_WAIT] - wait0;
	m->ph[MP_PHASE_EXPERTS] += work > waited ? work - waited : 0;
	if (b->rc)
		return mp_model_fail(m, "layer %u: %s", L, mp_strerror(b->rc)), b->rc;
	return 0;
}

int mp_model_batch_ready(struct mp_model *m)
{
	if (m->batch || batch_create(m) == 0)
		return 0;
	return mp_model_fail(m, "out of memory for the batch scratch (%u tokens): lower --batch-size",
			     m->opts.n_batch), -ENOMEM;
}

/* ---- the batch --------------------------------------------------------------------- */

static int stopped(struct mp_model *m, uint32_t pos, int rc)
{
	mp_model_fail(m, "position %u: the caller stopped the prefill (%s)", pos, mp_strerror(rc));
	return rc;
}

/* Logits of every position (to on_pos) or of the last one only; the last
 * position's are left in m->logits. */
static int batch_logits(struct mp_model *m, uint32_t p0, uint32_t n, mp_model_pos_fn on_pos, void *ctx)
{
	const struct mp_hparams *hp = m->hp;
	const struct mp_weights *w = m->w;
	struct mp_batch *b = m->batch;
	size_t D = hp->n_embd, V = hp->n_vocab;
	uint32_t c0 = on_pos ? 0 : n - 1;
	for (; c0 < n; c0 += LOGIT_CHUNK) {
		uint32_t nc = n - c0 < LOGIT_CHUNK ? n - c0 : LOGIT_CHUNK;
		rmsnorm_rows(b->x, b->h + c0 * D, w->output_norm.data, nc, (int64_t)D, hp->eps);
		mm(m, &w->output, 0, (int64_t)V, b->x, nc, b->logits);
		if (b->rc)
			return mp_model_fail(m, "output head: %s", mp_strerror(b->rc)), b->rc;
		for (uint32_t i = 0; on_pos && i < nc; i++) {
			m->pos_routes = b->routes + (size_t)(c0 + i) * hp->n_layer;
			int rc = on_pos(ctx, p0 + c0 + i, b->logits + i * V);
			m->pos_routes = NULL;
			if (rc < 0)
				return stopped(m, p0 + c0 + i, rc);
		}
		if (c0 + nc == n)
			memcpy(m->logits, b->logits + (nc - 1) * V, sizeof(float) * V);
	}
	return 0;
}

/* Each token's routing, token-major, for the source's trace and profile: the
 * MoE layers this model runs. */
static void batch_routes(struct mp_model *m, uint32_t n)
{
	const struct mp_hparams *hp = m->hp;
	if (!m->src.batch)
		return;
	uint32_t l0 = m->l_begin > hp->n_dense_lead ? m->l_begin : hp->n_dense_lead;
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t L = l0; L < m->l_end; L++) {
			const struct mp_route *rt = &m->batch->routes[(size_t)i * hp->n_layer + L];
			m->src.batch(m->src.ctx, 0, L, rt->expert, rt->n);
		}
	m->src.batch(m->src.ctx, 0, UINT32_MAX, NULL, 0);
}

/* A failed batch ends without routes (nothing of it is cached). */
static int batch_failed(struct mp_model *m, int rc)
{
	if (m->src.batch)
		m->src.batch(m->src.ctx, 0, UINT32_MAX, NULL, 0);
	return rc;
}

/* Layers [l0, l1) on the batch's n hidden states in b->h at m->pos (the
 * source's batch already begun). */
static int batch_layers(struct mp_model *m, uint32_t l0, uint32_t l1, uint32_t n)
{
	const struct mp_hparams *hp = m->hp;
	struct mp_batch *b = m->batch;
	size_t D = hp->n_embd;
	b->rc = 0;
	for (uint32_t L = l0; L < l1; L++) {
		const struct mp_layer_weights *lw = &m->w->layer[L];
		if (m->cancel && m->cancel(m->cancel_ctx))
			return batch_failed(m, (mp_model_fail(m, "the prompt was given up at position %u, "
							      "layer %u", m->pos, L), -MP_ECANCELLED));
		rmsnorm_rows(b->x, b->h, lw->attn_norm.data, n, (int64_t)D, hp->eps);
		attn_batch(m, L, n);
		mp_ops_axpy(b->h, b->f, 1.0f, (int64_t)(n * D));
		rmsnorm_rows(b->x, b->h, lw->ffn_norm.data, n, (int64_t)D, hp->eps);
		if (L < hp->n_dense_lead) {
			for (uint32_t i = 0; i < n; i++)
				b->routes[(size_t)i * hp->n_layer + L].n = 0;
			swiglu_batch(m, &lw->ffn_gate, &lw->ffn_up, &lw->ffn_down, b->x, n, b->f);
		} else {
			struct mp_moe_io io = { b->x, b->h, b->f, b->routes + L, hp->n_layer, n, 0 };
			int rc = mp_model_moe(m, L, &io);
			if (rc < 0)
				return batch_failed(m, rc);
		}
		if (b->rc)
			return batch_failed(m, (mp_model_fail(m, "layer %u: %s", L, mp_strerror(b->rc)), b->rc));
		mp_ops_axpy(b->h, b->f, 1.0f, (int64_t)(n * D));
	}
	return 0;
}

/* One batch of the prompt; last: the prompt's last batch (its rows come back
 * from the other ranks; earlier ones are only sent on when nobody reads them). */
static int run_batch(struct mp_model *m, const uint32_t *toks, uint32_t n, mp_model_pos_fn on_pos,
		     void *ctx, int last)
{
	const struct mp_hparams *hp = m->hp;
	const struct mp_weights *w = m->w;
	struct mp_batch *b = m->batch;
	size_t D = hp->n_embd;
	uint32_t p0 = m->pos;
	m->wait_ns = 0;
	if (m->src.batch)
		m->src.batch(m->src.ctx, n, 0, NULL, 0);
	for (uint32_t i = 0; i < n; i++)
		mp_quant_ops(w->token_embd.type)->dequant(mp_tensor_row(&w->token_embd, toks[i]),
							  b->h + i * D, (int64_t)D);
	int rc = batch_layers(m, 0, m->l_end, n);
	if (rc < 0)
		return rc;
	/* the other ranks' layers (src/dist.c): pipelined while nobody reads the rows */
	const struct mp_model_pipe *pp = m->opts.pipe;
	if (pp && !last && !on_pos && pp->send)
		rc = pp->send(pp->ctx, p0, b->h, n);
	else if (pp)
		rc = pp->forward(pp->ctx, p0, b->h, n);
	if (rc < 0)
		return batch_failed(m, (mp_model_fail(m, "%s", m->opts.pipe->err_msg(m->opts.pipe->ctx)), rc));
	m->wait_total_ns += m->wait_ns;
	m->pos = p0 + n;   /* invariant 1 */
	batch_routes(m, n);
	rc = batch_logits(m, p0, n, on_pos, ctx);
	memcpy(m->routes, b->routes + (size_t)(n - 1) * hp->n_layer, sizeof *m->routes * hp->n_layer);
	for (uint32_t i = 0; m->src.end_token && i < n; i++)
		m->src.end_token(m->src.ctx);
	m->pf_tokens += n;
	return rc;
}

int mp_prefill_stage(struct mp_model *m, float *h, uint32_t n)
{
	size_t D = m->hp->n_embd;
	int rc = mp_model_batch_ready(m);
	if (rc < 0)
		return rc;
	for (uint32_t i = 0; i < n; i += m->batch->cap) {
		uint32_t nb = n - i < m->batch->cap ? n - i : m->batch->cap;
		memcpy(m->batch->h, h + i * D, sizeof(float) * nb * D);
		m->wait_ns = 0;
		if (m->src.batch)
			m->src.batch(m->src.ctx, nb, 0, NULL, 0);
		/* the experts of this stage's first layer are read while its attention runs */
		if (m->l_begin > 0)
			lookahead_batch(m, m->l_begin - 1, m->batch->h, nb);
		if ((rc = batch_layers(m, m->l_begin, m->l_end, nb)) < 0)
			return rc;
		memcpy(h + i * D, m->batch->h, sizeof(float) * nb * D);
		m->wait_total_ns += m->wait_ns;
		m->pos += nb;   /* invariant 1 */
		batch_routes(m, nb);
		for (uint32_t t = 0; m->src.end_token && t < nb; t++)
			m->src.end_token(m->src.ctx);
		m->pf_tokens += nb;
	}
	return 0;
}

/* The one-token path for every position (n_batch 1, or decompressed
 * attention, which exists only to be compared against). */
static int prefill_steps(struct mp_model *m, const uint32_t *toks, uint32_t n,
			 mp_model_pos_fn on_pos, void *ctx)
{
	for (uint32_t i = 0; i < n; i++) {
		const float *logits;
		if (m->cancel && m->cancel(m->cancel_ctx))
			return mp_model_fail(m, "the prompt was given up at position %u", m->pos),
			       -MP_ECANCELLED;
		int rc = mp_model_step(m, toks[i], &logits);
		if (rc < 0)
			return rc;
		if (on_pos && (rc = on_pos(ctx, m->pos - 1, logits)) < 0)
			return stopped(m, m->pos - 1, rc);
	}
	return 0;
}

int mp_model_prefill(struct mp_model *m, const uint32_t *toks, uint32_t n, mp_model_pos_fn on_pos,
		     void *ctx, const float **last_logits)
{
	uint64_t vocab = (uint64_t)m->w->token_embd.ne[1];
	if (n == 0)
		return mp_model_fail(m, "prefill: no tokens"), -MP_EARG;
	for (uint32_t i = 0; i < n; i++)
		if (toks[i] >= vocab)
			return mp_model_fail(m, "token id %u (position %u of the prompt) is outside the "
					     "vocabulary (%llu tokens)", toks[i], i,
					     (unsigned long long)vocab), -MP_EARG;
	if ((uint64_t)m->pos + n > m->opts.n_ctx)
		return mp_model_fail(m, "the context is full: %u tokens cached, %u more do not fit in "
				     "%u: raise --ctx-size", m->pos, n, m->opts.n_ctx), -MP_EBUDGET;
	*last_logits = m->logits;
	if (m->l_begin > 0)
		return mp_model_fail(m, "this model runs layers %u-%u only: its input is a hidden "
				     "state (mp_model_stage)", m->l_begin, m->l_end - 1), -MP_EARG;
	if (m->opts.n_batch == 1 || !m->opts.absorb)
		return prefill_steps(m, toks, n, on_pos, ctx);
	int rc = mp_model_batch_ready(m);
	if (rc < 0)
		return rc;
	for (uint32_t i = 0; i < n; i += m->batch->cap) {
		uint32_t nb = n - i < m->batch->cap ? n - i : m->batch->cap;
		rc = run_batch(m, toks + i, nb, on_pos, ctx, i + nb == n);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void mp_model_set_cancel(struct mp_model *m, int (*cancel)(void *ctx), void *ctx)
{
	m->cancel = cancel;
	m->cancel_ctx = ctx;
}

void mp_model_prefill_counts(const struct mp_model *m, uint64_t *experts, uint64_t *tokens)
{
	*experts = m->pf_experts;
	*tokens = m->pf_tokens;
}
