/*
 * mkmodel.c — moepager-mkmodel: writes a synthetic deepseek2 GGUF with R1's
 * metadata keys and tensor names (FORMATS.md §3), seeded random weights, a
 * preset's dimensions (DESIGN.md §9) and llama-quantize-like per-tensor type
 * choices.  Tensors are generated, quantized through the kernel table and
 * written one piece at a time, so memory stays at a few tens of MB whatever
 * the model size.  Routing knobs (docs/mkmodel.md) shape the router so that
 * routing looks trained rather than uniform.
 *
 * Not here: the tokenizer.json import (another loader fills struct
 * mp_mkvocab), calibration of the knobs (needs the forward pass and the
 * trace recorder).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "gguf.h"
#include "gguf_write.h"
#include "mkvocab.h"
#include "quant.h"
#include "rng.h"
#include "size.h"
#include "types.h"

#define BANK_ROWS 256            /* distinct rows of a banked tensor */
#define BANK_ROWS_SLOW 16        /* the same for types with slow quantizers */
#define CHUNK_ELEMS (1u << 22)   /* floats generated per piece */

struct dims {
	uint32_t n_layer, n_dense;   /* layers, of which the first n_dense are dense */
	uint32_t D, H;               /* hidden size, attention heads */
	uint32_t q_lora, kv_lora;    /* query / key-value LoRA ranks */
	uint32_t rope, nope, v;      /* per-head dims: rope, no-rope key, value */
	uint32_t F, Fe;              /* dense FFN width, expert FFN width */
	uint32_t E, top_k;           /* routed experts, used per token */
	uint32_t groups, groups_used;/* expert groups, groups used */
	uint32_t n_shared;           /* shared experts */
	uint32_t vocab, ctx;         /* tokens, context length */
};

struct knobs {
	double router_scale;         /* std of router logits for a unit hidden state */
	double bias_spread;          /* std of the exp_probs_b selection bias */
	double router_similarity;    /* correlation of router L+1 with router L */
	double embd_shared;          /* share of a common direction in embeddings */
	double residual_scale;       /* scale of every matrix writing into the residual */
};

enum mix { MIX_F32, MIX_Q8_0, MIX_Q4_K_M, MIX_Q2_K, MIX_IQ1_S, MIX_COUNT };
static const char *mix_names[MIX_COUNT] = {"f32", "q8_0", "q4_k_m", "q2_k", "iq1_s"};
static const uint32_t mix_ftype[MIX_COUNT] = {0, 7, 15, 10, 24};

/* How a tensor's values are drawn. */
enum kind { K_NORM, K_WEIGHT, K_RESID, K_ROUTER, K_BIAS, K_EMBD };

struct tspec {
	char name[64];
	uint32_t n_dims;
	uint64_t ne[3];
	uint32_t type;
	enum kind kind;
	int layer;                   /* -1 for global tensors */
};

struct opts {
	const char *preset, *out;
	enum mix mix;
	uint64_t seed, split_size;
	int mla_old, group_keys, quiet;
	int sparse;                  /* holes for every tensor but embd/norms/routers */
	const char *tokenizer;       /* --tokenizer tokenizer.json, or NULL: built-in */
	struct dims d;
	struct knobs k;
};

/* ---- presets -------------------------------------------------------------- */

static int preset_dims(const char *name, struct dims *d)
{
	static const struct { const char *name; struct dims d; } presets[] = {
		{"tiny", {4, 1, 256, 8, 128, 128, 32, 64, 64, 512, 256, 16, 4, 4, 2, 1, 512, 4096}},
		{"small", {8, 1, 1024, 16, 384, 256, 64, 128, 128, 2816, 512, 64, 6, 8, 4, 1, 8192, 16384}},
		{"r1slice", {5, 3, 7168, 128, 1536, 512, 64, 128, 128, 18432, 2048, 256, 8, 8, 4, 1,
			     129280, 163840}},
		{"r1", {61, 3, 7168, 128, 1536, 512, 64, 128, 128, 18432, 2048, 256, 8, 8, 4, 1,
			129280, 163840}},
	};
	for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
		if (strcmp(name, presets[i].name) == 0) {
			*d = presets[i].d;
			return 0;
		}
	return -MP_EARG;
}

/* ---- per-tensor types (llama-quantize's rules, FORMATS.md §3.3) ------------- */

/* llama.cpp's use_more_bits(i, n). */
static int more_bits(int i, int n)
{
	return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static int has(const char *s, const char *part) { return strstr(s, part) != NULL; }

/* The type llama.cpp substitutes when a row is not a multiple of 256. */
static uint32_t fallback(uint32_t t, uint64_t ne0)
{
	const struct mp_type_info *ti = mp_type_info(t);
	if (ne0 % ti->block_elems == 0)
		return t;
	switch (t) {
	case MP_TYPE_Q4_K: t = MP_TYPE_Q5_0; break;
	case MP_TYPE_Q5_K: t = MP_TYPE_Q5_1; break;
	case MP_TYPE_Q6_K: t = MP_TYPE_Q8_0; break;
	default: t = MP_TYPE_IQ4_NL; break;
	}
	return ne0 % 32 == 0 ? t : MP_TYPE_F16;
}

static uint32_t choose_type(enum mix mix, const struct tspec *t, int n_layer)
{
	const char *n = t->name;
	if (t->n_dims < 2 || t->kind == K_ROUTER || t->kind == K_BIAS || t->kind == K_NORM ||
	    mix == MIX_F32)
		return MP_TYPE_F32;
	int down = has(n, "ffn_down");
	int more = t->layer >= 0 && more_bits(t->layer, n_layer);
	uint32_t ty;
	switch (mix) {
	case MIX_Q8_0:
		ty = MP_TYPE_Q8_0;
		break;
	case MIX_Q4_K_M:
		if (strcmp(n, "output.weight") == 0)
			ty = MP_TYPE_Q6_K;
		else if ((down || has(n, "attn_kv_b")) && more)
			ty = MP_TYPE_Q6_K;
		else
			ty = MP_TYPE_Q4_K;
		break;
	case MIX_Q2_K:
		if (strcmp(n, "output.weight") == 0)
			ty = MP_TYPE_Q6_K;
		else if (down)
			ty = MP_TYPE_Q3_K;
		else if (has(n, "attn_kv_b") || has(n, "attn_v_b"))
			ty = MP_TYPE_Q4_K;
		else
			ty = MP_TYPE_Q2_K;
		break;
	default: /* MIX_IQ1_S: unsloth-style dynamic: experts tiny, the rest higher */
		if (has(n, "ffn_gate_exps") || has(n, "ffn_up_exps"))
			ty = MP_TYPE_IQ1_S;
		else if (has(n, "ffn_down_exps"))
			ty = more ? MP_TYPE_IQ2_XXS : MP_TYPE_IQ1_S;
		else if (strcmp(n, "output.weight") == 0)
			ty = MP_TYPE_Q6_K;
		else
			ty = MP_TYPE_Q4_K;
		break;
	}
	return fallback(ty, t->ne[0]);
}

/* ---- the tensor list --------------------------------------------------------- */

static void add(struct tspec *ts, uint32_t *n, int layer, const char *suffix, enum kind kind,
		uint32_t nd, uint64_t ne0, uint64_t ne1, uint64_t ne2)
{
	struct tspec *t = &ts[(*n)++];
	memset(t, 0, sizeof *t);
	if (layer >= 0)
		snprintf(t->name, sizeof t->name, "blk.%d.%s", layer, suffix);
	else
		snprintf(t->name, sizeof t->name, "%s", suffix);
	t->n_dims = nd;
	t->ne[0] = ne0;
	t->ne[1] = ne1;
	t->ne[2] = ne2;
	t->kind = kind;
	t->layer = layer;
}

/* R1's inventory (FORMATS.md §3.3) for dims d; returns the count. */
static uint32_t tensor_list(const struct opts *o, struct tspec *ts)
{
	const struct dims *d = &o->d;
	uint32_t n = 0, qk = d->nope + d->rope;
	add(ts, &n, -1, "token_embd.weight", K_EMBD, 2, d->D, d->vocab, 1);
	for (int l = 0; l < (int)d->n_layer; l++) {
		add(ts, &n, l, "attn_norm.weight", K_NORM, 1, d->D, 1, 1);
		add(ts, &n, l, "attn_q_a.weight", K_WEIGHT, 2, d->D, d->q_lora, 1);
		add(ts, &n, l, "attn_q_a_norm.weight", K_NORM, 1, d->q_lora, 1, 1);
		add(ts, &n, l, "attn_q_b.weight", K_WEIGHT, 2, d->q_lora, (uint64_t)d->H * qk, 1);
		add(ts, &n, l, "attn_kv_a_mqa.weight", K_WEIGHT, 2, d->D, d->kv_lora + d->rope, 1);
		add(ts, &n, l, "attn_kv_a_norm.weight", K_NORM, 1, d->kv_lora, 1, 1);
		if (o->mla_old) {
			add(ts, &n, l, "attn_kv_b.weight", K_WEIGHT, 2, d->kv_lora,
			    (uint64_t)d->H * (d->nope + d->v), 1);
		} else {
			add(ts, &n, l, "attn_k_b.weight", K_WEIGHT, 3, d->nope, d->kv_lora, d->H);
			add(ts, &n, l, "attn_v_b.weight", K_WEIGHT, 3, d->kv_lora, d->v, d->H);
		}
		add(ts, &n, l, "attn_output.weight", K_RESID, 2, (uint64_t)d->H * d->v, d->D, 1);
		add(ts, &n, l, "ffn_norm.weight", K_NORM, 1, d->D, 1, 1);
		if (l < (int)d->n_dense) {
			add(ts, &n, l, "ffn_gate.weight", K_WEIGHT, 2, d->D, d->F, 1);
			add(ts, &n, l, "ffn_up.weight", K_WEIGHT, 2, d->D, d->F, 1);
			add(ts, &n, l, "ffn_down.weight", K_RESID, 2, d->F, d->D, 1);
			continue;
		}
		uint64_t fs = (uint64_t)d->Fe * d->n_shared;
		add(ts, &n, l, "ffn_gate_inp.weight", K_ROUTER, 2, d->D, d->E, 1);
		add(ts, &n, l, "exp_probs_b.bias", K_BIAS, 1, d->E, 1, 1);
		add(ts, &n, l, "ffn_gate_exps.weight", K_WEIGHT, 3, d->D, d->Fe, d->E);
		add(ts, &n, l, "ffn_up_exps.weight", K_WEIGHT, 3, d->D, d->Fe, d->E);
		add(ts, &n, l, "ffn_down_exps.weight", K_RESID, 3, d->Fe, d->D, d->E);
		add(ts, &n, l, "ffn_gate_shexp.weight", K_WEIGHT, 2, d->D, fs, 1);
		add(ts, &n, l, "ffn_up_shexp.weight", K_WEIGHT, 2, d->D, fs, 1);
		add(ts, &n, l, "ffn_down_shexp.weight", K_RESID, 2, fs, d->D, 1);
	}
	add(ts, &n, -1, "output_norm.weight", K_NORM, 1, d->D, 1, 1);
	add(ts, &n, -1, "output.weight", K_WEIGHT, 2, d->D, d->vocab, 1);
	for (uint32_t i = 0; i < n; i++)
		ts[i].type = choose_type(o->mix, &ts[i], (int)d->n_layer);
	return n;
}

/* ---- metadata (FORMATS.md §3.1, §5.1) ---------------------------------------- */

static void write_meta(struct mp_gguf_writer *w, const struct opts *o)
{
	const struct dims *d = &o->d;
	char name[96];
	snprintf(name, sizeof name, "moepager synthetic %s", o->preset);
	mp_gguf_writer_set_str(w, "general.architecture", "deepseek2");
	mp_gguf_writer_set_str(w, "general.type", "model");
	mp_gguf_writer_set_str(w, "general.name", name);
	mp_gguf_writer_set_u32(w, "deepseek2.block_count", d->n_layer);
	mp_gguf_writer_set_u32(w, "deepseek2.context_length", d->ctx);
	mp_gguf_writer_set_u32(w, "deepseek2.embedding_length", d->D);
	mp_gguf_writer_set_u32(w, "deepseek2.feed_forward_length", d->F);
	mp_gguf_writer_set_u32(w, "deepseek2.attention.head_count", d->H);
	mp_gguf_writer_set_u32(w, "deepseek2.attention.head_count_kv", o->mla_old ? d->H : 1);
	mp_gguf_writer_set_f32(w, "deepseek2.rope.freq_base", 10000.0f);
	mp_gguf_writer_set_f32(w, "deepseek2.attention.layer_norm_rms_epsilon", 1e-6f);
	mp_gguf_writer_set_u32(w, "deepseek2.expert_used_count", d->top_k);
	if (o->group_keys) {
		mp_gguf_writer_set_u32(w, "deepseek2.expert_group_count", d->groups);
		mp_gguf_writer_set_u32(w, "deepseek2.expert_group_used_count", d->groups_used);
	}
	mp_gguf_writer_set_u32(w, "deepseek2.leading_dense_block_count", d->n_dense);
	mp_gguf_writer_set_u32(w, "deepseek2.vocab_size", d->vocab);
	mp_gguf_writer_set_u32(w, "deepseek2.attention.q_lora_rank", d->q_lora);
	mp_gguf_writer_set_u32(w, "deepseek2.attention.kv_lora_rank", d->kv_lora);
	if (o->mla_old) {
		mp_gguf_writer_set_u32(w, "deepseek2.attention.key_length", d->nope + d->rope);
		mp_gguf_writer_set_u32(w, "deepseek2.attention.value_length", d->v);
	} else {
		mp_gguf_writer_set_u32(w, "deepseek2.attention.key_length", d->kv_lora + d->rope);
		mp_gguf_writer_set_u32(w, "deepseek2.attention.value_length", d->kv_lora);
		mp_gguf_writer_set_u32(w, "deepseek2.attention.key_length_mla", d->nope + d->rope);
		mp_gguf_writer_set_u32(w, "deepseek2.attention.value_length_mla", d->v);
	}
	mp_gguf_writer_set_u32(w, "deepseek2.expert_feed_forward_length", d->Fe);
	mp_gguf_writer_set_u32(w, "deepseek2.expert_count", d->E);
	mp_gguf_writer_set_u32(w, "deepseek2.expert_shared_count", d->n_shared);
	mp_gguf_writer_set_f32(w, "deepseek2.expert_weights_scale", 2.5f);
	mp_gguf_writer_set_bool(w, "deepseek2.expert_weights_norm", 1);
	mp_gguf_writer_set_u32(w, "deepseek2.expert_gating_func", 2);
	mp_gguf_writer_set_u32(w, "deepseek2.rope.dimension_count", d->rope);
	mp_gguf_writer_set_str(w, "deepseek2.rope.scaling.type", "yarn");
	mp_gguf_writer_set_f32(w, "deepseek2.rope.scaling.factor", 40.0f);
	mp_gguf_writer_set_u32(w, "deepseek2.rope.scaling.original_context_length", 4096);
	mp_gguf_writer_set_f32(w, "deepseek2.rope.scaling.yarn_log_multiplier", 0.1f);
	mp_gguf_writer_set_u32(w, "general.quantization_version", 2);
	mp_gguf_writer_set_u32(w, "general.file_type", mix_ftype[o->mix]);
	/* Routing knobs, so that traces can name the model they came from. */
	mp_gguf_writer_set_u64(w, "moepager.mkmodel.seed", o->seed);
	mp_gguf_writer_set_f32(w, "moepager.mkmodel.router_scale", (float)o->k.router_scale);
	mp_gguf_writer_set_f32(w, "moepager.mkmodel.router_bias_spread", (float)o->k.bias_spread);
	mp_gguf_writer_set_f32(w, "moepager.mkmodel.router_similarity", (float)o->k.router_similarity);
	mp_gguf_writer_set_f32(w, "moepager.mkmodel.embd_shared", (float)o->k.embd_shared);
	mp_gguf_writer_set_f32(w, "moepager.mkmodel.residual_scale", (float)o->k.residual_scale);
}

/* ---- generation ---------------------------------------------------------------- */

struct gen {
	const struct opts *o;
	struct mp_gguf_writer *w;
	float *f;                    /* CHUNK_ELEMS (or one bank) floats */
	uint8_t *q;                  /* quantized piece */
	size_t f_cap, q_cap;         /* elements / bytes */
	float *router_prev;          /* previous MoE layer's router (E x D), or NULL */
	float *embd_common;          /* D floats: the shared embedding direction */
	uint64_t total, done;        /* bytes of data: all, written */
	uint64_t t0, last_print;     /* ns */
	int tty;
};

static uint64_t name_seed(uint64_t seed, const char *name)
{
	uint64_t h = seed ^ 0x9e3779b97f4a7c15ull;
	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 0x100000001b3ull;
	return h;
}

static void progress(struct gen *g, const char *name, int force)
{
	if (!g->tty || g->o->quiet)
		return;
	uint64_t now = mp_clock_now_ns();
	if (!force && now - g->last_print < 250000000ull)
		return;
	g->last_print = now;
	double s = (double)(now - g->t0) / 1e9;
	fprintf(stderr, "\r\033[Kmkmodel: %3.0f%%  %.2f / %.2f GB  %.0f MB/s  %s",
		g->total ? 100.0 * (double)g->done / (double)g->total : 100.0, (double)g->done / 1e9,
		(double)g->total / 1e9, s > 0 ? (double)g->done / 1e6 / s : 0.0, name);
	fflush(stderr);
}

/* Fills n values of row r (of ne0) for kind k. */
static void fill_rows(struct gen *g, const struct tspec *t, struct mp_rng *rng, float *dst,
		      uint64_t rows)
{
	const struct knobs *k = &g->o->k;
	uint64_t ne0 = t->ne[0];
	double sd = 1.0 / sqrt((double)ne0);
	for (uint64_t r = 0; r < rows; r++) {
		float *row = dst + r * ne0;
		for (uint64_t i = 0; i < ne0; i++) {
			double z = mp_rng_normal(rng);
			switch (t->kind) {
			case K_NORM: row[i] = (float)(1.0 + 0.02 * z); break;
			case K_BIAS: row[i] = (float)(k->bias_spread * z); break;
			case K_RESID: row[i] = (float)(k->residual_scale * sd * z); break;
			case K_EMBD:
				row[i] = (float)(sqrt(k->embd_shared) * g->embd_common[i] +
						 sqrt(1.0 - k->embd_shared) * z);
				break;
			default: row[i] = (float)(sd * z); break;
			}
		}
	}
}

static int put(struct gen *g, const struct tspec *t, const float *src, uint64_t n)
{
	const struct mp_quant_ops *ops = mp_quant_ops(t->type);
	uint64_t bytes;
	mp_type_row_bytes(t->type, n, &bytes);
	if (t->type == MP_TYPE_F32) {
		g->done += bytes;
		return mp_gguf_writer_write(g->w, src, (size_t)bytes);
	}
	ops->quantize(src, g->q, (int64_t)n);
	g->done += bytes;
	return mp_gguf_writer_write(g->w, g->q, (size_t)bytes);
}

/* The router of a MoE layer: E rows of D; row e of layer L is
 * s * row e of layer L-1 + sqrt(1 - s^2) * fresh (s = router_similarity). */
static int gen_router(struct gen *g, const struct tspec *t, struct mp_rng *rng)
{
	uint64_t n = t->ne[0] * t->ne[1];
	const struct knobs *k = &g->o->k;
	double sd = k->router_scale / sqrt((double)t->ne[0]);
	double s = k->router_similarity, c = sqrt(1.0 - s * s);
	if (!g->router_prev) {
		g->router_prev = mp_malloc_array((size_t)n, sizeof(float));
		if (!g->router_prev)
			return -ENOMEM;
		for (uint64_t i = 0; i < n; i++)
			g->router_prev[i] = (float)(sd * mp_rng_normal(rng));
	} else {
		for (uint64_t i = 0; i < n; i++)
			g->router_prev[i] = (float)(s * g->router_prev[i] + c * sd * mp_rng_normal(rng));
	}
	return put(g, t, g->router_prev, n);
}

/* The i-quant quantizers search grids exhaustively (tens of microseconds a
 * weight); K-quants search scales (hundreds of ns).  Large tensors of such
 * types are written from a bank of random rows, quantized once: still valid
 * blocks, distinct per expert (rows are drawn per row), fast to write. */
static int slow_type(uint32_t t)
{
	return t == MP_TYPE_IQ1_S || t == MP_TYPE_IQ1_M || t == MP_TYPE_IQ2_XXS ||
	       t == MP_TYPE_IQ2_XS || t == MP_TYPE_IQ2_S || t == MP_TYPE_IQ3_XXS || t == MP_TYPE_IQ3_S;
}

static uint64_t bank_threshold(uint32_t t)
{
	if (t == MP_TYPE_F32 || t == MP_TYPE_F16 || t == MP_TYPE_BF16 || t == MP_TYPE_Q8_0)
		return 1ull << 24;
	return 1ull << 18;
}

/* --sparse: what gets real values (routing must vary from token to token);
 * everything else is a hole, i.e. zero blocks, valid weights of zero in
 * every block type (a zero scale), at no disk cost. */
static int real_in_sparse(enum kind k)
{
	return k == K_EMBD || k == K_NORM || k == K_ROUTER || k == K_BIAS;
}

static int gen_tensor(struct gen *g, const struct tspec *t)
{
	struct mp_rng rng;
	if (g->o->sparse && !real_in_sparse(t->kind)) {
		uint64_t rb;
		mp_type_row_bytes(t->type, t->ne[0], &rb);
		g->done += rb * t->ne[1] * t->ne[2];
		progress(g, t->name, 0);
		return mp_gguf_writer_skip(g->w, rb * t->ne[1] * t->ne[2]);
	}
	mp_rng_seed(&rng, name_seed(g->o->seed, t->name));
	uint64_t ne0 = t->ne[0], rows = t->ne[1] * t->ne[2];
	uint64_t elems = ne0 * rows;
	int rc = 0;
	if (t->kind == K_ROUTER)
		return gen_router(g, t, &rng);
	if (elems <= bank_threshold(t->type)) {
		uint64_t per = CHUNK_ELEMS / ne0 ? CHUNK_ELEMS / ne0 : 1;
		for (uint64_t r = 0; r < rows && !rc; r += per) {
			uint64_t k = rows - r < per ? rows - r : per;
			fill_rows(g, t, &rng, g->f, k);
			rc = put(g, t, g->f, k * ne0);
			progress(g, t->name, 0);
		}
		return rc;
	}
	/* Banked: BANK_ROWS random rows, quantized once, drawn per output row. */
	uint64_t rb;
	mp_type_row_bytes(t->type, ne0, &rb);
	uint64_t nbank = slow_type(t->type) ? BANK_ROWS_SLOW : BANK_ROWS;
	uint8_t *bank = mp_malloc_array((size_t)nbank, (size_t)rb);
	float *row = mp_malloc_array((size_t)ne0, sizeof *row);
	if (!bank || !row) {
		mp_free(bank);
		mp_free(row);
		return -ENOMEM;
	}
	const struct mp_quant_ops *ops = mp_quant_ops(t->type);
	for (uint64_t b = 0; b < nbank; b++) {
		fill_rows(g, t, &rng, row, 1);
		if (t->type == MP_TYPE_F32)
			memcpy(bank + b * rb, row, (size_t)rb);
		else
			ops->quantize(row, bank + b * rb, (int64_t)ne0);
	}
	uint64_t per = g->q_cap / rb ? g->q_cap / rb : 1;
	for (uint64_t r = 0; r < rows && !rc; r += per) {
		uint64_t k = rows - r < per ? rows - r : per;
		for (uint64_t i = 0; i < k; i++)
			memcpy(g->q + i * rb, bank + mp_rng_below(&rng, nbank) * rb, (size_t)rb);
		rc = mp_gguf_writer_write(g->w, g->q, (size_t)(k * rb));
		g->done += k * rb;
		progress(g, t->name, 0);
	}
	mp_free(bank);
	mp_free(row);
	return rc;
}

/* Disk blocks the written parts take (st_blocks), for sparse files. */
static uint64_t disk_bytes(const struct mp_gguf_writer *w)
{
	uint64_t sum = 0;
	for (uint32_t p = 0; p < mp_gguf_writer_part_count(w); p++) {
		struct stat st;
		if (stat(mp_gguf_writer_part_path(w, p), &st) == 0)
			sum += (uint64_t)st.st_blocks * 512;
	}
	return sum;
}

/* ---- main ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: moepager-mkmodel --preset tiny|small|r1slice|r1 -o FILE.gguf [OPTION]...\n"
		"Write a synthetic deepseek2 model laid out exactly like DeepSeek-R1's GGUF files\n"
		"(R1's metadata keys and tensor names) with seeded random weights and routing\n"
		"that looks trained, for tests and benchmarks.\n"
		"\n"
		"Options:\n"
		"  -p, --preset NAME      tiny, small, r1slice or r1 (docs/mkmodel.md); r1 is\n"
		"                         DeepSeek-R1 whole: 61 layers, old MLA, no group keys,\n"
		"                         parts of at most 50GB (…-00001-of-00009.gguf)\n"
		"  -o, --output FILE      the model to write\n"
		"  --quant MIX            f32, q8_0, q4_k_m (default), q2_k, iq1_s\n"
		"  --layers N             total layers (dense ones stay first; at least 1 MoE)\n"
		"  --dense N              leading dense layers\n"
		"  --experts N --top-k N --expert-ff N --hidden N --heads N --vocab N\n"
		"  --tokenizer FILE       embed a Hugging Face tokenizer.json (the vocabulary\n"
		"                         grows to hold it; e.g. DeepSeek-V3's)\n"
		"  --mla new|old          attn_k_b+attn_v_b (default) or attn_kv_b\n"
		"  --group-keys yes|no    write expert_group_count/used (default yes)\n"
		"  --split-size SIZE      write parts of at most SIZE (…-00001-of-0000N.gguf)\n"
		"  --sparse               sparse files: embeddings, norms, routers and biases\n"
		"                         random, every other tensor a hole (zeros, no disk)\n"
		"  --seed N               weights seed (default 1)\n"
		"  --router-scale X --router-bias-spread X --router-similarity X\n"
		"  --embd-shared X --residual-scale X     routing knobs (docs/mkmodel.md)\n"
		"  --quiet                no progress line\n"
		"  -h, --help             print this help and exit\n"
		"  -V, --version          print the version and exit\n");
}

static int parse_u32(const char *s, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || !*s || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int parse_dbl(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (*end || !*s || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
}

/* Checks the dims against what the format and the kernels need. */
static const char *check_dims(const struct dims *d)
{
	if (!d->n_layer || d->n_dense >= d->n_layer)
		return "need at least one MoE layer after the dense ones";
	if (!d->D || !d->H || !d->E || !d->top_k || !d->Fe || !d->vocab)
		return "a dimension is zero";
	if (d->top_k > d->E)
		return "--top-k is larger than --experts";
	if (d->groups > 1 && (d->E % d->groups || d->groups_used >= d->groups || !d->groups_used))
		return "experts must divide into groups and fewer groups used than exist";
	if (d->D % 32 || d->Fe % 32 || d->F % 32 || d->kv_lora % 32 || d->nope % 32 || d->q_lora % 32)
		return "widths must be multiples of 32";
	if (d->vocab < 300)
		return "--vocab must be at least 300";
	if (d->n_layer > 512 || d->E > 512)
		return "at most 512 layers and 512 experts";
	return NULL;
}

int main(int argc, char **argv)
{
	struct opts o = {.mix = MIX_Q4_K_M, .seed = 1, .group_keys = 1,
			 .k = {.router_scale = 3.0, .bias_spread = 0.05, .router_similarity = 0.6,
			       .embd_shared = 0.1, .residual_scale = 0.5}};
	enum { O_LAYERS = 256, O_DENSE, O_EXPERTS, O_TOPK, O_EFF, O_HIDDEN, O_HEADS, O_VOCAB, O_MLA,
	       O_GROUPKEYS, O_SPLIT, O_SEED, O_RSCALE, O_BIAS, O_RSIM, O_EMBD, O_RESID, O_QUIET, O_TOKENIZER,
	       O_SPARSE };
	static const struct option longopts[] = {
		{"preset", required_argument, 0, 'p'}, {"output", required_argument, 0, 'o'},
		{"quant", required_argument, 0, 'q'}, {"layers", required_argument, 0, O_LAYERS},
		{"dense", required_argument, 0, O_DENSE}, {"experts", required_argument, 0, O_EXPERTS},
		{"top-k", required_argument, 0, O_TOPK}, {"expert-ff", required_argument, 0, O_EFF},
		{"hidden", required_argument, 0, O_HIDDEN}, {"heads", required_argument, 0, O_HEADS},
		{"vocab", required_argument, 0, O_VOCAB}, {"mla", required_argument, 0, O_MLA},
		{"group-keys", required_argument, 0, O_GROUPKEYS},
		{"split-size", required_argument, 0, O_SPLIT}, {"seed", required_argument, 0, O_SEED},
		{"router-scale", required_argument, 0, O_RSCALE},
		{"router-bias-spread", required_argument, 0, O_BIAS},
		{"router-similarity", required_argument, 0, O_RSIM},
		{"embd-shared", required_argument, 0, O_EMBD},
		{"residual-scale", required_argument, 0, O_RESID}, {"quiet", no_argument, 0, O_QUIET},
		{"tokenizer", required_argument, 0, O_TOKENIZER}, {"sparse", no_argument, 0, O_SPARSE},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
			printf("moepager-mkmodel %s\n", PACKAGE_VERSION);
			return 0;
		}
	}
	/* Presets first, so that dimension flags override them in any order. */
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--preset") == 0 || strcmp(argv[i], "-p") == 0)
			o.preset = argv[i + 1];
		else if (strncmp(argv[i], "--preset=", 9) == 0)
			o.preset = argv[i] + 9;
	if (!o.preset || preset_dims(o.preset, &o.d)) {
		fprintf(stderr, "moepager-mkmodel: %s\n", o.preset ? "unknown preset (tiny, small, r1slice, r1)"
								   : "--preset is required");
		usage(stderr);
		return 2;
	}
	if (strcmp(o.preset, "r1") == 0) {
		/* As published (FORMATS.md §1.5, §3.1): January-2025 layout, gguf-split's
		 * 50G parts (10^9 bytes, as gguf-split counts); flags override. */
		o.mla_old = 1;
		o.group_keys = 0;
		o.split_size = 50000000000ull;
	}
	uint32_t layers = 0, dense = UINT32_MAX;
	int c, bad = 0;
	while ((c = getopt_long(argc, argv, "p:o:q:h", longopts, NULL)) != -1) {
		uint32_t *u = NULL;
		double *dv = NULL, lo = 0, hi = 1;
		switch (c) {
		case 'p': break;
		case 'o': o.out = optarg; break;
		case 'q':
			o.mix = MIX_COUNT;
			for (int m = 0; m < MIX_COUNT; m++)
				if (strcasecmp(optarg, mix_names[m]) == 0)
					o.mix = (enum mix)m;
			bad |= o.mix == MIX_COUNT;
			break;
		case O_LAYERS: u = &layers; break;
		case O_DENSE: u = &dense; break;
		case O_EXPERTS: u = &o.d.E; break;
		case O_TOPK: u = &o.d.top_k; break;
		case O_EFF: u = &o.d.Fe; break;
		case O_HIDDEN: u = &o.d.D; break;
		case O_HEADS: u = &o.d.H; break;
		case O_VOCAB: u = &o.d.vocab; break;
		case O_MLA:
			o.mla_old = strcmp(optarg, "old") == 0;
			bad |= !o.mla_old && strcmp(optarg, "new") != 0;
			break;
		case O_GROUPKEYS:
			o.group_keys = strcmp(optarg, "yes") == 0;
			bad |= !o.group_keys && strcmp(optarg, "no") != 0;
			break;
		case O_SPLIT: bad |= mp_size_parse(optarg, &o.split_size) != 0; break;
		case O_SEED: bad |= sscanf(optarg, "%" SCNu64, &o.seed) != 1; break;
		case O_RSCALE: dv = &o.k.router_scale; hi = 100; break;
		case O_BIAS: dv = &o.k.bias_spread; hi = 10; break;
		case O_RSIM: dv = &o.k.router_similarity; break;
		case O_EMBD: dv = &o.k.embd_shared; break;
		case O_RESID: dv = &o.k.residual_scale; hi = 10; break;
		case O_QUIET: o.quiet = 1; break;
		case O_TOKENIZER: o.tokenizer = optarg; break;
		case O_SPARSE: o.sparse = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (u)
			bad |= parse_u32(optarg, u) != 0;
		if (dv && parse_dbl(optarg, lo, hi, dv)) {
			fprintf(stderr, "moepager-mkmodel: %s wants a number in [%g, %g]\n", argv[optind - 2], lo, hi);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "moepager-mkmodel: bad value '%s' for %s\n", optarg, argv[optind - 2]);
			return 2;
		}
	}
	if (!o.out || optind != argc) {
		fprintf(stderr, "moepager-mkmodel: %s\n", o.out ? "unexpected argument" : "-o FILE is required");
		usage(stderr);
		return 2;
	}
	if (dense != UINT32_MAX)
		o.d.n_dense = dense;
	if (layers) {
		o.d.n_layer = layers;
		if (dense == UINT32_MAX && o.d.n_dense >= layers)
			o.d.n_dense = layers - 1;
	}
	if (o.d.groups > 1 && o.d.E % o.d.groups) {
		o.d.groups = 1;
		o.d.groups_used = 1;
	}
	const char *why = check_dims(&o.d);
	if (why) {
		fprintf(stderr, "moepager-mkmodel: %s\n", why);
		return 2;
	}

	uint32_t max_t = 4 + 20 * o.d.n_layer;   /* a MoE layer has 18 */
	struct tspec *ts = mp_calloc(max_t, sizeof *ts);
	struct mp_mkvocab vocab = {0};
	struct gen g = {.o = &o};
	struct mp_gguf_writer *w = NULL;
	int rc = -ENOMEM;
	if (!ts)
		goto fail;
	if (o.tokenizer) {
		/* the embedding and the output head grow to the tokenizer's size */
		char terr[512];
		if (mp_mkvocab_from_json(o.tokenizer, o.d.vocab, &vocab, terr, sizeof terr)) {
			fprintf(stderr, "moepager-mkmodel: --tokenizer %s\n", terr);
			mp_free(ts);
			return 1;
		}
		o.d.vocab = (uint32_t)vocab.n_tokens;
	}
	uint32_t nt = tensor_list(&o, ts);
	/* Refuse a mix whose types have no quantizer: never write invalid blocks. */
	for (uint32_t i = 0; i < nt; i++) {
		const struct mp_quant_ops *ops = mp_quant_ops(ts[i].type);
		if (ts[i].type != MP_TYPE_F32 && (!ops || !ops->quantize)) {
			fprintf(stderr, "moepager-mkmodel: quant mix %s needs type %s (for %s), which has no "
				"quantizer in this build; choose another --quant\n", mix_names[o.mix],
				mp_type_name(ts[i].type), ts[i].name);
			mp_free(ts);
			return 1;
		}
	}
	if (!o.tokenizer && (rc = mp_mkvocab_builtin(o.d.vocab, &vocab)))
		goto fail;
	struct mp_gguf_write_opts wo = {.split_max_bytes = o.split_size};
	if ((rc = mp_gguf_writer_create(o.out, &wo, &w)))
		goto fail;
	g.w = w;
	write_meta(w, &o);
	mp_mkvocab_write(w, &vocab);
	for (uint32_t i = 0; i < nt; i++) {
		mp_gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne);
		uint64_t rb;
		mp_type_row_bytes(ts[i].type, ts[i].ne[0], &rb);
		g.total += rb * ts[i].ne[1] * ts[i].ne[2];
	}
	if ((rc = mp_gguf_writer_begin(w)))
		goto fail;
	g.f_cap = CHUNK_ELEMS;
	g.q_cap = (size_t)CHUNK_ELEMS * 4;
	g.f = mp_malloc_array(g.f_cap, sizeof *g.f);
	g.q = mp_malloc(g.q_cap);
	g.embd_common = mp_malloc_array(o.d.D, sizeof(float));
	rc = -ENOMEM;
	if (!g.f || !g.q || !g.embd_common)
		goto fail;
	struct mp_rng rng;
	mp_rng_seed(&rng, name_seed(o.seed, "embd_common"));
	for (uint32_t i = 0; i < o.d.D; i++)
		g.embd_common[i] = (float)mp_rng_normal(&rng);
	g.tty = isatty(2);
	g.t0 = mp_clock_now_ns();
	for (uint32_t i = 0; i < nt; i++) {
		/* One row must fit a piece (widest rows: 18432 floats). */
		if ((rc = gen_tensor(&g, &ts[i])))
			goto fail;
	}
	if ((rc = mp_gguf_writer_finish(w)))
		goto fail;
	progress(&g, "done", 1);
	if (g.tty && !o.quiet)
		fputc('\n', stderr);
	double secs = (double)(mp_clock_now_ns() - g.t0) / 1e9;
	char sz[32];
	if (!o.quiet) {
		printf("wrote %s: %s, %u layers (%u dense), %u experts, %u tensors, %s in %u file%s, %.1f s\n",
		       mp_gguf_writer_part_path(w, 0), o.preset, o.d.n_layer, o.d.n_dense, o.d.E, nt,
		       mp_size_format(mp_gguf_writer_bytes(w), sz, sizeof sz), mp_gguf_writer_part_count(w),
		       mp_gguf_writer_part_count(w) > 1 ? "s" : "", secs);
		if (o.sparse)
			printf("sparse: %s of disk blocks\n",
			       mp_size_format(disk_bytes(w), sz, sizeof sz));
	}
	rc = 0;
fail:
	if (rc)
		fprintf(stderr, "%smoepager-mkmodel: %s\n", g.tty ? "\n" : "",
			w && *mp_gguf_writer_error(w) ? mp_gguf_writer_error(w) : mp_strerror(rc));
	mp_gguf_writer_destroy(w);
	mp_mkvocab_free(&vocab);
	mp_free(ts);
	mp_free(g.f);
	mp_free(g.q);
	mp_free(g.router_prev);
	mp_free(g.embd_common);
	return rc ? 1 : 0;
}
