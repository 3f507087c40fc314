/*
 * mp_test.h — the unit-test assertions every test program uses.
 *
 * Why our own header rather than Check or cmocka: automake's parallel harness
 * already runs one program per module, counts pass/fail/skip from exit codes
 * (0, 77, other) and keeps a log per program; what a test needs beyond that is
 * a handful of assertions that print what was expected and what came.  That
 * is this file, with no dependency and no fork-per-case to slow the sanitizer
 * builds.
 *
 * Use:
 *     static void test_parse(void) { CHECK_EQ_U64(parse("4K"), 4096); }
 *     int main(void) { RUN(test_parse); return mp_test_end(); }
 * A failed CHECK reports and lets the case go on; REQUIRE also returns from
 * the case.  SKIP_CASE("why") ends one case as skipped (a backend or a table
 * this machine lacks); mp_test_skip_part() adds a skipped case for one part
 * of a case that cannot run here (a backend the kernel lacks) while the case
 * goes on; mp_test_skip() skips the whole program (exit 77).  Every
 * case prints one "case NAME: ok|skipped (WHY)|FAILED" line, and tests/driver
 * turns those lines into the harness's per-case results, so a skipped case is
 * counted as skipped, never as passed.
 */
#ifndef MP_TEST_H
#define MP_TEST_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int mp_test_failed_checks;
static int mp_test_cases, mp_test_failed_cases, mp_test_skipped_cases;
static const char *mp_test_current = "?";
static const char *mp_test_skip_why;      /* set by SKIP_CASE in the running case */

#define MP_TEST_FAIL(...)                                                       \
	do {                                                                    \
		fprintf(stderr, "FAIL %s (%s:%d): ", mp_test_current, __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__);                                   \
		fputc('\n', stderr);                                            \
		mp_test_failed_checks++;                                        \
	} while (0)

#define CHECK(cond)                                                             \
	do { if (!(cond)) MP_TEST_FAIL("expected %s", #cond); } while (0)

#define REQUIRE(cond)                                                           \
	do { if (!(cond)) { MP_TEST_FAIL("required %s", #cond); return; } } while (0)

#define CHECK_EQ_INT(got, want)                                                 \
	do {                                                                    \
		long long g_ = (long long)(got), w_ = (long long)(want);        \
		if (g_ != w_)                                                   \
			MP_TEST_FAIL("%s: expected %lld, got %lld", #got, w_, g_); \
	} while (0)

#define CHECK_EQ_U64(got, want)                                                 \
	do {                                                                    \
		uint64_t g_ = (uint64_t)(got), w_ = (uint64_t)(want);           \
		if (g_ != w_)                                                   \
			MP_TEST_FAIL("%s: expected %" PRIu64 ", got %" PRIu64, #got, w_, g_); \
	} while (0)

#define CHECK_NEAR(got, want, tol)                                              \
	do {                                                                    \
		double g_ = (double)(got), w_ = (double)(want), t_ = (double)(tol); \
		if (!(fabs(g_ - w_) <= t_))                                     \
			MP_TEST_FAIL("%s: expected %.9g within %.3g, got %.9g", #got, w_, t_, g_); \
	} while (0)

#define CHECK_STR(got, want)                                                    \
	do {                                                                    \
		const char *g_ = (got), *w_ = (want);                           \
		if (!g_ || strcmp(g_, w_) != 0)                                 \
			MP_TEST_FAIL("%s: expected \"%s\", got \"%s\"", #got, w_, g_ ? g_ : "(null)"); \
	} while (0)

/* got must contain want (for error messages that name a file or field). */
#define CHECK_CONTAINS(got, want)                                               \
	do {                                                                    \
		const char *g_ = (got), *w_ = (want);                           \
		if (!g_ || !strstr(g_, w_))                                     \
			MP_TEST_FAIL("%s: expected to contain \"%s\", got \"%s\"", #got, w_, g_ ? g_ : "(null)"); \
	} while (0)

/* Ends the running case as skipped, saying why (what this machine lacks).
 * Checks that failed before it still fail the case. */
#define SKIP_CASE(why)                                                          \
	do { mp_test_skip_why = (why); return; } while (0)

/* Each case prints one line that tests/driver counts: "case NAME: ok",
 * "case NAME: skipped (WHY)" or "case NAME: FAILED". */
static inline void mp_test_run(const char *name, void (*fn)(void))
{
	int before = mp_test_failed_checks;
	mp_test_current = name;
	mp_test_skip_why = NULL;
	mp_test_cases++;
	fn();
	if (mp_test_failed_checks != before) {
		mp_test_failed_cases++;
		fflush(stdout);
		fprintf(stderr, "case %s: FAILED\n", name);
	} else if (mp_test_skip_why) {
		mp_test_skipped_cases++;
		printf("case %s: skipped (%s)\n", name, mp_test_skip_why);
	} else {
		printf("case %s: ok\n", name);
	}
	fflush(stdout);
}

#define RUN(fn) mp_test_run(#fn, fn)

/* Records a part that cannot run here as a skipped case of its own,
 * "case NAME: skipped (WHY)": one backend of a case that loops over the
 * backends, say, while the case itself goes on with the others. */
static inline void mp_test_skip_part(const char *name, const char *why)
{
	mp_test_cases++;
	mp_test_skipped_cases++;
	printf("case %s: skipped (%s)\n", name, why);
	fflush(stdout);
}

/* Prints the tally and returns the exit status for main: 1 when a case
 * failed, 77 (automake's "skipped") when every case skipped, else 0. */
static inline int mp_test_end(void)
{
	printf("%d cases, %d failed, %d skipped\n", mp_test_cases, mp_test_failed_cases,
	       mp_test_skipped_cases);
	if (mp_test_failed_cases)
		return 1;
	return mp_test_cases > 0 && mp_test_skipped_cases == mp_test_cases ? 77 : 0;
}

/* Exit with automake's "skipped" status, saying why. */
static inline void mp_test_skip(const char *why)
{
	printf("SKIP: %s\n", why);
	exit(77);
}

/* Path REL under the folder named by the environment variable VAR, which
 * must exist: a missing file fails the test loudly rather than skipping it.
 * Returns a static buffer. */
static inline const char *mp_test_path_in(const char *var, const char *rel)
{
	static char path[4096];
	const char *dir = getenv(var);
	if (!dir || !*dir) {
		fprintf(stderr, "FAIL: %s is not set (run the tests through `make check`)\n", var);
		exit(1);
	}
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	struct stat st;
	if (stat(path, &st) != 0) {
		fprintf(stderr, "FAIL: test data %s is missing (%s=%s)\n", path, var, dir);
		exit(1);
	}
	return path;
}

/* Path of a file in the test data the project carries (tests/data; the
 * harness sets MP_TESTDATA to it).  The data is part of the test contract. */
static inline const char *mp_test_data(const char *rel)
{
	return mp_test_path_in("MP_TESTDATA", rel);
}

/* Path of a file unpacked from tests/data into the build tree before the
 * tests (testdata/; the harness sets MP_TESTDATA_BUILD to it): the reference
 * trace, committed xz-compressed (tests/local.mk). */
static inline const char *mp_test_data_build(const char *rel)
{
	return mp_test_path_in("MP_TESTDATA_BUILD", rel);
}

#endif
