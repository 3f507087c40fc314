# src — the runtime: gguf reader, model, memory plan, tokenizer, sampler, cli.
# Depends on pager, kernels and src/core.
bin_PROGRAMS += moepager
moepager_CPPFLAGS = $(SRC_CPPFLAGS)
moepager_SOURCES = src/moepager.c
moepager_LDADD = $(PAGER_LIBS)

# The runtime library: everything of this layer but main().
noinst_LTLIBRARIES += libmpsrc.la
libmpsrc_la_CPPFLAGS = $(SRC_CPPFLAGS)
libmpsrc_la_SOURCES = \
	src/hftok.c \
	src/hftok.h \
	src/sampler.c \
	src/sampler.h \
	src/tokenizer.c \
	src/tokenizer.h \
	src/unicode.c \
	src/unicode.h \
	src/unicode_tab.c
EXTRA_DIST += src/unicode_gen.py

check_PROGRAMS += tests/test_tokenizer
tests_test_tokenizer_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_tokenizer_SOURCES = tests/test_tokenizer.c tests/mp_test.h
tests_test_tokenizer_LDADD = $(SRC_LIBS) $(JANSSON_LIBS)
EXTRA_DIST += tests/tokvec/gen.mjs tests/tokvec/deepseek_v3.json tests/tokvec/deepseek_v3_tokenizer.json.xz

check_PROGRAMS += tests/test_sampler
tests_test_sampler_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_sampler_SOURCES = tests/test_sampler.c tests/mp_test.h
tests_test_sampler_LDADD = $(SRC_LIBS) $(JANSSON_LIBS)
