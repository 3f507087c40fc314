#!/bin/sh
# bench/r1.sh — DeepSeek-R1 at full size without the weights (issue 13 item 4).
#
# Makes `moepager-mkmodel --preset r1 --sparse` once (nine parts like the
# published files, 404.6 GB apparent, about 1 GB of real blocks: embeddings,
# norms, routers; every other tensor a hole that reads as zeros), then runs on
# it what a user runs on the real files: moepager-gguf info, plan (at the
# limits of docs/tuning.md), manifest + verify, and moepager end to end under
# --mem-limit, reporting the plan, time to first token, decode tokens/s
# (compute-bound: holes read as zeros at memory speed), peak RSS against the
# limit, the pager's own CPU time per token, moepager-stat --once and a
# 58 x 256 heat map.  Everything goes to build/bench-r1/ and a summary to
# stdout.
#
# usage: bench/r1.sh [--bin DIR] [--quant q4_k_m|iq1_s] [--mem-limit SIZE] [--tokens N]
#                    [--no-verify]
# Needs ≈ 1 GB of disk for the model and --mem-limit of RAM (default 18G:
# watch `free -g` on a shared machine).  Takes minutes.
set -u
cd "$(dirname "$0")/.." || exit 1
. bench/lib.sh
bin=build/plain quant=q4_k_m limit=18G tokens=16 verify=1
while [ $# -gt 0 ]; do
	case $1 in
	--bin) bin=$2; shift 2 ;; --quant) quant=$2; shift 2 ;; --mem-limit) limit=$2; shift 2 ;;
	--tokens) tokens=$2; shift 2 ;; --no-verify) verify=0; shift ;;
	*) echo "usage: bench/r1.sh [--bin DIR] [--quant MIX] [--mem-limit SIZE] [--tokens N] [--no-verify]" >&2
	   exit 2 ;;
	esac
done
bench_need_build "$bin"
Q=$(echo "$quant" | tr a-z A-Z)
dir=models/r1 name=DeepSeek-R1-$Q
m=$dir/$name-00001-of-00009.gguf
log=build/bench-r1; mkdir -p "$dir" "$log"
if [ ! -f "$m" ]; then
	echo "bench/r1.sh: writing $dir/$name-*.gguf (sparse)" >&2
	"$bin/moepager-mkmodel" --preset r1 --sparse --quant "$quant" --quiet -o "$dir/$name.gguf" ||
		exit 1
	[ -f "$m" ] || m=$(ls "$dir/$name"-00001-of-*.gguf | head -n 1)
fi
echo "# bench/r1.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -n), $(nproc) cores, kernel $(uname -r)"
echo "load: $(cut -d ' ' -f 1-3 /proc/loadavg); memory: $(free -g | awk '/^Mem:/ {print $2 " GiB total, " $7 " GiB available"}')"
echo "model: $(ls "$dir/$name"-*.gguf | wc -l) parts, $(du -cb --apparent-size "$dir/$name"-0*.gguf | tail -n 1 | cut -f 1) bytes apparent, $(du -c -B1 "$dir/$name"-0*.gguf | tail -n 1 | cut -f 1) bytes of disk blocks"
echo
echo "## moepager-gguf info"
"$bin/moepager-gguf" info "$m" >"$log/info.txt" 2>&1
sed -n '1,3p;/^bytes per type/,$p' "$log/info.txt"
for l in 96G 128G; do
	echo
	echo "## moepager-gguf plan --mem-limit $l"
	"$bin/moepager-gguf" plan --mem-limit $l "$m" | grep -v '^  layer'
done
if [ $verify = 1 ]; then
	echo
	echo "## moepager-gguf manifest + verify"
	[ -f "$m.manifest" ] || "$bin/moepager-gguf" manifest "$m" 2>/dev/null | tail -n 1
	"$bin/moepager-gguf" verify "$m" 2>/dev/null | tail -n 1
fi
echo
echo "## moepager --mem-limit $limit -n $tokens"
stats=$log/r1.stats
prompt="Prove that there are infinitely many primes."
t0=$(date +%s.%N)
/usr/bin/time -v "$bin/moepager" -m "$m" --mem-limit "$limit" -p "$prompt" -n "$tokens" --seed 1 \
	--no-profile --keep-stats --stats-file "$stats" >"$log/r1.out" 2>"$log/r1.err"
rc=$?
wall=$(echo "$t0 $(date +%s.%N)" | awk '{printf "%.1f", $2 - $1}')
grep '^moepager: ' "$log/r1.err"
# time to first token: everything before the first sample (start-up, the
# resident load, the prompt) = wall time less the generation time
gen=$(sed -n 's/.*decode [0-9]* tokens in \([0-9.]*\) s.*/\1/p' "$log/r1.err")
ttft=$(echo "$wall ${gen:-0}" | awk '{printf "%.1f", $1 - $2}')
echo "exit status $rc; wall $wall s; time to first token $ttft s (start-up, resident load, prompt)"
echo "peak RSS (time -v): $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log/r1.err") KiB against --mem-limit $limit"
echo
echo "## moepager-stat --once"
"$bin/moepager-stat" --once "$stats" | head -n 40
"$bin/moepager-stat" --json --heatmap "$log/heatmap-58x256.svg" "$stats" >"$log/r1.json"
echo
echo "heat map: $log/heatmap-58x256.svg ($(wc -c <"$log/heatmap-58x256.svg") bytes); JSON: $log/r1.json"
rm -f "$stats"
