# tests — the harness pieces shared by every layer's tests.  Each layer's
# local.mk declares its own test programs (linked against that layer and
# below); command-line tests of the installed programs are listed here.
noinst_HEADERS = tests/mp_test.h
EXTRA_DIST += tests/tally tests/driver tests/lib.sh tests/data

# One result per case: tests/driver reads the "case NAME: ok|skipped|FAILED"
# lines of every test program and script (see the driver's header).
LOG_DRIVER = $(SHELL) $(top_srcdir)/tests/driver
TEST_LOG_DRIVER = $(SHELL) $(top_srcdir)/tests/driver

dist_check_SCRIPTS += tests/cli.test
