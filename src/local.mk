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
	src/model_impl.h \
	src/ops.c \
	src/ops.h \
	src/opt.c \
	src/opt.h \
	src/plan.c \
	src/plan.h \
	src/prefill.c \
	src/profile.c \
	src/profile.h \
	src/router.c \
	src/router.h \
	src/sampler.c \
	src/sampler.h \
	src/session.c \
	src/session.h \
	src/tensor.h \
	src/tokenizer.c \
	src/tokenizer.h \
	src/unicode.c \
	src/unicode.h \
	src/unicode_tab.c

# several ranks under mpirun (src/dist.h): the messages need Open MPI
libmpsrc_la_CPPFLAGS += $(MPI_CFLAGS)
libmpsrc_la_SOURCES += src/dist.h src/dist_split.c
if HAVE_MPI
libmpsrc_la_SOURCES += src/dist_mpi.c
else
libmpsrc_la_SOURCES += src/dist_none.c
endif

bin_PROGRAMS += moepager
moepager_CPPFLAGS = $(SRC_CPPFLAGS)
moepager_SOURCES = src/moepager.c
moepager_LDADD = $(SRC_LIBS) $(MPI_LIBS)

check_PROGRAMS += tests/test_dist
tests_test_dist_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_dist_SOURCES = tests/test_dist.c tests/tinymodel.c tests/tinymodel.h tests/mp_test.h
tests_test_dist_LDADD = $(SRC_LIBS) $(MPI_LIBS)
dist_check_SCRIPTS += tests/mpi.test
EXTRA_DIST += tests/lsan-openmpi.supp

check_PROGRAMS += tests/test_model tests/test_prefill
tests_test_prefill_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_prefill_SOURCES = tests/test_prefill.c tests/tinymodel.c tests/tinymodel.h tests/mp_test.h
tests_test_prefill_LDADD = $(SRC_LIBS)
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

dist_check_SCRIPTS += tests/generate.test tests/memlimit.test tests/prefill.test tests/stop.test tests/resident.test

# Fuzzing the GGUF parser (libFuzzer; needs clang): `make fuzz` builds
# tests/fuzz/fuzz_gguf, `make fuzz-run FUZZ_SECONDS=N` runs it from the
# committed seeds, keeping what it finds in fuzz-work/ (never in the sources).
FUZZ_CC = clang
FUZZ_SECONDS = 45
FUZZ_SRCFILES = $(srcdir)/tests/fuzz/fuzz_gguf.c $(srcdir)/src/gguf.c $(srcdir)/kernels/types.c \
	$(srcdir)/src/core/alloc.c $(srcdir)/src/core/err.c
EXTRA_DIST += tests/fuzz/fuzz_gguf.c tests/fuzz/corpus
fuzz: tests/fuzz/fuzz_gguf
tests/fuzz/fuzz_gguf: $(FUZZ_SRCFILES) $(srcdir)/src/gguf.h
	@$(MKDIR_P) tests/fuzz
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -I$(srcdir)/src -I$(srcdir)/src/core -I$(srcdir)/kernels \
		-o $@ $(FUZZ_SRCFILES)
fuzz-run: tests/fuzz/fuzz_gguf
	@$(MKDIR_P) fuzz-work
	tests/fuzz/fuzz_gguf -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
		-rss_limit_mb=2048 -artifact_prefix=fuzz-work/ -print_final_stats=1 fuzz-work $(srcdir)/tests/fuzz/corpus
CLEANFILES += tests/fuzz/fuzz_gguf
clean-local: clean-fuzz
clean-fuzz:
	-rm -rf fuzz-work
.PHONY: fuzz fuzz-run clean-fuzz

# the reference comparison on mkmodel's files (tests/reference.test runs it)
noinst_PROGRAMS += tests/refcheck
tests_refcheck_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_refcheck_SOURCES = tests/refcheck.c tests/reference.c tests/reference.h
tests_refcheck_LDADD = $(SRC_LIBS)
dist_check_SCRIPTS += tests/reference.test

check_PROGRAMS += tests/test_session
tests_test_session_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_session_SOURCES = tests/test_session.c tests/mp_test.h
tests_test_session_LDADD = $(SRC_LIBS)

check_PROGRAMS += tests/test_chat
tests_test_chat_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_chat_SOURCES = tests/test_chat.c tests/mp_test.h
tests_test_chat_LDADD = $(SRC_LIBS)

check_PROGRAMS += tests/test_gguf_tokenizer
tests_test_gguf_tokenizer_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_gguf_tokenizer_SOURCES = tests/test_gguf_tokenizer.c tests/mp_test.h
tests_test_gguf_tokenizer_LDADD = $(SRC_LIBS)

check_PROGRAMS += tests/test_evaluate
tests_test_evaluate_CPPFLAGS = $(SRC_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_evaluate_SOURCES = tests/test_evaluate.c tests/reference.c tests/reference.h tests/tinymodel.c tests/tinymodel.h tests/mp_test.h
tests_test_evaluate_LDADD = $(SRC_LIBS)
