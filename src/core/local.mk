# src/core — the bottom layer: allocation, errors, logging, PRNG, clock, SIZE
# parsing, CPU probe.  Depends on nothing of ours.
noinst_LTLIBRARIES += libmpcore.la
libmpcore_la_CPPFLAGS = $(CORE_CPPFLAGS) $(JEMALLOC_CFLAGS)
libmpcore_la_SOURCES = \
	src/core/alloc.c \
	src/core/alloc.h \
	src/core/clock.c \
	src/core/clock.h \
	src/core/cpu.c \
	src/core/cpu.h \
	src/core/err.c \
	src/core/err.h \
	src/core/file.c \
	src/core/file.h \
	src/core/log.c \
	src/core/log.h \
	src/core/rng.c \
	src/core/rng.h \
	src/core/size.c \
	src/core/size.h \
	src/core/threads.c \
	src/core/threads.h

check_PROGRAMS += tests/test_core
tests_test_core_CPPFLAGS = $(CORE_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_core_SOURCES = tests/test_core.c tests/mp_test.h
tests_test_core_LDADD = $(CORE_LIBS)

check_PROGRAMS += tests/test_threads
tests_test_threads_CPPFLAGS = $(CORE_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_threads_SOURCES = tests/test_threads.c tests/mp_test.h
tests_test_threads_LDADD = $(CORE_LIBS)
