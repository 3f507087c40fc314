#!/bin/sh
# bench/prefill.sh — prompt processing (issue 12 item 5, the in-RAM part and
# a pool of a third of the experts): prompt tokens/s of a ~512-token prompt on
# `small` (Q4_K_M) batched (-b 512) against one token at a time (-b 1), all
# in RAM and with --cache-budget a third of the routed experts; for the pool
# runs the bytes the pager read or copied during the run against the bytes of
# the experts acquired (with waves, "expert uses" = the sum over batches and
# MoE layers of each batch's distinct experts, plus -n 1's decode token).
# Prints one markdown table.  The out-of-core r1slice part (cgroup, cold page
# cache, --io mmap) is not scripted yet.
#
# usage: bench/prefill.sh [--bin DIR] [--threads N]
set -u
cd "$(dirname "$0")/.." || exit 1
bin=build/plain threads=2
while [ $# -gt 0 ]; do
	case $1 in
	--bin) bin=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	*) echo "usage: bench/prefill.sh [--bin DIR] [--threads N]" >&2; exit 2 ;;
	esac
done
[ -x "$bin/moepager" ] || { echo "bench/prefill.sh: build first ($bin/moepager)" >&2; exit 1; }
mkdir -p models
model=models/bench-small-q4_k_m.gguf
if [ ! -f "$model" ]; then
	"$bin/moepager-mkmodel" --preset small --quant q4_k_m --quiet -o "$model.tmp" && mv "$model.tmp" "$model" || exit 1
fi
prompt=$(head -c 1500 tests/data/pride-and-prejudice.txt)
err=$(mktemp)
trap 'rm -f "$err"' EXIT
# expert bytes: the pool minimum names them ("N experts of X MB")
"$bin/moepager" -m "$model" -p hi --cache-budget 1K -n 1 2>"$err" >/dev/null
ebytes=$(sed -n 's/.*experts of \([0-9.]*\) MB.*/\1/p' "$err" | head -n 1)
routed=$(sed -n 's/.*of \([0-9.]*\) MiB of routed experts.*/\1/p' "$err" | head -n 1)
third=$(awk -v r="${routed:-403}" 'BEGIN { printf "%dM", r / 3 }')
echo "| case | prompt tokens | prompt tokens/s | vs -b 1 | read + copied (MB) | experts acquired | bytes ÷ acquired experts' bytes |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
run() { # run NAME ARGS...
	name=$1; shift
	"$bin/moepager" -m "$model" --raw -p "$prompt" -n 1 --temp 0 -t "$threads" "$@" >/dev/null 2>"$err" ||
		{ echo "| $name | failed: $(tail -n 1 "$err") |"; return; }
	line=$(grep '^moepager: prompt' "$err")
	toks=$(echo "$line" | sed -n 's/.*prompt \([0-9]*\) tokens.*/\1/p')
	tps=$(echo "$line" | sed -n 's/.*(\([0-9.]*\) tokens\/s); decode.*/\1/p')
	pg=$(grep '^moepager: pager:' "$err")
	uses=$(echo "$pg" | sed -n 's/.*pager: \([0-9]*\) expert uses.*/\1/p')
	rd=$(echo "$pg" | sed -n 's/.*read \([0-9.]* [KMG]*i*B\) from disk, copied \([0-9.]* [KMG]*i*B\) from.*/\1+\2/p')
	mb=$(echo "$rd" | awk -F+ '
		function mb(s) { split(s, a, " "); u = a[2]; v = a[1];
			if (u ~ /^G/) v *= 1024; else if (u ~ /^K/) v /= 1024; else if (u == "B") v /= 1048576; return v }
		NF == 2 { printf "%.0f", mb($1) + mb($2) }')
	base=${base:-$tps}
	ratio=$(awk -v a="$tps" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
	share=$(awk -v m="${mb:-}" -v u="${uses:-}" -v e="${ebytes:-}" 'BEGIN {
		if (m == "" || u == "" || e == "" || u == 0) print "–"; else printf "%.2f", m * 1.048576 / (u * e) }')
	echo "| $name | $toks | $tps | $ratio× | ${mb:-–} | ${uses:-–} | $share |"
}
base=""
run "in RAM, -b 1" -b 1
run "in RAM, -b 512" -b 512
run "in RAM, -b 64" -b 64
base=""
run "pool $third, -b 1" -b 1 --cache-budget "$third"
run "pool $third, -b 512" -b 512 --cache-budget "$third"
