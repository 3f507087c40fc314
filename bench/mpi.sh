#!/bin/sh
# bench/mpi.sh — one process at a memory limit L against two ranks at L each
# (mpirun --oversubscribe on loopback, issue 17 item 5), in one run.
#
# Model: the small preset's widths (hidden 1024, 64 experts of 512, top-6) at
# Q4_K_M with 12 layers (1 dense + 11 MoE), 0.73 GB — R1's layer structure at a
# size this shared 2-core machine can decode in minutes; L = 300M leaves one
# process a pool of 30% of the routed experts, each of two ranks ~2/3 of its
# half.  The page cache is dropped before each case.  Prints one markdown
# table: decode tokens/s, pool hit rate, disk bytes per token (prompt and
# decode), per-hop overhead per token, from the stats segments (merged with
# tools/moepager-stat-merge.jq) and rank 0's pipeline line.
#
# --model FILE runs another model instead (an r1slice with several MoE layers:
# moepager-mkmodel --preset r1slice --layers 6 --dense 1 --quant q4_k_m), with
# --limit sized for it; --threads N per process (default 1).
#
# usage: bench/mpi.sh [--tokens N] [--limit SIZE] [--model FILE] [--threads N] [--bin DIR]
#        (root, jq, mpirun)
set -u
cd "$(dirname "$0")/.." || exit 1
. bench/lib.sh
tokens=64 limit=300M bin=build/plain model="" threads=1
usage="usage: bench/mpi.sh [--tokens N] [--limit SIZE] [--model FILE] [--threads N] [--bin DIR]"
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
	case $1 in
	--tokens) tokens=$2; shift 2 ;;
	--limit) limit=$2; shift 2 ;;
	--model) model=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--bin) bin=$2; shift 2 ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done
[ -z "$model" ] || [ -f "$model" ] || { echo "bench/mpi.sh: --model $model: no such file" >&2; exit 1; }
bench_need_build "$bin"
grep -q '^#define HAVE_MPI 1' "$bin/config.h" || { echo "bench/mpi.sh: $bin was built without MPI" >&2; exit 1; }
bench_need mpirun "apt-get install openmpi-bin"
bench_need jq "apt-get install jq"
bench_need_root "drop_caches"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p models
[ -n "$model" ] || model=models/bench-mpi-small12.gguf
[ -f "$model" ] || "$bin/moepager-mkmodel" --preset small --layers 12 --dense 1 --quant q4_k_m \
	--quiet -o "$model" || exit 1
log=build/bench-mpi
rm -rf "$log"; mkdir -p "$log"
prompt="Explain why the sky is blue, step by step."
# run_case STATS-FILE LAUNCHER...: one decode, the same flags for every rank
run_case() {
	st=$1; shift
	"$@" "$bin/moepager" -m "$model" -p "$prompt" -n "$tokens" --temp 0 --no-profile -t "$threads" -c 1024 \
		--mem-limit "$limit" --keep-stats --stats-file "$st"
}

printf '| setup | prompt (s) | decode tokens/s | pool hit rate | disk MB/token | per-hop overhead, decode (µs) | link probe per hop (µs) |\n'
printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n'
for np in 1 2; do
	bench_drop || exit 1
	err=$log/np$np.err
	if [ $np = 1 ]; then
		run_case "$log/st.rank0" env >"$log/np$np.out" 2>"$err"
	else
		run_case "$log/st" mpirun -np 2 --oversubscribe --bind-to none >"$log/np$np.out" 2>"$err"
	fi || { echo "| $np | failed: $(grep moepager "$err" | tail -n 1) |"; continue; }
	pro=$(sed -n 's/.*prompt [0-9]* tokens in \([0-9.]*\) s.*/\1/p' "$err")
	tps=$(sed -n 's/.*decode [0-9]* tokens in [0-9.]* s (\([0-9.]*\) tokens\/s).*/\1/p' "$err")
	for s in "$log"/st.rank*; do "$bin/moepager-stat" --json "$s"; done |
		jq -s -f tools/moepager-stat-merge.jq >"$log/np$np.json"
	hit=$(jq '.experts_total.hit_rate * 1000 | round / 1000' "$log/np$np.json")
	mbt=$(jq '.io.disk_bytes / .decode.tokens / 1e6 * 100 | round / 100' "$log/np$np.json")
	hop=$(sed -n 's/.*(\([0-9]*\) hops, \([0-9.]*\) us per hop).*/\2/p' "$err")
	link=$(sed -n 's/.*goes rank to rank in \([0-9.]*\) us.*/\1/p' "$err")
	label=$([ $np = 1 ] && echo "1 process, --mem-limit $limit" || echo "2 ranks, --mem-limit $limit each")
	printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$pro" "$tps" "$hit" "$mbt" "${hop:-—}" "${link:-—}"
	rm -f "$log"/st.rank*
done
sed 's/\x1b\[[0-9]*m//g' "$log/np2.out" | cmp -s "$log/np1.out" - && echo "(same greedy text from both)" ||
	echo "(the outputs differ: see $log)"
