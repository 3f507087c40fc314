/*
 * test_gguf_write.c — the streaming GGUF writer, checked through the reader:
 * metadata of every kind and tensor bytes come back unchanged, offsets follow
 * llama.cpp's contiguous pattern, data written in odd-sized pieces lands in
 * the right places, split sets open from part 1, holes read back as zeros,
 * and misuse is reported.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "gguf.h"
#include "gguf_write.h"
#include "mp_test.h"
#include "types.h"

static char tmpdir[256];

static const char *tpath(const char *name)
{
	static char p[512];
	snprintf(p, sizeof p, "%s/%s", tmpdir, name);
	return p;
}

struct tt {
	const char *name;
	uint32_t type, nd;
	uint64_t ne[4];
};

static const struct tt tensors[] = {
	{"token_embd.weight", MP_TYPE_F32, 2, {16, 5, 1, 1}},
	{"blk.0.attn_norm.weight", MP_TYPE_F32, 1, {7, 1, 1, 1}},
	{"empty.weight", MP_TYPE_F32, 2, {0, 3, 1, 1}},
	{"blk.0.ffn_down_exps.weight", MP_TYPE_Q8_0, 3, {64, 3, 4, 1}},
	{"blk.0.q4k.weight", MP_TYPE_Q4_K, 2, {256, 2, 1, 1}},
};
#define NT (sizeof tensors / sizeof tensors[0])

static uint8_t byte_at(uint64_t t, uint64_t i)
{
	return (uint8_t)(i * 7 + t * 31 + 1);
}

static uint64_t nbytes(const struct tt *t)
{
	uint64_t rb;
	if (mp_type_row_bytes(t->type, t->ne[0], &rb))
		return 0;
	return rb * t->ne[1] * t->ne[2] * t->ne[3];
}

/* Writes the sample model; piece = bytes per write call. */
static int write_model(const char *path, const struct mp_gguf_write_opts *o, size_t piece,
		       struct mp_gguf_writer **wout)
{
	struct mp_gguf_writer *w;
	int rc = mp_gguf_writer_create(path, o, &w);
	if (rc)
		return rc;
	mp_gguf_writer_set_str(w, "general.architecture", "deepseek2");
	mp_gguf_writer_set_u32(w, "deepseek2.block_count", 61);
	mp_gguf_writer_set_i32(w, "t.i32", -9);
	mp_gguf_writer_set_u64(w, "t.u64", 1ull << 35);
	mp_gguf_writer_set_f32(w, "t.f32", 0.1f);
	mp_gguf_writer_set_bool(w, "t.bool", 1);
	int32_t types[3] = {3, 1, 6};
	mp_gguf_writer_set_array(w, "tokenizer.ggml.token_type", 5 /* I32 */, types, 3);
	const char *toks[3] = {"<s>", "\xc4\xa0the", ""};
	mp_gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", toks, 3);
	for (uint64_t i = 0; i < NT; i++)
		mp_gguf_writer_add_tensor(w, tensors[i].name, tensors[i].type, tensors[i].nd, tensors[i].ne);
	mp_gguf_writer_begin(w);
	uint8_t buf[97];
	for (uint64_t i = 0; i < NT; i++) {
		uint64_t n = nbytes(&tensors[i]);
		for (uint64_t off = 0; off < n; off += piece) {
			size_t k = n - off < piece ? (size_t)(n - off) : piece;
			for (size_t j = 0; j < k; j++)
				buf[j] = byte_at(i, off + j);
			mp_gguf_writer_write(w, buf, k);
		}
	}
	rc = mp_gguf_writer_finish(w);
	if (wout)
		*wout = w;
	else
		mp_gguf_writer_destroy(w);
	return rc;
}

/* Reads every tensor back and compares its bytes. */
static void check_model(struct mp_gguf *g, uint32_t align)
{
	uint32_t u;
	int32_t i32;
	int64_t i64;
	float f;
	int b;
	const char *s;
	CHECK_EQ_INT(mp_gguf_get_str(g, "general.architecture", &s), 0);
	CHECK_STR(s, "deepseek2");
	CHECK_EQ_INT(mp_gguf_get_u32(g, "deepseek2.block_count", &u), 0);
	CHECK_EQ_INT(u, 61);
	CHECK_EQ_INT(mp_gguf_get_i64(g, "t.i32", &i64), 0);
	CHECK_EQ_INT(i64, -9);
	CHECK_EQ_INT(mp_gguf_get_i64(g, "t.u64", &i64), 0);
	CHECK_EQ_INT(i64, 1ll << 35);
	CHECK_EQ_INT(mp_gguf_get_f32(g, "t.f32", &f), 0);
	CHECK_NEAR(f, 0.1f, 0);
	CHECK_EQ_INT(mp_gguf_get_bool(g, "t.bool", &b), 0);
	CHECK_EQ_INT(b, 1);
	struct mp_gguf_array a;
	REQUIRE(mp_gguf_get_array(g, "tokenizer.ggml.token_type", MP_GGUF_I32, &a) == 0);
	CHECK_EQ_U64(a.n, 3);
	memcpy(&i32, (const int32_t *)a.data + 2, 4);
	CHECK_EQ_INT(i32, 6);
	REQUIRE(mp_gguf_get_array(g, "tokenizer.ggml.tokens", MP_GGUF_STRING, &a) == 0);
	CHECK_STR(mp_gguf_array_str(&a, 1, NULL), "\xc4\xa0the");
	CHECK_STR(mp_gguf_array_str(&a, 2, NULL), "");
	CHECK_EQ_INT(mp_gguf_alignment(g), align);
	REQUIRE(mp_gguf_tensor_count(g) == NT);
	uint64_t expect_off = 0;
	uint32_t part = 0;
	for (uint64_t i = 0; i < NT; i++) {
		const struct mp_gguf_tensor *t = mp_gguf_tensor_at(g, i);
		REQUIRE(t);
		CHECK_STR(t->name, tensors[i].name);
		CHECK_EQ_INT(t->type, tensors[i].type);
		CHECK_EQ_INT(t->n_dims, tensors[i].nd);
		for (int d = 0; d < 4; d++)
			CHECK_EQ_U64(t->ne[d], tensors[i].ne[d]);
		CHECK_EQ_U64(t->nbytes, nbytes(&tensors[i]));
		if (t->part != part) {
			part = t->part;
			expect_off = 0;
		}
		/* Invariant 1 of the writer: llama.cpp's contiguous offsets. */
		CHECK_EQ_U64(t->offset - mp_gguf_data_start(g, t->part), expect_off);
		expect_off += (t->nbytes + align - 1) / align * align;
		int fd = open(mp_gguf_part_path(g, t->part), O_RDONLY);
		REQUIRE(fd >= 0);
		uint8_t *buf = malloc(t->nbytes + 1);
		CHECK_EQ_INT(pread(fd, buf, t->nbytes, (off_t)t->offset), (long long)t->nbytes);
		uint64_t bad = UINT64_MAX;
		for (uint64_t j = 0; j < t->nbytes && bad == UINT64_MAX; j++)
			if (buf[j] != byte_at(i, j))
				bad = j;
		if (bad != UINT64_MAX)
			MP_TEST_FAIL("tensor %s: byte %llu differs", t->name, (unsigned long long)bad);
		free(buf);
		close(fd);
	}
}

static void test_roundtrip(void)
{
	static const size_t pieces[] = {1, 5, 97};
	for (size_t k = 0; k < 3; k++) {
		const char *p = tpath("rt.gguf");
		CHECK_EQ_INT(write_model(p, NULL, pieces[k], NULL), 0);
		char err[MP_GGUF_ERR_LEN];
		struct mp_gguf *g;
		int rc = mp_gguf_open(p, &g, err, sizeof err);
		if (rc)
			MP_TEST_FAIL("open: %s", err);
		REQUIRE(rc == 0);
		CHECK_EQ_INT(mp_gguf_part_count(g), 1);
		CHECK(!mp_gguf_has(g, "split.count"));
		CHECK(!mp_gguf_has(g, "general.alignment"));
		check_model(g, 32);
		struct mp_gguf_range r;
		CHECK_EQ_INT(mp_gguf_expert_range(g, 0, 3, MP_GGUF_EXP_DOWN, &r), 0);
		CHECK_EQ_U64(r.len, 2 * 34 * 3);
		CHECK_EQ_U64(r.offset, mp_gguf_find_tensor(g, "blk.0.ffn_down_exps.weight")->offset + 3 * r.len);
		mp_gguf_destroy(g);
	}
}

static void test_alignment(void)
{
	struct mp_gguf_write_opts o = {.alignment = 64};
	const char *p = tpath("al.gguf");
	CHECK_EQ_INT(write_model(p, &o, 97, NULL), 0);
	char err[MP_GGUF_ERR_LEN];
	struct mp_gguf *g;
	REQUIRE(mp_gguf_open(p, &g, err, sizeof err) == 0);
	CHECK_EQ_U64(mp_gguf_data_start(g, 0) % 64, 0);
	check_model(g, 64);
	mp_gguf_destroy(g);
	struct mp_gguf_writer *w;
	o.alignment = 48;
	CHECK_EQ_INT(mp_gguf_writer_create(p, &o, &w), -MP_EARG);
}

static void test_split(void)
{
	/* Size limit: tensors padded to 32; 640-byte limit splits this set in 3. */
	struct mp_gguf_write_opts o = {.split_max_bytes = 640};
	struct mp_gguf_writer *w;
	CHECK_EQ_INT(write_model(tpath("sp.gguf"), &o, 5, &w), 0);
	CHECK_EQ_INT(mp_gguf_writer_part_count(w), 3);
	CHECK_STR(mp_gguf_writer_part_path(w, 2), tpath("sp-00003-of-00003.gguf"));
	mp_gguf_writer_destroy(w);
	char err[MP_GGUF_ERR_LEN];
	struct mp_gguf *g;
	int rc = mp_gguf_open(tpath("sp-00001-of-00003.gguf"), &g, err, sizeof err);
	if (rc)
		MP_TEST_FAIL("open split: %s", err);
	REQUIRE(rc == 0);
	CHECK_EQ_INT(mp_gguf_part_count(g), 3);
	check_model(g, 32);
	uint32_t u;
	CHECK_EQ_INT(mp_gguf_get_u32(g, "split.count", &u), 0);
	CHECK_EQ_INT(u, 3);
	CHECK_EQ_INT(mp_gguf_kv_type(g, 0), MP_GGUF_U16);     /* split.no first, as gguf-split */
	CHECK_STR(mp_gguf_kv_key(g, 2), "split.tensors.count");
	CHECK_EQ_INT(mp_gguf_kv_type(g, 2), MP_GGUF_I32);
	mp_gguf_destroy(g);
	/* Tensor-count limit: one per part. */
	o.split_max_bytes = 0;
	o.split_max_tensors = 1;
	CHECK_EQ_INT(write_model(tpath("one.gguf"), &o, 97, NULL), 0);
	REQUIRE(mp_gguf_open(tpath("one-00001-of-00005.gguf"), &g, err, sizeof err) == 0);
	CHECK_EQ_INT(mp_gguf_part_count(g), 5);
	check_model(g, 32);
	mp_gguf_destroy(g);
	/* A missing part is named. */
	CHECK_EQ_INT(unlink(tpath("one-00004-of-00005.gguf")), 0);
	CHECK(mp_gguf_open(tpath("one-00001-of-00005.gguf"), &g, err, sizeof err) != 0);
	CHECK_CONTAINS(err, "one-00004-of-00005.gguf: split part 4 of 5 is missing");
}

/* Holes: skipped tensors read back as zeros, written ones are unchanged
 * after a hole, and a part that ends in a hole still has its full length
 * (the reader refuses tensor data past the end of a file). */
static void test_holes(void)
{
	static const struct tt ht[] = {
		{"a.weight", MP_TYPE_F32, 1, {8, 1, 1, 1}},
		{"b.weight", MP_TYPE_Q8_0, 2, {32, 65536, 1, 1}},
		{"c.weight", MP_TYPE_F32, 1, {8, 1, 1, 1}},
		{"d.weight", MP_TYPE_Q8_0, 2, {32, 65536, 1, 1}},
	};
	struct mp_gguf_writer *w;
	REQUIRE(mp_gguf_writer_create(tpath("holes.gguf"), NULL, &w) == 0);
	mp_gguf_writer_set_str(w, "general.architecture", "deepseek2");
	for (int i = 0; i < 4; i++)
		mp_gguf_writer_add_tensor(w, ht[i].name, ht[i].type, ht[i].nd, ht[i].ne);
	REQUIRE(mp_gguf_writer_begin(w) == 0);
	float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	CHECK_EQ_INT(mp_gguf_writer_write(w, v, sizeof v), 0);
	CHECK_EQ_INT(mp_gguf_writer_skip(w, nbytes(&ht[1])), 0);
	CHECK_EQ_INT(mp_gguf_writer_write(w, v, sizeof v), 0);
	CHECK_EQ_INT(mp_gguf_writer_skip(w, 1000), 0);
	CHECK_EQ_INT(mp_gguf_writer_skip(w, nbytes(&ht[3]) - 1000), 0);
	CHECK_EQ_INT(mp_gguf_writer_finish(w), 0);
	CHECK_EQ_INT(mp_gguf_writer_skip(w, 1), -MP_EARG);   /* beyond the last tensor */
	mp_gguf_writer_destroy(w);
	char err[MP_GGUF_ERR_LEN];
	struct mp_gguf *g;
	int rc = mp_gguf_open(tpath("holes.gguf"), &g, err, sizeof err);
	if (rc)
		MP_TEST_FAIL("open: %s", err);
	REQUIRE(rc == 0);
	const struct mp_gguf_tensor *b = mp_gguf_find_tensor(g, "b.weight");
	const struct mp_gguf_tensor *c = mp_gguf_find_tensor(g, "c.weight");
	const struct mp_gguf_tensor *d = mp_gguf_find_tensor(g, "d.weight");
	REQUIRE(b && c && d);
	CHECK_EQ_U64(mp_gguf_part_size(g, 0), d->offset + d->nbytes);
	int fd = open(tpath("holes.gguf"), O_RDONLY);
	REQUIRE(fd >= 0);
	uint8_t *buf = mp_malloc((size_t)b->nbytes);
	REQUIRE(buf);
	CHECK_EQ_U64((uint64_t)pread(fd, buf, (size_t)b->nbytes, (off_t)b->offset), b->nbytes);
	uint64_t nz = 0;
	for (uint64_t i = 0; i < b->nbytes; i++)
		nz += buf[i] != 0;
	CHECK_EQ_U64(nz, 0);
	float got[8];
	CHECK_EQ_U64((uint64_t)pread(fd, got, sizeof got, (off_t)c->offset), sizeof got);
	CHECK(memcmp(got, v, sizeof v) == 0);
	close(fd);
	mp_free(buf);
	mp_gguf_destroy(g);
}

static void test_misuse(void)
{
	struct mp_gguf_writer *w;
	REQUIRE(mp_gguf_writer_create(tpath("bad.gguf"), NULL, &w) == 0);
	uint64_t ne[2] = {32, 2};
	CHECK_EQ_INT(mp_gguf_writer_add_tensor(w, "a", MP_TYPE_Q8_0, 2, ne), 0);
	CHECK_EQ_INT(mp_gguf_writer_add_tensor(w, "a", MP_TYPE_Q8_0, 2, ne), -MP_EARG);
	CHECK_CONTAINS(mp_gguf_writer_error(w), "'a' added twice");
	mp_gguf_writer_destroy(w);
	REQUIRE(mp_gguf_writer_create(tpath("bad.gguf"), NULL, &w) == 0);
	ne[0] = 33;
	CHECK_EQ_INT(mp_gguf_writer_add_tensor(w, "a", MP_TYPE_Q8_0, 2, ne), -MP_EARG);
	CHECK_CONTAINS(mp_gguf_writer_error(w), "does not fit type Q8_0");
	mp_gguf_writer_destroy(w);
	REQUIRE(mp_gguf_writer_create(tpath("bad.gguf"), NULL, &w) == 0);
	ne[0] = 32;
	CHECK_EQ_INT(mp_gguf_writer_add_tensor(w, "a", MP_TYPE_Q8_0, 2, ne), 0);
	CHECK_EQ_INT(mp_gguf_writer_begin(w), 0);
	uint64_t left;
	CHECK_EQ_INT(mp_gguf_writer_current(w, &left), 0);
	CHECK_EQ_U64(left, 68);
	uint8_t z[100] = {0};
	CHECK_EQ_INT(mp_gguf_writer_write(w, z, 10), 0);
	CHECK_EQ_INT(mp_gguf_writer_finish(w), -MP_EARG);
	CHECK_CONTAINS(mp_gguf_writer_error(w), "'a' is incomplete (10 of 68 bytes)");
	mp_gguf_writer_destroy(w);
	REQUIRE(mp_gguf_writer_create(tpath("bad.gguf"), NULL, &w) == 0);
	CHECK_EQ_INT(mp_gguf_writer_add_tensor(w, "a", MP_TYPE_Q8_0, 2, ne), 0);
	CHECK_EQ_INT(mp_gguf_writer_begin(w), 0);
	CHECK_EQ_INT(mp_gguf_writer_write(w, z, 100), -MP_EARG);
	CHECK_CONTAINS(mp_gguf_writer_error(w), "beyond the last tensor");
	mp_gguf_writer_destroy(w);
	CHECK(mp_gguf_writer_create("/nonexistent-dir/x.gguf", NULL, &w) == 0);
	CHECK(mp_gguf_writer_begin(w) != 0);
	CHECK_CONTAINS(mp_gguf_writer_error(w), "cannot create");
	mp_gguf_writer_destroy(w);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/test_gguf_write.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_roundtrip);
	RUN(test_alignment);
	RUN(test_split);
	RUN(test_holes);
	RUN(test_misuse);
	struct mp_alloc_stats st;
	mp_alloc_stats(&st);
	CHECK_EQ_U64(st.live_count, 0);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return mp_test_end();
}
