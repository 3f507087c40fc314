#!/bin/sh
# bench/resident.sh — issue 13 item 1: nothing resident is read twice.
#
# Under a memory cgroup of a third of the model, decodes the same prompt twice
# (greedy, -n N1 and -n N2, so prefill and start-up cancel out) and compares,
# per decode token, the bytes the process made the block layer read
# (read_bytes of /proc/PID/io, sampled until it exits: every bio a thread of
# the process submits, io_uring workers included) with the bytes the pager
# itself read for missed experts (io.disk_bytes of the stats segment).  With
# the resident weights in anonymous memory the two agree; with them in a file
# mapping, reclaim under the limit would make the first exceed the second.
# The model's pages are dropped from the page cache before each run
# (drop_caches, or per file with dd iflag=nocache where that is refused).
#
# usage: bench/resident.sh MODEL.gguf [--bin DIR] [--n1 N] [--n2 N] [--io uring]
# Needs root (cgroups).  Prints one markdown table row per run and the check.
set -u
cd "$(dirname "$0")/.." || exit 1
. bench/lib.sh
model=${1:?usage: bench/resident.sh MODEL.gguf [--bin DIR] [--n1 N] [--n2 N] [--io BACKEND]}
shift
bin=build/plain n1=4 n2=16 io=uring
while [ $# -gt 0 ]; do
	case $1 in
	--bin) bin=$2; shift 2 ;; --n1) n1=$2; shift 2 ;; --n2) n2=$2; shift 2 ;; --io) io=$2; shift 2 ;;
	*) echo "bench/resident.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
bench_need_build "$bin"
bench_need_root "cgroups"
size=0
for f in $(dirname "$model")/$(basename "$model" | sed 's/-00001-of-\([0-9]*\)\.gguf$/-*-of-\1.gguf/'); do
	size=$((size + $(stat -L -c %s "$f")))
done
limit=$((size / 3))
memlimit=$((limit - 128 * 1048576))   # the process's plan, under the cgroup's limit
log=build/bench-resident; mkdir -p "$log"

bench_cg_make moepager-resident "$limit" || { echo "bench/resident.sh: no memory cgroup could be made" >&2; exit 1; }
trap 'bench_cg_remove' EXIT
run() { # N: one run in the cgroup; prints "disk_bytes pager_bytes"
	bench_drop $(dirname "$model")/*.gguf || exit 1
	sf=$log/n$1.stats
	( bench_cg_enter && exec "$bin/moepager" -m "$model" -p "Explain why the sky is blue." -n "$1" --temp 0 --no-profile \
		--mem-limit "$memlimit" --io "$io" --stats-file "$sf" --keep-stats ) >/dev/null 2>"$log/n$1.err" &
	pid=$! rb=0
	while kill -0 $pid 2>/dev/null; do
		r=$(sed -n 's/^read_bytes: //p' /proc/$pid/io 2>/dev/null)
		[ -n "$r" ] && rb=$r
		sleep 0.05
	done
	wait $pid || { echo "run -n $1 failed: $(tail -n 2 "$log/n$1.err")" >&2; exit 1; }
	pager=$("$bin/moepager-stat" --json "$sf" | sed -n 's/.*"disk_bytes": *\([0-9]*\).*/\1/p')
	rm -f "$sf"
	echo "$rb $pager"
}
set -- $(run "$n1") $(run "$n2")
[ $# = 4 ] || exit 1
d1=$1 p1=$2 d2=$3 p2=$4
echo "| run | disk bytes (process) | pager disk bytes | difference |"
echo "| --- | ---: | ---: | ---: |"
echo "| -n $n1 | $d1 | $p1 | $((d1 - p1)) |"
echo "| -n $n2 | $d2 | $p2 | $((d2 - p2)) |"
echo "$d1 $p1 $d2 $p2 $n1 $n2" | awk '{
	dd = ($3 - $1) / ($6 - $5); pp = ($4 - $2) / ($6 - $5); r = pp > 0 ? dd / pp : 0
	verdict = "NOT within 5%"
	if (r >= 0.95 && r <= 1.05) verdict = "within 5%"
	printf "per decode token: disk %.1f MB, pager %.1f MB, ratio %.4f (%s)\n", dd / 1e6, pp / 1e6, r, verdict
}'
echo "model $model ($size bytes), cgroup memory limit $limit (a third), --mem-limit $memlimit, --io $io."
grep -h "resident weights:\|memory plan\|peak RSS" "$log/n$n2.err"
