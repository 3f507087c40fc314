# tests — the harness pieces shared by every layer's tests.  Each layer's
# local.mk declares its own test programs (linked against that layer and
# below); command-line tests of the installed programs are listed here.
noinst_HEADERS = tests/mp_test.h
EXTRA_DIST += tests/tally

dist_check_SCRIPTS += tests/cli.test
