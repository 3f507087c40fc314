# src — the runtime: gguf reader, model, memory plan, tokenizer, sampler, cli.
# Depends on pager, kernels and src/core.
noinst_LTLIBRARIES += libmpsrc.la
libmpsrc_la_CPPFLAGS = $(SRC_CPPFLAGS)
libmpsrc_la_SOURCES = \
	src/evaluate.c \
	src/evaluate.h \
	src/experts.c \
	src/experts.h \
	src/gguf.c \
	src/gguf.h \
	src/gguf_write.c \
	src/gguf_write.h \
	src/hftok.c \
	src/hftok.h \
	src/loader.c \
	src/loader.h \
	src/model.c \
	src/model.h \
	src/ops.c \
	src/ops.h \
	src/opt.c \
	src/opt.h \
	src/router.c \
	src/router.h \
	src/sampler.c \
	src/sampler.h \
	src/tensor.h \
	src/tokenizer.c \
	src/tokenizer.h \
	src/unicode.c \
	src/unicode.h \
	src/unicode_tab.c

bin_PROGRAMS += moepager
moepager_CPPFLAGS = $(SRC_CPPFLAGS)
moepager_SOURCES = src/moepager.c
moepager_LDADD = $(SRC_LIBS)

check_PROGRAMS += tests/test_model
tests_test_model_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_model_SOURCES = tests/test_model.c tests/reference.c tests/reference.h tests/tinymodel.c tests/tinymodel.h tests/mp_test.h
tests_test_model_LDADD = $(SRC_LIBS)

check_PROGRAMS += tests/test_opt
tests_test_opt_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_opt_SOURCES = tests/test_opt.c tests/mp_test.h
tests_test_opt_LDADD = $(SRC_LIBS)

EXTRA_DIST += src/unicode_gen.py

check_PROGRAMS += tests/test_tokenizer
tests_test_tokenizer_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_tokenizer_SOURCES = tests/test_tokenizer.c tests/mp_test.h
tests_test_tokenizer_LDADD = $(SRC_LIBS)
EXTRA_DIST += tests/tokvec/gen.mjs tests/tokvec/deepseek_v3.json tests/tokvec/deepseek_v3_tokenizer.json.xz

check_PROGRAMS += tests/test_sampler
tests_test_sampler_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_sampler_SOURCES = tests/test_sampler.c tests/mp_test.h
tests_test_sampler_LDADD = $(SRC_LIBS)

check_PROGRAMS += tests/test_gguf
tests_test_gguf_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_gguf_SOURCES = tests/test_gguf.c tests/mp_test.h
tests_test_gguf_LDADD = $(SRC_LIBS)

check_PROGRAMS += tests/test_gguf_write
tests_test_gguf_write_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_gguf_write_SOURCES = tests/test_gguf_write.c tests/mp_test.h
tests_test_gguf_write_LDADD = $(SRC_LIBS)

check_PROGRAMS += tests/test_loader
tests_test_loader_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_loader_SOURCES = tests/test_loader.c tests/tinymodel.c tests/tinymodel.h tests/mp_test.h
tests_test_loader_LDADD = $(SRC_LIBS)

dist_check_SCRIPTS += tests/generate.test

check_PROGRAMS += tests/test_evaluate
tests_test_evaluate_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_evaluate_SOURCES = tests/test_evaluate.c tests/reference.c tests/reference.h tests/tinymodel.c tests/tinymodel.h tests/mp_test.h
tests_test_evaluate_LDADD = $(SRC_LIBS)
