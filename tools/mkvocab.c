/*
 * mkvocab.c — the built-in byte-level BPE vocabulary of synthetic models and
 * the writer of the tokenizer.* keys.  Merges are learned at run time from the
 * text below by plain BPE training (most frequent adjacent pair, ties broken
 * by the smaller string), over pieces split like a GPT-2 pre-tokenizer (a
 * word with its leading space, digits, punctuation runs), so the merges are
 * consistent with the token list: every merge result is a token.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "gguf.h"
#include "gguf_write.h"
#include "hftok.h"
#include "mkvocab.h"

const char mp_mkvocab_r1_template[] =
	"{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
	"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}"
	"{{ message['content'] }}{% endif %}{% endfor %}{% for message in messages %}"
	"{% if message['role'] == 'user' %}{{ '<\xef\xbd\x9cUser\xef\xbd\x9c>' + message['content'] }}"
	"{% elif message['role'] == 'assistant' %}{% set content = message['content'] %}"
	"{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
	"{{ '<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>' + content + "
	"'<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>' }}{% endif %}{% endfor %}"
	"{% if add_generation_prompt %}{{ '<\xef\xbd\x9c" "Assistant\xef\xbd\x9c><think>\\n' }}{% endif %}";

/* R1's special tokens (FORMATS.md §5.2) with their R1 ids and types. */
static const struct {
	const char *text;
	uint32_t r1_id;
	int32_t type;
} specials[] = {
	{"<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", 0, MKV_CONTROL},
	{"<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", 1, MKV_CONTROL},
	{"<\xef\xbd\x9c\xe2\x96\x81pad\xe2\x96\x81\xef\xbd\x9c>", 2, MKV_CONTROL},
	{"<think>", 128798, MKV_USER},
	{"</think>", 128799, MKV_USER},
	{"<\xef\xbd\x9cUser\xef\xbd\x9c>", 128803, MKV_USER},
	{"<\xef\xbd\x9c" "Assistant\xef\xbd\x9c>", 128804, MKV_USER},
};
#define N_SPECIALS (sizeof specials / sizeof specials[0])
#define R1_VOCAB 129280

static const char corpus[] =
	"The model reads the weights of the experts it needs from the disk, and keeps the "
	"ones that are used most often in memory. When a token arrives, the router chooses "
	"eight experts out of two hundred and fifty six, and the pager makes sure that they "
	"are there before the layer runs. Most of the time the same experts are chosen again "
	"for the next token, which is why a small cache works so well. This is a test of the "
	"tokenizer: it should split words, numbers like 2024 and 3.14, and punctuation (such as "
	"commas, dots, and quotes) into pieces that the merges then join into longer tokens. "
	"In the beginning there was nothing, and then there was the word, and the word was "
	"with the model. We think that the answer is simple: read less, compute more, and "
	"never wait for the disk when you can avoid it. What is one plus one? It is two. "
	"Hello, world! How are you today? I am fine, thank you, and you? The quick brown fox "
	"jumps over the lazy dog. She sells sea shells by the sea shore. A stitch in time "
	"saves nine. All that glitters is not gold. To be or not to be, that is the question.\n"
	"def main():\n    print(\"hello\")\n    return 0\n";

/* GPT-2 bytes_to_unicode (FORMATS.md §5.4): the code point for byte b. */
static uint32_t byte_cp(uint8_t b)
{
	if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae)
		return b;
	uint32_t n = 0;
	for (uint32_t x = 0; x < b; x++)
		if (!((x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || x >= 0xae))
			n++;
	return 0x100 + n;
}

static size_t put_cp(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	o[0] = (char)(0xc0 | (cp >> 6));
	o[1] = (char)(0x80 | (cp & 0x3f));
	return 2;
}

/* ---- BPE training over the corpus ---------------------------------------- */

#define MAX_SYMS 4096      /* symbols of the whole corpus */
#define MAX_SYM_LEN 64

struct trainer {
	char sym[MAX_SYMS][MAX_SYM_LEN];   /* current symbols, byte-level encoded */
	int piece_start[MAX_SYMS];         /* 1 where a new piece starts */
	int n;
};

static int cls(unsigned char c)
{
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
		return 1;
	if (c >= '0' && c <= '9')
		return 2;
	if (c == ' ' || c == '\n')
		return 3;
	return 4;
}

static void split_corpus(struct trainer *t)
{
	size_t len = strlen(corpus);
	int prev = 0;
	t->n = 0;
	for (size_t i = 0; i < len && t->n < MAX_SYMS; i++) {
		unsigned char c = (unsigned char)corpus[i];
		int k = cls(c);
		/* A piece starts at a class change, except a space joins the next word;
		 * digits stand alone (the deepseek-v3 pre-tokenizer splits digits). */
		int start = i == 0 || k != prev || k == 2 || c == '\n';
		if (prev == 3 && corpus[i - 1] == ' ' && k != 3)
			start = 0;
		if (k == 3 && c == ' ')
			start = 1;
		t->piece_start[t->n] = start;
		size_t o = put_cp(t->sym[t->n], byte_cp(c));
		t->sym[t->n][o] = 0;
		t->n++;
		prev = k;
	}
}

static int cmp_pair(const void *x, const void *y, void *ctx)
{
	const struct trainer *t = ctx;
	int i = *(const int *)x, j = *(const int *)y;
	int c = strcmp(t->sym[i], t->sym[j]);
	return c ? c : strcmp(t->sym[i + 1], t->sym[j + 1]);
}

/* Finds the most frequent adjacent pair inside a piece (count >= 2; ties go
 * to the smaller pair); returns its left index or -1.  idx: MAX_SYMS ints. */
static int best_pair(struct trainer *t, int *idx)
{
	int m = 0;
	for (int i = 0; i + 1 < t->n; i++)
		if (!t->piece_start[i + 1] && strlen(t->sym[i]) + strlen(t->sym[i + 1]) < MAX_SYM_LEN)
			idx[m++] = i;
	qsort_r(idx, (size_t)m, sizeof *idx, cmp_pair, t);
	int best = -1, best_count = 1;
	for (int a = 0; a < m;) {
		int b = a + 1;
		while (b < m && cmp_pair(&idx[a], &idx[b], t) == 0)
			b++;
		if (b - a > best_count) {
			best = idx[a];
			best_count = b - a;
		}
		a = b;
	}
	return best;
}

static void apply_merge(struct trainer *t, const char *a, const char *b)
{
	int o = 0;
	for (int i = 0; i < t->n; i++) {
		if (i + 1 < t->n && !t->piece_start[i + 1] && strcmp(t->sym[i], a) == 0 &&
		    strcmp(t->sym[i + 1], b) == 0) {
			char m[MAX_SYM_LEN];
			snprintf(m, sizeof m, "%s%s", a, b);
			memcpy(t->sym[o], m, sizeof m);
			t->piece_start[o] = t->piece_start[i];
			i++;
		} else if (o != i) {
			memcpy(t->sym[o], t->sym[i], MAX_SYM_LEN);
			t->piece_start[o] = t->piece_start[i];
		}
		o++;
	}
	t->n = o;
}

/* ---- the vocabulary ----------------------------------------------------------- */

void mp_mkvocab_free(struct mp_mkvocab *v)
{
	if (!v)
		return;
	for (uint64_t i = 0; v->tokens && i < v->n_tokens; i++)
		mp_free(v->tokens[i]);
	for (uint64_t i = 0; v->merges && i < v->n_merges; i++)
		mp_free(v->merges[i]);
	mp_free(v->tokens);
	mp_free(v->types);
	mp_free(v->merges);
	memset(v, 0, sizeof *v);
}

static int set_tok(struct mp_mkvocab *v, uint64_t id, const char *s, int32_t type)
{
	v->tokens[id] = mp_strdup(s);
	v->types[id] = type;
	return v->tokens[id] ? 0 : -ENOMEM;
}

int mp_mkvocab_builtin(uint64_t n, struct mp_mkvocab *v)
{
	memset(v, 0, sizeof *v);
	if (n < 300 || n > (1u << 24))
		return -MP_EARG;
	v->n_tokens = n;
	v->tokens = mp_calloc((size_t)n, sizeof *v->tokens);
	v->types = mp_calloc((size_t)n, sizeof *v->types);
	if (!v->tokens || !v->types)
		goto nomem;
	v->model = "gpt2";
	v->pre = "deepseek-v3";
	v->chat_template = mp_mkvocab_r1_template;
	v->bos = 0;
	v->eos = 1;
	v->pad = 2;
	/* Specials: R1's ids in an R1-sized vocabulary, else 0..2 and the last ids. */
	uint64_t special_end = 3, tail = N_SPECIALS - 3;
	for (size_t i = 0; i < N_SPECIALS; i++) {
		uint64_t id = n >= R1_VOCAB ? specials[i].r1_id
					    : i < 3 ? i : n - tail + (i - 3);
		if (set_tok(v, id, specials[i].text, specials[i].type))
			goto nomem;
	}
	uint64_t next = special_end;
	char buf[8];
	for (int b = 0; b < 256; b++) {
		size_t o = put_cp(buf, byte_cp((uint8_t)b));
		buf[o] = 0;
		if (set_tok(v, next++, buf, MKV_NORMAL))
			goto nomem;
	}
	/* Merges into the ids left before the tail specials (or R1's 128000). */
	uint64_t limit = n >= R1_VOCAB ? 128000 : n - tail;
	uint64_t max_merges = limit - next;
	struct trainer *t = mp_malloc(sizeof *t);
	int *idx = mp_malloc(MAX_SYMS * sizeof *idx);
	v->merges = mp_calloc((size_t)(max_merges ? max_merges : 1), sizeof *v->merges);
	if (!t || !idx || !v->merges) {
		mp_free(t);
		mp_free(idx);
		goto nomem;
	}
	split_corpus(t);
	while (v->n_merges < max_merges) {
		int i = best_pair(t, idx);
		if (i < 0)
			break;
		char a[MAX_SYM_LEN], b[MAX_SYM_LEN], m[2 * MAX_SYM_LEN + 2];
		memcpy(a, t->sym[i], MAX_SYM_LEN);
		memcpy(b, t->sym[i + 1], MAX_SYM_LEN);
		snprintf(m, sizeof m, "%s %s", a, b);
		v->merges[v->n_merges] = mp_strdup(m);
		snprintf(m, sizeof m, "%s%s", a, b);
		int known = 0;   /* "a bc" and "ab c" make the same token */
		for (uint64_t k = special_end; k < next && !known; k++)
			known = strcmp(v->tokens[k], m) == 0;
		if (!v->merges[v->n_merges] || (!known && set_tok(v, next++, m, MKV_NORMAL))) {
			mp_free(t);
			mp_free(idx);
			goto nomem;
		}
		v->n_merges++;
		apply_merge(t, a, b);
	}
	mp_free(t);
	mp_free(idx);
	for (uint64_t id = 0; id < n; id++)
		if (!v->tokens[id]) {
			char pad[32];
			snprintf(pad, sizeof pad, "[PAD%llu]", (unsigned long long)id);
			if (set_tok(v, id, pad, MKV_UNUSED))
				goto nomem;
		}
	return 0;
nomem:
	mp_mkvocab_free(v);
	return -ENOMEM;
}

int mp_mkvocab_write(struct mp_gguf_writer *w, const struct mp_mkvocab *v)
{
	mp_gguf_writer_set_str(w, "tokenizer.ggml.model", v->model);
	mp_gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre);
	mp_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens,
				     v->n_tokens);
	mp_gguf_writer_set_array(w, "tokenizer.ggml.token_type", MP_GGUF_I32, v->types, v->n_tokens);
	mp_gguf_writer_set_str_array(w, "tokenizer.ggml.merges", (const char *const *)v->merges,
				     v->n_merges);
	mp_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", v->bos);
	mp_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", v->eos);
	mp_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", v->pad);
	mp_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 1);
	mp_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", 0);
	if (v->chat_template)
		return mp_gguf_writer_set_str(w, "tokenizer.chat_template", v->chat_template);
	return 0;
}

int mp_mkvocab_from_json(const char *path, uint64_t n_tokens_min, struct mp_mkvocab *out,
			 char *err, size_t err_len)
{
	memset(out, 0, sizeof *out);
	struct mp_hftok *h = NULL;
	int rc = mp_hftok_load(path, n_tokens_min > UINT32_MAX ? UINT32_MAX : (uint32_t)n_tokens_min, &h,
			       err, err_len);
	if (rc < 0)
		return rc;
	const struct mp_tok_vocab *v = mp_hftok_vocab(h);
	out->n_tokens = v->n_tokens;
	out->n_merges = v->n_merges;
	out->tokens = mp_calloc(v->n_tokens, sizeof *out->tokens);
	out->types = mp_calloc(v->n_tokens, sizeof *out->types);
	out->merges = mp_calloc(v->n_merges ? v->n_merges : 1, sizeof *out->merges);
	rc = -ENOMEM;
	if (!out->tokens || !out->types || !out->merges)
		goto fail;
	for (uint32_t i = 0; i < v->n_tokens; i++) {
		if (memchr(v->tokens[i].s, 0, v->tokens[i].len)) {
			snprintf(err, err_len, "%s: token %u contains a NUL byte", path, i);
			rc = -MP_EFORMAT;
			goto fail;
		}
		out->tokens[i] = mp_malloc(v->tokens[i].len + 1);
		if (!out->tokens[i])
			goto fail;
		memcpy(out->tokens[i], v->tokens[i].s, v->tokens[i].len);
		out->tokens[i][v->tokens[i].len] = 0;
		out->types[i] = v->types ? v->types[i] : MKV_NORMAL;
	}
	for (uint32_t i = 0; i < v->n_merges; i++) {
		out->merges[i] = mp_malloc(v->merges[i].len + 1);
		if (!out->merges[i])
			goto fail;
		memcpy(out->merges[i], v->merges[i].s, v->merges[i].len);
		out->merges[i][v->merges[i].len] = 0;
	}
	out->bos = v->bos_id >= 0 ? (uint32_t)v->bos_id : 0;
	out->eos = v->eos_id >= 0 ? (uint32_t)v->eos_id : 0;
	out->pad = out->eos;
	out->model = "gpt2";
	out->pre = "deepseek-v3";
	out->chat_template = mp_mkvocab_r1_template;
	mp_hftok_destroy(h);
	return 0;
fail:
	if (rc == -ENOMEM)
		snprintf(err, err_len, "%s: out of memory", path);
	mp_hftok_destroy(h);
	mp_mkvocab_free(out);
	return rc;
}
