/* test_opt — src/opt: parsing every kind, the errors that name the flag and
 * the value, positional arguments, and the help format with defaults. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "opt.h"
#include "mp_test.h"

static const char *const ios[] = { "auto", "uring", "aio", "sync", "mmap", NULL };

struct vals {
	int64_t n;
	double temp;
	uint64_t budget;
	const char *model;
	int io, hide, seen_temp;
};

static int parse(struct vals *v, int argc, char **argv, char *err, const char **pos, size_t *npos)
{
	const struct mp_opt opts[] = {
		{ "n-predict", 'n', MP_OPT_INT, &v->n, "N", "tokens to generate", -1, 1000000, NULL, NULL },
		{ "temp", 0, MP_OPT_FLOAT, &v->temp, "T", "temperature", 0, 5, NULL, &v->seen_temp },
		{ "cache-budget", 0, MP_OPT_SIZE, &v->budget, "SIZE", "expert pool", 0, 0, NULL, NULL },
		{ "model", 'm', MP_OPT_STRING, &v->model, "PATH", "model file", 0, 0, NULL, NULL },
		{ "io", 0, MP_OPT_CHOICE, &v->io, "BACKEND", "I/O backend", 0, 0, ios, NULL },
		{ "hide-think", 0, MP_OPT_FLAG, &v->hide, NULL, "hide the reasoning", 0, 0, NULL, NULL },
	};
	return mp_opt_parse(opts, sizeof opts / sizeof opts[0], argc, argv, pos, 2, npos, err, 256);
}

#define ARGV(...) (char *[]){ "prog", __VA_ARGS__, NULL }

static void test_kinds(void)
{
	struct vals v = { 256, 0.6, 0, NULL, 0, 0, 0 };
	char err[256];
	const char *pos[2];
	size_t np;
	char **a = ARGV("-n", "32", "--temp=0.7", "--cache-budget", "24G", "-m", "x.gguf", "--io",
			"sync", "--hide-think", "extra");
	CHECK_EQ_INT(parse(&v, 12, a, err, pos, &np), 0);
	CHECK_EQ_INT(v.n, 32);
	CHECK_NEAR(v.temp, 0.7, 1e-12);
	CHECK_EQ_U64(v.budget, 24ull << 30);
	CHECK_STR(v.model, "x.gguf");
	CHECK_EQ_INT(v.io, 3);
	CHECK_EQ_INT(v.hide, 1);
	CHECK_EQ_INT(v.seen_temp, 1);
	CHECK_EQ_INT(np, 1);
	CHECK_STR(pos[0], "extra");
	char **b = ARGV("-n", "-1", "--", "--temp");
	CHECK_EQ_INT(parse(&v, 5, b, err, pos, &np), 0);
	CHECK_EQ_INT(v.n, -1);
	CHECK_STR(pos[0], "--temp");
}

static void test_errors(void)
{
	struct vals v = { 0, 0, 0, NULL, 0, 0, 0 };
	char err[256];
	const char *pos[2];
	size_t np;
	static const struct { char *args[4]; const char *msg; } cases[] = {
		{ { "prog", "--temp", "9", NULL }, "--temp 9: expected a number from 0 to 5" },
		{ { "prog", "--temp", "warm", NULL }, "--temp warm: expected a number" },
		{ { "prog", "-n", "12x", NULL }, "-n 12x: expected an integer" },
		{ { "prog", "--cache-budget", "lots", NULL }, "--cache-budget lots: expected a size" },
		{ { "prog", "--io", "floppy", NULL }, "--io floppy: expected one of auto, uring, aio, sync, mmap" },
		{ { "prog", "--frob", NULL, NULL }, "unknown option --frob" },
		{ { "prog", "-z", NULL, NULL }, "unknown option -z" },
		{ { "prog", "--model", NULL, NULL }, "--model needs a value" },
		{ { "prog", "--hide-think=yes", NULL, NULL }, "--hide-think takes no value" },
		{ { "prog", "a", "b", "c" }, "unexpected argument 'c'" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int argc = 0;
		while (argc < 4 && cases[i].args[argc])
			argc++;
		err[0] = 0;
		CHECK_EQ_INT(parse(&v, argc, (char **)cases[i].args, err, pos, &np), -MP_EARG);
		CHECK_CONTAINS(err, cases[i].msg);
	}
	char **h = ARGV("--help");
	CHECK_EQ_INT(parse(&v, 2, h, err, pos, &np), 1);
}

static void test_help(void)
{
	int64_t n = 256;
	double t = 0.6;
	uint64_t budget = 0;
	int io = 0;
	const struct mp_opt opts[] = {
		{ "n-predict", 'n', MP_OPT_INT, &n, "N", "tokens to generate", 0, 0, NULL, NULL },
		{ "temp", 0, MP_OPT_FLOAT, &t, "T", "temperature", 0, 0, NULL, NULL },
		{ "cache-budget", 0, MP_OPT_SIZE, &budget, "SIZE", "expert pool", 0, 0, NULL, NULL },
		{ "io", 0, MP_OPT_CHOICE, &io, "BACKEND", "I/O backend", 0, 0, ios, NULL },
	};
	char buf[2048] = "";
	FILE *f = fmemopen(buf, sizeof buf - 1, "w");
	REQUIRE(f);
	mp_opt_help(f, "prog [OPTION]...", "Does things.", opts, 4);
	fclose(f);
	CHECK_CONTAINS(buf, "Usage: prog [OPTION]...\nDoes things.\n\nOptions:\n");
	CHECK_CONTAINS(buf, "  -n, --n-predict N        tokens to generate (default: 256)\n");
	CHECK_CONTAINS(buf, "      --temp T             temperature (default: 0.6)\n");
	CHECK_CONTAINS(buf, "      --cache-budget SIZE  expert pool\n");
	CHECK_CONTAINS(buf, "      --io BACKEND         I/O backend (default: auto)\n");
	CHECK_CONTAINS(buf, "  -h, --help");
}

/* Runs mp_opt_parse_main with fd FD (1 or 2) sent to a file whose text is
 * left in out; returns what mp_opt_parse_main returned. */
static int parse_main_into(int fd, char **argv, int argc, char *out, size_t out_len)
{
	int64_t n = 256;
	const char *pos[1];
	size_t np = 0;
	const struct mp_opt opts[] = {
		{ "n-predict", 'n', MP_OPT_INT, &n, "N", "tokens to generate", 0, 100, NULL, NULL },
	};
	char path[] = "/tmp/mp-test-opt-XXXXXX";
	int tmp = mkstemp(path);
	CHECK(tmp >= 0);
	if (tmp < 0)
		return -99;
	unlink(path);
	fflush(fd == 1 ? stdout : stderr);
	int saved = dup(fd);
	CHECK(saved >= 0);
	if (saved < 0 || dup2(tmp, fd) != fd) {
		close(tmp);
		return -99;
	}
	int rc = mp_opt_parse_main("prog", "prog [OPTION]... FILE", "Does things.", opts, 1, argc, argv,
				   pos, 1, &np);
	fflush(fd == 1 ? stdout : stderr);
	dup2(saved, fd);
	close(saved);
	ssize_t got = pread(tmp, out, out_len - 1, 0);
	out[got > 0 ? got : 0] = 0;
	close(tmp);
	return rc;
}

static void test_parse_main(void)
{
	char out[2048];
	CHECK_EQ_INT(parse_main_into(1, ARGV("--help"), 2, out, sizeof out), 0);
	CHECK_CONTAINS(out, "Usage: prog [OPTION]... FILE\nDoes things.\n");
	CHECK_CONTAINS(out, "  -n, --n-predict N");
	CHECK_EQ_INT(parse_main_into(2, ARGV("-n", "500"), 3, out, sizeof out), 2);
	CHECK_CONTAINS(out, "prog: -n 500: expected");
	CHECK_EQ_INT(parse_main_into(2, ARGV("--frob"), 2, out, sizeof out), 2);
	CHECK_CONTAINS(out, "prog: ");
	CHECK_CONTAINS(out, "--frob");
	CHECK_EQ_INT(parse_main_into(2, ARGV("-n", "5", "a.txt"), 4, out, sizeof out), -1);
	CHECK_STR(out, "");
}

int main(void)
{
	RUN(test_kinds);
	RUN(test_errors);
	RUN(test_help);
	RUN(test_parse_main);
	return mp_test_end();
}
