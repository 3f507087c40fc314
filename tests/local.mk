# tests — the harness pieces shared by every layer's tests.  Each layer's
# local.mk declares its own test programs (linked against that layer and
# below); command-line tests of the installed programs are listed here.
noinst_HEADERS = tests/mp_test.h tests/model_fixture.h tests/kpath_case.h
EXTRA_DIST += tests/tally tests/driver tests/lib.sh tests/data

# The reference routing trace (tests/data/README.md) is 11 MB raw and 6 MB as
# one xz stream, over the 5 MB a file may weigh in the repository: it is
# committed as its two halves, each xz -9e (about 3 MB), and unpacked into the
# build tree before the tests, never into the source tree (VPATH builds and
# distcheck's read-only source).  The SHA-256 of the whole is checked.
MP_TRACE_XZ = $(srcdir)/tests/data/traces/deepseek-v2-lite.trace.1.xz \
	$(srcdir)/tests/data/traces/deepseek-v2-lite.trace.2.xz
MP_TRACE_SUM = $(srcdir)/tests/data/traces/deepseek-v2-lite.trace.sha256
check_DATA += testdata/traces/deepseek-v2-lite.trace
CLEANFILES += testdata/traces/deepseek-v2-lite.trace testdata/traces/deepseek-v2-lite.trace.tmp
testdata/traces/deepseek-v2-lite.trace: $(MP_TRACE_XZ) $(MP_TRACE_SUM)
	$(AM_V_GEN)command -v xz >/dev/null || { \
	  echo "$@: xz is needed to unpack tests/data/traces/*.xz (apt-get install xz-utils)" >&2; exit 1; }; \
	$(MKDIR_P) testdata/traces && xz -dc $(MP_TRACE_XZ) > $@.tmp && \
	got=`sha256sum < $@.tmp | cut -d' ' -f1` && want=`cut -d' ' -f1 $(MP_TRACE_SUM)` && \
	if test "$$got" != "$$want"; then \
	  echo "$@: unpacked SHA-256 $$got, expected $$want (tests/data/traces/deepseek-v2-lite.trace.sha256)" >&2; \
	  rm -f $@.tmp; exit 1; fi && \
	mv $@.tmp $@
# A copy unpacked by hand into the source tree (xz -dk) stays out of the tarball.
dist-hook:
	rm -f $(distdir)/tests/data/traces/*.trace

# One result per case: tests/driver reads the "case NAME: ok|skipped|FAILED"
# lines of every test program and script (see the driver's header).
LOG_DRIVER = $(SHELL) $(top_srcdir)/tests/driver
TEST_LOG_DRIVER = $(SHELL) $(top_srcdir)/tests/driver

dist_check_SCRIPTS += tests/cli.test
dist_check_SCRIPTS += tests/bench-lib.test
