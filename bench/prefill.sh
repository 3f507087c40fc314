#!/bin/sh
# bench/prefill.sh — prompt processing (issue 12 item 5, the in-RAM part and
# a pool of a third of the experts): prompt tokens/s of a ~512-token prompt on
# `small` (Q4_K_M) batched (-b 512) against one token at a time (-b 1), all
# in RAM and with --cache-budget a third of the routed experts; for the pool
# runs the bytes the pager read or copied during the run against the bytes of
# the distinct experts the batch routed to, per MoE layer (stats segment;
# a page-cache copy counts as one expert's bytes).  Prints Markdown.  The
# out-of-core r1slice part (cgroup, cold page cache, --io mmap) is
# bench/ttft.sh.
#
# With --ab OTHER (a second build folder, e.g. main's): only the in-RAM -b 512
# case, OTHER and --bin alternated for --pairs N pairs (the machine's load
# changes within a run, so pairs are taken back to back): prompt tokens/s,
# GFLOP/s (bench/flops.py) and CPU seconds (user + sys of the whole run) of
# each, the medians, and bench/matmul's f32 sgemm GFLOP/s right after.
#
# usage: bench/prefill.sh [--bin DIR] [--threads N] [--ab OTHER] [--pairs N]
set -u
cd "$(dirname "$0")/.." || exit 1
. bench/lib.sh
bin=build/plain threads=2 ab="" pairs=5
usage="usage: bench/prefill.sh [--bin DIR] [--threads N] [--ab OTHER_BUILD_DIR] [--pairs N]"
while [ $# -gt 0 ]; do
	case $1 in
	--bin) bin=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--ab) ab=$2; shift 2 ;;
	--pairs) pairs=$2; shift 2 ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done
case $pairs in
''|*[!0-9]*|0) echo "bench/prefill.sh: --pairs wants a positive number, not '$pairs'" >&2; exit 2 ;;
esac
[ -z "$ab" ] || bench_need_build "$ab"
bench_need_build "$bin"
mkdir -p models
model=models/bench-small-q4_k_m.gguf
if [ ! -f "$model" ]; then
	"$bin/moepager-mkmodel" --preset small --quant q4_k_m --quiet -o "$model.tmp" && mv "$model.tmp" "$model" || exit 1
fi
bench_need python3 "the per-layer table"
prompt=$(head -c 1500 tests/data/pride-and-prejudice.txt)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
err=$tmp/err
routed=$("$bin/moepager-gguf" plan "$model" --cache-budget 1G --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["routed_bytes"])')
third=$((routed / 3))
"$bin/moepager-gguf" plan "$model" --cache-budget "$third" --json >"$tmp/plan.json"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg) at start"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); command: bench/prefill.sh --bin $bin --threads $threads${ab:+ --ab $ab --pairs $pairs}; model: $model"
echo
if [ -n "$ab" ]; then
	bench_need /usr/bin/time "the CPU seconds of each run"
	"$bin/moepager-gguf" tensors "$model" --json >"$tmp/tensors.json" || exit 1
	"$bin/moepager-gguf" info "$model" --json >"$tmp/info.json" || exit 1
	echo "| pair | binary | prompt tokens | prompt tokens/s | GFLOP/s | CPU s |"
	echo "| ---: | --- | ---: | ---: | ---: | ---: |"
	i=1
	while [ $i -le "$pairs" ]; do
		for b in "$ab" "$bin"; do
			/usr/bin/time -f "%U %S" -o "$tmp/time" "$b/moepager" -m "$model" --raw -p "$prompt" -n 0 --temp 0 \
				-t "$threads" --no-profile -b 512 >/dev/null 2>"$err" || { echo "| $i | $b | failed: $(tail -n 1 "$err") |"; continue; }
			line=$(grep '^moepager: prompt' "$err")
			toks=$(echo "$line" | sed -n 's/.*prompt \([0-9]*\) tokens.*/\1/p')
			secs=$(echo "$line" | sed -n 's/.*prompt [0-9]* tokens in \([0-9.]*\) s.*/\1/p')
			tps=$(echo "$line" | sed -n 's/.*(\([0-9.]*\) tokens\/s); decode.*/\1/p')
			fl=${fl:-$(python3 bench/flops.py "$tmp/tensors.json" "$tmp/info.json" "$toks")}
			cpu=$(awk '{ printf "%.2f", $1 + $2 }' "$tmp/time")
			gf=$(awk -v f="$fl" -v s="$secs" 'BEGIN { printf "%.1f", f / s / 1e9 }')
			echo "| $i | $b | $toks | $tps | $gf | $cpu |"
			echo "$b $tps $gf $cpu" >>"$tmp/ab"
		done
		i=$((i + 1))
	done
	echo
	echo "Medians ($(awk -v f="${fl:-0}" 'BEGIN { printf "%.1f", f / 1e9 }') GFLOP per prefill):"
	echo
	echo "| binary | prompt tokens/s | GFLOP/s | CPU s |"
	echo "| --- | ---: | ---: | ---: |"
	for b in "$ab" "$bin"; do
		med() { awk -v b="$b" -v c="$1" '$1 == b { print $c }' "$tmp/ab" | sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%s", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
		echo "| $b | $(med 2) | $(med 3) | $(med 4) |"
	done
	if [ -x "$bin/bench/matmul" ]; then
		echo
		echo "bench/matmul --threads $threads --types Q4_K right after: $("$bin/bench/matmul" --threads "$threads" --types Q4_K | grep -i '^f32 sgemm')"
	fi
	exit 0
fi
echo "| case | prompt tokens | prompt tokens/s | vs -b 1 (same pool) |"
echo "| --- | ---: | ---: | ---: |"
run() { # run NAME ARGS...
	name=$1; shift
	"$bin/moepager" -m "$model" --raw -p "$prompt" -n 0 --temp 0 -t "$threads" --no-profile "$@" \
		>/dev/null 2>"$err" || { echo "| $name | failed: $(tail -n 1 "$err") |"; return; }
	line=$(grep '^moepager: prompt' "$err")
	toks=$(echo "$line" | sed -n 's/.*prompt \([0-9]*\) tokens.*/\1/p')
	tps=$(echo "$line" | sed -n 's/.*(\([0-9.]*\) tokens\/s); decode.*/\1/p')
	base=${base:-$tps}
	echo "| $name | $toks | $tps | $(awk -v a="$tps" -v b="$base" 'BEGIN { printf "%.2f", a / b }')× |"
}
base=""
run "in RAM, -b 1" -b 1
run "in RAM, -b 512" -b 512
run "in RAM, -b 64" -b 64
base=""
run "pool of a third ($third bytes), -b 1" -b 1 --cache-budget "$third"
run "pool of a third, -b 512" -b 512 --cache-budget "$third" --stats-file "$tmp/s.stats" --keep-stats
echo
echo "Bytes read during the -b 512 prefill with the pool of a third, per MoE layer, against the"
echo "bytes of the distinct experts the batch routed to (the stats segment's per-layer counters):"
echo
"$bin/moepager-stat" --json "$tmp/s.stats" >"$tmp/stat.json" || exit 1
python3 - "$tmp/plan.json" "$tmp/stat.json" <<'PY'
import json, sys
plan = {l["layer"]: l["expert_bytes"] for l in json.load(open(sys.argv[1]))["layers"]}
st = json.load(open(sys.argv[2]))
print("| layer | distinct experts | their bytes | bytes read + copied | ratio |")
print("| ---: | ---: | ---: | ---: | ---: |")
ta = tr = 0
for l in st["layers"]:
    L = l["layer"]
    if L not in plan:
        continue
    distinct = sum(1 for u in l["expert_uses"] if u > 0)
    need = distinct * plan[L]
    got = l["bytes_read"] + l["page_cache_hits"] * plan[L]
    ta += need; tr += got
    print(f"| {L} | {distinct} | {need} | {got} | {got / need:.3f} |" if need else f"| {L} | 0 | 0 | {got} | – |")
print(f"| all | | {ta} | {tr} | {tr / ta:.3f} |" if ta else "| all | | 0 | | – |")
PY
