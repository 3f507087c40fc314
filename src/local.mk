# src — the runtime: gguf reader, model, memory plan, tokenizer, sampler, cli.
# Depends on pager, kernels and src/core.
noinst_LTLIBRARIES += libmpsrc.la
libmpsrc_la_CPPFLAGS = $(SRC_CPPFLAGS)
libmpsrc_la_SOURCES = \
	src/gguf.c \
	src/gguf.h \
	src/gguf_write.c \
	src/gguf_write.h \
	src/plan.c \
	src/plan.h

bin_PROGRAMS += moepager
moepager_CPPFLAGS = $(SRC_CPPFLAGS)
moepager_SOURCES = src/moepager.c
moepager_LDADD = $(SRC_LIBS)

check_PROGRAMS += tests/test_gguf
tests_test_gguf_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_gguf_SOURCES = tests/test_gguf.c tests/mp_test.h
tests_test_gguf_LDADD = $(SRC_LIBS)

check_PROGRAMS += tests/test_gguf_write
tests_test_gguf_write_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_gguf_write_SOURCES = tests/test_gguf_write.c tests/mp_test.h
tests_test_gguf_write_LDADD = $(SRC_LIBS)
