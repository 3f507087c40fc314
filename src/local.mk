# src — the runtime: gguf reader, model, memory plan, tokenizer, sampler, cli.
# Depends on pager, kernels and src/core.
noinst_LTLIBRARIES += libmpsrc.la
libmpsrc_la_CPPFLAGS = $(SRC_CPPFLAGS)
libmpsrc_la_SOURCES = \
	src/model.c \
	src/model.h \
	src/opt.c \
	src/opt.h \
	src/ops.c \
	src/ops.h \
	src/router.c \
	src/router.h \
	src/tensor.h

bin_PROGRAMS += moepager
moepager_CPPFLAGS = $(SRC_CPPFLAGS)
moepager_SOURCES = src/moepager.c
moepager_LDADD = $(SRC_LIBS)

check_PROGRAMS += tests/test_model
tests_test_model_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_model_SOURCES = tests/test_model.c tests/reference.c tests/reference.h tests/mp_test.h
tests_test_model_LDADD = $(SRC_LIBS)

check_PROGRAMS += tests/test_opt
tests_test_opt_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_opt_SOURCES = tests/test_opt.c tests/mp_test.h
tests_test_opt_LDADD = $(SRC_LIBS)
