# pager — the expert pager: pool, residency, policy, I/O backends, stats.
# Depends on kernels and src/core; never on src/ (it knows byte ranges, not
# transformers).
noinst_LTLIBRARIES += libmppager.la
libmppager_la_CPPFLAGS = $(PAGER_CPPFLAGS)
libmppager_la_SOURCES = \
	pager/io.c \
	pager/io.h \
	pager/io_fault.c \
	pager/io_internal.h \
	pager/io_mem.c \
	pager/io_mmap.c \
	pager/io_sync.c \
	pager/pager.c \
	pager/pager.h \
	pager/policy.c \
	pager/policy.h \
	pager/sim.c \
	pager/sim.h \
	pager/stats.c \
	pager/stats.h \
	pager/trace.c \
	pager/trace.h
if HAVE_LIBAIO
libmppager_la_SOURCES += pager/io_aio.c
endif
if HAVE_LIBURING
libmppager_la_SOURCES += pager/io_uring.c
endif

check_PROGRAMS += tests/test_io
tests_test_io_CPPFLAGS = $(PAGER_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_io_SOURCES = tests/test_io.c tests/mp_test.h tests/test_pager_util.h
tests_test_io_LDADD = $(PAGER_LIBS)

check_PROGRAMS += tests/test_trace
tests_test_trace_CPPFLAGS = $(PAGER_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_trace_SOURCES = tests/test_trace.c tests/mp_test.h
tests_test_trace_LDADD = $(PAGER_LIBS)

check_PROGRAMS += tests/test_policy
tests_test_policy_CPPFLAGS = $(PAGER_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_policy_SOURCES = tests/test_policy.c tests/mp_test.h
tests_test_policy_LDADD = $(PAGER_LIBS)

check_PROGRAMS += tests/test_stats
tests_test_stats_CPPFLAGS = $(PAGER_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_stats_SOURCES = tests/test_stats.c tests/mp_test.h
tests_test_stats_LDADD = $(PAGER_LIBS)

check_PROGRAMS += tests/test_pager
tests_test_pager_CPPFLAGS = $(PAGER_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_pager_SOURCES = tests/test_pager.c tests/mp_test.h tests/test_pager_util.h
tests_test_pager_LDADD = $(PAGER_LIBS)

# bench/pagerio: disk MB/s per backend next to fio's (bench/README.md).
noinst_PROGRAMS += bench/pagerio
bench_pagerio_CPPFLAGS = $(PAGER_CPPFLAGS)
bench_pagerio_SOURCES = bench/pagerio.c
bench_pagerio_LDADD = $(PAGER_LIBS)
