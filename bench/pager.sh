#!/bin/sh
# bench/pager.sh — the out-of-core decode benchmark (issue 7 item 6).
#
# Makes a synthetic deepseek2 model (r1slice at Q4_K_M when the disk has room,
# else `small`), then decodes the same prompt with a memory limit of about a
# third of the model for every I/O backend, prefetch off and on, with the page
# cache dropped before each case.  The mmap case (llama.cpp's way: the page
# cache does everything) is kept under the same limit by a memory cgroup the
# script creates and removes; every case runs in that cgroup, so the comparison
# is at equal memory.  Prints one markdown table: tokens/s, disk bytes per
# token, disk MB/s achieved next to fio's on the same file (same block size
# and depth), stall fraction, prefetch precision, and the ratio to mmap.
#
# usage: bench/pager.sh [--preset small|r1slice] [--tokens N] [--bin DIR]
# Needs root (drop_caches, cgroups) and fio.  Takes minutes (r1slice: the
# model alone is ~15 GB and several minutes to write, once).
set -u
cd "$(dirname "$0")/.." || exit 1
. bench/lib.sh
preset="" tokens=32 bin=build/release
while [ $# -gt 0 ]; do
	case $1 in
	--preset) preset=$2; shift 2 ;;
	--tokens) tokens=$2; shift 2 ;;
	--bin) bin=$2; shift 2 ;;
	*) echo "usage: bench/pager.sh [--preset small|r1slice] [--tokens N] [--bin DIR]" >&2; exit 2 ;;
	esac
done
bench_need_build "$bin"
bench_need fio "apt-get install fio"
bench_need_root "drop_caches, memory cgroup"
if [ -z "$preset" ]; then
	free_gb=$(df -Pk models 2>/dev/null | awk 'NR==2 {print int($4 / 1048576)}')
	[ "${free_gb:-0}" -ge 40 ] && preset=r1slice || preset=small
fi
mkdir -p models
model=models/bench-$preset-q4_k_m.gguf
if [ ! -f "$model" ]; then
	echo "bench: making $model" >&2
	"$bin/moepager-mkmodel" --preset "$preset" --quant q4_k_m -o "$model.tmp" && mv "$model.tmp" "$model" || exit 1
fi
size=$(stat -L -c %s "$model")
limit=$((size / 3))
log=build/bench-pager
mkdir -p "$log"
trap 'bench_cg_remove' EXIT
# every case in a memory cgroup of the same limit (bench/lib.sh)
bench_cg_make moepager-bench "$limit"

# ---- fio on the same file: random 1 MiB direct reads, 32 deep (the pager's) ----
bench_drop
fio_mbs=$(fio --name=bench --filename="$model" --rw=randread --bs=1M --iodepth=32 --direct=1 \
	--ioengine=io_uring --runtime=15 --time_based --size="$size" --output-format=terse 2>/dev/null |
	awk -F';' '{printf "%.0f", $7 / 1024 * 1.048576}')

prompt="Explain why the sky is blue, step by step."
printf '| io | prefetch | tokens/s | disk MB/token | disk MB/s | fio MB/s | stall | prefetch precision | vs mmap |\n'
printf '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
base=""
for io in mmap uring aio sync; do
	for pf in none lookahead; do
		[ $io = mmap ] && [ $pf = lookahead ] && continue
		bench_drop
		err=$log/$io-$pf.err
		t0=$(date +%s.%N)
		bench_cg_run "$bin/moepager" -m "$model" -p "$prompt" -n "$tokens" --temp 0 --no-profile \
			--mem-limit "$limit" --io $io --prefetch $pf >/dev/null 2>"$err" ||
			{ echo "| $io | $pf | failed: $(tail -n 1 "$err") |"; continue; }
		t1=$(date +%s.%N)
		tps=$(sed -n 's/.*decode [0-9]* tokens in [0-9.]* s (\([0-9.]*\) tokens\/s).*/\1/p' "$err")
		ntok=$(sed -n 's/.*prompt \([0-9]*\) tokens.*decode \([0-9]*\) tokens.*/\1 \2/p' "$err" | awk '{print $1 + $2}')
		read_b=$(sed -n 's/.*read \([0-9.]*\) \([KMG]i*B\) from disk.*/\1 \2/p' "$err" |
			awk '{m = $2 == "GiB" ? 1073741824 : $2 == "MiB" ? 1048576 : $2 == "KiB" ? 1024 : 1; printf "%.0f", $1 * m}')
		stall=$(sed -n 's/.*stall: .*(\([0-9.]*%\) of.*/\1/p' "$err")
		prec=$(sed -n 's/.*precision \([0-9.]*\)).*/\1/p' "$err")
		if [ $io = mmap ]; then
			# no pool: the page cache did the reading; count what the kernel read
			read_b=""; stall="n/a"; prec="n/a"
		fi
		secs=$(echo "$t0 $t1" | awk '{print $2 - $1}')
		mb_tok=$( [ -n "$read_b" ] && echo "$read_b $ntok" | awk '{printf "%.1f", $1 / 1e6 / $2}' || echo n/a)
		mbs=$( [ -n "$read_b" ] && echo "$read_b $secs" | awk '{printf "%.0f", $1 / 1e6 / $2}' || echo n/a)
		[ $io = mmap ] && base=$tps
		ratio=$(echo "$tps ${base:-0}" | awk '{ if ($2 > 0) printf "%.2f×", $1 / $2; else print "n/a" }')
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' $io $pf "$tps" "$mb_tok" "$mbs" \
			"$fio_mbs" "${stall:-n/a}" "${prec:-n/a}" "$ratio"
	done
done
echo
echo "model $model ($size bytes), --mem-limit $limit (a third), $tokens tokens greedy, page cache dropped"
echo "before each case$( [ -n "$bench_cg" ] && echo ", every case in a memory cgroup of the same limit")."
echo "Each case's moepager report: $log/IO-PREFETCH.err"
