/* tinymodel.c — see tinymodel.h. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"
#include "rng.h"
#include "tinymodel.h"

static struct mp_tensor make(struct test_model *tm, struct mp_rng *r, uint32_t type, int64_t ne0,
			     int64_t ne1, int64_t ne2, float scale, float offset)
{
	struct mp_tensor t = { type, { ne0, ne1, ne2, 1 }, 0, NULL };
	mp_type_row_bytes(type, (uint64_t)ne0, &t.row_bytes);
	int64_t n = ne0 * ne1 * ne2;
	float *v = mp_malloc(sizeof(float) * (size_t)n);
	for (int64_t i = 0; i < n; i++)
		v[i] = offset + scale * (float)mp_rng_normal(r);
	void *data = mp_malloc(t.row_bytes * (size_t)(ne1 * ne2));
	mp_quant_ops(type)->quantize(v, data, n);
	mp_free(v);
	tm->bufs[tm->nbufs++] = data;
	t.data = data;
	return t;
}

void tiny_build(struct test_model *tm, uint32_t wtype, int mla_new, int q_lora, int softmax,
		  uint64_t seed)
{
	tiny_build_heads(tm, wtype, mla_new, q_lora, softmax, seed, 4);
}

void tiny_build_heads(struct test_model *tm, uint32_t wtype, int mla_new, int q_lora, int softmax,
		      uint64_t seed, uint32_t n_head)
{
	memset(tm, 0, sizeof *tm);
	struct mp_hparams *hp = &tm->hp;
	*hp = (struct mp_hparams){
		.n_layer = 3, .n_dense_lead = 1, .n_embd = 128, .n_head = n_head,
		.q_lora_rank = q_lora ? 64 : 0, .kv_lora_rank = 64, .d_nope = 32, .d_rope = 32,
		.d_v = 32, .n_ff = 128, .n_ff_exp = 64, .n_expert = 8, .n_expert_used = 2,
		.n_expert_shared = 1, .n_group = softmax ? 1 : 4, .n_group_used = softmax ? 1 : 2,
		.gating = softmax ? MP_GATING_SOFTMAX : MP_GATING_SIGMOID, .expert_norm = !softmax,
		.expert_scale = softmax ? 1.0f : 2.5f, .n_vocab = 96, .n_ctx_train = 4096,
		.eps = 1e-6f, .rope_base = 10000.0f, .yarn = 1, .yarn_factor = 40.0f,
		.yarn_orig_ctx = 4096.0f, .yarn_beta_fast = 32.0f, .yarn_beta_slow = 1.0f,
		.mscale_all_dim = 1.0f, .rope_attn_factor = 1.0f, .mla_new = mla_new,
	};
	tm->w = mp_calloc(1, sizeof *tm->w);
	struct mp_weights *w = tm->w;
	struct mp_rng r;
	mp_rng_seed(&r, seed);
	int64_t D = hp->n_embd, H = hp->n_head, R = hp->kv_lora_rank, dqk = hp->d_nope + hp->d_rope;
	float sD = 1.0f / sqrtf((float)D);
	w->token_embd = make(tm, &r, wtype, D, hp->n_vocab, 1, 1.0f, 0);
	w->output_norm = make(tm, &r, MP_TYPE_F32, D, 1, 1, 0.1f, 1.0f);
	w->output = make(tm, &r, wtype, D, hp->n_vocab, 1, sD, 0);
	for (uint32_t L = 0; L < hp->n_layer; L++) {
		struct mp_layer_weights *l = &w->layer[L];
		l->attn_norm = make(tm, &r, MP_TYPE_F32, D, 1, 1, 0.1f, 1.0f);
		if (q_lora) {
			l->q_a = make(tm, &r, wtype, D, hp->q_lora_rank, 1, sD, 0);
			l->q_a_norm = make(tm, &r, MP_TYPE_F32, hp->q_lora_rank, 1, 1, 0.1f, 1.0f);
			l->q_b = make(tm, &r, wtype, hp->q_lora_rank, H * dqk, 1, 0.125f, 0);
		} else {
			l->q = make(tm, &r, wtype, D, H * dqk, 1, sD, 0);
		}
		l->kv_a_mqa = make(tm, &r, wtype, D, R + hp->d_rope, 1, sD, 0);
		l->kv_a_norm = make(tm, &r, MP_TYPE_F32, R, 1, 1, 0.1f, 1.0f);
		if (mla_new) {
			l->k_b = make(tm, &r, wtype, hp->d_nope, R, H, 0.125f, 0);
			l->v_b = make(tm, &r, wtype, R, hp->d_v, H, 0.125f, 0);
		} else {
			l->kv_b = make(tm, &r, wtype, R, H * (hp->d_nope + hp->d_v), 1, 0.125f, 0);
		}
		l->attn_out = make(tm, &r, wtype, H * hp->d_v, D, 1, 1.0f / sqrtf((float)(H * hp->d_v)), 0);
		l->ffn_norm = make(tm, &r, MP_TYPE_F32, D, 1, 1, 0.1f, 1.0f);
		if (L < hp->n_dense_lead) {
			l->ffn_gate = make(tm, &r, wtype, D, hp->n_ff, 1, sD, 0);
			l->ffn_up = make(tm, &r, wtype, D, hp->n_ff, 1, sD, 0);
			l->ffn_down = make(tm, &r, wtype, hp->n_ff, D, 1, 1.0f / sqrtf((float)hp->n_ff), 0);
			continue;
		}
		int64_t F = hp->n_ff_exp, E = hp->n_expert;
		l->gate_inp = make(tm, &r, MP_TYPE_F32, D, E, 1, sD, 0);
		if (!softmax)
			l->exp_probs_b = make(tm, &r, MP_TYPE_F32, E, 1, 1, 0.05f, 0);
		l->gate_shexp = make(tm, &r, wtype, D, F, 1, sD, 0);
		l->up_shexp = make(tm, &r, wtype, D, F, 1, sD, 0);
		l->down_shexp = make(tm, &r, wtype, F, D, 1, 0.125f, 0);
		l->gate_exps = make(tm, &r, wtype, D, F, E, sD, 0);
		l->up_exps = make(tm, &r, wtype, D, F, E, sD, 0);
		l->down_exps = make(tm, &r, wtype, F, D, E, 0.125f, 0);
	}
}

void tiny_drop(struct test_model *tm)
{
	for (int i = 0; i < tm->nbufs; i++)
		mp_free(tm->bufs[i]);
	mp_free(tm->w);
}


/* ---- writing it as a GGUF file ------------------------------------------------------ */

struct named {
	char name[64];
	const struct mp_tensor *t;
};

static int collect(const struct test_model *tm, struct named *out)
{
	int n = 0;
	const struct mp_weights *w = tm->w;
#define ADD(t_, ...) do { if ((t_)->data) { snprintf(out[n].name, 64, __VA_ARGS__); out[n++].t = (t_); } } while (0)
	ADD(&w->token_embd, "token_embd.weight");
	ADD(&w->output_norm, "output_norm.weight");
	ADD(&w->output, "output.weight");
	for (uint32_t L = 0; L < tm->hp.n_layer; L++) {
		const struct mp_layer_weights *l = &w->layer[L];
		ADD(&l->attn_norm, "blk.%u.attn_norm.weight", L);
		ADD(&l->q, "blk.%u.attn_q.weight", L);
		ADD(&l->q_a, "blk.%u.attn_q_a.weight", L);
		ADD(&l->q_a_norm, "blk.%u.attn_q_a_norm.weight", L);
		ADD(&l->q_b, "blk.%u.attn_q_b.weight", L);
		ADD(&l->kv_a_mqa, "blk.%u.attn_kv_a_mqa.weight", L);
		ADD(&l->kv_a_norm, "blk.%u.attn_kv_a_norm.weight", L);
		ADD(&l->kv_b, "blk.%u.attn_kv_b.weight", L);
		ADD(&l->k_b, "blk.%u.attn_k_b.weight", L);
		ADD(&l->v_b, "blk.%u.attn_v_b.weight", L);
		ADD(&l->attn_out, "blk.%u.attn_output.weight", L);
		ADD(&l->ffn_norm, "blk.%u.ffn_norm.weight", L);
		ADD(&l->ffn_gate, "blk.%u.ffn_gate.weight", L);
		ADD(&l->ffn_up, "blk.%u.ffn_up.weight", L);
		ADD(&l->ffn_down, "blk.%u.ffn_down.weight", L);
		ADD(&l->gate_inp, "blk.%u.ffn_gate_inp.weight", L);
		ADD(&l->exp_probs_b, "blk.%u.exp_probs_b.bias", L);
		ADD(&l->gate_shexp, "blk.%u.ffn_gate_shexp.weight", L);
		ADD(&l->up_shexp, "blk.%u.ffn_up_shexp.weight", L);
		ADD(&l->down_shexp, "blk.%u.ffn_down_shexp.weight", L);
		ADD(&l->gate_exps, "blk.%u.ffn_gate_exps.weight", L);
		ADD(&l->up_exps, "blk.%u.ffn_up_exps.weight", L);
		ADD(&l->down_exps, "blk.%u.ffn_down_exps.weight", L);
	}
#undef ADD
	return n;
}

int tiny_write_gguf(const struct test_model *tm, const char *path, char *err, size_t err_len)
{
	const struct mp_hparams *hp = &tm->hp;
	struct mp_gguf_write_opts o = { 0, 0, 0, 0 };
	struct mp_gguf_writer *w;
	int rc = mp_gguf_writer_create(path, &o, &w);
	if (rc < 0) {
		snprintf(err, err_len, "cannot create %s", path);
		return rc;
	}
	uint32_t dqk = hp->d_nope + hp->d_rope;
	mp_gguf_writer_set_str(w, "general.architecture", "deepseek2");
	mp_gguf_writer_set_str(w, "general.name", "tiny test model");
	mp_gguf_writer_set_u32(w, "deepseek2.block_count", hp->n_layer);
	mp_gguf_writer_set_u32(w, "deepseek2.context_length", hp->n_ctx_train);
	mp_gguf_writer_set_u32(w, "deepseek2.embedding_length", hp->n_embd);
	mp_gguf_writer_set_u32(w, "deepseek2.feed_forward_length", hp->n_ff);
	mp_gguf_writer_set_u32(w, "deepseek2.attention.head_count", hp->n_head);
	mp_gguf_writer_set_u32(w, "deepseek2.attention.head_count_kv", hp->mla_new ? 1 : hp->n_head);
	mp_gguf_writer_set_f32(w, "deepseek2.rope.freq_base", hp->rope_base);
	mp_gguf_writer_set_f32(w, "deepseek2.attention.layer_norm_rms_epsilon", hp->eps);
	mp_gguf_writer_set_u32(w, "deepseek2.expert_used_count", hp->n_expert_used);
	mp_gguf_writer_set_u32(w, "deepseek2.leading_dense_block_count", hp->n_dense_lead);
	mp_gguf_writer_set_u32(w, "deepseek2.vocab_size", hp->n_vocab);
	if (hp->q_lora_rank)
		mp_gguf_writer_set_u32(w, "deepseek2.attention.q_lora_rank", hp->q_lora_rank);
	mp_gguf_writer_set_u32(w, "deepseek2.attention.kv_lora_rank", hp->kv_lora_rank);
	if (hp->mla_new) {
		mp_gguf_writer_set_u32(w, "deepseek2.attention.key_length", hp->kv_lora_rank + hp->d_rope);
		mp_gguf_writer_set_u32(w, "deepseek2.attention.value_length", hp->kv_lora_rank);
		mp_gguf_writer_set_u32(w, "deepseek2.attention.key_length_mla", dqk);
		mp_gguf_writer_set_u32(w, "deepseek2.attention.value_length_mla", hp->d_v);
	} else {
		mp_gguf_writer_set_u32(w, "deepseek2.attention.key_length", dqk);
		mp_gguf_writer_set_u32(w, "deepseek2.attention.value_length", hp->d_v);
	}
	mp_gguf_writer_set_u32(w, "deepseek2.expert_feed_forward_length", hp->n_ff_exp);
	mp_gguf_writer_set_u32(w, "deepseek2.expert_count", hp->n_expert);
	mp_gguf_writer_set_u32(w, "deepseek2.expert_shared_count", hp->n_expert_shared);
	mp_gguf_writer_set_f32(w, "deepseek2.expert_weights_scale", hp->expert_scale);
	mp_gguf_writer_set_bool(w, "deepseek2.expert_weights_norm", hp->expert_norm);
	mp_gguf_writer_set_u32(w, "deepseek2.expert_gating_func", (uint32_t)hp->gating);
	if (hp->n_group > 1) {
		mp_gguf_writer_set_u32(w, "deepseek2.expert_group_count", hp->n_group);
		mp_gguf_writer_set_u32(w, "deepseek2.expert_group_used_count", hp->n_group_used);
	}
	mp_gguf_writer_set_u32(w, "deepseek2.rope.dimension_count", hp->d_rope);
	mp_gguf_writer_set_str(w, "deepseek2.rope.scaling.type", hp->yarn ? "yarn" : "none");
	mp_gguf_writer_set_f32(w, "deepseek2.rope.scaling.factor", hp->yarn_factor);
	mp_gguf_writer_set_u32(w, "deepseek2.rope.scaling.original_context_length",
			       (uint32_t)hp->yarn_orig_ctx);
	mp_gguf_writer_set_f32(w, "deepseek2.rope.scaling.yarn_log_multiplier", 0.1f * hp->mscale_all_dim);

	static struct named list[MP_MODEL_MAX_LAYERS * 24];
	int n = collect(tm, list);
	for (int i = 0; i < n; i++) {
		const struct mp_tensor *t = list[i].t;
		uint64_t ne[3] = { (uint64_t)t->ne[0], (uint64_t)t->ne[1], (uint64_t)t->ne[2] };
		uint32_t dims = t->ne[2] > 1 ? 3 : t->ne[1] > 1 ? 2 : 1;
		if ((rc = mp_gguf_writer_add_tensor(w, list[i].name, t->type, dims, ne)) < 0)
			goto fail;
	}
	if ((rc = mp_gguf_writer_begin(w)) < 0)
		goto fail;
	for (int i = 0; i < n; i++) {
		const struct mp_tensor *t = list[i].t;
		if ((rc = mp_gguf_writer_write(w, t->data, t->row_bytes * (size_t)(t->ne[1] * t->ne[2]))) < 0)
			goto fail;
	}
	if ((rc = mp_gguf_writer_finish(w)) < 0)
		goto fail;
	mp_gguf_writer_destroy(w);
	return 0;
fail:
	snprintf(err, err_len, "%s", mp_gguf_writer_error(w));
	mp_gguf_writer_destroy(w);
	return rc;
}

int tiny_argmax(const float *v, int n)
{
	int b = 0;
	for (int i = 1; i < n; i++)
		if (v[i] > v[b])
			b = i;
	return b;
}
