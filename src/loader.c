/*
 * loader.c — deepseek2 hyperparameters and tensor views from a GGUF file.
 *
 * Rules (FORMATS.md §3.2): the MLA generation is "new" when both
 * key_length_mla and value_length_mla are present and non-zero; query LoRA is
 * absent when attn_q.weight exists; gating defaults to softmax when
 * expert_gating_func is missing; group-limited routing applies when
 * expert_group_count > 1, and V3-shaped files without the group keys
 * (256 experts, sigmoid gating, exp_probs_b present: the January-2025 R1
 * uploads) get the reference model's 8 groups / 4 used (FORMATS.md §4.6).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "loader.h"
#include "tokenizer.h"
#include "types.h"

#define ARCH "deepseek2"

__attribute__((format(printf, 4, 5)))
static int say(char *err, size_t len, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return rc;
}

/* Required u32 key ARCH.name. */
static int req_u32(struct mp_gguf *g, const char *name, uint32_t *out, char *err, size_t len)
{
	char key[128];
	snprintf(key, sizeof key, ARCH ".%s", name);
	int rc = mp_gguf_get_u32(g, key, out);
	if (rc < 0)
		return say(err, len, rc, "%s", mp_gguf_error(g));
	return 0;
}

/* Optional u32 key: def when absent; a present key of the wrong type is an error. */
static int opt_u32(struct mp_gguf *g, const char *name, uint32_t def, uint32_t *out, char *err,
		   size_t len)
{
	char key[128];
	snprintf(key, sizeof key, ARCH ".%s", name);
	*out = def;
	if (!mp_gguf_has(g, key))
		return 0;
	int rc = mp_gguf_get_u32(g, key, out);
	return rc < 0 ? say(err, len, rc, "%s", mp_gguf_error(g)) : 0;
}

static int opt_f32(struct mp_gguf *g, const char *name, float def, float *out, char *err, size_t len)
{
	char key[128];
	snprintf(key, sizeof key, ARCH ".%s", name);
	*out = def;
	if (!mp_gguf_has(g, key))
		return 0;
	int rc = mp_gguf_get_f32(g, key, out);
	return rc < 0 ? say(err, len, rc, "%s", mp_gguf_error(g)) : 0;
}

/* Presence only: an absent optional tensor is not an error (the lookup's
 * message is left unused). */
static int has_tensor(struct mp_gguf *g, const char *name)
{
	return mp_gguf_find_tensor(g, name) != NULL;
}

int mp_loader_hparams(struct mp_gguf *g, struct mp_hparams *hp, char *err, size_t len)
{
	memset(hp, 0, sizeof *hp);
	const char *arch = NULL;
	if (mp_gguf_get_str(g, "general.architecture", &arch) < 0)
		return say(err, len, -MP_EFORMAT, "%s", mp_gguf_error(g));
	if (strcmp(arch, ARCH) != 0)
		return say(err, len, -MP_EUNAVAIL, "%s: general.architecture is '%s'; moepager runs "
			   "'" ARCH "' models (DeepSeek-V2/V3/R1 family)", mp_gguf_part_path(g, 0), arch);
	uint32_t key_len = 0, val_len = 0, key_mla = 0, val_mla = 0, gating = 0;
	int rc;
	if ((rc = req_u32(g, "block_count", &hp->n_layer, err, len)) < 0 ||
	    (rc = req_u32(g, "embedding_length", &hp->n_embd, err, len)) < 0 ||
	    (rc = req_u32(g, "feed_forward_length", &hp->n_ff, err, len)) < 0 ||
	    (rc = req_u32(g, "attention.head_count", &hp->n_head, err, len)) < 0 ||
	    (rc = req_u32(g, "attention.kv_lora_rank", &hp->kv_lora_rank, err, len)) < 0 ||
	    (rc = req_u32(g, "rope.dimension_count", &hp->d_rope, err, len)) < 0 ||
	    (rc = opt_u32(g, "attention.q_lora_rank", 0, &hp->q_lora_rank, err, len)) < 0 ||
	    (rc = opt_u32(g, "context_length", 4096, &hp->n_ctx_train, err, len)) < 0 ||
	    (rc = opt_u32(g, "leading_dense_block_count", 0, &hp->n_dense_lead, err, len)) < 0 ||
	    (rc = opt_u32(g, "expert_feed_forward_length", 0, &hp->n_ff_exp, err, len)) < 0 ||
	    (rc = opt_u32(g, "expert_count", 0, &hp->n_expert, err, len)) < 0 ||
	    (rc = opt_u32(g, "expert_used_count", 0, &hp->n_expert_used, err, len)) < 0 ||
	    (rc = opt_u32(g, "expert_shared_count", 0, &hp->n_expert_shared, err, len)) < 0 ||
	    (rc = opt_u32(g, "expert_gating_func", MP_GATING_SOFTMAX, &gating, err, len)) < 0 ||
	    (rc = opt_u32(g, "attention.key_length", 0, &key_len, err, len)) < 0 ||
	    (rc = opt_u32(g, "attention.value_length", 0, &val_len, err, len)) < 0 ||
	    (rc = opt_u32(g, "attention.key_length_mla", 0, &key_mla, err, len)) < 0 ||
	    (rc = opt_u32(g, "attention.value_length_mla", 0, &val_mla, err, len)) < 0 ||
	    (rc = opt_f32(g, "expert_weights_scale", 1.0f, &hp->expert_scale, err, len)) < 0 ||
	    (rc = opt_f32(g, "attention.layer_norm_rms_epsilon", 1e-6f, &hp->eps, err, len)) < 0 ||
	    (rc = opt_f32(g, "rope.freq_base", 10000.0f, &hp->rope_base, err, len)) < 0)
		return rc;
	if (mp_gguf_has(g, ARCH ".expert_weights_norm") &&
	    mp_gguf_get_bool(g, ARCH ".expert_weights_norm", &hp->expert_norm) < 0)
		return say(err, len, -MP_EFORMAT, "%s", mp_gguf_error(g));
	if (gating != MP_GATING_SOFTMAX && gating != MP_GATING_SIGMOID)
		return say(err, len, -MP_EUNAVAIL, "%s: " ARCH ".expert_gating_func is %u; moepager "
			   "supports 1 (softmax) and 2 (sigmoid)", mp_gguf_part_path(g, 0), gating);
	hp->gating = (enum mp_gating)gating;

	/* MLA generation and head dimensions */
	hp->mla_new = key_mla && val_mla;
	uint32_t dqk = hp->mla_new ? key_mla : key_len, dv = hp->mla_new ? val_mla : val_len;
	if (dqk == 0 || dv == 0)
		return say(err, len, -MP_EFORMAT, "%s: " ARCH ".attention.key_length/value_length "
			   "(or their _mla forms) are missing", mp_gguf_part_path(g, 0));
	if (dqk <= hp->d_rope)
		return say(err, len, -MP_EFORMAT, "%s: key length %u must exceed " ARCH
			   ".rope.dimension_count %u", mp_gguf_part_path(g, 0), dqk, hp->d_rope);
	hp->d_nope = dqk - hp->d_rope;
	hp->d_v = dv;
	if (has_tensor(g, "blk.0.attn_q.weight"))
		hp->q_lora_rank = 0;

	/* groups: FORMATS.md §4.6 */
	int has_groups = mp_gguf_has(g, ARCH ".expert_group_count");
	if ((rc = opt_u32(g, "expert_group_count", 1, &hp->n_group, err, len)) < 0 ||
	    (rc = opt_u32(g, "expert_group_used_count", 1, &hp->n_group_used, err, len)) < 0)
		return rc;
	char bias0[64];
	snprintf(bias0, sizeof bias0, "blk.%u.exp_probs_b.bias", hp->n_dense_lead);
	if (!has_groups && hp->n_expert == 256 && hp->gating == MP_GATING_SIGMOID &&
	    has_tensor(g, bias0)) {
		hp->n_group = 8;
		hp->n_group_used = 4;
	}

	/* RoPE scaling */
	const char *stype = NULL;
	if (mp_gguf_has(g, ARCH ".rope.scaling.type")) {
		if (mp_gguf_get_str(g, ARCH ".rope.scaling.type", &stype) < 0)
			return say(err, len, -MP_EFORMAT, "%s", mp_gguf_error(g));
		if (strcmp(stype, "yarn") == 0)
			hp->yarn = 1;
		else if (strcmp(stype, "none") != 0)
			return say(err, len, -MP_EUNAVAIL, "%s: " ARCH ".rope.scaling.type '%s': moepager "
				   "supports yarn and none", mp_gguf_part_path(g, 0), stype);
	}
	float log_mul = 0, orig = 4096;
	if ((rc = opt_f32(g, "rope.scaling.factor", 1.0f, &hp->yarn_factor, err, len)) < 0 ||
	    (rc = opt_f32(g, "rope.scaling.yarn_log_multiplier", 0.0f, &log_mul, err, len)) < 0 ||
	    (rc = opt_f32(g, "rope.scaling.attn_factor", 1.0f, &hp->rope_attn_factor, err, len)) < 0 ||
	    (rc = opt_f32(g, "rope.scaling.yarn_beta_fast", 32.0f, &hp->yarn_beta_fast, err, len)) < 0 ||
	    (rc = opt_f32(g, "rope.scaling.yarn_beta_slow", 1.0f, &hp->yarn_beta_slow, err, len)) < 0)
		return rc;
	uint32_t orig_u = 4096;
	if ((rc = opt_u32(g, "rope.scaling.original_context_length", 4096, &orig_u, err, len)) < 0)
		return rc;
	orig = (float)orig_u;
	hp->yarn_orig_ctx = orig;
	hp->mscale_all_dim = log_mul / 0.1f;   /* the stored value is 0.1 × mscale_all_dim */

	/* vocabulary: the embedding's rows */
	const struct mp_gguf_tensor *embd = mp_gguf_find_tensor(g, "token_embd.weight");
	if (!embd)
		return say(err, len, -MP_EFORMAT, "%s: tensor token_embd.weight is missing",
			   mp_gguf_part_path(g, 0));
	if (embd->ne[1] > UINT32_MAX)
		return say(err, len, -MP_EFORMAT, "%s: token_embd.weight has %llu rows",
			   mp_gguf_part_path(g, 0), (unsigned long long)embd->ne[1]);
	hp->n_vocab = (uint32_t)embd->ne[1];
	if (hp->n_layer == 0 || hp->n_layer > MP_MODEL_MAX_LAYERS)
		return say(err, len, -MP_EFORMAT, "%s: " ARCH ".block_count %u: expected 1..%d",
			   mp_gguf_part_path(g, 0), hp->n_layer, MP_MODEL_MAX_LAYERS);
	return 0;
}

static void view(struct mp_gguf *g, const uint8_t *const *base, const char *name, struct mp_tensor *t)
{
	const struct mp_gguf_tensor *gt = mp_gguf_find_tensor(g, name);   /* NULL: absent */
	memset(t, 0, sizeof *t);
	if (!gt)
		return;
	t->type = gt->type;
	for (int d = 0; d < 4; d++)
		t->ne[d] = (int64_t)gt->ne[d];
	t->row_bytes = gt->row_bytes;
	/* no mappings at all still mark the tensor present; a part not mapped
	 * (another rank's, mp_modelfile_map) leaves it absent */
	if (base && !base[gt->part]) {
		memset(t, 0, sizeof *t);
		return;
	}
	t->data = base ? base[gt->part] + gt->offset : (const void *)(uintptr_t)1;
}

int mp_loader_weights(struct mp_gguf *g, const struct mp_hparams *hp, const uint8_t *const *base,
		      struct mp_weights *w, char *err, size_t len)
{
	(void)err;
	(void)len;
	memset(w, 0, sizeof *w);
	view(g, base, "token_embd.weight", &w->token_embd);
	view(g, base, "output_norm.weight", &w->output_norm);
	view(g, base, "output.weight", &w->output);
	static const struct { const char *name; size_t off; } per_layer[] = {
#define F(n, field) { n, offsetof(struct mp_layer_weights, field) }
		F("attn_norm.weight", attn_norm), F("attn_q.weight", q), F("attn_q_a.weight", q_a),
		F("attn_q_a_norm.weight", q_a_norm), F("attn_q_b.weight", q_b),
		F("attn_kv_a_mqa.weight", kv_a_mqa), F("attn_kv_a_norm.weight", kv_a_norm),
		F("attn_kv_b.weight", kv_b), F("attn_k_b.weight", k_b), F("attn_v_b.weight", v_b),
		F("attn_output.weight", attn_out), F("ffn_norm.weight", ffn_norm),
		F("ffn_gate.weight", ffn_gate), F("ffn_up.weight", ffn_up), F("ffn_down.weight", ffn_down),
		F("ffn_gate_inp.weight", gate_inp), F("exp_probs_b.bias", exp_probs_b),
		F("ffn_gate_shexp.weight", gate_shexp), F("ffn_up_shexp.weight", up_shexp),
		F("ffn_down_shexp.weight", down_shexp), F("ffn_gate_exps.weight", gate_exps),
		F("ffn_up_exps.weight", up_exps), F("ffn_down_exps.weight", down_exps),
#undef F
	};
	for (uint32_t L = 0; L < hp->n_layer; L++)
		for (size_t i = 0; i < sizeof per_layer / sizeof per_layer[0]; i++) {
			char name[96];
			snprintf(name, sizeof name, "blk.%u.%s", L, per_layer[i].name);
			view(g, base, name, (struct mp_tensor *)((char *)&w->layer[L] + per_layer[i].off));
		}
	return 0;
}

/* ---- tokenizer ---------------------------------------------------------------------- */

/* Reads a string array key into length-delimited strings (pointing into g). */
static int str_array(struct mp_gguf *g, const char *key, struct mp_tok_str **out, uint32_t *n,
		     char *err, size_t len)
{
	struct mp_gguf_array a;
	int rc = mp_gguf_get_array(g, key, MP_GGUF_STRING, &a);
	if (rc < 0)
		return say(err, len, rc, "%s", mp_gguf_error(g));
	if (a.n > UINT32_MAX)
		return say(err, len, -MP_EFORMAT, "%s: %s has %llu entries", mp_gguf_part_path(g, 0), key,
			   (unsigned long long)a.n);
	struct mp_tok_str *v = mp_calloc(a.n ? a.n : 1, sizeof *v);
	if (!v)
		return say(err, len, -ENOMEM, "out of memory for %s", key);
	for (uint64_t i = 0; i < a.n; i++) {
		uint64_t l;
		v[i].s = mp_gguf_array_str(&a, i, &l);
		v[i].len = (uint32_t)l;
	}
	*out = v;
	*n = (uint32_t)a.n;
	return 0;
}

static int32_t opt_id(struct mp_gguf *g, const char *key)
{
	uint32_t v;
	if (!mp_gguf_has(g, key) || mp_gguf_get_u32(g, key, &v) < 0 || v > INT32_MAX)
		return -1;
	return (int32_t)v;
}

int mp_loader_tokenizer(struct mp_gguf *g, struct mp_tok **out, char *err, size_t len)
{
	struct mp_tok_vocab v;
	memset(&v, 0, sizeof v);
	struct mp_tok_str *tokens = NULL, *merges = NULL;
	int32_t *types = NULL;
	int rc;
	*out = NULL;
	if (mp_gguf_has(g, "tokenizer.ggml.model") &&
	    mp_gguf_get_str(g, "tokenizer.ggml.model", &v.model) < 0)
		return say(err, len, -MP_EFORMAT, "%s", mp_gguf_error(g));
	if (mp_gguf_has(g, "tokenizer.ggml.pre") && mp_gguf_get_str(g, "tokenizer.ggml.pre", &v.pre) < 0)
		return say(err, len, -MP_EFORMAT, "%s", mp_gguf_error(g));
	if ((rc = str_array(g, "tokenizer.ggml.tokens", &tokens, &v.n_tokens, err, len)) < 0)
		goto out;
	if (mp_gguf_has(g, "tokenizer.ggml.merges") &&
	    (rc = str_array(g, "tokenizer.ggml.merges", &merges, &v.n_merges, err, len)) < 0)
		goto out;
	if (mp_gguf_has(g, "tokenizer.ggml.token_type")) {
		struct mp_gguf_array a;
		if ((rc = mp_gguf_get_array(g, "tokenizer.ggml.token_type", MP_GGUF_I32, &a)) < 0) {
			say(err, len, rc, "%s", mp_gguf_error(g));
			goto out;
		}
		if (a.n != v.n_tokens) {
			rc = say(err, len, -MP_EFORMAT, "%s: tokenizer.ggml.token_type has %llu entries, "
				 "tokenizer.ggml.tokens %u", mp_gguf_part_path(g, 0),
				 (unsigned long long)a.n, v.n_tokens);
			goto out;
		}
		types = mp_calloc(a.n ? a.n : 1, sizeof *types);
		if (!types) {
			rc = say(err, len, -ENOMEM, "out of memory");
			goto out;
		}
		memcpy(types, a.data, sizeof *types * a.n);
	}
	v.tokens = tokens;
	v.merges = merges;
	v.types = types;
	v.bos_id = opt_id(g, "tokenizer.ggml.bos_token_id");
	v.eos_id = opt_id(g, "tokenizer.ggml.eos_token_id");
	int flag = 0;
	v.add_bos = mp_gguf_has(g, "tokenizer.ggml.add_bos_token") &&
		    mp_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &flag) == 0 && flag;
	flag = 0;
	v.add_eos = mp_gguf_has(g, "tokenizer.ggml.add_eos_token") &&
		    mp_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &flag) == 0 && flag;
	char terr[256];
	rc = mp_tok_create(&v, out, terr, sizeof terr);
	if (rc < 0)
		say(err, len, rc, "%s: %s", mp_gguf_part_path(g, 0), terr);
out:
	mp_free(tokens);
	mp_free(merges);
	mp_free(types);
	return rc;
}

/* ---- fingerprint and sizes ------------------------------------------------------- */

uint64_t mp_loader_fingerprint(const struct mp_gguf *g)
{
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return 0;
	XXH3_64bits_reset(st);
	for (uint64_t i = 0; i < mp_gguf_kv_count(g); i++) {
		const char *k = mp_gguf_kv_key(g, i);
		uint32_t t = mp_gguf_kv_type(g, i);
		XXH3_64bits_update(st, k, strlen(k) + 1);
		XXH3_64bits_update(st, &t, sizeof t);
	}
	for (uint64_t i = 0; i < mp_gguf_tensor_count(g); i++) {
		const struct mp_gguf_tensor *t = mp_gguf_tensor_at(g, i);
		XXH3_64bits_update(st, t->name, strlen(t->name) + 1);
		XXH3_64bits_update(st, &t->type, sizeof t->type);
		XXH3_64bits_update(st, t->ne, sizeof t->ne);
		XXH3_64bits_update(st, &t->part, sizeof t->part);
		XXH3_64bits_update(st, &t->offset, sizeof t->offset);
	}
	uint64_t h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return h;
}

int mp_loader_is_routed(const char *name)
{
	size_t n = strlen(name);
	return n > 12 && strcmp(name + n - 12, "_exps.weight") == 0;
}

void mp_loader_bytes(const struct mp_gguf *g, uint64_t *routed, uint64_t *resident)
{
	*routed = *resident = 0;
	for (uint64_t i = 0; i < mp_gguf_tensor_count(g); i++) {
		const struct mp_gguf_tensor *t = mp_gguf_tensor_at(g, i);
		if (mp_loader_is_routed(t->name))
			*routed += t->nbytes;
		else
			*resident += t->nbytes;
	}
}

uint64_t mp_loader_resident_span(uint64_t offset, uint64_t nbytes)
{
	uint64_t a0 = offset / MP_LOADER_ALIGN * MP_LOADER_ALIGN;
	uint64_t a1 = (offset + nbytes + MP_LOADER_ALIGN - 1) / MP_LOADER_ALIGN * MP_LOADER_ALIGN;
	return a1 - a0;
}

/* ---- a whole file mapped ------------------------------------------------------------ */

struct placed {                 /* one resident tensor in the anonymous region */
	uint32_t part;
	uint64_t offset;        /* bytes: its data in the part file */
	uint8_t *data;          /* its data in the region */
	const struct mp_gguf_tensor *t;
};

struct mp_modelfile {
	struct mp_gguf *g;
	uint32_t n_parts;
	uint8_t **map;          /* [n_parts] read-only mappings */
	uint64_t *map_len;      /* [n_parts] bytes */
	struct mp_hparams hp;
	struct mp_weights *w;
	/* ---- after mp_modelfile_load_resident ---- */
	uint8_t *region;        /* anonymous mapping holding every resident tensor */
	uint64_t region_len;    /* bytes */
	struct placed *placed;  /* [n_placed], sorted by (part, offset) */
	uint64_t n_placed;
	int locked;             /* region is mlock()ed */
};

/* Opens the header(s) and reads the hyperparameters; maps nothing. */
static int modelfile_begin(const char *path, int partial, struct mp_modelfile **out, char *err,
			   size_t len)
{
	*out = NULL;
	struct mp_modelfile *mf = mp_calloc(1, sizeof *mf);
	if (!mf)
		return say(err, len, -ENOMEM, "out of memory");
	int rc = partial ? mp_gguf_open_partial(path, &mf->g, err, len) : mp_gguf_open(path, &mf->g, err, len);
	if (rc < 0)
		goto fail;
	if ((rc = mp_loader_hparams(mf->g, &mf->hp, err, len)) < 0)
		goto fail;
	mf->n_parts = mp_gguf_part_count(mf->g);
	mf->map = mp_calloc(mf->n_parts, sizeof *mf->map);
	mf->map_len = mp_calloc(mf->n_parts, sizeof *mf->map_len);
	mf->w = mp_calloc(1, sizeof *mf->w);
	if (!mf->map || !mf->map_len || !mf->w) {
		rc = say(err, len, -ENOMEM, "out of memory");
		goto fail;
	}
	*out = mf;
	return 0;
fail:
	mp_modelfile_close(mf);
	return rc;
}

/* Maps part p read-only. */
static int map_part(struct mp_modelfile *mf, uint32_t p, char *err, size_t len)
{
	const char *pp = mp_gguf_part_path(mf->g, p);
	int fd = open(pp, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return say(err, len, -errno, "%s: %s", pp, strerror(errno));
	uint64_t size = mp_gguf_part_size(mf->g, p);
	void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return say(err, len, -errno, "%s: mmap of %llu bytes failed: %s", pp,
			   (unsigned long long)size, strerror(errno));
	mf->map[p] = m;
	mf->map_len[p] = size;
	return 0;
}

int mp_modelfile_open(const char *path, struct mp_modelfile **out, char *err, size_t len)
{
	struct mp_modelfile *mf;
	int rc = modelfile_begin(path, 0, &mf, err, len);
	for (uint32_t p = 0; rc == 0 && p < mf->n_parts; p++)
		rc = map_part(mf, p, err, len);
	if (rc == 0)
		rc = mp_loader_weights(mf->g, &mf->hp, (const uint8_t *const *)mf->map, mf->w, err, len);
	if (rc < 0) {
		mp_modelfile_close(mf);   /* NULL when the header failed */
		mf = NULL;
	}
	*out = mf;
	return rc;
}

int mp_modelfile_open_partial(const char *path, struct mp_modelfile **out, char *err, size_t len)
{
	return modelfile_begin(path, 1, out, err, len);
}

/* 1 when tensor name belongs to layers [l0, l1), or is an embedding/head
 * tensor and io is set. */
static int in_range(const char *name, uint32_t l0, uint32_t l1, int io)
{
	unsigned layer;
	if (sscanf(name, "blk.%u.", &layer) == 1)
		return layer >= l0 && layer < l1;
	return io;
}

int mp_modelfile_map(struct mp_modelfile *mf, uint32_t l0, uint32_t l1, int io, char *err, size_t len)
{
	uint8_t *need = mp_calloc(mf->n_parts, 1);
	if (!need)
		return say(err, len, -ENOMEM, "out of memory");
	for (uint64_t i = 0; i < mp_gguf_tensor_count(mf->g); i++) {
		const struct mp_gguf_tensor *t = mp_gguf_tensor_at(mf->g, i);
		need[t->part] |= in_range(t->name, l0, l1, io);
	}
	int rc = 0;
	for (uint32_t p = 0; rc == 0 && p < mf->n_parts; p++)
		if (need[p] && !mf->map[p])
			rc = map_part(mf, p, err, len);
	mp_free(need);
	if (rc == 0)
		rc = mp_loader_weights(mf->g, &mf->hp, (const uint8_t *const *)mf->map, mf->w, err, len);
	return rc;
}

int mp_modelfile_part_mapped(const struct mp_modelfile *mf, uint32_t part)
{
	return part < mf->n_parts && mf->map[part] != NULL;
}

void mp_modelfile_close(struct mp_modelfile *mf)
{
	if (!mf)
		return;
	if (mf->region)
		munmap(mf->region, mf->region_len);
	mp_free(mf->placed);
	for (uint32_t p = 0; mf->map && p < mf->n_parts; p++)
		if (mf->map[p])
			munmap(mf->map[p], mf->map_len[p]);
	mp_free(mf->map);
	mp_free(mf->map_len);
	mp_free(mf->w);
	mp_gguf_destroy(mf->g);
	mp_free(mf);
}

struct mp_gguf *mp_modelfile_gguf(struct mp_modelfile *mf) { return mf->g; }
const struct mp_hparams *mp_modelfile_hparams(const struct mp_modelfile *mf) { return &mf->hp; }
const struct mp_weights *mp_modelfile_weights(const struct mp_modelfile *mf) { return mf->w; }

/* ---- resident weights in anonymous memory ------------------------------------------ */

/*
 * Invariants (mp_modelfile_load_resident):
 *  R1. Every tensor that is not a routed expert is read from its file exactly
 *      once, into the region, at the same offset modulo MP_LOADER_ALIGN as in
 *      the file and inside its own span [offset rounded down, end rounded
 *      up): whole-span O_DIRECT reads never write another tensor's bytes.
 *  R2. Once it returns 0, no weight of a resident tensor points into a file
 *      mapping; only the routed experts keep their mapping (the mmap backend
 *      and the resident-expert source use it).  So under memory pressure
 *      nothing resident comes back as a page fault on the file.
 */

#define CHUNK (16u << 20)       /* bytes per read: large, aligned */
#define HUGE_ALIGN (2u << 20)   /* transparent huge page size */

static int cmp_placed(const void *a, const void *b)
{
	const struct placed *x = a, *y = b;
	if (x->part != y->part)
		return x->part < y->part ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

struct loading {
	const struct mp_load_opts *o;
	struct mp_load_report *r;
	uint64_t total, t0, last;   /* span bytes; ns */
};

static void load_progress(struct loading *ld, int last)
{
	if (!ld->o->progress)
		return;
	uint64_t now = mp_clock_now_ns();
	if (!last && now - ld->last < 200000000ull)
		return;
	ld->last = now;
	double s = (double)(now - ld->t0) / 1e9;
	fprintf(stderr, "\r\033[Kmoepager: loading resident weights: %3.0f%% (%.2f / %.2f GB, %.0f MB/s)%s",
		ld->total ? 100.0 * (double)ld->r->read_bytes / (double)ld->total : 100.0,
		(double)ld->r->read_bytes / 1e9, (double)ld->total / 1e9,
		s > 0 ? (double)ld->r->read_bytes / 1e6 / s : 0.0, last ? "\n" : "");
	fflush(stderr);
}

/* Opens part p for the load: O_DIRECT first; a file system that refuses it
 * gets buffered reads, recorded in the report (never silent). */
static int load_open(struct mp_modelfile *mf, uint32_t p, int *direct, const struct mp_load_opts *o,
		     struct mp_load_report *r, char *err, size_t len)
{
	const char *path = mp_gguf_part_path(mf->g, p);
	int fd = o->buffered ? -1 : open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
	*direct = fd >= 0;
	if (fd < 0 && (o->buffered || errno == EINVAL))
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return say(err, len, -errno, "%s: %s", path, strerror(errno));
	if (!*direct)
		r->buffered = 1;
	return fd;
}

/* Reads span [a0, a0 + n) of part p into dst; need = bytes that must arrive
 * (the tensor's end; the span may pass the end of the file). */
static int load_span(struct mp_modelfile *mf, uint32_t p, int *fd, int *direct, uint64_t a0,
		     uint64_t n, uint64_t need, uint8_t *dst, struct loading *ld, char *err, size_t len)
{
	uint64_t done = 0;
	while (done < n) {
		size_t k = n - done < CHUNK ? (size_t)(n - done) : CHUNK;
		ssize_t got = pread(*fd, dst + done, k, (off_t)(a0 + done));
		if (got < 0 && errno == EINVAL && *direct) {
			/* O_DIRECT opened but refused here (alignment the device wants) */
			close(*fd);
			*fd = open(mp_gguf_part_path(mf->g, p), O_RDONLY | O_CLOEXEC);
			*direct = 0;
			ld->r->buffered = 1;
			if (*fd < 0)
				return say(err, len, -errno, "%s: %s", mp_gguf_part_path(mf->g, p), strerror(errno));
			continue;
		}
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return say(err, len, -errno, "%s: read at %llu: %s", mp_gguf_part_path(mf->g, p),
				   (unsigned long long)(a0 + done), strerror(errno));
		if (!*direct)   /* buffered: do not leave a second copy in the page cache */
			posix_fadvise(*fd, (off_t)(a0 + done), got, POSIX_FADV_DONTNEED);
		done += (uint64_t)got;
		ld->r->read_bytes += (uint64_t)got;
		load_progress(ld, 0);
		if (got == 0 || (*direct && (uint64_t)got < k))
			break;   /* end of file */
	}
	if (done < need)
		return say(err, len, -MP_EFORMAT, "%s: file ends at %llu, inside a tensor (truncated?)",
			   mp_gguf_part_path(mf->g, p), (unsigned long long)(a0 + done));
	return 0;
}

/* Points every resident tensor of w at its copy (invariant R2). */
static void relocate(struct mp_modelfile *mf, struct mp_tensor *t)
{
	if (!t->data || (uintptr_t)t->data == 1)
		return;
	const uint8_t *d = t->data;
	for (uint32_t p = 0; p < mf->n_parts; p++) {
		if (d < mf->map[p] || d >= mf->map[p] + mf->map_len[p])
			continue;
		struct placed key = { p, (uint64_t)(d - mf->map[p]), NULL, NULL };
		struct placed *hit = bsearch(&key, mf->placed, mf->n_placed, sizeof key, cmp_placed);
		if (hit)
			t->data = hit->data;
		return;
	}
}

static void relocate_all(struct mp_modelfile *mf)
{
	_Static_assert(sizeof(struct mp_layer_weights) % sizeof(struct mp_tensor) == 0,
		       "mp_layer_weights holds only tensors");
	struct mp_weights *w = mf->w;
	relocate(mf, &w->token_embd);
	relocate(mf, &w->output_norm);
	relocate(mf, &w->output);
	size_t per = sizeof(struct mp_layer_weights) / sizeof(struct mp_tensor);
	for (uint32_t L = 0; L < mf->hp.n_layer; L++)
		for (size_t i = 0; i < per; i++)
			relocate(mf, (struct mp_tensor *)&w->layer[L] + i);
}

/* 1 when the resident tensor name is this process's to load (o's layers;
 * the embeddings and head unless no_io). */
static int wanted(const struct mp_load_opts *o, const char *name)
{
	if (mp_loader_is_routed(name))
		return 0;
	unsigned layer;
	if (sscanf(name, "blk.%u.", &layer) == 1)
		return !o->layer_end || (layer >= o->layer_begin && layer < o->layer_end);
	return !o->no_io;
}

/* Maps the anonymous region (huge-page advised) and lists every resident
 * tensor this process loads, sorted by (part, offset). */
static int load_place(struct mp_modelfile *mf, const struct mp_load_opts *o,
		      struct mp_load_report *r, char *err, size_t len)
{
	uint64_t n = 0, total = 0;
	for (uint64_t i = 0; i < mp_gguf_tensor_count(mf->g); i++)
		if (wanted(o, mp_gguf_tensor_at(mf->g, i)->name))
			n++;
	mf->placed = mp_calloc(n ? n : 1, sizeof *mf->placed);
	if (!mf->placed)
		return say(err, len, -ENOMEM, "out of memory");
	for (uint64_t i = 0; i < mp_gguf_tensor_count(mf->g); i++) {
		const struct mp_gguf_tensor *t = mp_gguf_tensor_at(mf->g, i);
		if (!wanted(o, t->name))
			continue;
		mf->placed[mf->n_placed++] = (struct placed){ t->part, t->offset, NULL, t };
		total += mp_loader_resident_span(t->offset, t->nbytes);
	}
	qsort(mf->placed, mf->n_placed, sizeof *mf->placed, cmp_placed);
	mf->region_len = (total + HUGE_ALIGN - 1) / HUGE_ALIGN * HUGE_ALIGN;
	if (!mf->region_len)
		return 0;
	void *m = mmap(NULL, mf->region_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (m == MAP_FAILED) {
		mf->region_len = 0;
		return say(err, len, -errno, "cannot map %llu bytes for the resident weights: %s",
			   (unsigned long long)total, strerror(errno));
	}
	mf->region = m;
#ifdef MADV_HUGEPAGE
	r->hugepages = madvise(m, mf->region_len, MADV_HUGEPAGE) == 0;
#endif
#ifdef MADV_POPULATE_WRITE
	/* Faulted in before the reads, not by them: O_DIRECT faulting huge pages
	 * in is a slow path (≈200 MB/s against 1-3 GB/s here, bench/README.md). */
	madvise(m, mf->region_len, MADV_POPULATE_WRITE);
#endif
	r->region_bytes = mf->region_len;
	return 0;
}

int mp_modelfile_load_resident(struct mp_modelfile *mf, const struct mp_load_opts *o,
			       struct mp_load_report *r, char *err, size_t len)
{
	memset(r, 0, sizeof *r);
	if (mf->region)
		return say(err, len, -MP_EARG, "the resident weights are loaded already");
	uint64_t t0 = mp_clock_now_ns();   /* the region's faulting-in counts too */
	int rc = load_place(mf, o, r, err, len);
	if (rc < 0)
		return rc;
	struct loading ld = { o, r, 0, t0, 0 };
	for (uint64_t i = 0; i < mf->n_placed; i++)
		ld.total += mp_loader_resident_span(mf->placed[i].offset, mf->placed[i].t->nbytes);
	uint64_t at = 0;
	int fd = -1, direct = 0;
	uint32_t fd_part = UINT32_MAX;
	for (uint64_t i = 0; i < mf->n_placed && rc == 0; i++) {
		struct placed *pl = &mf->placed[i];
		const struct mp_gguf_tensor *t = pl->t;
		if (pl->part != fd_part) {
			if (fd >= 0)
				close(fd);
			fd = load_open(mf, pl->part, &direct, o, r, err, len);
			if (fd < 0)
				return fd;
			fd_part = pl->part;
		}
		uint64_t a0 = t->offset / MP_LOADER_ALIGN * MP_LOADER_ALIGN;
		uint64_t span = mp_loader_resident_span(t->offset, t->nbytes);
		rc = load_span(mf, pl->part, &fd, &direct, a0, span, t->offset - a0 + t->nbytes,
			       mf->region + at, &ld, err, len);
		pl->data = mf->region + at + (t->offset - a0);
		r->bytes += t->nbytes;
		at += span;
	}
	if (fd >= 0)
		close(fd);
	load_progress(&ld, 1);
	r->seconds = (double)(mp_clock_now_ns() - ld.t0) / 1e9;
	if (rc < 0)
		return rc;
	relocate_all(mf);
	if (o->mlock && mf->region_len) {
		mf->locked = mlock(mf->region, mf->region_len) == 0;
		r->lock_errno = mf->locked ? 0 : errno;
		r->locked = mf->locked;
	}
	return 0;
}
