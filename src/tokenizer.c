/*
 * tokenizer.c — byte-level BPE with the deepseek-v3 pre-tokenizer
 * (FORMATS.md §5.3–5.7), special-token splitting, streaming decode, and the
 * R1 chat template (§5.8).
 *
 * Invariants (established by mp_tok_create, relied on by encode/decode):
 *  1. Every token's stored text lives in text[text_off[id] .. text_off[id+1]);
 *     every token's printable bytes in piece[piece_off[id] .. piece_off[id+1]).
 *  2. The string table maps a text to the highest id carrying it (llama.cpp's
 *     token_to_id map, filled in id order, keeps the last one).
 *  3. A merge rule (a, b) -> (rank, ab) exists only when a, b and their
 *     concatenation ab are all tokens; the lowest rank of a repeated pair wins.
 *  4. Special candidates are sorted by first byte, then by length descending,
 *     so the first candidate that matches at a position is the longest one.
 *  5. After create nothing is written: encode/decode only read the tokenizer.
 *
 * Encoding pipeline for one raw fragment (text between special tokens):
 * code points -> split by \p{N}{1,3} -> split by the CJK ranges -> split by
 * the main regex -> each piece byte-level BPE'd.  Each split keeps matches and
 * the gaps between them (HF Split, behaviour Isolated) and sees only its own
 * fragment, so look-ahead stops at fragment ends as in HF and llama.cpp.
 */
#include "tokenizer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "unicode.h"

struct merge_slot {
	uint64_t key;    /* (a << 32) | b; UINT64_MAX = empty */
	uint32_t rank;   /* index in tokenizer.ggml.merges */
	int32_t id;      /* token of the concatenation */
};

struct mp_tok {
	/* Fixed at create; read-only afterwards (invariant 5). */
	uint32_t n_vocab;          /* tokens */
	int8_t *types;             /* [n_vocab] enum mp_tok_type */
	uint64_t *text_off;        /* [n_vocab + 1] offsets into text */
	char *text;                /* stored token strings, concatenated */
	uint64_t *piece_off;       /* [n_vocab + 1] offsets into piece */
	char *piece;               /* decoded bytes, concatenated */
	size_t max_piece;          /* bytes: longest piece */
	uint32_t *str_slots;       /* [str_mask + 1] id + 1, 0 = empty */
	uint64_t str_mask;         /* table size - 1 (power of two) */
	struct merge_slot *merge_slots; /* [merge_mask + 1] */
	uint64_t merge_mask;
	uint32_t n_rules;          /* merges that became rules */
	int32_t byte_id[256];      /* token of each single byte, -1 if missing */
	int32_t *spec_ids;         /* special candidates (invariant 4) */
	uint32_t spec_start[257];  /* candidates starting with byte b: [b], [b+1]) */
	int32_t bos, eos;          /* -1: none */
	bool add_bos, add_eos;
};

void mp_tok_errf(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Byte-level alphabet (GPT-2 bytes_to_unicode, FORMATS.md §5.4).            */

static uint32_t byte_to_cp(unsigned b)
{
	if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)
		return b;
	/* The 68 others, in byte order, map to U+0100.. */
	uint32_t n = 0;
	for (unsigned x = 0; x < b; x++)
		if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE))
			n++;
	return 0x100 + n;
}

/* Byte for a byte-level code point, or -1. */
static int cp_to_byte(uint32_t cp)
{
	if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
		return (int)cp;
	if (cp < 0x100 || cp > 0x143)
		return -1;
	uint32_t n = cp - 0x100;
	for (unsigned x = 0; x < 256; x++) {
		if ((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)
			continue;
		if (n-- == 0)
			return (int)x;
	}
	return -1;
}

/* ------------------------------------------------------------------------ */
/* Hash tables.                                                              */

static uint64_t hash_bytes(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;   /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static uint64_t pow2_at_least(uint64_t n)
{
	uint64_t p = 16;
	while (p < n)
		p <<= 1;
	return p;
}

static const char *tok_text(const struct mp_tok *t, int32_t id, size_t *len)
{
	*len = (size_t)(t->text_off[id + 1] - t->text_off[id]);
	return t->text + t->text_off[id];
}

int32_t mp_tok_find(const struct mp_tok *t, const char *s, size_t len)
{
	uint64_t h = hash_bytes(s, len) & t->str_mask;
	for (;;) {
		uint32_t v = t->str_slots[h];
		if (!v)
			return -1;
		size_t l;
		const char *x = tok_text(t, (int32_t)(v - 1), &l);
		if (l == len && memcmp(x, s, len) == 0)
			return (int32_t)(v - 1);
		h = (h + 1) & t->str_mask;
	}
}

static void str_insert(struct mp_tok *t, int32_t id)
{
	size_t len;
	const char *s = tok_text(t, id, &len);
	uint64_t h = hash_bytes(s, len) & t->str_mask;
	for (;;) {
		uint32_t v = t->str_slots[h];
		if (!v) {
			t->str_slots[h] = (uint32_t)id + 1;
			return;
		}
		size_t l;
		const char *x = tok_text(t, (int32_t)(v - 1), &l);
		if (l == len && memcmp(x, s, len) == 0) {
			t->str_slots[h] = (uint32_t)id + 1;   /* invariant 2: last wins */
			return;
		}
		h = (h + 1) & t->str_mask;
	}
}

static const struct merge_slot *merge_find(const struct mp_tok *t, int32_t a, int32_t b)
{
	uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
	uint64_t h = hash_u64(key) & t->merge_mask;
	for (;;) {
		const struct merge_slot *m = &t->merge_slots[h];
		if (m->key == key)
			return m;
		if (m->key == UINT64_MAX)
			return NULL;
		h = (h + 1) & t->merge_mask;
	}
}

static void merge_insert(struct mp_tok *t, int32_t a, int32_t b, uint32_t rank, int32_t ab)
{
	uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
	uint64_t h = hash_u64(key) & t->merge_mask;
	for (;;) {
		struct merge_slot *m = &t->merge_slots[h];
		if (m->key == key)
			return;   /* invariant 3: the first (lowest) rank stays */
		if (m->key == UINT64_MAX) {
			m->key = key;
			m->rank = rank;
			m->id = ab;
			t->n_rules++;
			return;
		}
		h = (h + 1) & t->merge_mask;
	}
}

/* ------------------------------------------------------------------------ */
/* Construction.                                                             */

/* Printable bytes of one token into out (capacity >= 4 * len): byte-level
 * decoding for normal tokens, <0xXX> for byte tokens, literal text else. */
static size_t make_piece(int type, const char *s, size_t len, char *out)
{
	if (type == MP_TOK_BYTE && len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>') {
		unsigned v;
		if (sscanf(s + 3, "%2x", &v) == 1) {
			out[0] = (char)v;
			return 1;
		}
	}
	if (type != MP_TOK_NORMAL && type != MP_TOK_UNDEFINED) {
		memcpy(out, s, len);
		return len;
	}
	size_t n = 0;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		int k = mp_unicode_decode(s + i, len - i, &cp);
		int b = cp_to_byte(cp);
		if (b >= 0) {
			out[n++] = (char)b;
		} else {
			/* Not in the byte alphabet: keep the text as it is. */
			memcpy(out + n, s + i, (size_t)k);
			n += (size_t)k;
		}
		i += (size_t)k;
	}
	return n;
}

static int is_special_type(int type)
{
	return type == MP_TOK_CONTROL || type == MP_TOK_USER_DEFINED || type == MP_TOK_UNKNOWN;
}

/* Sort key of a special candidate (invariant 4). */
struct spec_key {
	uint32_t first;   /* first byte of its text */
	uint32_t len;     /* bytes */
	int32_t id;
};

static int cmp_special(const void *pa, const void *pb)
{
	const struct spec_key *a = pa, *b = pb;
	if (a->first != b->first)
		return a->first < b->first ? -1 : 1;
	if (a->len != b->len)
		return a->len > b->len ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

static int build_special(struct mp_tok *t)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < t->n_vocab; i++)
		if (is_special_type(t->types[i]) && t->text_off[i + 1] > t->text_off[i])
			n++;
	t->spec_ids = mp_malloc_array(n ? n : 1, sizeof *t->spec_ids);
	struct spec_key *keys = mp_malloc_array(n ? n : 1, sizeof *keys);
	if (!t->spec_ids || !keys) {
		mp_free(keys);
		return -ENOMEM;
	}
	n = 0;
	for (uint32_t i = 0; i < t->n_vocab; i++) {
		size_t l;
		const char *s = tok_text(t, (int32_t)i, &l);
		if (is_special_type(t->types[i]) && l)
			keys[n++] = (struct spec_key){ (unsigned char)s[0], (uint32_t)l, (int32_t)i };
	}
	qsort(keys, n, sizeof *keys, cmp_special);
	uint32_t k = 0;
	for (unsigned b = 0; b < 256; b++) {
		t->spec_start[b] = k;
		while (k < n && keys[k].first == b) {
			t->spec_ids[k] = keys[k].id;
			k++;
		}
	}
	t->spec_start[256] = n;
	mp_free(keys);
	return 0;
}

static int build_merges(struct mp_tok *t, const struct mp_tok_vocab *v)
{
	t->merge_mask = pow2_at_least((uint64_t)v->n_merges * 2 + 1) - 1;
	t->merge_slots = mp_malloc_array(t->merge_mask + 1, sizeof *t->merge_slots);
	if (!t->merge_slots)
		return -ENOMEM;
	for (uint64_t i = 0; i <= t->merge_mask; i++)
		t->merge_slots[i].key = UINT64_MAX;
	size_t cap = 0;
	char *buf = NULL;
	for (uint32_t r = 0; r < v->n_merges; r++) {
		const char *s = v->merges[r].s;
		size_t len = v->merges[r].len;
		const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
		if (!sp)
			continue;
		size_t la = (size_t)(sp - s), lb = len - la - 1;
		int32_t a = mp_tok_find(t, s, la), b = mp_tok_find(t, sp + 1, lb);
		if (a < 0 || b < 0)
			continue;
		if (la + lb > cap) {
			char *nb = mp_realloc(buf, la + lb);
			if (!nb) {
				mp_free(buf);
				return -ENOMEM;
			}
			buf = nb;
			cap = la + lb;
		}
		memcpy(buf, s, la);
		memcpy(buf + la, sp + 1, lb);
		int32_t ab = mp_tok_find(t, buf, la + lb);
		if (ab >= 0)
			merge_insert(t, a, b, r, ab);
	}
	mp_free(buf);
	return 0;
}

int mp_tok_create(const struct mp_tok_vocab *v, struct mp_tok **out, char *err, size_t errlen)
{
	*out = NULL;
	const char *model = v->model ? v->model : "gpt2";
	const char *pre = v->pre ? v->pre : "deepseek-v3";
	if (strcmp(model, "gpt2") != 0) {
		mp_tok_errf(err, errlen, "tokenizer.ggml.model: expected \"gpt2\" (byte-level BPE), found \"%s\"", model);
		return -MP_EFORMAT;
	}
	if (strcmp(pre, "deepseek-v3") != 0) {
		mp_tok_errf(err, errlen, "tokenizer.ggml.pre: unknown pre-tokenizer \"%s\" (this build knows \"deepseek-v3\")", pre);
		return -MP_EFORMAT;
	}
	if (v->n_tokens == 0 || v->n_tokens > (uint32_t)INT32_MAX - 1 || !v->tokens) {
		mp_tok_errf(err, errlen, "tokenizer.ggml.tokens: expected 1..%d tokens, found %u", INT32_MAX - 1, v->n_tokens);
		return -MP_EFORMAT;
	}
	if (v->n_merges && !v->merges) {
		mp_tok_errf(err, errlen, "tokenizer.ggml.merges: %u merges without data", v->n_merges);
		return -MP_EARG;
	}
	const char *which[2] = { "bos_token_id", "eos_token_id" };
	int32_t ids[2] = { v->bos_id, v->eos_id };
	for (int k = 0; k < 2; k++) {
		if (ids[k] < -1 || ids[k] >= (int64_t)v->n_tokens) {
			mp_tok_errf(err, errlen, "tokenizer.ggml.%s: expected -1..%u, found %d", which[k], v->n_tokens - 1, ids[k]);
			return -MP_EFORMAT;
		}
	}
	struct mp_tok *t = mp_calloc(1, sizeof *t);
	if (!t)
		goto nomem;
	t->n_vocab = v->n_tokens;
	t->bos = v->bos_id;
	t->eos = v->eos_id;
	t->add_bos = v->add_bos && v->bos_id >= 0;
	t->add_eos = v->add_eos && v->eos_id >= 0;
	uint64_t total = 0;
	for (uint32_t i = 0; i < v->n_tokens; i++) {
		int type = v->types ? v->types[i] : MP_TOK_NORMAL;
		if (type < MP_TOK_UNDEFINED || type > MP_TOK_BYTE) {
			mp_tok_errf(err, errlen, "tokenizer.ggml.token_type[%u]: expected 0..6, found %d", i, type);
			mp_tok_destroy(t);
			return -MP_EFORMAT;
		}
		if (v->tokens[i].len && !v->tokens[i].s) {
			mp_tok_errf(err, errlen, "tokenizer.ggml.tokens[%u]: no data", i);
			mp_tok_destroy(t);
			return -MP_EARG;
		}
		total += v->tokens[i].len;
	}
	t->types = mp_malloc(v->n_tokens);
	t->text_off = mp_malloc_array((size_t)v->n_tokens + 1, sizeof *t->text_off);
	t->piece_off = mp_malloc_array((size_t)v->n_tokens + 1, sizeof *t->piece_off);
	t->text = mp_malloc(total ? total : 1);
	/* A piece is at most as long as its text (a byte-level code point
	 * becomes one byte; anything else is copied). */
	t->piece = mp_malloc(total ? total : 1);
	t->str_mask = pow2_at_least((uint64_t)v->n_tokens * 2) - 1;
	t->str_slots = mp_calloc(t->str_mask + 1, sizeof *t->str_slots);
	if (!t->types || !t->text_off || !t->piece_off || !t->text || !t->piece || !t->str_slots)
		goto nomem;
	uint64_t off = 0, poff = 0;
	for (uint32_t i = 0; i < v->n_tokens; i++) {
		int type = v->types ? v->types[i] : MP_TOK_NORMAL;
		size_t len = v->tokens[i].len;
		t->types[i] = (int8_t)type;
		t->text_off[i] = off;
		t->piece_off[i] = poff;
		if (len)
			memcpy(t->text + off, v->tokens[i].s, len);
		size_t pl = make_piece(type, t->text + off, len, t->piece + poff);
		if (pl > t->max_piece)
			t->max_piece = pl;
		off += len;
		poff += pl;
	}
	t->text_off[v->n_tokens] = off;
	t->piece_off[v->n_tokens] = poff;
	for (uint32_t i = 0; i < v->n_tokens; i++)
		str_insert(t, (int32_t)i);
	for (unsigned b = 0; b < 256; b++) {
		char enc[4];
		int n = mp_unicode_encode(byte_to_cp(b), enc);
		t->byte_id[b] = mp_tok_find(t, enc, (size_t)n);
	}
	if (build_merges(t, v) < 0 || build_special(t) < 0)
		goto nomem;
	*out = t;
	return 0;
nomem:
	mp_tok_errf(err, errlen, "tokenizer: out of memory for %u tokens and %u merges", v->n_tokens, v->n_merges);
	mp_tok_destroy(t);
	return -ENOMEM;
}

void mp_tok_destroy(struct mp_tok *t)
{
	if (!t)
		return;
	mp_free(t->types);
	mp_free(t->text_off);
	mp_free(t->text);
	mp_free(t->piece_off);
	mp_free(t->piece);
	mp_free(t->str_slots);
	mp_free(t->merge_slots);
	mp_free(t->spec_ids);
	mp_free(t);
}

uint32_t mp_tok_n_vocab(const struct mp_tok *t) { return t->n_vocab; }
int32_t mp_tok_bos(const struct mp_tok *t) { return t->bos; }
int32_t mp_tok_eos(const struct mp_tok *t) { return t->eos; }
uint32_t mp_tok_n_merges(const struct mp_tok *t) { return t->n_rules; }

int mp_tok_type(const struct mp_tok *t, int32_t id)
{
	if (id < 0 || (uint32_t)id >= t->n_vocab)
		return MP_TOK_UNDEFINED;
	return t->types[id];
}

/* ------------------------------------------------------------------------ */
/* Encoding.                                                                 */

/* Per-call working memory (the tokenizer itself stays read-only). */
struct enc {
	const struct mp_tok *t;
	int32_t *ids;          /* [n_ids of cap_ids] output so far */
	size_t n_ids, cap_ids;
	uint32_t *cp;          /* [n] code points of the current fragment */
	uint32_t *off;         /* [n + 1] their byte offsets in the fragment */
	uint8_t *cc;           /* [n] class | SPACE_BIT */
	size_t cap_cp;
	int32_t *sym;          /* BPE symbols of the current piece */
	uint32_t *prev, *next;
	struct bigram *heap;
	size_t cap_sym, cap_heap;
	const char *text;      /* the current fragment's bytes */
	uint32_t *ends;        /* pretokenize only: piece ends, NULL when encoding */
	size_t n_ends, cap_ends;
	size_t base;           /* pretokenize only: byte offset of the fragment */
};

struct bigram {
	uint32_t rank;         /* merge rank (lower first) */
	uint32_t left, right;  /* symbol positions (left < right) */
};

#define SPACE_BIT 8u
#define NONE UINT32_MAX

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 64;
	while (n < need)
		n *= 2;
	void *q = mp_malloc_array(n, elem);
	if (!q)
		return -ENOMEM;
	if (*cap)
		memcpy(q, *p, *cap * elem);
	mp_free(*p);
	*p = q;
	*cap = n;
	return 0;
}

/* Makes room for n symbols in sym, prev and next together. */
static int grow_sym(struct enc *e, size_t n)
{
	if (n <= e->cap_sym)
		return 0;
	size_t cap = e->cap_sym, c2 = e->cap_sym, c3 = e->cap_sym;
	if (grow((void **)&e->sym, &cap, n, sizeof *e->sym) < 0 ||
	    grow((void **)&e->prev, &c2, n, sizeof *e->prev) < 0 ||
	    grow((void **)&e->next, &c3, n, sizeof *e->next) < 0)
		return -ENOMEM;
	e->cap_sym = cap;
	return 0;
}

/* Makes room for n code points (plus the end offset) in cp, off and cc. */
static int grow_cp(struct enc *e, size_t n)
{
	if (n + 1 <= e->cap_cp)
		return 0;
	size_t cap = e->cap_cp, c2 = e->cap_cp, c3 = e->cap_cp;
	if (grow((void **)&e->cp, &cap, n + 1, sizeof *e->cp) < 0 ||
	    grow((void **)&e->off, &c2, n + 1, sizeof *e->off) < 0 ||
	    grow((void **)&e->cc, &c3, n + 1, sizeof *e->cc) < 0)
		return -ENOMEM;
	e->cap_cp = cap;
	return 0;
}

static int emit(struct enc *e, int32_t id)
{
	if (e->n_ids == e->cap_ids && grow((void **)&e->ids, &e->cap_ids, e->n_ids + 1, sizeof *e->ids) < 0)
		return -ENOMEM;
	e->ids[e->n_ids++] = id;
	return 0;
}

static bool bigram_less(const struct bigram *a, const struct bigram *b)
{
	return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(struct enc *e, size_t *n, uint32_t left, uint32_t right)
{
	if (left == NONE || right == NONE)
		return 0;
	const struct merge_slot *m = merge_find(e->t, e->sym[left], e->sym[right]);
	if (!m)
		return 0;
	if (grow((void **)&e->heap, &e->cap_heap, *n + 1, sizeof *e->heap) < 0)
		return -ENOMEM;
	struct bigram g = { m->rank, left, right };
	size_t i = (*n)++;
	while (i > 0 && bigram_less(&g, &e->heap[(i - 1) / 2])) {
		e->heap[i] = e->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	e->heap[i] = g;
	return 0;
}

static struct bigram heap_pop(struct enc *e, size_t *n)
{
	struct bigram top = e->heap[0], last = e->heap[--(*n)];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && bigram_less(&e->heap[c + 1], &e->heap[c]))
			c++;
		if (!bigram_less(&e->heap[c], &last))
			break;
		e->heap[i] = e->heap[c];
		i = c;
	}
	if (*n)
		e->heap[i] = last;
	return top;
}

/* BPE of one pre-tokenized piece s[0..len) (FORMATS.md §5.5): one symbol per
 * byte, then repeatedly the lowest-ranked adjacent pair, leftmost on ties. */
static int bpe_piece(struct enc *e, const char *s, size_t len)
{
	const struct mp_tok *t = e->t;
	if (grow_sym(e, len) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		int32_t id = t->byte_id[(unsigned char)s[i]];
		if (id < 0)
			return -MP_ENOTFOUND;
		e->sym[i] = id;
		e->prev[i] = i ? (uint32_t)(i - 1) : NONE;
		e->next[i] = i + 1 < len ? (uint32_t)(i + 1) : NONE;
	}
	size_t nh = 0;
	for (size_t i = 0; i + 1 < len; i++)
		if (heap_push(e, &nh, (uint32_t)i, (uint32_t)(i + 1)) < 0)
			return -ENOMEM;
	while (nh) {
		struct bigram g = heap_pop(e, &nh);
		/* Stale entries: a side was merged away or changed since. */
		if (e->sym[g.left] < 0 || e->sym[g.right] < 0 || e->next[g.left] != g.right)
			continue;
		const struct merge_slot *m = merge_find(t, e->sym[g.left], e->sym[g.right]);
		if (!m || m->rank != g.rank)
			continue;
		e->sym[g.left] = m->id;
		e->sym[g.right] = -1;
		uint32_t nx = e->next[g.right];
		e->next[g.left] = nx;
		if (nx != NONE)
			e->prev[nx] = g.left;
		if (heap_push(e, &nh, e->prev[g.left], g.left) < 0 ||
		    heap_push(e, &nh, g.left, nx) < 0)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i != NONE; i = e->next[i])
		if (emit(e, e->sym[i]) < 0)
			return -ENOMEM;
	return 0;
}

#define CLS(i) (e->cc[i] & 7u)
#define IS_LM(i) (CLS(i) == MP_UC_L || CLS(i) == MP_UC_M)
#define IS_PS(i) (CLS(i) == MP_UC_P || CLS(i) == MP_UC_S)
#define IS_SP(i) ((e->cc[i] & SPACE_BIT) != 0)

/* Pattern 1: \p{N}{1,3}. */
static size_t match_digits(const struct enc *e, size_t i, size_t end)
{
	size_t n = 0;
	while (i + n < end && n < 3 && CLS(i + n) == MP_UC_N)
		n++;
	return n;
}

static bool is_cjk(uint32_t c)
{
	return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x3040 && c <= 0x309F) || (c >= 0x30A0 && c <= 0x30FF);
}

/* Pattern 2: [一-龥぀-ゟ゠-ヿ]+. */
static size_t match_cjk(const struct enc *e, size_t i, size_t end)
{
	size_t j = i;
	while (j < end && is_cjk(e->cp[j]))
		j++;
	return j - i;
}

static bool is_ascii_punct(uint32_t c)
{
	return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
	       (c >= 0x7B && c <= 0x7E);
}

static bool is_ascii_alpha(uint32_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_crlf(uint32_t c)
{
	return c == '\r' || c == '\n';
}

/* Pattern 3, the alternatives tried in order as a backtracking regex would:
 *   A1 [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+
 *   A2 [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
 *   A3  ?[\p{P}\p{S}]+[\r\n]*
 *   A4 \s*[\r\n]+      (ends at the last CR/LF of the whitespace run)
 *   A5 \s+(?!\S)       (the run, less its last char if a non-space follows)
 *   A6 \s+ */
static size_t match_main(const struct enc *e, size_t i, size_t end)
{
	const uint32_t *cp = e->cp;
	uint32_t c0 = cp[i];
	size_t j;
	if (is_ascii_punct(c0) && i + 1 < end && is_ascii_alpha(cp[i + 1])) {
		for (j = i + 1; j < end && is_ascii_alpha(cp[j]); j++)
			;
		return j - i;
	}
	unsigned k0 = CLS(i);
	if (!is_crlf(c0) && k0 != MP_UC_L && k0 != MP_UC_P && k0 != MP_UC_S && i + 1 < end && IS_LM(i + 1)) {
		for (j = i + 1; j < end && IS_LM(j); j++)
			;
		return j - i;
	}
	if (IS_LM(i)) {
		for (j = i; j < end && IS_LM(j); j++)
			;
		return j - i;
	}
	j = (c0 == ' ' && i + 1 < end && IS_PS(i + 1)) ? i + 1 : i;
	if (IS_PS(j)) {
		while (j < end && IS_PS(j))
			j++;
		while (j < end && is_crlf(cp[j]))
			j++;
		return j - i;
	}
	if (IS_SP(i)) {
		size_t last = NONE;
		for (j = i; j < end && IS_SP(j); j++)
			if (is_crlf(cp[j]))
				last = j;
		if (last != NONE)
			return last + 1 - i;
		if (j == end || j - 1 == i)
			return j - i;
		return j - 1 - i;
	}
	return 0;
}

typedef size_t (*matcher_fn)(const struct enc *e, size_t i, size_t end);

static const matcher_fn deepseek_v3[] = { match_digits, match_cjk, match_main };
#define N_LEVELS (sizeof deepseek_v3 / sizeof deepseek_v3[0])

/* Splits code points [a, b) with the matcher of level, keeping matches and
 * gaps in order; the last level's pieces go to BPE. */
static int split(struct enc *e, unsigned level, size_t a, size_t b)
{
	if (level == N_LEVELS && e->ends) {
		if (e->n_ends < e->cap_ends)
			e->ends[e->n_ends] = (uint32_t)(e->base + e->off[b]);
		e->n_ends++;
		return 0;
	}
	if (level == N_LEVELS)
		return bpe_piece(e, e->text + e->off[a], e->off[b] - e->off[a]);
	size_t gap = a;
	for (size_t i = a; i < b;) {
		size_t m = deepseek_v3[level](e, i, b);
		if (!m) {
			i++;
			continue;
		}
		int rc;
		if (gap < i && (rc = split(e, level + 1, gap, i)) < 0)
			return rc;
		if ((rc = split(e, level + 1, i, i + m)) < 0)
			return rc;
		i += m;
		gap = i;
	}
	return gap < b ? split(e, level + 1, gap, b) : 0;
}

/* Pre-tokenizes and BPEs one raw fragment s[0..len). */
static int encode_raw(struct enc *e, const char *s, size_t len)
{
	if (!len)
		return 0;
	if (grow_cp(e, len) < 0)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < len;) {
		uint32_t c;
		int k = mp_unicode_decode(s + i, len - i, &c);
		e->cp[n] = c;
		e->off[n] = (uint32_t)i;
		e->cc[n] = (uint8_t)(mp_unicode_class(c) | (mp_unicode_is_space(c) ? SPACE_BIT : 0));
		n++;
		i += (size_t)k;
	}
	e->off[n] = (uint32_t)len;
	e->text = s;
	return split(e, 0, 0, n);
}

/* The longest special token at text[i..len), or -1.  Control-like tokens
 * only with MP_TOK_PARSE_SPECIAL; user-defined ones always (llama.cpp). */
static int32_t special_at(const struct mp_tok *t, const char *text, size_t i, size_t len, unsigned flags)
{
	unsigned char b = (unsigned char)text[i];
	for (uint32_t k = t->spec_start[b]; k < t->spec_start[b + 1]; k++) {
		int32_t id = t->spec_ids[k];
		if (t->types[id] != MP_TOK_USER_DEFINED && !(flags & MP_TOK_PARSE_SPECIAL))
			continue;
		size_t l;
		const char *s = tok_text(t, id, &l);
		if (l <= len - i && memcmp(text + i, s, l) == 0)
			return id;
	}
	return -1;
}

int mp_tok_encode(const struct mp_tok *t, const char *text, size_t len, unsigned flags,
		  int32_t *ids, size_t cap)
{
	if (len > UINT32_MAX - 1)
		return -MP_EARG;   /* byte offsets are 32-bit */
	struct enc e = { .t = t };
	int rc = 0;
	size_t raw = 0;
	for (size_t i = 0; i < len;) {
		int32_t id = t->spec_start[(unsigned char)text[i] + 1] > t->spec_start[(unsigned char)text[i]]
			? special_at(t, text, i, len, flags) : -1;
		if (id < 0) {
			i++;
			continue;
		}
		if ((rc = encode_raw(&e, text + raw, i - raw)) < 0 || (rc = emit(&e, id)) < 0)
			goto out;
		i += (size_t)(t->text_off[id + 1] - t->text_off[id]);
		raw = i;
	}
	if ((rc = encode_raw(&e, text + raw, len - raw)) < 0)
		goto out;
	bool bos = (flags & MP_TOK_ADD_BOS) && t->add_bos && !(e.n_ids && e.ids[0] == t->bos);
	bool eos = (flags & MP_TOK_ADD_BOS) && t->add_eos;
	size_t n = e.n_ids + bos + eos;
	if (n > INT32_MAX) {
		rc = -MP_EARG;
		goto out;
	}
	size_t w = 0;
	if (bos && w < cap)
		ids[w++] = t->bos;
	for (size_t k = 0; k < e.n_ids && w < cap; k++)
		ids[w++] = e.ids[k];
	if (eos && w < cap)
		ids[w++] = t->eos;
	rc = (int)n;
out:
	mp_free(e.ids);
	mp_free(e.cp);
	mp_free(e.off);
	mp_free(e.cc);
	mp_free(e.sym);
	mp_free(e.prev);
	mp_free(e.next);
	mp_free(e.heap);
	return rc;
}

int mp_tok_pretokenize(const struct mp_tok *t, const char *text, size_t len,
		       uint32_t *ends, size_t cap)
{
	if (len > UINT32_MAX - 1)
		return -MP_EARG;
	uint32_t dummy;
	struct enc e = { .t = t, .ends = ends ? ends : &dummy, .cap_ends = ends ? cap : 0 };
	int rc = encode_raw(&e, text, len);
	if (rc >= 0)
		rc = e.n_ends > INT32_MAX ? -MP_EARG : (int)e.n_ends;
	mp_free(e.cp);
	mp_free(e.off);
	mp_free(e.cc);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Decoding.                                                                 */

const char *mp_tok_piece(const struct mp_tok *t, int32_t id, size_t *len)
{
	if (id < 0 || (uint32_t)id >= t->n_vocab) {
		*len = 0;
		return NULL;
	}
	*len = (size_t)(t->piece_off[id + 1] - t->piece_off[id]);
	return t->piece + t->piece_off[id];
}

static bool printable(const struct mp_tok *t, int32_t id, unsigned flags)
{
	int type = t->types[id];
	if (type == MP_TOK_CONTROL || type == MP_TOK_UNKNOWN || type == MP_TOK_UNUSED)
		return (flags & MP_TOK_DECODE_SPECIAL) != 0;
	return true;
}

void mp_tok_stream_init(struct mp_tok_stream *s, unsigned flags)
{
	memset(s, 0, sizeof *s);
	s->flags = flags;
}

size_t mp_tok_stream_cap(const struct mp_tok *t)
{
	return 3 * (t->max_piece + 4);
}

size_t mp_tok_stream_push(const struct mp_tok *t, struct mp_tok_stream *s, int32_t id,
			  char *out, size_t cap)
{
	size_t len;
	const char *p = mp_tok_piece(t, id, &len);
	if (!p || !len || !printable(t, id, s->flags) || cap < 3 * (len + s->npend))
		return 0;
	/* The bytes to print are C = pend ++ piece; j holds C's head so that a
	 * sequence begun in pend decodes across the junction. */
	size_t np = s->npend, n = np + len;
	size_t jl = np + (len < 4 ? len : 4);
	char j[8];
	memcpy(j, s->pend, np);
	memcpy(j + np, p, jl - np);
	/* A held tail lies within C's last 3 bytes: inside the piece when it
	 * has 3 or more bytes, inside j otherwise. */
	size_t keep = len >= 3 ? np + mp_unicode_complete_prefix(p, len) : mp_unicode_complete_prefix(j, n);
	size_t w = 0;
	for (size_t i = 0; i < keep;) {
		uint32_t c;
		const char *at = i < np ? j + i : p + (i - np);
		size_t avail = i < np ? (keep < jl ? keep : jl) - i : keep - i;
		int k = mp_unicode_decode(at, avail, &c);
		if (c == MP_UNICODE_INVALID) {
			memcpy(out + w, "\xEF\xBF\xBD", 3);
			w += 3;
		} else {
			memcpy(out + w, at, (size_t)k);
			w += (size_t)k;
		}
		i += (size_t)k;
	}
	s->npend = (uint32_t)(n - keep);
	memcpy(s->pend, len >= 3 ? p + (keep - np) : j + keep, s->npend);
	return w;
}

size_t mp_tok_stream_flush(struct mp_tok_stream *s, char *out, size_t cap)
{
	if (!s->npend || cap < 3)
		return 0;
	s->npend = 0;
	memcpy(out, "\xEF\xBF\xBD", 3);
	return 3;
}

size_t mp_tok_decode(const struct mp_tok *t, const int32_t *ids, size_t n, unsigned flags,
		     char *out, size_t cap)
{
	struct mp_tok_stream s;
	mp_tok_stream_init(&s, flags);
	size_t bcap = mp_tok_stream_cap(t);
	char *buf = mp_malloc(bcap);
	size_t total = 0;
	if (!buf) {
		if (cap)
			out[0] = '\0';
		return 0;
	}
	for (size_t i = 0; i <= n; i++) {
		size_t w = i < n ? mp_tok_stream_push(t, &s, ids[i], buf, bcap) : mp_tok_stream_flush(&s, buf, bcap);
		for (size_t k = 0; k < w; k++, total++)
			if (total + 1 < cap)
				out[total] = buf[k];
	}
	mp_free(buf);
	if (cap)
		out[total < cap ? total : cap - 1] = '\0';
	return total;
}

/* ------------------------------------------------------------------------ */
/* R1 chat template.                                                         */

struct sbuf {
	char *p;
	size_t n, cap;
	int rc;
};

static void sb_put(struct sbuf *b, const char *s, size_t len)
{
	if (b->rc)
		return;
	if (grow((void **)&b->p, &b->cap, b->n + len + 1, 1) < 0) {
		b->rc = -ENOMEM;
		return;
	}
	memcpy(b->p + b->n, s, len);
	b->n += len;
	b->p[b->n] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* Content after the last "</think>", as the template feeds earlier turns back. */
static const char *after_think(const char *s)
{
	const char *r = s;
	for (const char *q = strstr(s, "</think>"); q; q = strstr(q + 1, "</think>"))
		r = q + strlen("</think>");
	return r;
}

int64_t mp_tok_chat_render(const struct mp_tok_msg *msgs, size_t n, unsigned flags, char **out)
{
	*out = NULL;
	for (size_t i = 0; i < n; i++)
		if (!msgs[i].content || msgs[i].role > MP_TOK_ASSISTANT)
			return -MP_EARG;
	struct sbuf b = { 0 };
	sb_str(&b, "<｜begin▁of▁sentence｜>");
	bool first_sys = true;
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].role != MP_TOK_SYSTEM)
			continue;
		if (!first_sys)
			sb_str(&b, "\n\n");
		sb_str(&b, msgs[i].content);
		first_sys = false;
	}
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].role == MP_TOK_USER) {
			sb_str(&b, "<｜User｜>");
			sb_str(&b, msgs[i].content);
		} else if (msgs[i].role == MP_TOK_ASSISTANT) {
			sb_str(&b, "<｜Assistant｜>");
			sb_str(&b, after_think(msgs[i].content));
			sb_str(&b, "<｜end▁of▁sentence｜>");
		}
	}
	if (flags & MP_TOK_CHAT_GEN_PROMPT) {
		sb_str(&b, "<｜Assistant｜>");
		if (flags & MP_TOK_CHAT_THINK)
			sb_str(&b, "<think>\n");
	}
	if (b.rc) {
		mp_free(b.p);
		return b.rc;
	}
	*out = b.p;
	return (int64_t)b.n;
}
