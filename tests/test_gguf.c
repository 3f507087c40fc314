/*
 * test_gguf.c — the GGUF reader: a well-formed file read back field by field,
 * then one case per class of malformed input of FORMATS.md §1.6 (files built
 * byte by byte here, written to a temporary folder), each checking that open
 * fails with a message naming the file and the field, and split sets (found
 * by name, missing and foreign parts).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "gguf.h"
#include "mp_test.h"
#include "types.h"

static char tmpdir[256];

/* ---- a byte builder -------------------------------------------------------- */

struct buf {
	uint8_t *p;
	size_t n, cap;
};

static void put(struct buf *b, const void *src, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	memcpy(b->p + b->n, src, n);
	b->n += n;
}

static void u8(struct buf *b, uint8_t x) { put(b, &x, 1); }
static void u32(struct buf *b, uint32_t x) { put(b, &x, 4); }
static void u64(struct buf *b, uint64_t x) { put(b, &x, 8); }

static void str(struct buf *b, const char *s)
{
	u64(b, strlen(s));
	put(b, s, strlen(s));
}

/* A key with a u32 value. */
static void kv_u32(struct buf *b, const char *k, uint32_t v)
{
	str(b, k);
	u32(b, MP_GGUF_U32);
	u32(b, v);
}

struct tdesc {
	const char *name;
	uint32_t n_dims;
	uint64_t ne[4];
	uint32_t type;
	int64_t offset;           /* -1: contiguous */
};

struct spec {
	uint32_t magic, version;
	int64_t n_tensors, n_kv;  /* -1: counted */
	struct buf kvs;           /* KV records, raw */
	uint32_t n_kv_written;
	struct tdesc t[8];
	uint32_t nt;
	uint32_t align;
	int64_t cut;              /* >= 0: truncate the image to this many bytes */
};

static void spec_init(struct spec *s)
{
	memset(s, 0, sizeof *s);
	s->magic = MP_GGUF_MAGIC;
	s->version = 3;
	s->n_tensors = s->n_kv = -1;
	s->align = 32;
	s->cut = -1;
}

static uint64_t tbytes(const struct tdesc *t)
{
	uint64_t rb = 0, n = 1;
	if (mp_type_row_bytes(t->type, t->ne[0], &rb))
		return 0;
	for (uint32_t d = 1; d < t->n_dims && d < 4; d++)
		n *= t->ne[d];
	return rb * n;
}

/* The image; data bytes are i & 0xff at every position of a tensor. */
static struct buf build(struct spec *s)
{
	struct buf b = {0};
	u32(&b, s->magic);
	u32(&b, s->version);
	u64(&b, s->n_tensors >= 0 ? (uint64_t)s->n_tensors : s->nt);
	u64(&b, s->n_kv >= 0 ? (uint64_t)s->n_kv : s->n_kv_written);
	put(&b, s->kvs.p, s->kvs.n);
	uint64_t off = 0, total = 0;
	for (uint32_t i = 0; i < s->nt; i++) {
		struct tdesc *t = &s->t[i];
		str(&b, t->name);
		u32(&b, t->n_dims);
		for (uint32_t d = 0; d < t->n_dims; d++)
			u64(&b, d < 4 ? t->ne[d] : 1);
		u32(&b, t->type);
		uint64_t o = t->offset >= 0 ? (uint64_t)t->offset : off;
		u64(&b, o);
		uint64_t end = o + (tbytes(t) + s->align - 1) / s->align * s->align;
		if (end > total && end < (1u << 20))     /* absurd shapes get no data */
			total = end;
		off = end;
	}
	while (s->nt && b.n % s->align)
		u8(&b, 0);
	for (uint64_t i = 0; i < total; i++)
		u8(&b, (uint8_t)i);
	if (s->cut >= 0 && (size_t)s->cut < b.n)
		b.n = (size_t)s->cut;
	free(s->kvs.p);
	s->kvs.p = NULL;
	return b;
}

static void add_tensor(struct spec *s, const char *name, uint32_t type, uint32_t nd,
		       uint64_t ne0, uint64_t ne1, uint64_t ne2)
{
	struct tdesc *t = &s->t[s->nt++];
	memset(t, 0, sizeof *t);
	t->name = name;
	t->type = type;
	t->n_dims = nd;
	t->ne[0] = ne0;
	t->ne[1] = ne1;
	t->ne[2] = ne2;
	t->ne[3] = 1;
	t->offset = -1;
}

static const char *write_file(const char *name, const struct buf *b)
{
	static char path[512];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(b->p, 1, b->n, f) != b->n || fclose(f)) {
		fprintf(stderr, "cannot write %s\n", path);
		exit(1);
	}
	return path;
}

/* The well-formed file most cases corrupt one field of. */
static void good_spec(struct spec *s)
{
	spec_init(s);
	str(&s->kvs, "general.architecture");
	u32(&s->kvs, MP_GGUF_STRING);
	str(&s->kvs, "deepseek2");
	kv_u32(&s->kvs, "deepseek2.block_count", 61);
	s->n_kv_written = 2;
	add_tensor(s, "token_embd.weight", MP_TYPE_F32, 2, 8, 4, 1);
	add_tensor(s, "blk.3.ffn_up_exps.weight", MP_TYPE_Q8_0, 3, 64, 2, 4);
}

/* Opens the image (written as file name), expecting failure rc (0 = any
 * error) and a message containing the file name and want. */
static void expect_fail(struct spec *s, const char *name, int rc_want, const char *want)
{
	struct buf b = build(s);
	const char *path = write_file(name, &b);
	char err[MP_GGUF_ERR_LEN];
	struct mp_gguf *g = (struct mp_gguf *)1;
	int rc = mp_gguf_open(path, &g, err, sizeof err);
	if (rc == 0) {
		MP_TEST_FAIL("%s: opened, expected an error containing \"%s\"", name, want);
		mp_gguf_destroy(g);
	} else {
		CHECK(g == NULL);
		if (rc_want)
			CHECK_EQ_INT(rc, rc_want);
		CHECK_CONTAINS(err, name);
		CHECK_CONTAINS(err, want);
	}
	/* The same bytes through the memory parser. */
	rc = mp_gguf_open_mem(b.p, b.n, name, &g, err, sizeof err);
	CHECK(rc != 0);
	free(b.p);
}

/* ---- well-formed ----------------------------------------------------------- */

static void test_good(void)
{
	struct spec s;
	good_spec(&s);
	/* Every value type, a string array and an array of arrays. */
	str(&s.kvs, "t.u8"); u32(&s.kvs, MP_GGUF_U8); u8(&s.kvs, 200);
	str(&s.kvs, "t.i8"); u32(&s.kvs, MP_GGUF_I8); u8(&s.kvs, 0xfe);
	str(&s.kvs, "t.u16"); u32(&s.kvs, MP_GGUF_U16); u8(&s.kvs, 1); u8(&s.kvs, 2);
	str(&s.kvs, "t.i16"); u32(&s.kvs, MP_GGUF_I16); u8(&s.kvs, 0xff); u8(&s.kvs, 0xff);
	str(&s.kvs, "t.i32"); u32(&s.kvs, MP_GGUF_I32); u32(&s.kvs, (uint32_t)-5);
	float f = 2.5f;
	str(&s.kvs, "t.f32"); u32(&s.kvs, MP_GGUF_F32); put(&s.kvs, &f, 4);
	str(&s.kvs, "t.bool"); u32(&s.kvs, MP_GGUF_BOOL); u8(&s.kvs, 1);
	str(&s.kvs, "t.u64"); u32(&s.kvs, MP_GGUF_U64); u64(&s.kvs, 1ull << 40);
	str(&s.kvs, "t.i64"); u32(&s.kvs, MP_GGUF_I64); u64(&s.kvs, (uint64_t)-7);
	double d = 0.125;
	str(&s.kvs, "t.f64"); u32(&s.kvs, MP_GGUF_F64); put(&s.kvs, &d, 8);
	str(&s.kvs, "t.strs"); u32(&s.kvs, MP_GGUF_ARRAY); u32(&s.kvs, MP_GGUF_STRING); u64(&s.kvs, 3);
	str(&s.kvs, "a"); str(&s.kvs, ""); str(&s.kvs, "h e");
	str(&s.kvs, "t.nest"); u32(&s.kvs, MP_GGUF_ARRAY); u32(&s.kvs, MP_GGUF_ARRAY); u64(&s.kvs, 2);
	u32(&s.kvs, MP_GGUF_I32); u64(&s.kvs, 2); u32(&s.kvs, 7); u32(&s.kvs, 8);
	u32(&s.kvs, MP_GGUF_STRING); u64(&s.kvs, 1); str(&s.kvs, "x");
	s.n_kv_written += 12;
	struct buf b = build(&s);
	const char *path = write_file("good.gguf", &b);
	free(b.p);
	char err[MP_GGUF_ERR_LEN];
	struct mp_gguf *g;
	int rc = mp_gguf_open(path, &g, err, sizeof err);
	if (rc)
		MP_TEST_FAIL("open: %s", err);
	REQUIRE(rc == 0);
	CHECK_EQ_INT(mp_gguf_version(g), 3);
	CHECK_EQ_INT(mp_gguf_alignment(g), 32);
	CHECK_EQ_INT(mp_gguf_part_count(g), 1);
	CHECK_EQ_U64(mp_gguf_kv_count(g), 14);
	const char *arch;
	CHECK_EQ_INT(mp_gguf_get_str(g, "general.architecture", &arch), 0);
	CHECK_STR(arch, "deepseek2");
	uint32_t u;
	uint64_t u64v;
	int64_t i64v;
	float fv;
	int bv;
	CHECK_EQ_INT(mp_gguf_get_u32(g, "deepseek2.block_count", &u), 0);
	CHECK_EQ_INT(u, 61);
	CHECK_EQ_INT(mp_gguf_get_u32(g, "t.u8", &u), 0);
	CHECK_EQ_INT(u, 200);
	CHECK_EQ_INT(mp_gguf_get_u32(g, "t.u16", &u), 0);
	CHECK_EQ_INT(u, 0x201);
	CHECK_EQ_INT(mp_gguf_get_i64(g, "t.i8", &i64v), 0);
	CHECK_EQ_INT(i64v, -2);
	CHECK_EQ_INT(mp_gguf_get_i64(g, "t.i16", &i64v), 0);
	CHECK_EQ_INT(i64v, -1);
	CHECK_EQ_INT(mp_gguf_get_i64(g, "t.i32", &i64v), 0);
	CHECK_EQ_INT(i64v, -5);
	CHECK_EQ_INT(mp_gguf_get_i64(g, "t.i64", &i64v), 0);
	CHECK_EQ_INT(i64v, -7);
	CHECK_EQ_INT(mp_gguf_get_u64(g, "t.u64", &u64v), 0);
	CHECK_EQ_U64(u64v, 1ull << 40);
	CHECK_EQ_INT(mp_gguf_get_f32(g, "t.f32", &fv), 0);
	CHECK_NEAR(fv, 2.5, 0);
	CHECK_EQ_INT(mp_gguf_get_f32(g, "t.f64", &fv), 0);
	CHECK_NEAR(fv, 0.125, 0);
	CHECK_EQ_INT(mp_gguf_get_bool(g, "t.bool", &bv), 0);
	CHECK_EQ_INT(bv, 1);
	/* Errors name the key and the problem. */
	CHECK_EQ_INT(mp_gguf_get_u32(g, "t.u64", &u), -MP_ETYPE);
	CHECK_CONTAINS(mp_gguf_error(g), "'t.u64'");
	CHECK_CONTAINS(mp_gguf_error(g), "out of range");
	CHECK_EQ_INT(mp_gguf_get_u32(g, "t.i32", &u), -MP_ETYPE);
	CHECK_EQ_INT(mp_gguf_get_u32(g, "nope.key", &u), -MP_ENOTFOUND);
	CHECK_CONTAINS(mp_gguf_error(g), "'nope.key' is missing");
	CHECK_CONTAINS(mp_gguf_error(g), "good.gguf");
	CHECK_EQ_INT(mp_gguf_get_str(g, "t.u8", &arch), -MP_ETYPE);
	CHECK_CONTAINS(mp_gguf_error(g), "'t.u8' is u8, expected string");
	struct mp_gguf_array a, sub;
	CHECK_EQ_INT(mp_gguf_get_array(g, "t.strs", MP_GGUF_I32, &a), -MP_ETYPE);
	CHECK_CONTAINS(mp_gguf_error(g), "array of string, expected i32");
	REQUIRE(mp_gguf_get_array(g, "t.strs", MP_GGUF_STRING, &a) == 0);
	CHECK_EQ_U64(a.n, 3);
	uint64_t len;
	CHECK_STR(mp_gguf_array_str(&a, 0, &len), "a");
	CHECK_STR(mp_gguf_array_str(&a, 1, &len), "");
	CHECK_EQ_U64(len, 0);
	CHECK_STR(mp_gguf_array_str(&a, 2, &len), "h e");
	CHECK(mp_gguf_array_str(&a, 3, &len) == NULL);
	REQUIRE(mp_gguf_get_array(g, "t.nest", -1, &a) == 0);
	CHECK_EQ_INT(a.type, MP_GGUF_ARRAY);
	REQUIRE(mp_gguf_array_sub(&a, 0, &sub) == 0);
	CHECK_EQ_INT(sub.type, MP_GGUF_I32);
	CHECK_EQ_U64(sub.n, 2);
	CHECK_EQ_INT(((const int32_t *)sub.data)[1], 8);
	REQUIRE(mp_gguf_array_sub(&a, 1, &sub) == 0);
	CHECK_STR(mp_gguf_array_str(&sub, 0, NULL), "x");
	char txt[128];
	mp_gguf_kv_format(g, 1, txt, sizeof txt);
	CHECK_STR(txt, "u32 61");
	/* Tensors: absolute offsets, sizes, lookup, expert ranges. */
	CHECK_EQ_U64(mp_gguf_tensor_count(g), 2);
	const struct mp_gguf_tensor *t0 = mp_gguf_find_tensor(g, "token_embd.weight");
	const struct mp_gguf_tensor *t1 = mp_gguf_find_tensor(g, "blk.3.ffn_up_exps.weight");
	REQUIRE(t0 && t1);
	uint64_t ds = mp_gguf_data_start(g, 0);
	CHECK_EQ_U64(ds % 32, 0);
	CHECK_EQ_U64(t0->offset, ds);
	CHECK_EQ_U64(t0->nbytes, 128);
	CHECK_EQ_U64(t1->offset, ds + 128);
	CHECK_EQ_U64(t1->row_bytes, 68);
	CHECK_EQ_U64(t1->nbytes, 68 * 8);
	CHECK_EQ_U64(t1->ne[2], 4);
	CHECK_EQ_U64(t1->ne[3], 1);
	CHECK(mp_gguf_find_tensor(g, "output.weight") == NULL);
	CHECK_CONTAINS(mp_gguf_error(g), "'output.weight' is missing");
	struct mp_gguf_range r;
	CHECK_EQ_INT(mp_gguf_expert_range(g, 3, 2, MP_GGUF_EXP_UP, &r), 0);
	CHECK_EQ_U64(r.offset, ds + 128 + 2 * 136);
	CHECK_EQ_U64(r.len, 136);
	CHECK_EQ_INT(r.part, 0);
	CHECK_EQ_INT(mp_gguf_expert_range(g, 3, 4, MP_GGUF_EXP_UP, &r), -MP_ENOTFOUND);
	CHECK_EQ_INT(mp_gguf_expert_range(g, 3, 0, MP_GGUF_EXP_DOWN, &r), -MP_ENOTFOUND);
	mp_gguf_destroy(g);

	/* Version 2 has the same layout. */
	good_spec(&s);
	s.version = 2;
	b = build(&s);
	REQUIRE(mp_gguf_open_mem(b.p, b.n, "v2", &g, err, sizeof err) == 0);
	CHECK_EQ_INT(mp_gguf_version(g), 2);
	mp_gguf_destroy(g);
	free(b.p);
}

/* ---- malformed classes (FORMATS.md §1.6) ------------------------------------ */

static void test_truncation(void)   /* class 1 */
{
	struct spec s;
	good_spec(&s);
	struct buf b = build(&s);
	char err[MP_GGUF_ERR_LEN];
	struct mp_gguf *g;
	/* Every proper prefix fails, through both readers. */
	for (size_t n = 0; n < b.n; n++) {
		int rc = mp_gguf_open_mem(b.p, n, "cut.gguf", &g, err, sizeof err);
		if (rc == 0) {
			MP_TEST_FAIL("prefix of %zu bytes opened", n);
			mp_gguf_destroy(g);
			break;
		}
		if (!strstr(err, "cut.gguf")) {
			MP_TEST_FAIL("prefix %zu: message \"%s\" does not name the file", n, err);
			break;
		}
	}
	free(b.p);
	good_spec(&s);
	s.cut = 10;
	expect_fail(&s, "cut-header.gguf", -MP_EFORMAT, "truncated");
	good_spec(&s);
	s.nt = 0;
	s.cut = 24 + 45 + 10;
	expect_fail(&s, "cut-key.gguf", -MP_EFORMAT, "metadata key #1: truncated");
	good_spec(&s);
	b = build(&s);
	size_t full = b.n;
	free(b.p);
	good_spec(&s);
	s.cut = (int64_t)full - 1;
	expect_fail(&s, "cut-data.gguf", -MP_EFORMAT, "tensor 'blk.3.ffn_up_exps.weight': data");
}

static void test_magic_version(void)    /* class 2 */
{
	struct spec s;
	good_spec(&s);
	s.magic = 0x46554746;
	expect_fail(&s, "magic.gguf", -MP_EFORMAT, "bad magic");
	good_spec(&s);
	s.version = 0;
	expect_fail(&s, "v0.gguf", -MP_EVERSION, "version 0");
	good_spec(&s);
	s.version = 1;
	expect_fail(&s, "v1.gguf", -MP_EVERSION, "obsolete");
	good_spec(&s);
	s.version = 4;
	expect_fail(&s, "v4.gguf", -MP_EVERSION, "version 4");
	good_spec(&s);
	s.version = 0x03000000;
	expect_fail(&s, "be.gguf", -MP_EVERSION, "big-endian");
}

static void test_counts(void)   /* class 3 */
{
	struct spec s;
	good_spec(&s);
	s.n_tensors = -1LL & 0x7fffffffffffffffLL;
	expect_fail(&s, "ntensors.gguf", -MP_EFORMAT, "tensor_count");
	good_spec(&s);
	s.n_tensors = 0;   /* reinterpretation below: huge as u64 is "negative" */
	struct buf b = build(&s);
	uint64_t neg = (uint64_t)-3;
	memcpy(b.p + 8, &neg, 8);
	char err[MP_GGUF_ERR_LEN];
	struct mp_gguf *g;
	CHECK_EQ_INT(mp_gguf_open_mem(b.p, b.n, "neg.gguf", &g, err, sizeof err), -MP_EFORMAT);
	CHECK_CONTAINS(err, "tensor_count");
	free(b.p);
	good_spec(&s);
	s.n_kv = 1000;
	expect_fail(&s, "nkv.gguf", -MP_EFORMAT, "keys");
	good_spec(&s);
	s.n_kv = 3;         /* plausible count, one record short */
	expect_fail(&s, "nkv3.gguf", 0, "");
}

static void test_strings_keys(void)  /* class 4 */
{
	struct spec s;
	good_spec(&s);
	u64(&s.kvs, 1ull << 40);
	s.n_kv_written++;
	expect_fail(&s, "strlen.gguf", -MP_EFORMAT, "exceeds");
	good_spec(&s);
	kv_u32(&s.kvs, "", 1);
	s.n_kv_written++;
	expect_fail(&s, "emptykey.gguf", -MP_EFORMAT, "key is empty");
	good_spec(&s);
	kv_u32(&s.kvs, "deepseek2.block_count", 1);
	s.n_kv_written++;
	expect_fail(&s, "dupkey.gguf", -MP_EFORMAT, "'deepseek2.block_count': duplicate key");
	good_spec(&s);
	kv_u32(&s.kvs, "caf\xc3\xa9", 1);
	s.n_kv_written++;
	expect_fail(&s, "asciikey.gguf", -MP_EFORMAT, "not printable ASCII");
	good_spec(&s);
	str(&s.kvs, "general.name");
	u32(&s.kvs, MP_GGUF_STRING);
	str(&s.kvs, "bad\xff\xfe");
	s.n_kv_written++;
	expect_fail(&s, "utf8.gguf", -MP_EFORMAT, "'general.name': string value is not valid UTF-8");
}

static void test_values(void)    /* class 5 */
{
	struct spec s;
	good_spec(&s);
	str(&s.kvs, "x.t"); u32(&s.kvs, 13); u32(&s.kvs, 0);
	s.n_kv_written++;
	expect_fail(&s, "vtype.gguf", -MP_EFORMAT, "'x.t': value type 13");
	good_spec(&s);
	str(&s.kvs, "x.a"); u32(&s.kvs, MP_GGUF_ARRAY); u32(&s.kvs, 77); u64(&s.kvs, 1);
	s.n_kv_written++;
	expect_fail(&s, "etype.gguf", -MP_EFORMAT, "array element type 77");
	good_spec(&s);
	str(&s.kvs, "x.a"); u32(&s.kvs, MP_GGUF_ARRAY); u32(&s.kvs, MP_GGUF_U64); u64(&s.kvs, 1ull << 61);
	s.n_kv_written++;
	expect_fail(&s, "acount.gguf", -MP_EFORMAT, "array count");
	good_spec(&s);
	str(&s.kvs, "x.a"); u32(&s.kvs, MP_GGUF_ARRAY); u32(&s.kvs, MP_GGUF_U64); u64(&s.kvs, 1000);
	s.n_kv_written++;
	expect_fail(&s, "abytes.gguf", -MP_EFORMAT, "needs at least 8000 bytes");
	good_spec(&s);
	str(&s.kvs, "x.deep"); u32(&s.kvs, MP_GGUF_ARRAY);
	for (int i = 0; i < 12; i++) {
		u32(&s.kvs, MP_GGUF_ARRAY);
		u64(&s.kvs, 1);
	}
	u32(&s.kvs, MP_GGUF_U8);
	u64(&s.kvs, 0);
	s.n_kv_written++;
	expect_fail(&s, "deep.gguf", -MP_EFORMAT, "nested deeper");
	good_spec(&s);
	str(&s.kvs, "x.b"); u32(&s.kvs, MP_GGUF_BOOL); u8(&s.kvs, 2);
	s.n_kv_written++;
	expect_fail(&s, "bool.gguf", -MP_EFORMAT, "'x.b': bool byte is 2");
}

static void test_alignment(void)    /* class 6 */
{
	struct spec s;
	good_spec(&s);
	str(&s.kvs, "general.alignment"); u32(&s.kvs, MP_GGUF_U64); u64(&s.kvs, 64);
	s.n_kv_written++;
	expect_fail(&s, "altype.gguf", -MP_EFORMAT, "'general.alignment': type is u64");
	good_spec(&s);
	kv_u32(&s.kvs, "general.alignment", 0);
	s.n_kv_written++;
	expect_fail(&s, "alzero.gguf", -MP_EFORMAT, "not a power of two");
	good_spec(&s);
	kv_u32(&s.kvs, "general.alignment", 48);
	s.n_kv_written++;
	expect_fail(&s, "al48.gguf", -MP_EFORMAT, "48 is not a power of two");
	/* A valid non-default alignment moves the data. */
	good_spec(&s);
	kv_u32(&s.kvs, "general.alignment", 256);
	s.n_kv_written++;
	s.align = 256;
	struct buf b = build(&s);
	char err[MP_GGUF_ERR_LEN];
	struct mp_gguf *g;
	REQUIRE(mp_gguf_open_mem(b.p, b.n, "al256", &g, err, sizeof err) == 0);
	CHECK_EQ_INT(mp_gguf_alignment(g), 256);
	uint64_t ds = mp_gguf_data_start(g, 0);
	CHECK_EQ_U64(ds % 256, 0);
	CHECK_EQ_U64(mp_gguf_tensor_at(g, 1)->offset, ds + 256);
	mp_gguf_destroy(g);
	free(b.p);
}

static void test_names(void)    /* class 7 */
{
	struct spec s;
	good_spec(&s);
	s.t[0].name = "";
	expect_fail(&s, "tname0.gguf", -MP_EFORMAT, "tensor name is empty");
	good_spec(&s);
	s.t[0].name = "a123456789012345678901234567890123456789012345678901234567890123";
	expect_fail(&s, "tname64.gguf", -MP_EFORMAT, "64 bytes");
	good_spec(&s);
	s.t[1].name = "token_embd.weight";
	s.t[1].type = MP_TYPE_F32;
	expect_fail(&s, "tdup.gguf", -MP_EFORMAT, "'token_embd.weight': duplicate name");
}

static void test_dims(void)    /* class 8 */
{
	struct spec s;
	good_spec(&s);
	s.t[0].n_dims = 5;
	expect_fail(&s, "ndims.gguf", -MP_EFORMAT, "'token_embd.weight': n_dims is 5");
	good_spec(&s);
	s.t[0].ne[1] = (uint64_t)-4;
	expect_fail(&s, "negdim.gguf", -MP_EFORMAT, "dimension 1 is negative");
	good_spec(&s);
	s.t[1].ne[1] = 1ull << 40;
	s.t[1].ne[2] = 1ull << 40;
	expect_fail(&s, "elems.gguf", -MP_EFORMAT, "element count overflows");
}

static void test_types(void)    /* class 9 */
{
	static const struct { uint32_t id; const char *want; } cases[] = {
		{4, "removed"}, {15, "activation-only"}, {34, "do not use"},
		{139, "ik_llama.cpp"}, {212, "ik_llama.cpp"}, {45, "unknown"}, {100000, "unknown"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct spec s;
		good_spec(&s);
		s.t[1].type = cases[i].id;
		expect_fail(&s, "type.gguf", -MP_ETYPE, cases[i].want);
	}
	struct spec s;
	good_spec(&s);
	s.t[1].ne[0] = 48;
	expect_fail(&s, "block.gguf", -MP_EFORMAT, "ne[0] = 48 is not a multiple of Q8_0's block of 32");
}

static void test_offsets(void)    /* class 10 */
{
	struct spec s;
	good_spec(&s);
	s.t[1].offset = 136;
	expect_fail(&s, "misalign.gguf", -MP_EFORMAT, "offset 136 is not a multiple of the alignment 32");
	good_spec(&s);
	s.t[1].offset = 1 << 20;
	expect_fail(&s, "beyond.gguf", -MP_EFORMAT, "beyond the end of the file");
	good_spec(&s);
	s.t[1].offset = (int64_t)(-64LL & INT64_MAX);
	expect_fail(&s, "wrap.gguf", -MP_EFORMAT, "beyond the end");
	good_spec(&s);
	s.t[1].offset = 96;      /* inside token_embd's 128 bytes */
	expect_fail(&s, "overlap.gguf", -MP_EFORMAT, "overlaps tensor 'token_embd.weight'");
	/* A gap between tensors is valid (the spec only requires alignment). */
	good_spec(&s);
	s.t[1].offset = 256;
	struct buf b = build(&s);
	char err[MP_GGUF_ERR_LEN];
	struct mp_gguf *g;
	CHECK_EQ_INT(mp_gguf_open_mem(b.p, b.n, "gap", &g, err, sizeof err), 0);
	mp_gguf_destroy(g);
	free(b.p);
}

/* ---- split sets (class 11) ------------------------------------------------- */

static void split_kvs(struct spec *s, uint16_t no, uint16_t count, int32_t total)
{
	str(&s->kvs, "split.no"); u32(&s->kvs, MP_GGUF_U16); put(&s->kvs, &no, 2);
	str(&s->kvs, "split.count"); u32(&s->kvs, MP_GGUF_U16); put(&s->kvs, &count, 2);
	str(&s->kvs, "split.tensors.count"); u32(&s->kvs, MP_GGUF_I32); put(&s->kvs, &total, 4);
	s->n_kv_written += 3;
}

static void write_part(const char *name, uint16_t no, uint16_t count, int32_t total,
		       const char *tname)
{
	struct spec s;
	spec_init(&s);
	split_kvs(&s, no, count, total);
	if (no == 0) {
		kv_u32(&s.kvs, "deepseek2.block_count", 61);
		s.n_kv_written++;
	}
	add_tensor(&s, tname, MP_TYPE_F32, 1, 16, 1, 1);
	struct buf b = build(&s);
	write_file(name, &b);
	free(b.p);
}

static int open_err(const char *name, char *err)
{
	char path[512];
	struct mp_gguf *g;
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	int rc = mp_gguf_open(path, &g, err, MP_GGUF_ERR_LEN);
	if (rc == 0)
		mp_gguf_destroy(g);
	return rc;
}

static void test_split(void)
{
	char err[MP_GGUF_ERR_LEN], path[512];
	write_part("m-00001-of-00003.gguf", 0, 3, 3, "a");
	write_part("m-00002-of-00003.gguf", 1, 3, 3, "b");
	write_part("m-00003-of-00003.gguf", 2, 3, 3, "c");
	snprintf(path, sizeof path, "%s/m-00001-of-00003.gguf", tmpdir);
	struct mp_gguf *g;
	int rc = mp_gguf_open(path, &g, err, sizeof err);
	if (rc)
		MP_TEST_FAIL("split open: %s", err);
	REQUIRE(rc == 0);
	CHECK_EQ_INT(mp_gguf_part_count(g), 3);
	CHECK_EQ_U64(mp_gguf_tensor_count(g), 3);
	const struct mp_gguf_tensor *t = mp_gguf_find_tensor(g, "c");
	REQUIRE(t);
	CHECK_EQ_INT(t->part, 2);
	CHECK_CONTAINS(mp_gguf_part_path(g, 2), "m-00003-of-00003.gguf");
	CHECK_EQ_U64(t->offset, mp_gguf_data_start(g, 2));
	uint32_t u;
	u = 0;
	CHECK_EQ_INT(mp_gguf_get_u32(g, "deepseek2.block_count", &u), 0);
	CHECK_EQ_INT(u, 61);   /* part 1's metadata, read back (not only found) */
	mp_gguf_destroy(g);

	/* Opening a later part asks for the first. */
	CHECK(open_err("m-00002-of-00003.gguf", err) != 0);
	CHECK_CONTAINS(err, "expected 0: open the first part");
	/* A missing part is named. */
	write_part("n-00001-of-00003.gguf", 0, 3, 3, "a");
	write_part("n-00002-of-00003.gguf", 1, 3, 3, "b");
	CHECK_EQ_INT(open_err("n-00001-of-00003.gguf", err), -ENOENT);
	CHECK_CONTAINS(err, "n-00003-of-00003.gguf: split part 3 of 3 is missing");
	/* A part of another model: different split.count, different total. */
	write_part("n-00003-of-00003.gguf", 2, 4, 3, "c");
	CHECK_EQ_INT(open_err("n-00001-of-00003.gguf", err), -MP_EFORMAT);
	CHECK_CONTAINS(err, "n-00003-of-00003.gguf: metadata key 'split.count' is 4, part 1 says 3");
	write_part("n-00003-of-00003.gguf", 2, 3, 5, "c");
	CHECK_EQ_INT(open_err("n-00001-of-00003.gguf", err), -MP_EFORMAT);
	CHECK_CONTAINS(err, "'split.tensors.count' is 5, part 1 says 3: a part of another model?");
	/* split.no disagreeing with the position. */
	write_part("n-00003-of-00003.gguf", 1, 3, 3, "c");
	CHECK_EQ_INT(open_err("n-00001-of-00003.gguf", err), -MP_EFORMAT);
	CHECK_CONTAINS(err, "'split.no' is 1, expected 2");
	/* A tensor in two parts. */
	write_part("n-00003-of-00003.gguf", 2, 3, 3, "b");
	CHECK_EQ_INT(open_err("n-00001-of-00003.gguf", err), -MP_EFORMAT);
	CHECK_CONTAINS(err, "tensor 'b': duplicate name, also in part 2");
	/* Tensor total disagreeing with split.tensors.count. */
	write_part("o-00001-of-00002.gguf", 0, 2, 3, "a");
	write_part("o-00002-of-00002.gguf", 1, 2, 3, "b");
	CHECK_EQ_INT(open_err("o-00001-of-00002.gguf", err), -MP_EFORMAT);
	CHECK_CONTAINS(err, "says 3 tensors, the 2 parts hold 2");
	/* A split file whose name does not follow the pattern. */
	write_part("renamed.gguf", 0, 2, 2, "a");
	CHECK_EQ_INT(open_err("renamed.gguf", err), -MP_EFORMAT);
	CHECK_CONTAINS(err, "renamed.gguf: file of a 2-part split set, but its name");
	/* Name and metadata disagree on the count. */
	write_part("p-00001-of-00004.gguf", 0, 2, 2, "a");
	CHECK_EQ_INT(open_err("p-00001-of-00004.gguf", err), -MP_EFORMAT);
	CHECK_CONTAINS(err, "file name says part 1 of 4");
}

/* Several ranks (src/dist.h): a host holds part 1 and only some others. */
static void test_split_partial(void)
{
	char err[MP_GGUF_ERR_LEN], path[512];
	write_part("q-00001-of-00003.gguf", 0, 3, 3, "a");
	write_part("q-00003-of-00003.gguf", 2, 3, 3, "c");   /* part 2 is another host's */
	snprintf(path, sizeof path, "%s/q-00001-of-00003.gguf", tmpdir);
	struct mp_gguf *g;
	CHECK_EQ_INT(open_err("q-00001-of-00003.gguf", err), -ENOENT);   /* strict: named */
	CHECK_CONTAINS(err, "q-00002-of-00003.gguf: split part 2 of 3 is missing");
	int rc = mp_gguf_open_partial(path, &g, err, sizeof err);
	if (rc)
		MP_TEST_FAIL("partial open: %s", err);
	REQUIRE(rc == 0);
	CHECK_EQ_INT(mp_gguf_part_count(g), 3);
	CHECK_EQ_INT(mp_gguf_parts_absent(g), 1);
	CHECK_EQ_INT(mp_gguf_part_present(g, 0), 1);
	CHECK_EQ_INT(mp_gguf_part_present(g, 1), 0);
	CHECK_EQ_INT(mp_gguf_part_present(g, 2), 1);
	CHECK_EQ_U64(mp_gguf_part_size(g, 1), 0);
	CHECK_CONTAINS(mp_gguf_part_path(g, 1), "q-00002-of-00003.gguf");
	CHECK_EQ_U64(mp_gguf_tensor_count(g), 2);
	CHECK(mp_gguf_find_tensor(g, "b") == NULL);
	const struct mp_gguf_tensor *t = mp_gguf_find_tensor(g, "c");
	REQUIRE(t);
	CHECK_EQ_INT(t->part, 2);
	CHECK_EQ_U64(t->offset, mp_gguf_data_start(g, 2));
	mp_gguf_destroy(g);
	/* a part that is there is still checked */
	write_part("q-00003-of-00003.gguf", 2, 4, 3, "c");
	CHECK_EQ_INT(mp_gguf_open_partial(path, &g, err, sizeof err), -MP_EFORMAT);
	CHECK_CONTAINS(err, "metadata key 'split.count' is 4, part 1 says 3");
	/* and part 1 itself is required */
	snprintf(path, sizeof path, "%s/r-00001-of-00002.gguf", tmpdir);
	CHECK_EQ_INT(mp_gguf_open_partial(path, &g, err, sizeof err), -ENOENT);
}

static void test_not_found(void)
{
	char err[MP_GGUF_ERR_LEN];
	CHECK_EQ_INT(open_err("does-not-exist.gguf", err), -ENOENT);
	CHECK_CONTAINS(err, "does-not-exist.gguf: file: cannot open");
	CHECK(open_err("", err) != 0);
}

static void cleanup(void)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/test_gguf.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_good);
	RUN(test_truncation);
	RUN(test_magic_version);
	RUN(test_counts);
	RUN(test_strings_keys);
	RUN(test_values);
	RUN(test_alignment);
	RUN(test_names);
	RUN(test_dims);
	RUN(test_types);
	RUN(test_offsets);
	RUN(test_split);
	RUN(test_split_partial);
	RUN(test_not_found);
	struct mp_alloc_stats st;
	mp_alloc_stats(&st);
	CHECK_EQ_U64(st.live_count, 0);
	cleanup();
	return mp_test_end();
}
