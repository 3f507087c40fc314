/* test_io — pager/io: the backend table and --io selection, including the
 * messages for unknown and unbuilt backends. */
#include <string.h>

#include "err.h"
#include "io.h"
#include "mp_test.h"

static void test_table(void)
{
	const struct mp_io_ops *const *b = mp_io_backends();
	int n = 0, have_sync = 0, have_mmap = 0;
	for (; *b; b++, n++) {
		CHECK_EQ_INT((*b)->version, MP_IO_VERSION);
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

int main(void)
{
	RUN(test_table);
	RUN(test_select);
	return mp_test_end();
}
