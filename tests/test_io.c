/* test_io — pager/io: the backend table and --io selection, and for every
 * backend built (plus the memory one) reads of known bytes, reads that end at
 * the file's end, and through the fault shim short transfers, EAGAIN,
 * reordered and delayed completions, EIO at a chosen request, a file
 * truncated under the reader (-ENODATA, never SIGBUS), cancellation, and the
 * auto fallback when io_uring cannot be set up; io_uring registers only pools
 * up to reg_max and reports a skipped or refused registration. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "err.h"
#include "io.h"
#include "io_internal.h"
#include "mp_test.h"
#include "rng.h"
#include "test_pager_util.h"

#define FILE_SIZE (3u * 1024 * 1024 + 1000)   /* not a multiple of 4 KiB: EOF reads */
#define NREQ 48

/* The SIGBUS guard of the mmap backend is tested: the sanitizers must leave
 * SIGBUS to it. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "handle_sigbus=0";
}

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "handle_sigbus=0";
}

static char path[4096];
static char *pool;                 /* 4 KiB aligned destination for reads */
static size_t pool_len;

static void test_table(void)
{
	const struct mp_io_ops *const *b = mp_io_backends();
	int n = 0, have_sync = 0, have_mmap = 0;
	for (; *b; b++, n++) {
		CHECK_EQ_INT((*b)->version, MP_IO_VERSION);
		CHECK((*b)->open && (*b)->submit && (*b)->reap && (*b)->close && (*b)->add_file);
		have_sync |= strcmp((*b)->name, "sync") == 0;
		have_mmap |= strcmp((*b)->name, "mmap") == 0;
	}
	CHECK(have_sync && have_mmap);
	int want = 2;
#ifdef HAVE_LIBURING
	want++;
	CHECK(mp_io_find("uring") != NULL);
	CHECK_STR(mp_io_backends()[0]->name, "uring");   /* auto tries it first */
#else
	CHECK(mp_io_find("uring") == NULL);
#endif
#ifdef HAVE_LIBAIO
	want++;
	CHECK(mp_io_find("aio") != NULL);
#else
	CHECK(mp_io_find("aio") == NULL);
#endif
	CHECK_EQ_INT(n, want);
	CHECK(mp_io_find("mmap")->caps & MP_IO_CAP_NOPOOL);
	CHECK(mp_io_find("memory") == NULL);             /* never chosen by --io */
	CHECK(mp_io_find("mmap") == &mp_io_mmap_ops);
}

static void test_select(void)
{
	const struct mp_io_ops *ops = NULL;
	char note[512];
	CHECK_EQ_INT(mp_io_select("auto", &ops, note, sizeof note), 0);
	REQUIRE(ops);
	CHECK_EQ_INT(mp_io_select("sync", &ops, note, sizeof note), 0);
	CHECK_STR(ops->name, "sync");
	CHECK_EQ_INT(mp_io_select("floppy", &ops, note, sizeof note), -MP_EARG);
	CHECK_CONTAINS(note, "--io floppy");
#ifndef HAVE_LIBURING
	CHECK_EQ_INT(mp_io_select("uring", &ops, note, sizeof note), -MP_EUNAVAIL);
	CHECK_CONTAINS(note, "no uring backend");
#endif
#ifndef HAVE_LIBAIO
	CHECK_EQ_INT(mp_io_select("aio", &ops, note, sizeof note), -MP_EUNAVAIL);
	CHECK_CONTAINS(note, "no aio backend");
#endif
}

/* io_uring refused (seccomp): by the environment switch at probe time, and
 * by a failing open after a good probe.  auto goes on to the next backend
 * and says why once; a named backend fails with the reason. */
static void test_fallback(void)
{
	const struct mp_io_ops *ops = NULL;
	char note[512], prev[256];
	/* the caller's setting (a machine whose kernel refuses io_uring is
	 * reproduced with MOEPAGER_IO_DISABLE=uring) is put back afterwards */
	const char *env = getenv("MOEPAGER_IO_DISABLE");
	snprintf(prev, sizeof prev, "%s", env ? env : "");
	setenv("MOEPAGER_IO_DISABLE", "uring,aio", 1);
	CHECK_EQ_INT(mp_io_select("auto", &ops, note, sizeof note), 0);
	REQUIRE(ops);
	CHECK_STR(ops->name, "sync");
#ifdef HAVE_LIBURING
	CHECK_CONTAINS(note, "uring unusable (disabled by MOEPAGER_IO_DISABLE");
	CHECK_EQ_INT(mp_io_select("uring", &ops, note, sizeof note), -MP_EUNAVAIL);
	CHECK_CONTAINS(note, "--io uring: disabled");
#endif
	if (env)
		setenv("MOEPAGER_IO_DISABLE", prev, 1);
	else
		unsetenv("MOEPAGER_IO_DISABLE");

	struct mp_io_fault f = { .fail_open = "uring" };
	struct mp_io_config cfg = { .depth = 4, .fault = &f };
	struct mp_io *io = NULL;
	CHECK_EQ_INT(mp_io_open_name("auto", &cfg, &io, note, sizeof note), 0);
	REQUIRE(io);
	CHECK(strcmp(mp_io_ops_of(io)->name, "uring") != 0);
#ifdef HAVE_LIBURING
	char why[256] = "";
	if (mp_io_find("uring")->probe(why, sizeof why) != 0) {
		/* the kernel refuses io_uring: auto says so at the probe, and
		 * an open failing after a good probe cannot be reached here */
		CHECK_CONTAINS(note, "uring unusable (");
		mp_test_skip_part("test_fallback on uring failing to open", why);
	} else {
		CHECK_CONTAINS(note, "uring unusable (uring: open failed");
		mp_io_close(io);
		io = NULL;
		CHECK_EQ_INT(mp_io_open_name("uring", &cfg, &io, note, sizeof note), -ENOSYS);
		CHECK(io == NULL);
		CHECK_CONTAINS(note, "--io uring");
	}
#endif
	mp_io_close(io);
}

/* Reads NREQ random aligned ranges (some up to the file's end) through
 * ops with the given faults and checks every byte.  Returns failures. */
static void read_and_check(const struct mp_io_ops *ops, const struct mp_io_fault *f,
                           unsigned depth, uint64_t seed)
{
	struct mp_io_config cfg = { .depth = depth, .threads = 3, .buf_base = pool,
	                            .buf_len = pool_len, .fault = f };
	struct mp_io *io = NULL;
	char msg[512] = "";
	int rc = mp_io_open(ops, &cfg, &io, msg, sizeof msg);
	if (rc < 0)
		MP_TEST_FAIL("%s: open: %s", ops->name, msg);
	REQUIRE(rc == 0);
	uint64_t size = 0;
	CHECK_EQ_INT(mp_io_add_file(io, path, &size), 0);
	CHECK_EQ_U64(size, FILE_SIZE);

	struct mp_rng rng;
	mp_rng_seed(&rng, seed);
	struct mp_io_req req[NREQ];
	uint64_t slice = pool_len / NREQ & ~(uint64_t)4095;
	for (unsigned i = 0; i < NREQ; i++) {
		uint64_t pages = FILE_SIZE / 4096 + 1;
		uint64_t pg = mp_rng_u64(&rng) % pages;
		uint64_t npg = 1 + mp_rng_u64(&rng) % (slice / 4096);
		if (i % 8 == 7)
			pg = pages - 1 - (npg > 1 ? 1 : 0);    /* reaches past the end */
		req[i] = (struct mp_io_req){ .file = 0, .offset = pg * 4096, .len = npg * 4096,
		                             .buf = ops->caps & MP_IO_CAP_NOPOOL ? NULL : pool + i * slice,
		                             .tag = 1000 + i };
	}
	unsigned sent = 0, done = 0, bad = 0;
	uint8_t seen[NREQ] = { 0 };
	while (done < NREQ) {
		if (sent < NREQ) {
			rc = mp_io_submit(io, req + sent, NREQ - sent);
			REQUIRE(rc >= 0);
			sent += (unsigned)rc;
		}
		CHECK(mp_io_inflight(io) <= depth);
		struct mp_io_cqe c[8];
		rc = mp_io_reap(io, c, 8, 1);
		REQUIRE(rc > 0);
		for (int j = 0; j < rc; j++, done++) {
			unsigned i = (unsigned)(c[j].tag - 1000);
			REQUIRE(i < NREQ && !seen[i]);
			seen[i] = 1;
			uint64_t want = req[i].len;
			if (req[i].offset + want > FILE_SIZE)
				want = FILE_SIZE - req[i].offset;
			if (c[j].result != (int64_t)want) {
				MP_TEST_FAIL("%s: request %u (offset %llu len %llu): result %lld, expected %llu",
				             ops->name, i, (unsigned long long)req[i].offset,
				             (unsigned long long)req[i].len, (long long)c[j].result,
				             (unsigned long long)want);
				continue;
			}
			if (tp_mismatch(c[j].data, 1, req[i].offset, want))
				bad++;
		}
	}
	if (bad)
		MP_TEST_FAIL("%s: %u requests served wrong bytes", ops->name, bad);
	CHECK_EQ_INT(mp_io_inflight(io), 0);
	mp_io_close(io);
}

/* io_uring registers a pool at open only up to reg_max (registration pins all
 * of it at start); a larger pool is registered piece by piece on first use,
 * which is reported, as is a refusal.  Reads are right either way. */
static void test_registration(void)
{
	const struct mp_io_ops *u = mp_io_find("uring");
	char why[256];
	if (!u || u->probe(why, sizeof why) < 0) {
		printf("  (no usable io_uring: not run)\n");
		return;
	}
	const uint64_t limits[2] = { 4096, UINT64_MAX };
	for (int k = 0; k < 2; k++) {
		struct mp_io_config cfg = { .depth = 4, .buf_base = pool, .buf_len = pool_len,
		                            .reg_max = limits[k] };
		struct mp_io *io = NULL;
		char msg[512] = "";
		REQUIRE(mp_io_open(u, &cfg, &io, msg, sizeof msg) == 0);
		CHECK_EQ_INT(mp_io_add_file(io, path, NULL), 0);
		unsigned fb = mp_io_fallbacks(io);
		CHECK_EQ_INT(!!(fb & MP_IO_FB_REG_LAZY), k == 0 && !(fb & MP_IO_FB_REG_REFUSED));
		if (k == 1 && (fb & MP_IO_FB_REG_REFUSED))
			printf("  (registration refused here, and reported)\n");
		struct mp_io_req r = { .file = 0, .offset = 8192, .len = 65536, .buf = pool + 4096, .tag = 5 };
		CHECK_EQ_INT(mp_io_submit(io, &r, 1), 1);
		struct mp_io_cqe c;
		CHECK_EQ_INT(mp_io_reap(io, &c, 1, 1), 1);
		CHECK(c.result == 65536 && !tp_mismatch(pool + 4096, 1, 8192, 65536));
		mp_io_close(io);
	}
}

/* mp_io_prepare registers the lazy pieces wholly inside its range ahead of
 * any read (once each), a read into a piece not prepared registers it and
 * is counted apart, and the reads are right; a piece size that is not a
 * multiple of 4 KiB is refused at open with the value named. */
static void test_prepare(void)
{
	const struct mp_io_ops *u = mp_io_find("uring");
	char why[256];
	if (!u || u->probe(why, sizeof why) < 0)
		SKIP_CASE("no usable io_uring");
	const uint64_t piece = 64 << 10;    /* pool_len / piece = 64 pieces */
	struct mp_io_config cfg = { .depth = 4, .buf_base = pool, .buf_len = pool_len,
	                            .reg_max = 4096, .reg_piece = piece };
	struct mp_io *io = NULL;
	char msg[512] = "";
	REQUIRE(mp_io_open(u, &cfg, &io, msg, sizeof msg) == 0);
	if (mp_io_fallbacks(io) & MP_IO_FB_REG_REFUSED) {
		mp_io_close(io);
		SKIP_CASE("buffer registration refused here");
	}
	CHECK_EQ_INT(mp_io_add_file(io, path, NULL), 0);
	CHECK_EQ_INT(mp_io_prepare(io, 0, 2 * piece + 4096), 2);   /* pieces 0 and 1 */
	CHECK_EQ_INT(mp_io_prepare(io, 0, 2 * piece), 0);          /* done already */
	CHECK_EQ_INT(mp_io_prepare(io, piece + 4096, piece), 0);   /* no whole piece inside */
	uint32_t ahead, on_read;
	const uint64_t at[2] = { 4096, 5 * piece };                   /* prepared; not */
	for (int i = 0; i < 2; i++) {
		struct mp_io_req r = { .file = 0, .offset = 8192, .len = 16384, .buf = pool + at[i], .tag = 1 };
		CHECK_EQ_INT(mp_io_submit(io, &r, 1), 1);
		struct mp_io_cqe c;
		CHECK_EQ_INT(mp_io_reap(io, &c, 1, 1), 1);
		CHECK(c.result == 16384 && !tp_mismatch(pool + at[i], 1, 8192, 16384));
		mp_io_reg_counts(io, &ahead, &on_read);
		CHECK_EQ_U64(ahead, 2);
		CHECK_EQ_U64(on_read, (uint64_t)i);
	}
	CHECK_EQ_INT(mp_io_prepare(io, 0, pool_len), 61);           /* the rest */
	mp_io_close(io);
	cfg.reg_piece = 5000;
	msg[0] = 0;
	CHECK_EQ_INT(mp_io_open(u, &cfg, &io, msg, sizeof msg), -MP_EARG);
	CHECK(strstr(msg, "reg_piece 5000") != NULL);
}

static void test_read_every_backend(void)
{
	const struct mp_io_ops *b[8];
	int n = tp_backends(b, 8, mp_test_current);
	for (int i = 0; i < n; i++) {
		read_and_check(b[i], NULL, 8, 7);
		read_and_check(b[i], NULL, 1, 8);
		tp_drop_cache(path);            /* now from the disk */
		read_and_check(b[i], NULL, 16, 9);
	}
}

static void test_short_eagain_reorder(void)
{
	const struct mp_io_ops *b[8];
	int n = tp_backends(b, 8, mp_test_current);
	struct mp_io_fault f = { .short_every = 2, .eagain_every = 5, .reorder = 1, .delay_us = 50 };
	for (int i = 0; i < n; i++)
		read_and_check(b[i], &f, 6, 11);
}

/* EIO at request 5: that request fails with -EIO, the rest are whole. */
static void test_eio(void)
{
	const struct mp_io_ops *b[8];
	int n = tp_backends(b, 8, mp_test_current);
	for (int k = 0; k < n; k++) {
		struct mp_io_fault f = { .eio_at = 5 };
		struct mp_io_config cfg = { .depth = 4, .buf_base = pool, .buf_len = pool_len, .fault = &f };
		struct mp_io *io = NULL;
		char msg[256];
		REQUIRE(mp_io_open(b[k], &cfg, &io, msg, sizeof msg) == 0);
		REQUIRE(mp_io_add_file(io, path, NULL) == 0);
		int fails = 0, whole = 0;
		for (unsigned i = 0; i < 10; i++) {
			struct mp_io_req r = { .offset = i * 8192, .len = 8192, .tag = i,
			                       .buf = b[k]->caps & MP_IO_CAP_NOPOOL ? NULL : pool };
			CHECK_EQ_INT(mp_io_submit(io, &r, 1), 1);
			struct mp_io_cqe c;
			CHECK_EQ_INT(mp_io_reap(io, &c, 1, 1), 1);
			CHECK_EQ_U64(c.tag, i);
			if (c.result == -EIO) {
				fails++;
				CHECK_EQ_INT(i, 4);
			} else if (c.result == 8192 && !tp_mismatch(c.data, 1, i * 8192, 8192)) {
				whole++;
			}
		}
		if (fails != 1 || whole != 9)
			MP_TEST_FAIL("%s: %d EIO and %d whole reads, expected 1 and 9", b[k]->name, fails, whole);
		mp_io_close(io);
	}
}

/* The file shrinks while open: a read past the new end is -ENODATA for
 * every backend that reads the file (mmap: no SIGBUS). */
static void test_truncated(void)
{
	const struct mp_io_ops *b[8];
	int n = tp_backends(b, 8, mp_test_current);
	b[n++] = &mp_io_mmap_ops;               /* again, past its size check: SIGBUS guard */
	for (int k = 0; k < n; k++) {
		if (b[k] == &mp_io_memory_ops)
			continue;                   /* reads its copy */
		if (k == n - 1)
			setenv("MOEPAGER_IO_MMAP_NOSTAT", "1", 1);
		char tpath[4096];
		REQUIRE(tp_make_file(tpath, sizeof tpath, "io-trunc", 1, 1 << 20) == 0);
		struct mp_io_config cfg = { .depth = 4, .buf_base = pool, .buf_len = pool_len };
		struct mp_io *io = NULL;
		char msg[256];
		REQUIRE(mp_io_open(b[k], &cfg, &io, msg, sizeof msg) == 0);
		REQUIRE(mp_io_add_file(io, tpath, NULL) == 0);
		REQUIRE(truncate(tpath, 256 * 1024) == 0);
		void *buf = b[k]->caps & MP_IO_CAP_NOPOOL ? NULL : pool;
		struct mp_io_req r[2] = {
			{ .offset = 0, .len = 65536, .buf = buf, .tag = 1 },
			{ .offset = 512 * 1024, .len = 65536, .buf = buf ? pool + 65536 : NULL, .tag = 2 },
		};
		CHECK_EQ_INT(mp_io_submit(io, r, 2), 2);
		struct mp_io_cqe c[2];
		int got = 0;
		while (got < 2) {
			int rc = mp_io_reap(io, c + got, 2 - got, 1);
			REQUIRE(rc > 0);
			got += rc;
		}
		for (int j = 0; j < 2; j++) {
			if (c[j].tag == 1)
				CHECK_EQ_INT(c[j].result, 65536);
			else if (c[j].result != -ENODATA)
				MP_TEST_FAIL("%s: read past the new end: %lld, expected -ENODATA",
				             b[k]->name, (long long)c[j].result);
		}
		mp_io_close(io);
		unlink(tpath);
	}
	unsetenv("MOEPAGER_IO_MMAP_NOSTAT");
}

/* Cancelled requests complete exactly once, cancelled or whole. */
static void test_cancel(void)
{
	const struct mp_io_ops *b[8];
	int n = tp_backends(b, 8, mp_test_current);
	for (int k = 0; k < n; k++) {
		struct mp_io_config cfg = { .depth = 8, .threads = 1, .buf_base = pool, .buf_len = pool_len };
		struct mp_io *io = NULL;
		char msg[256];
		REQUIRE(mp_io_open(b[k], &cfg, &io, msg, sizeof msg) == 0);
		REQUIRE(mp_io_add_file(io, path, NULL) == 0);
		struct mp_io_req r[8];
		for (unsigned i = 0; i < 8; i++)
			r[i] = (struct mp_io_req){ .offset = i * 65536, .len = 65536, .tag = 50 + i,
			                           .buf = b[k]->caps & MP_IO_CAP_NOPOOL ? NULL : pool + i * 65536 };
		int sent = mp_io_submit(io, r, 8);
		CHECK_EQ_INT(sent, 8);
		for (unsigned i = 0; i < 8; i += 2)
			mp_io_cancel(io, 50 + i);
		CHECK_EQ_INT(mp_io_cancel(io, 999), -MP_ENOTFOUND);
		int got = 0;
		while (got < 8) {
			struct mp_io_cqe c[8];
			int rc = mp_io_reap(io, c, 8, 1);
			REQUIRE(rc > 0);
			for (int j = 0; j < rc; j++) {
				unsigned i = (unsigned)(c[j].tag - 50);
				CHECK(c[j].result == 65536 || (c[j].result == -MP_ECANCELLED && i % 2 == 0));
				if (c[j].result == 65536)
					CHECK(!tp_mismatch(c[j].data, 1, i * 65536ull, 65536));
			}
			got += rc;
		}
		CHECK_EQ_INT(mp_io_inflight(io), 0);
		mp_io_close(io);
	}
}

/* Requests outside the file or misaligned for O_DIRECT are refused whole. */
static void test_bad_requests(void)
{
	const struct mp_io_ops *b[8];
	int n = tp_backends(b, 8, mp_test_current);
	for (int k = 0; k < n; k++) {
		struct mp_io_config cfg = { .depth = 2 };
		struct mp_io *io = NULL;
		char msg[256];
		REQUIRE(mp_io_open(b[k], &cfg, &io, msg, sizeof msg) == 0);
		REQUIRE(mp_io_add_file(io, path, NULL) == 0);
		struct mp_io_req r = { .file = 1, .offset = 0, .len = 4096, .buf = pool };
		CHECK_EQ_INT(mp_io_submit(io, &r, 1), -EINVAL);
		r.file = 0;
		r.offset = FILE_SIZE;
		CHECK_EQ_INT(mp_io_submit(io, &r, 1), -EINVAL);
		CHECK_CONTAINS(mp_io_message(io), "bad request");
		if (b[k]->caps & MP_IO_CAP_ALIGNED) {
			r.offset = 100;
			CHECK_EQ_INT(mp_io_submit(io, &r, 1), -EINVAL);
			CHECK_CONTAINS(mp_io_message(io), "aligned");
		}
		CHECK_EQ_INT(mp_io_add_file(io, "/nonexistent/x.gguf", NULL), -ENOENT);
		CHECK_CONTAINS(mp_io_message(io), "/nonexistent/x.gguf");
		CHECK_EQ_INT(mp_io_inflight(io), 0);
		mp_io_close(io);
	}
}

int main(void)
{
	pool_len = 4u << 20;
	pool = mmap(NULL, pool_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pool == MAP_FAILED || tp_make_file(path, sizeof path, "io", 1, FILE_SIZE) != 0) {
		fprintf(stderr, "FAIL: cannot make the test file or buffer\n");
		return 1;
	}
	RUN(test_table);
	RUN(test_select);
	RUN(test_fallback);
	RUN(test_read_every_backend);
	RUN(test_registration);
	RUN(test_prepare);
	RUN(test_short_eagain_reorder);
	RUN(test_eio);
	RUN(test_truncated);
	RUN(test_cancel);
	RUN(test_bad_requests);
	unlink(path);
	return mp_test_end();
}
