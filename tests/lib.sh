# lib.sh — sourced by the *.test scripts: one line per case, in the form
# tests/driver counts ("case NAME: ok", "case NAME: skipped (WHY)",
# "case NAME: FAILED WHY").  A script ends with `exit $fail`; a script whose
# every case skipped ends with `finish` (exit 77 when nothing ran).
fail=0 n_ok=0 n_skip=0
pass() { echo "case $1: ok"; n_ok=$((n_ok + 1)); }
skip() { echo "case $1: skipped ($2)"; n_skip=$((n_skip + 1)); }
failed() { _n=$1; shift; echo "case $_n: FAILED $*"; fail=1; }
# check NAME CMD...: the case passes when CMD succeeds
check() { _c=$1; shift; if "$@"; then pass "$_c"; else failed "$_c" "($*)"; fi; }
# finish: the exit status that matches the cases printed
finish() {
	[ "$fail" != 0 ] && exit 1
	[ "$n_ok" = 0 ] && [ "$n_skip" -gt 0 ] && exit 77
	exit 0
}
