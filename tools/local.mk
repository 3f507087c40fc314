# tools — the companion programs, built on the layers below: moepager-sim
# (policy replay), moepager-mkmodel (synthetic models), moepager-gguf
# (inspect, plan, manifest, verify).
bin_PROGRAMS += moepager-sim
moepager_sim_CPPFLAGS = $(TOOLS_CPPFLAGS)
moepager_sim_SOURCES = tools/moepager-sim.c
moepager_sim_LDADD = $(PAGER_LIBS)

dist_check_SCRIPTS += tests/sim.test

bin_PROGRAMS += moepager-mkmodel
moepager_mkmodel_CPPFLAGS = $(TOOLS_CPPFLAGS)
moepager_mkmodel_SOURCES = \
	tools/mkmodel.c \
	tools/mkvocab.c \
	tools/mkvocab.h
moepager_mkmodel_LDADD = $(SRC_LIBS)

bin_PROGRAMS += moepager-gguf
moepager_gguf_CPPFLAGS = $(TOOLS_CPPFLAGS)
moepager_gguf_SOURCES = tools/gguftool.c
moepager_gguf_LDADD = $(SRC_LIBS)
dist_check_SCRIPTS += tests/gguf_tools.test tests/plan.test
dist_check_SCRIPTS += tests/r1sparse.test

bin_PROGRAMS += moepager-stat
moepager_stat_CPPFLAGS = $(TOOLS_CPPFLAGS)
moepager_stat_SOURCES = \
	tools/moepager-stat.c \
	tools/statview.c \
	tools/statview.h
moepager_stat_LDADD = $(SRC_LIBS)

check_PROGRAMS += tests/test_stat
tests_test_stat_CPPFLAGS = $(TOOLS_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_stat_SOURCES = tests/test_stat.c tests/mp_test.h tools/statview.c tools/statview.h
tests_test_stat_LDADD = $(SRC_LIBS)

dist_check_SCRIPTS += tests/stat.test

# Man pages: help2man turns each tool's own --help and --version into its
# page, so page, help and parser cannot drift.  A tool joins with one word in
# MP_MAN_TOOLS (its --help must be help2man-shaped: "Usage:" line, description,
# "Options:" with defaults; its --version's first line "NAME VERSION").  The
# NAME line is the description's first sentence.  Without help2man (configure
# says so) no page is built or installed.
MP_MAN_TOOLS = moepager moepager-server moepager-sim moepager-stat moepager-compare moepager-gguf moepager-mkmodel
if HAVE_HELP2MAN
man1_MANS = $(MP_MAN_TOOLS:=.1)
CLEANFILES += $(man1_MANS)
$(man1_MANS): $(bin_PROGRAMS)
	$(AM_V_GEN)tool=`basename $@ .1`; \
	name=`./$$tool$(EXEEXT) --help | sed -n '2,6p' | tr '\n' ' ' | \
		sed 's/:  *.*//; s/\.  *[A-Z(].*//; s/[.:] *$$//; s/  */ /g; s/^\(.\)/\L\1/'`; \
	$(HELP2MAN) --no-info --name="$$name" --output=$@.tmp ./$$tool$(EXEEXT) && mv $@.tmp $@ || \
		{ rm -f $@.tmp; exit 1; }
endif

# The test harness points XDG_CACHE_HOME at tests/cache (Makefile.am), where
# moepager saves usage profiles; distcleancheck wants the build tree clean.
clean-local: clean-test-cache
clean-test-cache:
	-rm -rf tests/cache

bin_PROGRAMS += moepager-compare
moepager_compare_CPPFLAGS = $(TOOLS_CPPFLAGS)
moepager_compare_SOURCES = tools/moepager-compare.c
moepager_compare_LDADD = $(SRC_LIBS)
dist_check_SCRIPTS += tests/quality.test

# moepager-server: the OpenAI-compatible HTTP server (docs/server.md).  Its
# modules form one convenience library, so the tests link what the server runs.
noinst_LTLIBRARIES += libmpserver.la
libmpserver_la_CPPFLAGS = $(TOOLS_CPPFLAGS) $(MHD_CFLAGS)
libmpserver_la_SOURCES = \
	tools/api.c \
	tools/api.h \
	tools/httpd.c \
	tools/httpd.h \
	tools/job.c \
	tools/job.h \
	tools/jobq.c \
	tools/jobq.h \
	tools/metrics.c \
	tools/metrics.h \
	tools/reply.c \
	tools/reply.h \
	tools/worker.c \
	tools/worker.h
SERVER_LIBS = libmpserver.la $(SRC_LIBS) $(MHD_LIBS)

bin_PROGRAMS += moepager-server
moepager_server_CPPFLAGS = $(TOOLS_CPPFLAGS)
moepager_server_SOURCES = tools/moepager-server.c
moepager_server_LDADD = $(SERVER_LIBS)

check_PROGRAMS += tests/test_api
tests_test_api_CPPFLAGS = $(TOOLS_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_api_SOURCES = tests/test_api.c tests/mp_test.h
tests_test_api_LDADD = $(SERVER_LIBS)

check_PROGRAMS += tests/test_reply
tests_test_reply_CPPFLAGS = $(TOOLS_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_reply_SOURCES = tests/test_reply.c tests/mp_test.h
tests_test_reply_LDADD = $(SERVER_LIBS)

check_PROGRAMS += tests/test_server_parts
tests_test_server_parts_CPPFLAGS = $(TOOLS_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_server_parts_SOURCES = tests/test_server_parts.c tests/mp_test.h
tests_test_server_parts_LDADD = $(SERVER_LIBS)

dist_check_SCRIPTS += tests/server.test
EXTRA_DIST += tests/server-lib.sh
dist_check_SCRIPTS += tests/server-openai.test
EXTRA_DIST += tests/server_client.mjs
# the openai client library the test installs into the build tree
clean-local: clean-test-npm
clean-test-npm:
	-rm -rf tests/npm
.PHONY: clean-test-npm
EXTRA_DIST += tools/moepager-stat-merge.jq
