/* test_trace — pager/trace: reading the reference v1 trace, v2 write/read
 * round trips (one-byte and two-byte ids, weights, outcomes, sequences that
 * span chunks), and malformed inputs, each refused with a message that names
 * the file and the field. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "mp_test.h"
#include "trace.h"

static char tmp_path[512];

static const char *tmp_file(const char *tag)
{
	const char *dir = getenv("TMPDIR");
	snprintf(tmp_path, sizeof tmp_path, "%s/mp-test-trace-%ld-%s", dir && *dir ? dir : "/tmp",
	         (long)getpid(), tag);
	return tmp_path;
}

static void test_reference(void)
{
	struct mp_trace *t = mp_trace_create();
	REQUIRE(t);
	int rc = mp_trace_read(t, mp_test_data_build("traces/deepseek-v2-lite.trace"));
	CHECK_EQ_INT(rc, 0);
	if (rc == 0) {
		const struct mp_trace_info *in = mp_trace_info(t);
		CHECK_EQ_INT(in->version, 1);
		CHECK_EQ_INT(in->layers, 26);
		CHECK_EQ_INT(in->experts, 64);
		CHECK_EQ_INT(in->top_k, 6);
		CHECK_EQ_U64(in->sequences, 800);
		CHECK_EQ_U64(in->tokens, 73309);   /* ROUTING.md */
		CHECK_EQ_U64(mp_trace_seq_start(t, 0), 0);
		CHECK_EQ_U64(mp_trace_seq_start(t, 800), 73309);
		CHECK(mp_trace_weights(t, 0, 0) == NULL);
		CHECK(mp_trace_outcomes(t, 0, 0) == NULL);
		const uint16_t *ids = mp_trace_ids(t, 73308, 25);
		for (int j = 0; j < 6; j++)
			CHECK(ids[j] < 64);
	} else {
		fprintf(stderr, "%s\n", mp_trace_error(t));
	}
	mp_trace_destroy(t);
}

/* The id of use j of (token, layer) in the synthetic traces below. */
static uint16_t synth_id(uint64_t tok, uint32_t l, uint32_t j, uint32_t experts, uint32_t k)
{
	return (uint16_t)((tok * 7 + l * 13 + j * (experts / k)) % experts);
}

static void roundtrip(uint32_t experts, uint32_t flags, const char *tag)
{
	const uint32_t layers = 3, k = 4;
	const uint64_t seq_len[3] = { 5, 2 * MP_TRACE_CHUNK_TOKENS + 3, MP_TRACE_CHUNK_TOKENS };
	struct mp_trace_info info = { .version = 2, .layers = layers, .experts = experts, .top_k = k,
	                              .flags = flags, .layer_base = 3, .expert_bytes = 44040192 };
	const char *path = tmp_file(tag);
	struct mp_trace_writer *w = mp_trace_writer_create();
	REQUIRE(w);
	int rc = mp_trace_writer_open(w, path, &info);
	CHECK_EQ_INT(rc, 0);
	uint64_t tok = 0;
	for (int s = 0; s < 3 && rc == 0; s++) {
		for (uint64_t i = 0; i < seq_len[s]; i++, tok++)
			for (uint32_t l = 0; l < layers && rc == 0; l++) {
				uint16_t ids[4];
				float wt[4];
				uint8_t oc[4];
				uint32_t st[4];
				for (uint32_t j = 0; j < k; j++) {
					ids[j] = synth_id(tok, l, j, experts, k);
					wt[j] = 0.25f * (float)(j + 1);          /* exact in fp16 */
					oc[j] = (uint8_t)((tok + j) % MP_TRACE_OUTCOME_COUNT);
					st[j] = (uint32_t)(tok * 1000 + l * 10 + j);
				}
				rc = mp_trace_writer_add(w, l, ids, wt, oc, st);
			}
		if (rc == 0)
			rc = mp_trace_writer_end_sequence(w);
	}
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(mp_trace_writer_end_sequence(w), 0);   /* empty: no-op */
	CHECK_EQ_INT(mp_trace_writer_close(w), 0);
	mp_trace_writer_destroy(w);

	struct mp_trace *t = mp_trace_create();
	REQUIRE(t);
	rc = mp_trace_read(t, path);
	CHECK_EQ_INT(rc, 0);
	if (rc != 0)
		fprintf(stderr, "%s\n", mp_trace_error(t));
	unlink(path);
	if (rc == 0) {
		const struct mp_trace_info *in = mp_trace_info(t);
		CHECK_EQ_INT(in->version, 2);
		CHECK_EQ_INT(in->experts, experts);
		CHECK_EQ_INT(in->flags, flags);
		CHECK_EQ_INT(in->layer_base, 3);
		CHECK_EQ_U64(in->expert_bytes, 44040192);
		CHECK_EQ_U64(in->sequences, 3);
		CHECK_EQ_U64(in->tokens, tok);
		CHECK_EQ_U64(mp_trace_seq_start(t, 1), seq_len[0]);
		CHECK_EQ_U64(mp_trace_seq_start(t, 2), seq_len[0] + seq_len[1]);
		int bad = 0;
		for (uint64_t i = 0; i < tok; i++)
			for (uint32_t l = 0; l < layers; l++) {
				const uint16_t *ids = mp_trace_ids(t, i, l);
				const float *wt = mp_trace_weights(t, i, l);
				const uint8_t *oc = mp_trace_outcomes(t, i, l);
				const uint32_t *st = mp_trace_stalls(t, i, l);
				for (uint32_t j = 0; j < k; j++) {
					bad |= ids[j] != synth_id(i, l, j, experts, k);
					if (flags & MP_TRACE_F_WEIGHTS)
						bad |= wt[j] != 0.25f * (float)(j + 1);
					else
						bad |= wt != NULL;
					if (flags & MP_TRACE_F_OUTCOMES)
						bad |= oc[j] != (i + j) % MP_TRACE_OUTCOME_COUNT ||
						       st[j] != (uint32_t)(i * 1000 + l * 10 + j);
					else
						bad |= oc != NULL || st != NULL;
				}
			}
		CHECK_EQ_INT(bad, 0);
	}
	mp_trace_destroy(t);
}

static void test_roundtrip_v2(void)
{
	roundtrip(64, MP_TRACE_F_WEIGHTS | MP_TRACE_F_OUTCOMES, "a");
	roundtrip(384, MP_TRACE_F_WEIGHTS | MP_TRACE_F_OUTCOMES, "b");   /* two-byte ids */
	roundtrip(256, 0, "c");
	roundtrip(64, MP_TRACE_F_OUTCOMES, "d");
}

/* A small v1 trace: 2 layers, 8 experts, top-2, sequences of 2 and 1 tokens. */
static size_t make_v1(uint8_t *b)
{
	static const uint8_t v1[] = {
		'M', 'O', 'E', 'T', 'R', 'A', 'C', 'E', 1, 0, 0, 0, 2, 0, 0, 0, 8, 0, 0, 0, 2, 0, 0, 0,
		2, 0, 0, 0,
		2, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7,
		1, 0, 0, 0, 7, 6, 5, 4,
	};
	memcpy(b, v1, sizeof v1);
	return sizeof v1;
}

static int read_buf(const uint8_t *b, size_t n, char *msg, size_t len)
{
	struct mp_trace *t = mp_trace_create();
	if (!t)
		return -ENOMEM;
	int rc = mp_trace_read_mem(t, "x.trace", b, n);
	snprintf(msg, len, "%s", mp_trace_error(t));
	mp_trace_destroy(t);
	return rc;
}

static void test_v1_small(void)
{
	uint8_t b[64];
	size_t n = make_v1(b);
	struct mp_trace *t = mp_trace_create();
	REQUIRE(t);
	CHECK_EQ_INT(mp_trace_read_mem(t, "x.trace", b, n), 0);
	CHECK_EQ_U64(mp_trace_info(t)->tokens, 3);
	CHECK_EQ_U64(mp_trace_seq_start(t, 1), 2);
	CHECK_EQ_INT(mp_trace_ids(t, 1, 1)[1], 7);
	CHECK_EQ_INT(mp_trace_ids(t, 2, 0)[0], 7);
	CHECK_EQ_INT(mp_trace_read_mem(t, "x.trace", b, n), -MP_EARG);   /* already loaded */
	mp_trace_destroy(t);
}

/* Each corruption of the small v1 trace fails with code and a message naming
 * the file and field. */
static void test_malformed_v1(void)
{
	struct { size_t at; uint8_t val; int shrink; int grow; int rc; const char *want; } cases[] = {
		{ 0, 'X', 0, 0, -MP_EFORMAT, "x.trace: magic" },
		{ 8, 3, 0, 0, -MP_EVERSION, "x.trace: version: expected 1 or 2, found 3" },
		{ 12, 0, 0, 0, -MP_EFORMAT, "x.trace: layers" },
		{ 20, 9, 0, 0, -MP_EFORMAT, "x.trace: top_k" },
		{ 29, 1, 0, 0, -MP_EFORMAT, "sequence 0 data" },      /* 258 tokens claimed */
		{ 33, 8, 0, 0, -MP_EFORMAT, "expert id: expected < 8, found 8" },
		{ 33, 0, 0, 0, -MP_EFORMAT, "appears twice" },
		{ 24, 1, 0, 0, -MP_EFORMAT, "trailing bytes" },
		{ 24, 3, 0, 0, -MP_EFORMAT, "sequences: header says 3, found 2" },
		{ 0, 0, 1, 0, -MP_EFORMAT, "sequence 1 data" },       /* truncated */
		{ 0, 0, 34, 0, -MP_EFORMAT, "header: expected 28 bytes" },
		{ 0, 0, 0, 3, -MP_EFORMAT, "trailing bytes" },
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		uint8_t b[64] = { 0 };
		size_t n = make_v1(b);
		if (cases[c].shrink)
			n -= (size_t)cases[c].shrink;
		else if (cases[c].grow)
			n += (size_t)cases[c].grow;
		else
			b[cases[c].at] = cases[c].val;
		char msg[512];
		int rc = read_buf(b, n, msg, sizeof msg);
		CHECK_EQ_INT(rc, cases[c].rc);
		CHECK_CONTAINS(msg, cases[c].want);
	}
	char msg[512];
	struct mp_trace *t = mp_trace_create();
	REQUIRE(t);
	CHECK_EQ_INT(mp_trace_read(t, "/nonexistent/dir/x.trace"), -ENOENT);
	CHECK_CONTAINS(mp_trace_error(t), "/nonexistent/dir/x.trace: cannot open");
	mp_trace_destroy(t);
	(void)msg;
}

/* Writes a tiny v2 trace (1 layer, 4 experts, top-1, outcomes) and returns its
 * bytes in b. */
static size_t make_v2(uint8_t *b, size_t cap)
{
	struct mp_trace_info info = { .version = 2, .layers = 1, .experts = 4, .top_k = 1,
	                              .flags = MP_TRACE_F_OUTCOMES };
	const char *path = tmp_file("m");
	struct mp_trace_writer *w = mp_trace_writer_create();
	if (!w || mp_trace_writer_open(w, path, &info) < 0) {
		mp_trace_writer_destroy(w);
		return 0;
	}
	uint16_t id = 2;
	uint8_t oc = MP_TRACE_MISS;
	uint32_t st = 77;
	mp_trace_writer_add(w, 0, &id, NULL, &oc, &st);
	mp_trace_writer_end_sequence(w);
	mp_trace_writer_close(w);
	mp_trace_writer_destroy(w);
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(b, 1, cap, f) : 0;
	if (f)
		fclose(f);
	unlink(path);
	return n;
}

static void test_malformed_v2(void)
{
	uint8_t b[128];
	size_t n = make_v2(b, sizeof b);
	REQUIRE(n == 64 + 8 + 1 + 1 + 4);
	char msg[512];
	CHECK_EQ_INT(read_buf(b, n, msg, sizeof msg), 0);
	struct { size_t at; uint8_t val; const char *want; } cases[] = {
		{ 32, 6, "x.trace: flags: expected bits of 0x3, found 0x6" },
		{ 28, 8, "x.trace: header_bytes: expected 64.." },
		{ 64, 0, "x.trace: chunk tokens: expected >= 1, found 0" },
		{ 68, 1, "x.trace: chunk flags: the first chunk cannot continue" },
		{ 68, 2, "x.trace: chunk flags: expected 0 or 1, found 0x2" },
		{ 72, 4, "x.trace: expert id: expected < 4, found 4" },
		{ 73, 5, "x.trace: outcome: expected 0..4, found 5" },
		{ 24, 2, "x.trace: sequences: header says 2, found 1" },
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		uint8_t m[128];
		memcpy(m, b, n);
		m[cases[c].at] = cases[c].val;
		CHECK_EQ_INT(read_buf(m, n, msg, sizeof msg), -MP_EFORMAT);
		CHECK_CONTAINS(msg, cases[c].want);
	}
	/* A writer that died before close leaves sequences = 0: read to the end. */
	uint8_t m[128];
	memcpy(m, b, n);
	m[24] = 0;
	struct mp_trace *t = mp_trace_create();
	REQUIRE(t);
	CHECK_EQ_INT(mp_trace_read_mem(t, "x.trace", m, n), 0);
	CHECK_EQ_U64(mp_trace_info(t)->sequences, 1);
	CHECK_EQ_INT(mp_trace_stalls(t, 0, 0)[0], 77);
	CHECK_EQ_INT(mp_trace_outcomes(t, 0, 0)[0], MP_TRACE_MISS);
	CHECK_STR(mp_trace_outcome_name(MP_TRACE_MISS), "miss");
	mp_trace_destroy(t);
	CHECK_EQ_INT(read_buf(b, n - 1, msg, sizeof msg), -MP_EFORMAT);
	CHECK_CONTAINS(msg, "sequence 0 data");
}

static void test_writer_errors(void)
{
	struct mp_trace_info info = { .version = 2, .layers = 2, .experts = 8, .top_k = 2 };
	const char *path = tmp_file("w");
	struct mp_trace_writer *w = mp_trace_writer_create();
	REQUIRE(w);
	struct mp_trace_info v1 = info;
	v1.version = 1;
	CHECK_EQ_INT(mp_trace_writer_open(w, path, &v1), -MP_EARG);
	CHECK_CONTAINS(mp_trace_writer_error(w), "version");
	struct mp_trace_info bad = info;
	bad.top_k = 9;
	CHECK_EQ_INT(mp_trace_writer_open(w, path, &bad), -MP_EARG);
	CHECK_CONTAINS(mp_trace_writer_error(w), "top_k");
	REQUIRE(mp_trace_writer_open(w, path, &info) == 0);
	uint16_t ids[2] = { 1, 2 }, big[2] = { 1, 8 }, dup[2] = { 3, 3 };
	CHECK_EQ_INT(mp_trace_writer_add(w, 1, ids, NULL, NULL, NULL), -MP_EARG);
	CHECK_CONTAINS(mp_trace_writer_error(w), "layer: expected 0 next, given 1");
	CHECK_EQ_INT(mp_trace_writer_add(w, 0, big, NULL, NULL, NULL), -MP_EARG);
	CHECK_CONTAINS(mp_trace_writer_error(w), "expected < 8, given 8");
	CHECK_EQ_INT(mp_trace_writer_add(w, 0, dup, NULL, NULL, NULL), -MP_EARG);
	CHECK_CONTAINS(mp_trace_writer_error(w), "given twice");
	CHECK_EQ_INT(mp_trace_writer_add(w, 0, ids, NULL, NULL, NULL), 0);
	CHECK_EQ_INT(mp_trace_writer_end_sequence(w), -MP_EARG);
	CHECK_CONTAINS(mp_trace_writer_error(w), "inside a token");
	CHECK_EQ_INT(mp_trace_writer_add(w, 1, ids, NULL, NULL, NULL), 0);
	CHECK_EQ_INT(mp_trace_writer_close(w), 0);
	mp_trace_writer_destroy(w);
	struct mp_trace *t = mp_trace_create();
	REQUIRE(t);
	CHECK_EQ_INT(mp_trace_read(t, path), 0);
	CHECK_EQ_U64(mp_trace_info(t)->tokens, 1);
	mp_trace_destroy(t);
	unlink(path);
	mp_trace_writer_destroy(NULL);
	mp_trace_destroy(NULL);
}

int main(void)
{
	RUN(test_reference);
	RUN(test_roundtrip_v2);
	RUN(test_v1_small);
	RUN(test_malformed_v1);
	RUN(test_malformed_v2);
	RUN(test_writer_errors);
	return mp_test_end();
}
