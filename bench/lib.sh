# bench/lib.sh — the preamble the benchmark scripts share, sourced after they
# cd to the project root (`. bench/lib.sh`): checks for root, tools and a
# build; a memory cgroup (v2 or v1) that holds every case at one limit and a
# way to run a command inside it; dropping the page cache.
#
# Not here: anything a benchmark measures or prints.
#
#   bench_need_build BIN          BIN/moepager exists, or exit 1 naming it
#   bench_need_root WHY           running as root, or exit 1 saying WHY
#   bench_need TOOL WHY           TOOL on PATH, or exit 1 saying WHY
#   bench_cg_make NAME LIMIT      makes /sys/fs/cgroup[/memory]/NAME limited to
#                                 LIMIT bytes; sets bench_cg to it, or to ""
#                                 when none could be made (returns 1, and
#                                 removes a folder it made without a limit)
#   bench_cg_remove               removes it (call it from the script's trap)
#   bench_cg_enter                moves the calling (sub)shell into it; use as
#                                 ( bench_cg_enter && exec CMD... ) so that
#                                 CMD is that process (its pid, its /proc/PID/io)
#   bench_cg_run CMD...           runs CMD in it (plainly when bench_cg is "")
#   bench_drop [FILE...]          sync and drop the page cache; where that is
#                                 refused, each FILE's pages (dd iflag=nocache)
bench_name=bench/$(basename "$0")
bench_cg=""

bench_need_build() {
	[ -x "$1/moepager" ] || { echo "$bench_name: build first ($1/moepager)" >&2; exit 1; }
}

bench_need_root() {
	[ "$(id -u)" = 0 ] || { echo "$bench_name: needs root ($1)" >&2; exit 1; }
}

bench_need() {
	command -v "$1" >/dev/null || { echo "$bench_name: needs $1 ($2)" >&2; exit 1; }
}

bench_cg_make() {
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		bench_cg=/sys/fs/cgroup/$1
		mkdir -p "$bench_cg" && echo "$2" >"$bench_cg"/memory.max || bench_cg_remove
	elif [ -d /sys/fs/cgroup/memory ]; then
		bench_cg=/sys/fs/cgroup/memory/$1
		mkdir -p "$bench_cg" && echo "$2" >"$bench_cg"/memory.limit_in_bytes || bench_cg_remove
	fi
	[ -n "$bench_cg" ]
}

bench_cg_remove() {
	[ -z "$bench_cg" ] || rmdir "$bench_cg" 2>/dev/null
	bench_cg=""
}

# The pid is read from /proc/self by the shell itself (read and echo are
# built-ins), so a subshell moves itself, not the script's main shell.
bench_cg_enter() {
	[ -n "$bench_cg" ] || return 0
	read -r self _ </proc/self/stat
	echo "$self" >"$bench_cg"/cgroup.procs 2>/dev/null || echo "$self" >"$bench_cg"/tasks 2>/dev/null ||
		{ echo "$bench_name: cannot move process $self into $bench_cg" >&2; return 1; }
}

bench_cg_run() {
	( bench_cg_enter && exec "$@" )
}

bench_drop() {
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null && return 0
	[ $# -gt 0 ] || { echo "$bench_name: cannot drop the page cache" >&2; return 1; }
	for f in "$@"; do dd if="$f" iflag=nocache count=0 status=none || return 1; done
}
