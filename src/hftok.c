/*
 * hftok.c — tokenizer.json -> struct mp_tok_vocab (see hftok.h for the
 * mapping rules, which follow llama.cpp's convert_hf_to_gguf.py).
 *
 * Invariants of a loaded struct mp_hftok:
 *  1. Every string of the vocabulary (tokens, merges, pre) points into blob,
 *     which the object owns; nothing refers to the JSON document after load.
 *  2. tokens[id] is set for every id < n_tokens (holes hold "[PAD<id>]").
 */
#include "hftok.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"

/* Ids above this are refused: a sanity bound, 64x R1's vocabulary. */
#define MAX_ID (1u << 23)

struct mp_hftok {
	struct mp_tok_vocab vocab;   /* points into the arrays and blob below */
	struct mp_tok_str *tokens;   /* [vocab.n_tokens] */
	int32_t *types;              /* [vocab.n_tokens] */
	struct mp_tok_str *merges;   /* [vocab.n_merges] */
	char *blob;                  /* all strings, back to back */
};

/* A growable byte buffer; strings are recorded by offset until it stops moving. */
struct blob {
	char *p;
	size_t n, cap;
};

static int blob_put(struct blob *b, const char *s, size_t len, uint64_t *off)
{
	if (b->n + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1 << 16;
		while (cap < b->n + len + 1)
			cap *= 2;
		char *p = mp_realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	*off = b->n;
	memcpy(b->p + b->n, s, len);
	b->n += len;
	b->p[b->n++] = '\0';
	return 0;
}

/* convert_hf_to_gguf.py's does_token_look_special (the DeepSeek-relevant part). */
static bool looks_special(const char *s, size_t len)
{
	static const char *const pairs[][2] = {
		{ "<|", "|>" },
		{ "<\xef\xbd\x9c", "\xef\xbd\x9c>" },   /* <｜ ... ｜> */
	};
	for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
		size_t la = strlen(pairs[i][0]), lb = strlen(pairs[i][1]);
		if (len >= la + lb && memcmp(s, pairs[i][0], la) == 0 &&
		    memcmp(s + len - lb, pairs[i][1], lb) == 0)
			return true;
	}
	return false;
}

/* The deepseek-v3 pre-tokenizer as tokenizer.json spells it (FORMATS.md §5.3). */
static const char *const v3_regex[3] = {
	"\\p{N}{1,3}",
	"[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+",
	"[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
	" ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
};

static bool is_v3_split(json_t *p, const char *regex)
{
	json_t *pat = json_object_get(p, "pattern");
	const char *type = json_string_value(json_object_get(p, "type"));
	const char *beh = json_string_value(json_object_get(p, "behavior"));
	const char *re = json_string_value(json_object_get(pat, "Regex"));
	return type && strcmp(type, "Split") == 0 && beh && strcmp(beh, "Isolated") == 0 &&
	       re && strcmp(re, regex) == 0 && !json_is_true(json_object_get(p, "invert"));
}

static const char *detect_pre(json_t *root)
{
	json_t *pt = json_object_get(root, "pre_tokenizer");
	const char *type = json_string_value(json_object_get(pt, "type"));
	json_t *seq = json_object_get(pt, "pretokenizers");
	if (!type || strcmp(type, "Sequence") != 0 || json_array_size(seq) != 4)
		return "hf-unrecognized";
	for (size_t i = 0; i < 3; i++)
		if (!is_v3_split(json_array_get(seq, i), v3_regex[i]))
			return "hf-unrecognized";
	const char *last = json_string_value(json_object_get(json_array_get(seq, 3), "type"));
	if (!last || strcmp(last, "ByteLevel") != 0)
		return "hf-unrecognized";
	return "deepseek-v3";
}

/* Records one token; returns 0, or -MP_EFORMAT for a bad id. */
static int bad_id(const char *name, const char *what, json_int_t id, char *err, size_t errlen)
{
	mp_tok_errf(err, errlen, "%s: %s: expected an id in 0..%u, found %lld", name, what, MAX_ID - 1,
		(long long)id);
	return -MP_EFORMAT;
}

int mp_hftok_load_mem(const char *buf, size_t len, const char *name, uint32_t n_vocab_min,
		      struct mp_hftok **out, char *err, size_t errlen)
{
	*out = NULL;
	json_error_t je;
	json_t *root = json_loadb(buf, len, JSON_ALLOW_NUL, &je);
	if (!root) {
		mp_tok_errf(err, errlen, "%s: line %d column %d: %s", name, je.line, je.column, je.text);
		return -MP_EFORMAT;
	}
	struct mp_hftok *h = NULL;
	uint64_t *off = NULL, *moff = NULL;
	struct blob b = { 0 };
	int rc = -MP_EFORMAT;
	json_t *model = json_object_get(root, "model");
	const char *mtype = json_string_value(json_object_get(model, "type"));
	json_t *vocab = json_object_get(model, "vocab");
	json_t *merges = json_object_get(model, "merges");
	json_t *added = json_object_get(root, "added_tokens");
	if (!mtype || strcmp(mtype, "BPE") != 0) {
		mp_tok_errf(err, errlen, "%s: model.type: expected \"BPE\", found %s%s%s", name,
			mtype ? "\"" : "", mtype ? mtype : "nothing", mtype ? "\"" : "");
		goto fail;
	}
	if (!json_is_object(vocab) || !json_is_array(merges)) {
		mp_tok_errf(err, errlen, "%s: model.vocab: expected an object and model.merges an array", name);
		goto fail;
	}
	if (added && !json_is_array(added)) {
		mp_tok_errf(err, errlen, "%s: added_tokens: expected an array", name);
		goto fail;
	}
	/* Pass 1: the id range. */
	uint64_t n = n_vocab_min;
	const char *key;
	json_t *val;
	json_object_foreach(vocab, key, val) {
		json_int_t id = json_integer_value(val);
		if (!json_is_integer(val) || id < 0 || id >= MAX_ID) {
			rc = bad_id(name, key, id, err, errlen);
			goto fail;
		}
		if ((uint64_t)id + 1 > n)
			n = (uint64_t)id + 1;
	}
	size_t ai;
	json_t *at;
	json_array_foreach(added, ai, at) {
		json_t *jid = json_object_get(at, "id");
		json_int_t id = json_integer_value(jid);
		if (!json_is_integer(jid) || id < 0 || id >= MAX_ID) {
			rc = bad_id(name, "added_tokens[].id", id, err, errlen);
			goto fail;
		}
		if (!json_is_string(json_object_get(at, "content"))) {
			mp_tok_errf(err, errlen, "%s: added_tokens[%zu].content: expected a string", name, ai);
			goto fail;
		}
		if ((uint64_t)id + 1 > n)
			n = (uint64_t)id + 1;
	}
	if (n == 0) {
		mp_tok_errf(err, errlen, "%s: model.vocab: no tokens", name);
		goto fail;
	}
	rc = -ENOMEM;
	h = mp_calloc(1, sizeof *h);
	off = mp_malloc_array(n, sizeof *off);
	moff = mp_malloc_array(json_array_size(merges) ? json_array_size(merges) : 1, sizeof *moff);
	if (!h || !off || !moff)
		goto nomem;
	h->tokens = mp_calloc(n, sizeof *h->tokens);
	h->types = mp_calloc(n, sizeof *h->types);
	if (!h->tokens || !h->types)
		goto nomem;
	/* Pass 2: strings into the blob (offsets), types. */
	for (uint64_t i = 0; i < n; i++)
		off[i] = UINT64_MAX;
	json_object_foreach(vocab, key, val) {
		json_int_t id = json_integer_value(val);
		if (blob_put(&b, key, strlen(key), &off[id]) < 0)
			goto nomem;
		h->types[id] = MP_TOK_NORMAL;
	}
	json_array_foreach(added, ai, at) {
		json_int_t id = json_integer_value(json_object_get(at, "id"));
		json_t *c = json_object_get(at, "content");
		const char *s = json_string_value(c);
		size_t l = json_string_length(c);
		if (blob_put(&b, s, l, &off[id]) < 0)
			goto nomem;
		bool special = json_is_true(json_object_get(at, "special")) || looks_special(s, l);
		h->types[id] = special ? MP_TOK_CONTROL : MP_TOK_USER_DEFINED;
	}
	for (uint64_t i = 0; i < n; i++) {
		if (off[i] != UINT64_MAX)
			continue;
		char pad[32];
		int l = snprintf(pad, sizeof pad, "[PAD%llu]", (unsigned long long)i);
		if (blob_put(&b, pad, (size_t)l, &off[i]) < 0)
			goto nomem;
		h->types[i] = MP_TOK_UNUSED;
	}
	size_t mi;
	json_t *m;
	json_array_foreach(merges, mi, m) {
		if (json_is_string(m)) {
			rc = blob_put(&b, json_string_value(m), json_string_length(m), &moff[mi]);
		} else if (json_is_array(m) && json_array_size(m) == 2 &&
			   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
			json_t *x = json_array_get(m, 0), *y = json_array_get(m, 1);
			size_t lx = json_string_length(x), ly = json_string_length(y);
			char *tmp = mp_malloc(lx + ly + 1);
			if (!tmp)
				goto nomem;
			memcpy(tmp, json_string_value(x), lx);
			tmp[lx] = ' ';
			memcpy(tmp + lx + 1, json_string_value(y), ly);
			rc = blob_put(&b, tmp, lx + ly + 1, &moff[mi]);
			mp_free(tmp);
		} else {
			mp_tok_errf(err, errlen, "%s: model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", name, mi);
			rc = -MP_EFORMAT;
			goto fail;
		}
		if (rc < 0)
			goto nomem;
	}
	uint64_t pre_off;
	const char *pre = detect_pre(root);
	if (blob_put(&b, pre, strlen(pre), &pre_off) < 0)
		goto nomem;
	/* The blob no longer moves: turn offsets into pointers (invariant 1). */
	h->blob = b.p;
	b.p = NULL;
	h->merges = mp_malloc_array(json_array_size(merges) ? json_array_size(merges) : 1, sizeof *h->merges);
	if (!h->merges)
		goto nomem;
	for (uint64_t i = 0; i < n; i++)
		h->tokens[i] = (struct mp_tok_str){ h->blob + off[i], (uint32_t)strlen(h->blob + off[i]) };
	/* Added tokens may hold NULs: take their length from JSON again. */
	json_array_foreach(added, ai, at) {
		json_int_t id = json_integer_value(json_object_get(at, "id"));
		h->tokens[id].len = (uint32_t)json_string_length(json_object_get(at, "content"));
	}
	for (size_t i = 0; i < json_array_size(merges); i++)
		h->merges[i] = (struct mp_tok_str){ h->blob + moff[i], (uint32_t)strlen(h->blob + moff[i]) };
	struct mp_tok_vocab *v = &h->vocab;
	v->n_tokens = (uint32_t)n;
	v->tokens = h->tokens;
	v->types = h->types;
	v->n_merges = (uint32_t)json_array_size(merges);
	v->merges = h->merges;
	v->model = "gpt2";
	v->pre = h->blob + pre_off;
	v->bos_id = v->eos_id = -1;
	for (uint64_t i = 0; i < n; i++) {
		const struct mp_tok_str *t = &h->tokens[i];
		if (h->types[i] != MP_TOK_CONTROL)
			continue;
		if (t->len == strlen("<｜begin▁of▁sentence｜>") && memcmp(t->s, "<｜begin▁of▁sentence｜>", t->len) == 0)
			v->bos_id = (int32_t)i;
		if (t->len == strlen("<｜end▁of▁sentence｜>") && memcmp(t->s, "<｜end▁of▁sentence｜>", t->len) == 0)
			v->eos_id = (int32_t)i;
	}
	v->add_bos = v->bos_id >= 0;
	v->add_eos = 0;
	mp_free(off);
	mp_free(moff);
	json_decref(root);
	*out = h;
	return 0;
nomem:
	mp_tok_errf(err, errlen, "%s: out of memory", name);
	rc = -ENOMEM;
fail:
	mp_free(b.p);
	mp_free(off);
	mp_free(moff);
	mp_hftok_destroy(h);
	json_decref(root);
	return rc;
}

int mp_hftok_load(const char *path, uint32_t n_vocab_min, struct mp_hftok **out,
		  char *err, size_t errlen)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		mp_tok_errf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	char *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 1 << 20;
			char *nb = mp_realloc(buf, nc);
			if (!nb) {
				fclose(f);
				mp_free(buf);
				mp_tok_errf(err, errlen, "%s: out of memory", path);
				return -ENOMEM;
			}
			buf = nb;
			cap = nc;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	int rd_err = ferror(f);
	fclose(f);
	if (rd_err) {
		mp_free(buf);
		mp_tok_errf(err, errlen, "%s: read error", path);
		return -EIO;
	}
	int rc = mp_hftok_load_mem(buf, n, path, n_vocab_min, out, err, errlen);
	mp_free(buf);
	return rc;
}

struct mp_tok_vocab *mp_hftok_vocab(struct mp_hftok *h)
{
	return &h->vocab;
}

void mp_hftok_destroy(struct mp_hftok *h)
{
	if (!h)
		return;
	mp_free(h->tokens);
	mp_free(h->types);
	mp_free(h->merges);
	mp_free(h->blob);
	mp_free(h);
}
