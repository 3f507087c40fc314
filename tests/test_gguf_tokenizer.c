/* test_gguf_tokenizer — the real DeepSeek-V3 tokenizer end to end through a
 * model file: moepager-mkmodel --tokenizer embeds tokenizer.json (committed
 * xz-compressed under tests/tokvec/) into a tiny model, src/loader builds the
 * tokenizer from the file's tokenizer.ggml.* keys, and every committed test
 * string (ids produced by the reference JavaScript tokenizer) must encode to
 * the same ids.  Skipped (77) only when xz is missing; a missing or damaged
 * committed file fails. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "gguf.h"
#include "loader.h"
#include "tokenizer.h"
#include "mp_test.h"

static char model[256], json_path[256];
static struct mp_tok *tok;

static const char *srcdir(void)
{
	const char *s = getenv("srcdir");
	return s && *s ? s : ".";
}

static void test_vocabulary(void)
{
	CHECK_EQ_INT(mp_tok_n_vocab(tok), 129280);
	CHECK_EQ_INT(mp_tok_bos(tok), 0);
	CHECK_EQ_INT(mp_tok_eos(tok), 1);
	CHECK_EQ_INT(mp_tok_find(tok, "<｜User｜>", strlen("<｜User｜>")), 128803);
	CHECK_EQ_INT(mp_tok_find(tok, "<｜Assistant｜>", strlen("<｜Assistant｜>")), 128804);
}

static void test_vectors(void)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/tests/tokvec/deepseek_v3.json", srcdir());
	json_error_t je;
	json_t *root = json_load_file(path, JSON_ALLOW_NUL, &je);
	REQUIRE(root);
	int32_t ids[4096];
	size_t i, checked = 0;
	json_t *e;
	json_array_foreach(root, i, e) {
		json_t *jt = json_object_get(e, "text"), *jids = json_object_get(e, "ids");
		size_t want = json_array_size(jids);
		int n = mp_tok_encode(tok, json_string_value(jt), json_string_length(jt),
				      MP_TOK_PARSE_SPECIAL, ids, 4096);
		int same = n == (int)want;
		for (size_t k = 0; same && k < want; k++)
			same = ids[k] == json_integer_value(json_array_get(jids, k));
		if (!same)
			MP_TEST_FAIL("vector %zu (\"%.40s\"): %d ids, expected %zu or different ids", i,
				     json_string_value(jt), n, want);
		checked++;
	}
	CHECK(checked >= 60);
	json_decref(root);
}

int main(void)
{
	const char *b = getenv("MP_BUILDDIR");
	snprintf(model, sizeof model, "gguf-tokenizer.%d.gguf", (int)getpid());
	snprintf(json_path, sizeof json_path, "gguf-tokenizer.%d.json", (int)getpid());
	char cmd[8192], xzf[4096];
	snprintf(xzf, sizeof xzf, "%s/tests/tokvec/deepseek_v3_tokenizer.json.xz", srcdir());
	/* the file is the project's (missing: a failure); xz is the machine's */
	if (access(xzf, R_OK) != 0) {
		fprintf(stderr, "FAIL: %s: cannot read it (the project carries it)\n", xzf);
		return 1;
	}
	if (system("xz --version >/dev/null 2>&1") != 0)
		mp_test_skip("no xz to unpack the committed tokenizer.json (apt-get install xz-utils)");
	snprintf(cmd, sizeof cmd, "xz -dc '%s' > %s", xzf, json_path);
	if (system(cmd) != 0) {
		unlink(json_path);
		fprintf(stderr, "FAIL: %s\n", cmd);
		return 1;
	}
	snprintf(cmd, sizeof cmd, "'%s/moepager-mkmodel' --preset tiny --quant q8_0 --quiet --vocab 129280 --tokenizer %s -o %s",
		 b ? b : ".", json_path, model);
	int rc = system(cmd);
	unlink(json_path);
	if (rc != 0) {
		fprintf(stderr, "FAIL: %s\n", cmd);
		return 1;
	}
	char err[512];
	struct mp_gguf *g;
	if (mp_gguf_open(model, &g, err, sizeof err) < 0 || mp_loader_tokenizer(g, &tok, err, sizeof err) < 0) {
		fprintf(stderr, "FAIL: %s\n", err);
		unlink(model);
		return 1;
	}
	RUN(test_vocabulary);
	RUN(test_vectors);
	mp_tok_destroy(tok);
	mp_gguf_destroy(g);
	unlink(model);
	return mp_test_end();
}
