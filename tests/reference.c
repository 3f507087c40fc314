/* reference.c — see reference.h.  Deliberately simple and slow. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "quant.h"
#include "reference.h"

struct ref_tensor {
	int64_t ne0, ne1, ne2;   /* shape */
	float *v;                /* ne0·ne1·ne2 values, row-major */
};

struct ref_layer {
	struct ref_tensor attn_norm, q, q_a, q_a_norm, q_b, kv_a, kv_a_norm, kv_b, attn_out, ffn_norm;
	struct ref_tensor gate, up, down, gate_inp, bias, gate_sh, up_sh, down_sh;
	struct ref_tensor gate_x, up_x, down_x;
	float *K, *V;            /* [n_head][n_ctx][d_qk] and [n_head][n_ctx][d_v] */
	uint32_t chosen[64], n_chosen;
	uint32_t forced[64], n_forced;   /* ref_force: the next step's experts (0: none) */
};

struct ref_model {
	struct mp_hparams hp;
	uint32_t n_ctx, n_used, pos;
	int no_groups;
	struct ref_tensor embd, out_norm, out;
	struct ref_layer *L;
};

static struct ref_tensor deq(const struct mp_tensor *t)
{
	struct ref_tensor r = { 0, 0, 0, NULL };
	if (!t->data)
		return r;
	r.ne0 = t->ne[0];
	r.ne1 = t->ne[1];
	r.ne2 = t->ne[2];
	int64_t rows = r.ne1 * r.ne2;
	r.v = mp_malloc(sizeof(float) * (size_t)(r.ne0 * rows));
	const struct mp_quant_ops *ops = mp_quant_ops(t->type);
	for (int64_t i = 0; i < rows; i++)
		ops->dequant(mp_tensor_row(t, i), r.v + i * r.ne0, r.ne0);
	return r;
}

/* old-format kv_b from new-format k_b/v_b, per FORMATS.md §3.4:
 * row 256h+d (d < d_nope) = column d of k_b head h; row 256h+d_nope+j = v_b row j of head h */
static struct ref_tensor kv_b_from_new(const struct mp_hparams *hp, const struct mp_layer_weights *lw)
{
	struct ref_tensor kb = deq(&lw->k_b), vb = deq(&lw->v_b), r;
	uint32_t dn = hp->d_nope, dv = hp->d_v, R = hp->kv_lora_rank;
	r.ne0 = R;
	r.ne1 = (int64_t)hp->n_head * (dn + dv);
	r.ne2 = 1;
	r.v = mp_malloc(sizeof(float) * (size_t)(r.ne0 * r.ne1));
	for (uint32_t h = 0; h < hp->n_head; h++) {
		for (uint32_t d = 0; d < dn; d++)
			for (uint32_t c = 0; c < R; c++)
				r.v[((size_t)h * (dn + dv) + d) * R + c] = kb.v[((size_t)h * R + c) * dn + d];
		for (uint32_t j = 0; j < dv; j++)
			memcpy(&r.v[((size_t)h * (dn + dv) + dn + j) * R], &vb.v[((size_t)h * dv + j) * R],
			       sizeof(float) * R);
	}
	mp_free(kb.v);
	mp_free(vb.v);
	return r;
}

/* y = W x for the rows [row0, row0+n) of W (a 2-D view of the tensor). */
static void mv(const struct ref_tensor *W, int64_t row0, int64_t n, const float *x, float *y)
{
	for (int64_t r = 0; r < n; r++) {
		double s = 0;
		for (int64_t k = 0; k < W->ne0; k++)
			s += (double)W->v[(row0 + r) * W->ne0 + k] * x[k];
		y[r] = (float)s;
	}
}

static void rmsnorm(float *y, const float *x, const float *g, int64_t n, float eps)
{
	double ss = 0;
	for (int64_t i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	double scale = 1.0 / sqrt(ss / (double)n + eps);
	for (int64_t i = 0; i < n; i++)
		y[i] = (float)(x[i] * scale * g[i]);
}

static void rope(const struct mp_hparams *hp, float *x, uint32_t pos)
{
	int n = (int)hp->d_rope;
	double s = hp->yarn ? hp->yarn_factor : 1.0;
	double lo = 0, hi = 0;
	if (s != 1.0) {
		double bf = hp->yarn_beta_fast > 0 ? hp->yarn_beta_fast : 32;
		double bs = hp->yarn_beta_slow > 0 ? hp->yarn_beta_slow : 1;
		double oc = hp->yarn_orig_ctx > 0 ? hp->yarn_orig_ctx : 4096;
		lo = floor(n * log(oc / (bf * 2 * M_PI)) / (2 * log(hp->rope_base)));
		hi = ceil(n * log(oc / (bs * 2 * M_PI)) / (2 * log(hp->rope_base)));
		if (lo < 0)
			lo = 0;
		if (hi > n - 1)
			hi = n - 1;
	}
	for (int m = 0; m < n / 2; m++) {
		double theta = pos * pow(hp->rope_base, -2.0 * m / n);
		if (s != 1.0) {
			double ramp = (m - lo) / fmax(0.001, hi - lo);
			double gamma = 1 - fmin(1, fmax(0, ramp));
			theta = theta * gamma + theta / s * (1 - gamma);
		}
		double a = x[2 * m], b = x[2 * m + 1];
		x[2 * m] = (float)(a * cos(theta) - b * sin(theta));
		x[2 * m + 1] = (float)(a * sin(theta) + b * cos(theta));
	}
}

static void swiglu(const struct ref_tensor *g, const struct ref_tensor *u, const struct ref_tensor *d,
		   int64_t row_g, int64_t row_d, int64_t F, int64_t D, const float *x, float *y)
{
	float *a = mp_malloc(sizeof(float) * (size_t)F), *b = mp_malloc(sizeof(float) * (size_t)F);
	mv(g, row_g, F, x, a);
	mv(u, row_g, F, x, b);
	for (int64_t i = 0; i < F; i++)
		a[i] = (float)(a[i] / (1 + exp(-a[i])) * b[i]);
	mv(d, row_d, D, a, y);
	mp_free(a);
	mp_free(b);
}

struct ref_model *ref_create(const struct mp_hparams *hp, const struct mp_weights *w,
			     uint32_t n_ctx, uint32_t n_used, int no_groups)
{
	struct ref_model *r = mp_calloc(1, sizeof *r);
	r->hp = *hp;
	r->n_ctx = n_ctx;
	r->n_used = n_used ? n_used : hp->n_expert_used;
	r->no_groups = no_groups;
	r->embd = deq(&w->token_embd);
	r->out_norm = deq(&w->output_norm);
	r->out = deq(&w->output);
	r->L = mp_calloc(hp->n_layer, sizeof *r->L);
	uint32_t dqk = hp->d_nope + hp->d_rope;
	for (uint32_t i = 0; i < hp->n_layer; i++) {
		const struct mp_layer_weights *lw = &w->layer[i];
		struct ref_layer *l = &r->L[i];
		l->attn_norm = deq(&lw->attn_norm);
		l->q = deq(&lw->q);
		l->q_a = deq(&lw->q_a);
		l->q_a_norm = deq(&lw->q_a_norm);
		l->q_b = deq(&lw->q_b);
		l->kv_a = deq(&lw->kv_a_mqa);
		l->kv_a_norm = deq(&lw->kv_a_norm);
		l->kv_b = hp->mla_new ? kv_b_from_new(hp, lw) : deq(&lw->kv_b);
		l->attn_out = deq(&lw->attn_out);
		l->ffn_norm = deq(&lw->ffn_norm);
		l->gate = deq(&lw->ffn_gate);
		l->up = deq(&lw->ffn_up);
		l->down = deq(&lw->ffn_down);
		l->gate_inp = deq(&lw->gate_inp);
		l->bias = deq(&lw->exp_probs_b);
		l->gate_sh = deq(&lw->gate_shexp);
		l->up_sh = deq(&lw->up_shexp);
		l->down_sh = deq(&lw->down_shexp);
		l->gate_x = deq(&lw->gate_exps);
		l->up_x = deq(&lw->up_exps);
		l->down_x = deq(&lw->down_exps);
		l->K = mp_calloc((size_t)hp->n_head * n_ctx * dqk, sizeof(float));
		l->V = mp_calloc((size_t)hp->n_head * n_ctx * hp->d_v, sizeof(float));
	}
	return r;
}

/* Routing from FORMATS.md §4.6, by sorting. */
static void route(const struct ref_model *r, struct ref_layer *l, const float *x, uint32_t *chosen,
		  float *weight)
{
	const struct mp_hparams *hp = &r->hp;
	uint32_t E = hp->n_expert;
	double s[512], b[512];
	float logit[512];
	mv(&l->gate_inp, 0, E, x, logit);
	double mx = -INFINITY, sum = 0;
	for (uint32_t e = 0; e < E; e++)
		mx = fmax(mx, logit[e]);
	for (uint32_t e = 0; e < E; e++) {
		if (hp->gating == MP_GATING_SOFTMAX) {
			s[e] = exp(logit[e] - mx);
			sum += s[e];
		} else {
			s[e] = 1 / (1 + exp(-(double)logit[e]));
		}
	}
	for (uint32_t e = 0; e < E; e++) {
		if (hp->gating == MP_GATING_SOFTMAX)
			s[e] /= sum;
		b[e] = s[e] + (l->bias.v ? l->bias.v[e] : 0);
	}
	int allowed[512];
	for (uint32_t e = 0; e < E; e++)
		allowed[e] = 1;
	if (!r->no_groups && hp->n_group > 1) {
		uint32_t G = hp->n_group, per = E / G;
		double gs[64];
		for (uint32_t g = 0; g < G; g++) {
			double t1 = -INFINITY, t2 = -INFINITY;
			for (uint32_t e = g * per; e < (g + 1) * per; e++) {
				if (b[e] > t1) { t2 = t1; t1 = b[e]; }
				else if (b[e] > t2) { t2 = b[e]; }
			}
			gs[g] = t1 + t2;
		}
		/* rank each group: keep it if fewer than n_group_used groups beat it */
		for (uint32_t g = 0; g < G; g++) {
			uint32_t better = 0;
			for (uint32_t o = 0; o < G; o++)
				if (gs[o] > gs[g] || (gs[o] == gs[g] && o < g))
					better++;
			if (better >= hp->n_group_used)
				for (uint32_t e = g * per; e < (g + 1) * per; e++)
					allowed[e] = 0;
		}
	}
	double wsum = 0;
	for (uint32_t k = 0; k < r->n_used; k++) {
		int best = -1;
		if (l->n_forced) {
			best = (int)l->forced[k];
		} else {
			for (uint32_t e = 0; e < E; e++)
				if (allowed[e] && (best < 0 || b[e] > b[best]))
					best = (int)e;
		}
		allowed[best] = 0;
		chosen[k] = (uint32_t)best;
		weight[k] = (float)s[best];
		wsum += s[best];
	}
	l->n_forced = 0;
	for (uint32_t k = 0; k < r->n_used; k++) {
		if (hp->expert_norm)
			weight[k] = (float)(weight[k] / fmax(wsum, 6.1035e-5));
		weight[k] *= hp->expert_scale;
	}
}

int ref_step(struct ref_model *r, uint32_t tok, float *logits)
{
	const struct mp_hparams *hp = &r->hp;
	if (r->pos >= r->n_ctx)
		return -1;
	uint32_t D = hp->n_embd, H = hp->n_head, dn = hp->d_nope, dr = hp->d_rope, dv = hp->d_v;
	uint32_t dqk = dn + dr, R = hp->kv_lora_rank, p = r->pos;
	float *h = mp_malloc(sizeof(float) * D), *x = mp_malloc(sizeof(float) * D);
	float *f = mp_malloc(sizeof(float) * D), *tmp = mp_malloc(sizeof(float) * D);
	float *q = mp_malloc(sizeof(float) * H * dqk), *qa = mp_malloc(sizeof(float) * (hp->q_lora_rank + 1));
	float *kv = mp_malloc(sizeof(float) * (R + dr)), *o = mp_malloc(sizeof(float) * H * dv);
	float *att = mp_malloc(sizeof(float) * (p + 1));
	memcpy(h, r->embd.v + (size_t)tok * D, sizeof(float) * D);
	double scale = mp_hparams_kq_scale(hp);

	for (uint32_t i = 0; i < hp->n_layer; i++) {
		struct ref_layer *l = &r->L[i];
		rmsnorm(x, h, l->attn_norm.v, D, hp->eps);
		if (hp->q_lora_rank) {
			mv(&l->q_a, 0, hp->q_lora_rank, x, qa);
			rmsnorm(qa, qa, l->q_a_norm.v, hp->q_lora_rank, hp->eps);
			mv(&l->q_b, 0, (int64_t)H * dqk, qa, q);
		} else {
			mv(&l->q, 0, (int64_t)H * dqk, x, q);
		}
		mv(&l->kv_a, 0, R + dr, x, kv);
		rmsnorm(kv, kv, l->kv_a_norm.v, R, hp->eps);
		rope(hp, kv + R, p);
		for (uint32_t hd = 0; hd < H; hd++) {
			rope(hp, q + hd * dqk + dn, p);
			/* decompress this position's key and value for head hd and cache them */
			float *K = l->K + ((size_t)hd * r->n_ctx + p) * dqk;
			float *V = l->V + ((size_t)hd * r->n_ctx + p) * dv;
			mv(&l->kv_b, (int64_t)hd * (dn + dv), dn, kv, K);
			memcpy(K + dn, kv + R, sizeof(float) * dr);
			mv(&l->kv_b, (int64_t)hd * (dn + dv) + dn, dv, kv, V);
		}
		for (uint32_t hd = 0; hd < H; hd++) {
			double mx = -INFINITY, sum = 0;
			for (uint32_t t = 0; t <= p; t++) {
				const float *K = l->K + ((size_t)hd * r->n_ctx + t) * dqk;
				double s = 0;
				for (uint32_t d = 0; d < dqk; d++)
					s += (double)q[hd * dqk + d] * K[d];
				att[t] = (float)(s * scale);
				mx = fmax(mx, att[t]);
			}
			for (uint32_t t = 0; t <= p; t++) {
				att[t] = (float)exp(att[t] - mx);
				sum += att[t];
			}
			for (uint32_t j = 0; j < dv; j++) {
				double acc = 0;
				for (uint32_t t = 0; t <= p; t++)
					acc += att[t] / sum * l->V[((size_t)hd * r->n_ctx + t) * dv + j];
				o[hd * dv + j] = (float)acc;
			}
		}
		mv(&l->attn_out, 0, D, o, tmp);
		for (uint32_t d = 0; d < D; d++)
			h[d] += tmp[d];
		rmsnorm(x, h, l->ffn_norm.v, D, hp->eps);
		if (i < hp->n_dense_lead) {
			swiglu(&l->gate, &l->up, &l->down, 0, 0, hp->n_ff, D, x, f);
		} else {
			uint32_t F = hp->n_ff_exp;
			float w[64];
			route(r, l, x, l->chosen, w);
			l->n_chosen = r->n_used;
			swiglu(&l->gate_sh, &l->up_sh, &l->down_sh, 0, 0, (int64_t)F * hp->n_expert_shared, D,
			       x, f);
			for (uint32_t k = 0; k < r->n_used; k++) {
				uint32_t e = l->chosen[k];
				swiglu(&l->gate_x, &l->up_x, &l->down_x, (int64_t)e * F, (int64_t)e * D, F, D, x,
				       tmp);
				for (uint32_t d = 0; d < D; d++)
					f[d] += w[k] * tmp[d];
			}
			/* sort ascending for comparison */
			for (uint32_t a = 0; a < l->n_chosen; a++)
				for (uint32_t b2 = a + 1; b2 < l->n_chosen; b2++)
					if (l->chosen[b2] < l->chosen[a]) {
						uint32_t t = l->chosen[a];
						l->chosen[a] = l->chosen[b2];
						l->chosen[b2] = t;
					}
		}
		for (uint32_t d = 0; d < D; d++)
			h[d] += f[d];
	}
	rmsnorm(x, h, r->out_norm.v, D, hp->eps);
	mv(&r->out, 0, hp->n_vocab, x, logits);
	r->pos++;
	mp_free(h); mp_free(x); mp_free(f); mp_free(tmp); mp_free(q); mp_free(qa); mp_free(kv); mp_free(o); mp_free(att);
	return 0;
}

int ref_same_route(const struct ref_model *r, uint32_t L, const struct mp_route *rt)
{
	const struct ref_layer *l = &r->L[L];
	if (l->n_chosen != rt->n)
		return 0;
	for (uint32_t i = 0; i < rt->n; i++) {
		int found = 0;
		for (uint32_t j = 0; j < l->n_chosen && !found; j++)
			found = l->chosen[j] == rt->expert[i];
		if (!found)
			return 0;
	}
	return 1;
}

void ref_rewind(struct ref_model *r)
{
	if (r->pos)
		r->pos--;
}

void ref_force(struct ref_model *r, uint32_t L, const uint32_t *experts, uint32_t n)
{
	struct ref_layer *l = &r->L[L];
	l->n_forced = n < r->n_used ? n : r->n_used;
	memcpy(l->forced, experts, sizeof(uint32_t) * l->n_forced);
}

const uint32_t *ref_experts(const struct ref_model *r, uint32_t L, uint32_t *n)
{
	*n = r->L[L].n_chosen;
	return r->L[L].chosen;
}

void ref_destroy(struct ref_model *r)
{
	if (!r)
		return;
	struct ref_tensor *all[] = { &r->embd, &r->out_norm, &r->out };
	for (int i = 0; i < 3; i++)
		mp_free(all[i]->v);
	for (uint32_t i = 0; i < r->hp.n_layer; i++) {
		struct ref_layer *l = &r->L[i];
		struct ref_tensor *ts[] = { &l->attn_norm, &l->q, &l->q_a, &l->q_a_norm, &l->q_b, &l->kv_a,
					    &l->kv_a_norm, &l->kv_b, &l->attn_out, &l->ffn_norm, &l->gate,
					    &l->up, &l->down, &l->gate_inp, &l->bias, &l->gate_sh,
					    &l->up_sh, &l->down_sh, &l->gate_x, &l->up_x, &l->down_x };
		for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++)
			mp_free(ts[k]->v);
		mp_free(l->K);
		mp_free(l->V);
	}
	mp_free(r->L);
	mp_free(r);
}
