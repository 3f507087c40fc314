# lib.sh — sourced by the *.test scripts: one line per case, in the form
# tests/driver counts ("case NAME: ok", "case NAME: skipped (WHY)",
# "case NAME: FAILED WHY"), one per case, names unique within a script.
# Every script ends with `finish`: 1 when a case failed, 77 when every case
# skipped, else 0.
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
# paged FILE: FILE (a moepager's stderr) holds the pager's summary, and it
# says experts were used and bytes came in (from the disk or the page cache):
# the run really paged.  Prints the figures; fails naming what was missing.
paged() {
	awk '/^moepager: pager: [0-9]+ expert uses: / {
		found = 1; uses = $3
		r = $0; sub(/.*; read /, "", r); split(r, rd, " ")
		c = $0; sub(/.*, copied /, "", c); split(c, cp, " ")
		bytes = rd[1] + cp[1]
		printf "paged: %d expert uses, read %s %s from disk, copied %s %s from the page cache\n",
			uses, rd[1], rd[2], cp[1], cp[2] }
		END {
			if (!found) { print "paged: no pager summary"; exit 1 }
			if (uses <= 0 || bytes <= 0) { print "paged: nothing was paged"; exit 1 }
		}' "$1"
}
# A case made of several checks: `begin NAME`, then `bad WHY` for each check
# that fails, then `end`: one line, FAILED with every reason, or ok.
begin() { _case=$1 _why=; }
bad() { _why="${_why:+$_why; }$*"; }
end() { if [ -z "$_why" ]; then pass "$_case"; else failed "$_case" "$_why"; fi; }
# io_unusable IO FILE: FILE (a moepager's stderr) says the I/O backend IO cannot
# run on this machine (not built, or refused by the kernel); prints that line.
io_unusable() { grep -m 1 -- "no $1 backend\|$1.*unusable\|--io $1:" "$2"; }
