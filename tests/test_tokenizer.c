/*
 * test_tokenizer.c — the Unicode tables, the deepseek-v3 pre-tokenizer, BPE,
 * special tokens, BOS, streaming decode, the R1 chat template, the
 * tokenizer.json loader, and the real DeepSeek-V3 tokenizer against ids from
 * the reference JS tokenizer (tests/tokvec/gen.mjs).
 *
 * The real tokenizer.json is committed xz-compressed
 * (tests/tokvec/deepseek_v3_tokenizer.json.xz, 1.3 MB) and unpacked through
 * `xz -dc`; UnicodeData.txt comes from Debian's unicode-data package when
 * installed.  A case whose input this machine lacks is skipped alone.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "hftok.h"
#include "mp_test.h"
#include "tokenizer.h"
#include "unicode.h"

/* The source tree: $srcdir under make check, else derived from __FILE__. */
static const char *srcdir(void)
{
	static char dir[4096];
	const char *d = getenv("srcdir");
	if (d && *d)
		return d;
	snprintf(dir, sizeof dir, "%s", __FILE__);
	char *cut = strstr(dir, "tests/test_tokenizer.c");
	if (!cut)
		return ".";
	*cut = '\0';
	return dir[0] ? dir : ".";
}

/* ------------------------------------------------------------------------ */
/* Unicode                                                                   */

static void test_unicode_table_matches_ucd(void)
{
	FILE *f = fopen("/usr/share/unicode/UnicodeData.txt", "r");
	if (!f)
		SKIP_CASE("/usr/share/unicode/UnicodeData.txt absent; apt-get install unicode-data");
	static const char classes[] = "LMNPSZC";
	static unsigned char want[0x110000];
	memset(want, MP_UC_C, sizeof want);
	char line[512];
	unsigned long first = 0;
	int have_first = 0, bad = 0;
	while (fgets(line, sizeof line, f)) {
		char *name = strchr(line, ';');
		char *gc = name ? strchr(name + 1, ';') : NULL;
		REQUIRE(gc);
		unsigned long cp = strtoul(line, NULL, 16);
		const char *k = strchr(classes, gc[1]);
		REQUIRE(k && cp < 0x110000);
		if (strstr(name, ", First>;")) {
			first = cp;
			have_first = 1;
			continue;
		}
		unsigned long lo = have_first && strstr(name, ", Last>;") ? first : cp;
		have_first = 0;
		for (unsigned long x = lo; x <= cp; x++)
			want[x] = (unsigned char)(k - classes);
	}
	fclose(f);
	for (uint32_t cp = 0; cp < 0x110000; cp++) {
		if ((unsigned)mp_unicode_class(cp) != want[cp] && bad++ < 5)
			MP_TEST_FAIL("U+%04X: table says class %c, UnicodeData.txt says %c", cp,
				     classes[mp_unicode_class(cp)], classes[want[cp]]);
	}
	CHECK_EQ_INT(bad, 0);
}

/* White_Space from PropList.txt. */
static void test_unicode_space_matches_proplist(void)
{
	FILE *f = fopen("/usr/share/unicode/PropList.txt", "r");
	if (!f)
		SKIP_CASE("/usr/share/unicode/PropList.txt absent; apt-get install unicode-data");
	char line[512];
	int bad = 0;
	static unsigned char space[0x110000];
	memset(space, 0, sizeof space);
	while (fgets(line, sizeof line, f)) {
		if (!strstr(line, "; White_Space"))
			continue;
		char *end;
		unsigned long lo = strtoul(line, &end, 16), hi = lo;
		if (end[0] == '.' && end[1] == '.')
			hi = strtoul(end + 2, NULL, 16);
		for (unsigned long x = lo; x <= hi && x < 0x110000; x++)
			space[x] = 1;
	}
	fclose(f);
	bad = 0;
	for (uint32_t cp = 0; cp < 0x110000; cp++)
		if (mp_unicode_is_space(cp) != space[cp] && bad++ < 5)
			MP_TEST_FAIL("U+%04X: White_Space %d, PropList.txt says %d", cp, mp_unicode_is_space(cp), space[cp]);
	CHECK_EQ_INT(bad, 0);
}

static void test_unicode_spot_checks(void)
{
	CHECK_EQ_INT(mp_unicode_class('a'), MP_UC_L);
	CHECK_EQ_INT(mp_unicode_class('7'), MP_UC_N);
	CHECK_EQ_INT(mp_unicode_class('!'), MP_UC_P);
	CHECK_EQ_INT(mp_unicode_class('+'), MP_UC_S);
	CHECK_EQ_INT(mp_unicode_class(' '), MP_UC_Z);
	CHECK_EQ_INT(mp_unicode_class('\n'), MP_UC_C);
	CHECK_EQ_INT(mp_unicode_class(0x0301), MP_UC_M);   /* combining acute */
	CHECK_EQ_INT(mp_unicode_class(0x4E2D), MP_UC_L);   /* 中 */
	CHECK_EQ_INT(mp_unicode_class(0x1F600), MP_UC_S);  /* 😀 */
	CHECK_EQ_INT(mp_unicode_class(0x200D), MP_UC_C);   /* ZWJ */
	CHECK_EQ_INT(mp_unicode_class(0x2460), MP_UC_N);   /* ① */
	CHECK_EQ_INT(mp_unicode_class(0x10FFFF), MP_UC_C);
	CHECK_EQ_INT(mp_unicode_class(0x110000), MP_UC_C);
	CHECK(mp_unicode_is_space(0x3000));
	CHECK(mp_unicode_is_space('\r'));
	CHECK(!mp_unicode_is_space(0x200B));
	CHECK(!mp_unicode_is_space(0xFEFF));
}

static void test_utf8(void)
{
	uint32_t cp;
	char buf[4];
	for (uint32_t c = 0; c < 0x110000; c += (c < 0x800 ? 1 : 97)) {
		if (c >= 0xD800 && c <= 0xDFFF)
			continue;
		int n = mp_unicode_encode(c, buf);
		CHECK_EQ_INT(mp_unicode_decode(buf, (size_t)n, &cp), n);
		CHECK_EQ_U64(cp, c);
	}
	/* Malformed: overlong, surrogate, stray continuation, truncated, > 10FFFF. */
	const char *bad[] = { "\xC0\xAF", "\xED\xA0\x80", "\x80", "\xE4\xB8", "\xF4\x90\x80\x80", "\xFF" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_EQ_INT(mp_unicode_decode(bad[i], strlen(bad[i]), &cp), 1);
		CHECK_EQ_U64(cp, MP_UNICODE_INVALID);
	}
	CHECK_EQ_U64(mp_unicode_complete_prefix("ab\xE4\xB8", 4), 2);
	CHECK_EQ_U64(mp_unicode_complete_prefix("ab\xE4", 3), 2);
	CHECK_EQ_U64(mp_unicode_complete_prefix("ab\xE4\xB8\xAD", 5), 5);
	CHECK_EQ_U64(mp_unicode_complete_prefix("\xF0\x9F\x98", 3), 0);
	CHECK_EQ_U64(mp_unicode_complete_prefix("a\x80", 2), 2);      /* stray: not held */
	CHECK_EQ_U64(mp_unicode_complete_prefix("a\xE0\x80", 3), 3);  /* can never be valid */
}

/* ------------------------------------------------------------------------ */
/* A small synthetic byte-level vocabulary                                   */

/* The byte-level text of byte b (FORMATS.md §5.4). */
static int byte_text(unsigned b, char out[4])
{
	uint32_t cp = b;
	if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)) {
		uint32_t n = 0;
		for (unsigned x = 0; x < b; x++)
			if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE))
				n++;
		cp = 0x100 + n;
	}
	return mp_unicode_encode(cp, out);
}

struct small {
	struct mp_tok_str tokens[300];
	int32_t types[300];
	char store[300][32];
	struct mp_tok_str merges[16];
	struct mp_tok_vocab v;
};

static void small_add(struct small *s, const char *text, int type)
{
	uint32_t i = s->v.n_tokens++;
	snprintf(s->store[i], sizeof s->store[i], "%s", text);
	s->tokens[i] = (struct mp_tok_str){ s->store[i], (uint32_t)strlen(s->store[i]) };
	s->types[i] = type;
}

/* Ids: 0 BOS, 1 EOS, 2..257 the bytes, then merge results and specials. */
static void small_init(struct small *s)
{
	memset(s, 0, sizeof *s);
	s->v.tokens = s->tokens;
	s->v.types = s->types;
	s->v.merges = s->merges;
	small_add(s, "<｜begin▁of▁sentence｜>", MP_TOK_CONTROL);
	small_add(s, "<｜end▁of▁sentence｜>", MP_TOK_CONTROL);
	for (unsigned b = 0; b < 256; b++) {
		char t[5] = { 0 };
		byte_text(b, t);
		small_add(s, t, MP_TOK_NORMAL);
	}
	static const char *const m[] = { "a b", "ab c", "Ġ a", "Ġ ab", "b c", "a a", "aa a" };
	static const char *const r[] = { "ab", "abc", "Ġa", "Ġab", "bc", "aa", "aaa" };
	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
		s->merges[i] = (struct mp_tok_str){ m[i], (uint32_t)strlen(m[i]) };
		small_add(s, r[i], MP_TOK_NORMAL);
	}
	s->v.n_merges = sizeof m / sizeof m[0];
	small_add(s, "<｜User｜>", MP_TOK_CONTROL);
	small_add(s, "<｜User｜>x", MP_TOK_CONTROL);   /* longer, same prefix */
	small_add(s, "<think>", MP_TOK_USER_DEFINED);
	s->v.pre = "deepseek-v3";
	s->v.bos_id = 0;
	s->v.eos_id = 1;
	s->v.add_bos = 1;
}

static struct mp_tok *small_tok(struct small *s)
{
	char err[256] = "";
	struct mp_tok *t = NULL;
	int rc = mp_tok_create(&s->v, &t, err, sizeof err);
	if (rc)
		MP_TEST_FAIL("mp_tok_create: %s (%s)", err, mp_strerror(rc));
	return t;
}

static int enc(struct mp_tok *t, const char *text, unsigned flags, int32_t *ids, size_t cap)
{
	return mp_tok_encode(t, text, strlen(text), flags, ids, cap);
}

static void test_bpe_merge_order(void)
{
	struct small s;
	small_init(&s);
	struct mp_tok *t = small_tok(&s);
	REQUIRE(t);
	CHECK_EQ_INT(mp_tok_n_merges(t), 7);
	int32_t ids[16];
	int32_t abc = mp_tok_find(t, "abc", 3), ab = mp_tok_find(t, "ab", 2);
	int32_t gab = mp_tok_find(t, "Ġab", strlen("Ġab")), aaa = mp_tok_find(t, "aaa", 3);
	REQUIRE(abc > 0 && ab > 0 && gab > 0 && aaa > 0);
	/* "abc": a b (rank 0) before b c (rank 4), then ab c. */
	CHECK_EQ_INT(enc(t, "abc", 0, ids, 16), 1);
	CHECK_EQ_INT(ids[0], abc);
	/* " ab" is one piece: a b (rank 0) before Ġ a (rank 2), then Ġ ab. */
	CHECK_EQ_INT(enc(t, "x ab", 0, ids, 16), 2);
	CHECK_EQ_INT(ids[0], 2 + 'x');
	CHECK_EQ_INT(ids[1], gab);
	/* "aaaa": leftmost "a a" first -> aa aa -> (no "aa aa") ; aa a exists
	 * only for aa followed by a single a. */
	CHECK_EQ_INT(enc(t, "aaa", 0, ids, 16), 1);
	CHECK_EQ_INT(ids[0], aaa);
	CHECK_EQ_INT(enc(t, "aaaa", 0, ids, 16), 2);
	CHECK_EQ_INT(ids[0], mp_tok_find(t, "aa", 2));
	CHECK_EQ_INT(ids[1], mp_tok_find(t, "aa", 2));
	/* A short output buffer still reports the full count. */
	/* "abc abc abc": abc, then twice Ġ abc (no merge "Ġ abc"). */
	CHECK_EQ_INT(enc(t, "abc abc abc", 0, ids, 1), 5);
	CHECK_EQ_INT(ids[0], abc);
	/* Invalid UTF-8 goes through byte by byte. */
	CHECK_EQ_INT(enc(t, "\xFF\xC0", 0, ids, 16), 2);
	CHECK_EQ_INT(ids[0], 2 + 0xFF);
	CHECK_EQ_INT(ids[1], 2 + 0xC0);
	mp_tok_destroy(t);
}

static void test_special_tokens_and_bos(void)
{
	struct small s;
	small_init(&s);
	struct mp_tok *t = small_tok(&s);
	REQUIRE(t);
	int32_t ids[64];
	int32_t user = mp_tok_find(t, "<｜User｜>", strlen("<｜User｜>"));
	int32_t userx = mp_tok_find(t, "<｜User｜>x", strlen("<｜User｜>x"));
	int32_t think = mp_tok_find(t, "<think>", 7);
	REQUIRE(user > 0 && userx > 0 && think > 0);
	/* Longest match at a position wins. */
	CHECK_EQ_INT(enc(t, "<｜User｜>xy", MP_TOK_PARSE_SPECIAL, ids, 64), 2);
	CHECK_EQ_INT(ids[0], userx);
	CHECK_EQ_INT(ids[1], 2 + 'y');
	CHECK_EQ_INT(enc(t, "a<｜User｜>", MP_TOK_PARSE_SPECIAL, ids, 64), 2);
	CHECK_EQ_INT(ids[1], user);
	/* Without PARSE_SPECIAL control tokens are plain text; user-defined
	 * ones are still matched (llama.cpp). */
	int n = enc(t, "<｜User｜><think>", 0, ids, 64);
	CHECK(n > 2);
	CHECK(ids[0] != user);
	CHECK_EQ_INT(ids[n - 1], think);
	/* BOS: added once; not again when the text starts with it. */
	CHECK_EQ_INT(enc(t, "ab", MP_TOK_ADD_BOS, ids, 64), 2);
	CHECK_EQ_INT(ids[0], 0);
	CHECK_EQ_INT(enc(t, "<｜begin▁of▁sentence｜>ab", MP_TOK_ADD_BOS | MP_TOK_PARSE_SPECIAL, ids, 64), 2);
	CHECK_EQ_INT(ids[0], 0);
	CHECK_EQ_INT(ids[1], mp_tok_find(t, "ab", 2));
	CHECK_EQ_INT(enc(t, "", MP_TOK_ADD_BOS, ids, 64), 1);
	CHECK_EQ_INT(enc(t, "", 0, ids, 64), 0);
	mp_tok_destroy(t);
	/* add_bos false: nothing is added; add_eos: EOS appended. */
	s.v.add_bos = 0;
	s.v.add_eos = 1;
	t = small_tok(&s);
	REQUIRE(t);
	CHECK_EQ_INT(enc(t, "ab", MP_TOK_ADD_BOS, ids, 64), 2);
	CHECK_EQ_INT(ids[1], 1);
	mp_tok_destroy(t);
}

static void test_create_errors(void)
{
	struct small s;
	small_init(&s);
	char err[256] = "";
	struct mp_tok *t = (struct mp_tok *)&s;   /* must be reset to NULL */
	s.v.pre = "llama-bpe";
	CHECK_EQ_INT(mp_tok_create(&s.v, &t, err, sizeof err), -MP_EFORMAT);
	CHECK(t == NULL);
	CHECK_CONTAINS(err, "tokenizer.ggml.pre");
	CHECK_CONTAINS(err, "\"llama-bpe\"");
	s.v.pre = NULL;
	s.v.model = "llama";
	CHECK_EQ_INT(mp_tok_create(&s.v, &t, err, sizeof err), -MP_EFORMAT);
	CHECK_CONTAINS(err, "\"llama\"");
	s.v.model = NULL;
	s.v.bos_id = 999999;
	CHECK_EQ_INT(mp_tok_create(&s.v, &t, err, sizeof err), -MP_EFORMAT);
	CHECK_CONTAINS(err, "bos_token_id");
	s.v.bos_id = 0;
	s.types[5] = 9;
	CHECK_EQ_INT(mp_tok_create(&s.v, &t, err, sizeof err), -MP_EFORMAT);
	CHECK_CONTAINS(err, "token_type[5]");
	s.types[5] = MP_TOK_NORMAL;
	/* A vocabulary without byte tokens cannot encode those bytes. */
	s.v.n_tokens = 2;
	s.v.n_merges = 0;
	CHECK_EQ_INT(mp_tok_create(&s.v, &t, err, sizeof err), 0);
	int32_t ids[4];
	CHECK_EQ_INT(enc(t, "a", 0, ids, 4), -MP_ENOTFOUND);
	mp_tok_destroy(t);
	mp_tok_destroy(NULL);
}

/* Pieces of text joined with '|'. */
static void pieces(struct mp_tok *t, const char *text, char *out, size_t cap)
{
	uint32_t ends[128];
	int n = mp_tok_pretokenize(t, text, strlen(text), ends, 128);
	size_t w = 0, start = 0;
	out[0] = '\0';
	for (int i = 0; i < n && i < 128; i++) {
		w += (size_t)snprintf(out + w, cap - w, "%s%.*s", i ? "|" : "", (int)(ends[i] - start), text + start);
		start = ends[i];
	}
}

static void test_pretokenizer(void)
{
	struct small s;
	small_init(&s);
	struct mp_tok *t = small_tok(&s);
	REQUIRE(t);
	static const char *const cases[][2] = {
		{ "Hello world", "Hello| world" },
		{ "1234567", "123|456|7" },
		{ "abc123def", "abc|123|def" },
		{ "a  b", "a| | b" },                  /* \s+(?!\S) leaves the last space */
		{ "a   ", "a|   " },                   /* at the end all of it */
		{ "x\n\ny", "x|\n\n|y" },
		{ "x \n y", "x| \n| y" },              /* \s*[\r\n]+ */
		{ "it's", "it|'s" },                   /* punct + ASCII letters */
		{ "don't!!", "don|'t|!!" },
		{ "a... b", "a|...| b" },
		{ "(x)", "(x|)" },
		{ "!!!\n\nz", "!!!\n\n|z" },           /* P/S run takes CR/LF */
		{ "中文abc", "中文|abc" },
		{ "ab中", "ab|中" },
		{ "日本語のテキスト", "日本語のテキスト" },
		{ "\xcc\x81" "abc", "\xcc\x81" "abc" },  /* leading mark joins */
		{ " \xcc\x81x", " \xcc\x81x" },
		{ "a\xe2\x80\x8d" "b", "a|\xe2\x80\x8d" "b" },  /* ZWJ (Cf) as the optional prefix */
		{ "$100", "$|100" },
		{ "\t\tx", "\t|\tx" },
		{ "", "" },
	};
	char got[512];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		pieces(t, cases[i][0], got, sizeof got);
		CHECK_STR(got, cases[i][1]);
	}
	mp_tok_destroy(t);
}

static void test_stream_decode(void)
{
	struct small s;
	small_init(&s);
	struct mp_tok *t = small_tok(&s);
	REQUIRE(t);
	char buf[256];
	size_t cap = mp_tok_stream_cap(t);
	REQUIRE(cap <= sizeof buf);
	struct mp_tok_stream st;
	mp_tok_stream_init(&st, 0);
	/* "中" = E4 B8 AD arrives one byte token at a time. */
	CHECK_EQ_U64(mp_tok_stream_push(t, &st, 2 + 0xE4, buf, cap), 0);
	CHECK_EQ_U64(mp_tok_stream_push(t, &st, 2 + 0xB8, buf, cap), 0);
	size_t n = mp_tok_stream_push(t, &st, 2 + 0xAD, buf, cap);
	CHECK_EQ_U64(n, 3);
	CHECK(memcmp(buf, "中", 3) == 0);
	/* An interrupted sequence becomes U+FFFD, then the next char prints. */
	CHECK_EQ_U64(mp_tok_stream_push(t, &st, 2 + 0xE4, buf, cap), 0);
	n = mp_tok_stream_push(t, &st, 2 + 'a', buf, cap);
	CHECK_EQ_U64(n, 4);
	CHECK(memcmp(buf, "\xEF\xBF\xBD" "a", 4) == 0);
	/* A held tail at the end is flushed as U+FFFD. */
	CHECK_EQ_U64(mp_tok_stream_push(t, &st, 2 + 0xF0, buf, cap), 0);
	CHECK_EQ_U64(mp_tok_stream_push(t, &st, 2 + 0x9F, buf, cap), 0);
	CHECK_EQ_U64(mp_tok_stream_flush(&st, buf, cap), 3);
	CHECK_EQ_U64(mp_tok_stream_flush(&st, buf, cap), 0);
	/* Control tokens print only when asked; user-defined always. */
	CHECK_EQ_U64(mp_tok_stream_push(t, &st, 0, buf, cap), 0);
	int32_t think = mp_tok_find(t, "<think>", 7);
	CHECK_EQ_U64(mp_tok_stream_push(t, &st, think, buf, cap), 7);
	mp_tok_stream_init(&st, MP_TOK_DECODE_SPECIAL);
	n = mp_tok_stream_push(t, &st, 0, buf, cap);
	CHECK_EQ_U64(n, strlen("<｜begin▁of▁sentence｜>"));
	/* Whole decode: pieces are byte-level decoded ("Ġab" -> " ab"). */
	int32_t ids[] = { 0, mp_tok_find(t, "Ġab", strlen("Ġab")), 2 + '\n', 2 + 0xE4, 2 + 0xB8, 2 + 0xAD };
	char out[64];
	CHECK_EQ_U64(mp_tok_decode(t, ids, 6, 0, out, sizeof out), 7);
	CHECK_STR(out, " ab\n中");
	CHECK_EQ_U64(mp_tok_decode(t, ids, 6, 0, out, 4), 7);   /* truncated, NUL-terminated */
	CHECK_STR(out, " ab");
	size_t len;
	CHECK(mp_tok_piece(t, -1, &len) == NULL && len == 0);
	mp_tok_destroy(t);
}

static void test_chat_render(void)
{
	char *s = NULL;
	struct mp_tok_msg one[] = { { MP_TOK_USER, "What is 1+1?" } };
	int64_t n = mp_tok_chat_render(one, 1, MP_TOK_CHAT_GEN_PROMPT | MP_TOK_CHAT_THINK, &s);
	REQUIRE(n > 0 && s);
	CHECK_STR(s, "<｜begin▁of▁sentence｜><｜User｜>What is 1+1?<｜Assistant｜><think>\n");
	CHECK_EQ_U64((uint64_t)n, strlen(s));
	mp_free(s);
	struct mp_tok_msg two[] = {
		{ MP_TOK_SYSTEM, "S1" }, { MP_TOK_USER, "Q1" },
		{ MP_TOK_ASSISTANT, "<think>\nhmm\n</think>\n\nA1" }, { MP_TOK_SYSTEM, "S2" },
		{ MP_TOK_USER, "Q2" },
	};
	n = mp_tok_chat_render(two, 5, MP_TOK_CHAT_GEN_PROMPT, &s);
	REQUIRE(n > 0);
	CHECK_STR(s, "<｜begin▁of▁sentence｜>S1\n\nS2<｜User｜>Q1<｜Assistant｜>\n\nA1<｜end▁of▁sentence｜>"
		     "<｜User｜>Q2<｜Assistant｜>");
	mp_free(s);
	struct mp_tok_msg bad[] = { { MP_TOK_USER, NULL } };
	CHECK_EQ_INT(mp_tok_chat_render(bad, 1, 0, &s), -MP_EARG);
	CHECK(s == NULL);
}

/* ------------------------------------------------------------------------ */
/* tokenizer.json loader                                                     */

static struct mp_hftok *load_json(const char *json, uint32_t pad, char *err, size_t errlen, int *rc)
{
	struct mp_hftok *h = NULL;
	*rc = mp_hftok_load_mem(json, strlen(json), "test.json", pad, &h, err, errlen);
	return h;
}

static void test_hftok_small(void)
{
	/* Byte-level texts: "Ġ" is U+0120 (space). */
	const char *json_str =
		"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\\u0120\":3,\"\\u0120ab\":4},"
		"\"merges\":[\"a b\",\"\\u0120 ab\"]},"
		"\"added_tokens\":[{\"id\":6,\"content\":\"<\xef\xbd\x9c" "begin\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>\",\"special\":true},"
		"{\"id\":7,\"content\":\"<think>\",\"special\":false},"
		"{\"id\":8,\"content\":\"<\xef\xbd\x9cUser\xef\xbd\x9c>\",\"special\":false}],"
		"\"pre_tokenizer\":null}";
	const char *json_pair =
		"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\\u0120\":3,\"\\u0120ab\":4},"
		"\"merges\":[[\"a\",\"b\"],[\"\\u0120\",\"ab\"]]},\"added_tokens\":[]}";
	char err[256] = "";
	int rc;
	struct mp_hftok *h = load_json(json_str, 10, err, sizeof err, &rc);
	REQUIRE(rc == 0 && h);
	struct mp_tok_vocab *v = mp_hftok_vocab(h);
	CHECK_EQ_INT(v->n_tokens, 10);   /* padded */
	CHECK_EQ_INT(v->n_merges, 2);
	CHECK(v->merges[1].len == strlen("Ġ ab") && memcmp(v->merges[1].s, "Ġ ab", v->merges[1].len) == 0);
	CHECK_EQ_INT(v->types[0], MP_TOK_NORMAL);
	CHECK_EQ_INT(v->types[5], MP_TOK_UNUSED);   /* a hole */
	CHECK(v->tokens[5].len == 6 && memcmp(v->tokens[5].s, "[PAD5]", 6) == 0);
	CHECK_EQ_INT(v->types[6], MP_TOK_CONTROL);
	CHECK_EQ_INT(v->types[7], MP_TOK_USER_DEFINED);
	CHECK_EQ_INT(v->types[8], MP_TOK_CONTROL);  /* looks special */
	CHECK_EQ_INT(v->types[9], MP_TOK_UNUSED);
	CHECK_EQ_INT(v->bos_id, 6);
	CHECK_EQ_INT(v->eos_id, -1);
	CHECK_EQ_INT(v->add_bos, 1);
	CHECK_STR(v->pre, "hf-unrecognized");
	/* Not a deepseek-v3 pre-tokenizer: create names it. */
	struct mp_tok *t = NULL;
	CHECK_EQ_INT(mp_tok_create(v, &t, err, sizeof err), -MP_EFORMAT);
	CHECK_CONTAINS(err, "hf-unrecognized");
	v->pre = "deepseek-v3";
	CHECK_EQ_INT(mp_tok_create(v, &t, err, sizeof err), 0);
	REQUIRE(t);
	CHECK_EQ_INT(mp_tok_n_merges(t), 2);
	mp_tok_destroy(t);
	mp_hftok_destroy(h);
	/* The pair format gives the same merges. */
	h = load_json(json_pair, 0, err, sizeof err, &rc);
	REQUIRE(rc == 0 && h);
	v = mp_hftok_vocab(h);
	CHECK_EQ_INT(v->n_tokens, 5);
	CHECK(v->merges[0].len == 3 && memcmp(v->merges[0].s, "a b", 3) == 0);
	CHECK(v->merges[1].len == strlen("Ġ ab") && memcmp(v->merges[1].s, "Ġ ab", v->merges[1].len) == 0);
	mp_hftok_destroy(h);
}

static void test_hftok_errors(void)
{
	char err[256] = "";
	int rc;
	struct mp_hftok *h = load_json("{\"model\": {", 0, err, sizeof err, &rc);
	CHECK_EQ_INT(rc, -MP_EFORMAT);
	CHECK(h == NULL);
	CHECK_CONTAINS(err, "test.json: line 1");
	h = load_json("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", 0, err, sizeof err, &rc);
	CHECK_EQ_INT(rc, -MP_EFORMAT);
	CHECK_CONTAINS(err, "\"Unigram\"");
	h = load_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-3},\"merges\":[]}}", 0, err, sizeof err, &rc);
	CHECK_EQ_INT(rc, -MP_EFORMAT);
	CHECK_CONTAINS(err, "-3");
	h = load_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[7]}}", 0, err, sizeof err, &rc);
	CHECK_EQ_INT(rc, -MP_EFORMAT);
	CHECK_CONTAINS(err, "model.merges[0]");
	h = load_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":[{\"id\":1}]}",
		      0, err, sizeof err, &rc);
	CHECK_EQ_INT(rc, -MP_EFORMAT);
	CHECK_CONTAINS(err, "added_tokens[0].content");
	CHECK_EQ_INT(mp_hftok_load("/nonexistent/tokenizer.json", 0, &h, err, sizeof err), -ENOENT);
	CHECK_CONTAINS(err, "/nonexistent/tokenizer.json");
	mp_hftok_destroy(NULL);
}

/* ------------------------------------------------------------------------ */
/* The real DeepSeek-V3 tokenizer                                            */

static char *read_xz(const char *path, size_t *len)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "xz -dc -- '%s' 2>/dev/null", path);
	FILE *p = popen(cmd, "r");
	if (!p)
		return NULL;
	size_t cap = 8 << 20, n = 0;
	char *buf = mp_malloc(cap);
	while (buf) {
		if (n == cap) {
			char *nb = mp_realloc(buf, cap * 2);
			if (!nb) {
				mp_free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		size_t r = fread(buf + n, 1, cap - n, p);
		if (!r)
			break;
		n += r;
	}
	if (pclose(p) != 0 || n == 0) {
		mp_free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

static void test_deepseek_v3_vectors(void)
{
	char path[4096], err[512] = "";
	snprintf(path, sizeof path, "%s/tests/tokvec/deepseek_v3_tokenizer.json.xz", srcdir());
	/* the file is the project's: missing is a failure; xz is the machine's */
	if (access(path, R_OK) != 0) {
		MP_TEST_FAIL("%s: %s (the project carries it)", path, strerror(errno));
		return;
	}
	if (system("xz --version >/dev/null 2>&1") != 0)
		SKIP_CASE("no xz to unpack tests/tokvec/deepseek_v3_tokenizer.json.xz; apt-get install xz-utils");
	size_t len = 0;
	char *json = read_xz(path, &len);
	if (!json) {
		MP_TEST_FAIL("xz -dc %s: no output", path);
		return;
	}
	struct mp_hftok *h = NULL;
	int rc = mp_hftok_load_mem(json, len, path, 129280, &h, err, sizeof err);
	mp_free(json);
	if (rc)
		MP_TEST_FAIL("mp_hftok_load_mem: %s", err);
	REQUIRE(h);
	struct mp_tok_vocab *v = mp_hftok_vocab(h);
	CHECK_EQ_INT(v->n_tokens, 129280);
	CHECK_EQ_INT(v->n_merges, 127741);
	CHECK_STR(v->pre, "deepseek-v3");
	CHECK_EQ_INT(v->bos_id, 0);
	CHECK_EQ_INT(v->eos_id, 1);
	struct mp_tok *t = NULL;
	rc = mp_tok_create(v, &t, err, sizeof err);
	if (rc)
		MP_TEST_FAIL("mp_tok_create: %s", err);
	REQUIRE(t);
	CHECK_EQ_INT(mp_tok_n_merges(t), 127741);
	CHECK_EQ_INT(mp_tok_find(t, "<｜User｜>", strlen("<｜User｜>")), 128803);
	CHECK_EQ_INT(mp_tok_find(t, "<｜Assistant｜>", strlen("<｜Assistant｜>")), 128804);
	CHECK_EQ_INT(mp_tok_type(t, 128803), MP_TOK_CONTROL);
	CHECK_EQ_INT(mp_tok_type(t, 129000), MP_TOK_UNUSED);

	snprintf(path, sizeof path, "%s/tests/tokvec/deepseek_v3.json", srcdir());
	json_error_t je;
	json_t *root = json_load_file(path, JSON_ALLOW_NUL, &je);
	if (!root)
		MP_TEST_FAIL("%s: line %d: %s", path, je.line, je.text);
	REQUIRE(root && json_array_size(root) > 50);
	size_t cap = 4096, scap = mp_tok_stream_cap(t);
	int32_t *ids = mp_malloc_array(cap, sizeof *ids);
	char *out = mp_malloc(1 << 16), *sbuf = mp_malloc(scap);
	REQUIRE(ids && out && sbuf);
	size_t i, bad = 0;
	json_t *e;
	json_array_foreach(root, i, e) {
		json_t *jt = json_object_get(e, "text"), *jids = json_object_get(e, "ids");
		const char *text = json_string_value(jt);
		size_t tl = json_string_length(jt), want = json_array_size(jids);
		int n = mp_tok_encode(t, text, tl, MP_TOK_PARSE_SPECIAL, ids, cap);
		int same = n == (int)want;
		for (size_t k = 0; same && k < want; k++)
			same = ids[k] == json_integer_value(json_array_get(jids, k));
		if (!same && bad++ < 8) {
			char g[512] = "", w[512] = "";
			for (int k = 0, o = 0; k < n && k < 40 && o < 480; k++)
				o += snprintf(g + o, sizeof g - (size_t)o, " %d", ids[k]);
			for (size_t k = 0, o = 0; k < want && k < 40 && o < 480; k++)
				o += (size_t)snprintf(w + o, sizeof w - o, " %lld",
						      (long long)json_integer_value(json_array_get(jids, k)));
			MP_TEST_FAIL("vector %zu \"%s\": expected%s, got%s", i, text, w, g);
		}
		/* Round trip, whole and streamed token by token. */
		size_t dl = mp_tok_decode(t, ids, (size_t)(n > 0 ? n : 0), MP_TOK_DECODE_SPECIAL, out, 1 << 16);
		if (dl != tl || memcmp(out, text, tl) != 0)
			MP_TEST_FAIL("vector %zu: decode gives \"%s\", expected \"%s\"", i, out, text);
		struct mp_tok_stream st;
		mp_tok_stream_init(&st, MP_TOK_DECODE_SPECIAL);
		size_t sl = 0;
		for (int k = 0; k < n; k++) {
			size_t w = mp_tok_stream_push(t, &st, ids[k], sbuf, scap);
			/* Every chunk is complete UTF-8 on its own. */
			for (size_t o = 0; o < w;) {
				uint32_t cp;
				int adv = mp_unicode_decode(sbuf + o, w - o, &cp);
				if (cp == MP_UNICODE_INVALID) {
					MP_TEST_FAIL("vector %zu: stream chunk %d is not valid UTF-8", i, k);
					break;
				}
				o += (size_t)adv;
			}
			if (sl + w <= tl && memcmp(text + sl, sbuf, w) != 0)
				MP_TEST_FAIL("vector %zu: stream chunk %d differs", i, k);
			sl += w;
		}
		CHECK_EQ_U64(mp_tok_stream_flush(&st, sbuf, scap), 0);
		CHECK_EQ_U64(sl, tl);
	}
	CHECK_EQ_U64(bad, 0);
	printf("  %zu vectors checked, %zu differ\n", json_array_size(root), bad);
	/* The rendered chat prompt tokenizes to the committed vector 0 of the
	 * chat group, and BOS is not doubled. */
	struct mp_tok_msg msg[] = { { MP_TOK_USER, "What is 1+1?" } };
	char *chat = NULL;
	int64_t cl = mp_tok_chat_render(msg, 1, MP_TOK_CHAT_GEN_PROMPT | MP_TOK_CHAT_THINK, &chat);
	REQUIRE(cl > 0);
	int n = mp_tok_encode(t, chat, (size_t)cl, MP_TOK_PARSE_SPECIAL | MP_TOK_ADD_BOS, ids, cap);
	CHECK(n > 3);
	CHECK_EQ_INT(ids[0], 0);
	CHECK_EQ_INT(ids[1], 128803);
	CHECK(ids[2] != 0);
	mp_free(chat);
	/* Without PARSE_SPECIAL a control token's text is plain text. */
	n = mp_tok_encode(t, "<｜User｜>", strlen("<｜User｜>"), 0, ids, cap);
	CHECK(n > 1);
	CHECK(ids[0] != 128803);
	mp_tok_destroy(t);
	/* R1's vocabulary: <think>/</think> replace placeholders 128798/128799
	 * as user-defined tokens, matched even without PARSE_SPECIAL. */
	struct mp_tok_str *toks = mp_malloc_array(v->n_tokens, sizeof *toks);
	int32_t *types = mp_malloc_array(v->n_tokens, sizeof *types);
	REQUIRE(toks && types);
	memcpy(toks, v->tokens, v->n_tokens * sizeof *toks);
	memcpy(types, v->types, v->n_tokens * sizeof *types);
	toks[128798] = (struct mp_tok_str){ "<think>", 7 };
	toks[128799] = (struct mp_tok_str){ "</think>", 8 };
	types[128798] = types[128799] = MP_TOK_USER_DEFINED;
	struct mp_tok_vocab r1v = *v;
	r1v.tokens = toks;
	r1v.types = types;
	t = NULL;
	rc = mp_tok_create(&r1v, &t, err, sizeof err);
	mp_free(toks);     /* create copies what it needs */
	mp_free(types);
	REQUIRE(rc == 0 && t);
	const char *r1 = "<think>\nhmm</think>ok";
	n = mp_tok_encode(t, r1, strlen(r1), 0, ids, cap);
	REQUIRE(n >= 4);
	CHECK_EQ_INT(ids[0], 128798);
	CHECK_EQ_INT(ids[n - 2], 128799);
	size_t dl = mp_tok_decode(t, ids, (size_t)n, 0, out, 1 << 16);
	CHECK_EQ_U64(dl, strlen(r1));
	CHECK_STR(out, r1);
	json_decref(root);
	mp_free(ids);
	mp_free(out);
	mp_free(sbuf);
	mp_tok_destroy(t);
	mp_hftok_destroy(h);
}

static void test_no_leaks(void)
{
	struct mp_alloc_stats st;
	mp_alloc_stats(&st);
	CHECK_EQ_U64(st.live_count, 0);
}

int main(void)
{
	RUN(test_unicode_table_matches_ucd);
	RUN(test_unicode_space_matches_proplist);
	RUN(test_unicode_spot_checks);
	RUN(test_utf8);
	RUN(test_bpe_merge_order);
	RUN(test_special_tokens_and_bos);
	RUN(test_create_errors);
	RUN(test_pretokenizer);
	RUN(test_stream_decode);
	RUN(test_chat_render);
	RUN(test_hftok_small);
	RUN(test_hftok_errors);
	RUN(test_deepseek_v3_vectors);
	RUN(test_no_leaks);
	return mp_test_end();
}
