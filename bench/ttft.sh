#!/bin/sh
# bench/ttft.sh — time to first token out of core (issue 12 item 5, the
# r1slice part that bench/prefill.sh leaves out).
#
# Makes an r1slice (R1's dimensions) with --dense D + (--layers L − D) MoE
# layers at Q4_K_M, then for prompts of 32, 128 and 512 tokens (the first N
# tokens of tests/data/pride-and-prejudice.txt as -f, --raw, -n 1 --ignore-eos) runs
#   -b 512    --mem-limit a third of the file   (batched, layer-major prefill)
#   -b 1      --mem-limit a third of the file   (one token at a time)
#   --io mmap -b 512, no pool                   (the page cache does the paging)
# every case in a memory cgroup of that same third, page cache dropped before
# each.  Reports the 'prompt N tokens in S s' time (time to first token), the
# whole run's wall time (load included), the pager's 'read ... from disk'
# figure, and the bytes the process read from storage (read_bytes of
# /proc/PID/io, which counts page-cache misses of mmap and the loader's reads
# too).  The compute rate is the prefill's arithmetic (2 × the weights each
# token multiplies — top-k of the routed experts — plus causal MLA attention
# in the absorbed form, taken from the file's tensor shapes) over the prompt
# time; bench/matmul's f32 sgemm GFLOP/s on this CPU is printed beside it.
# Prints Markdown, one row as each case ends.
#
# usage: bench/ttft.sh [--bin DIR] [--threads N] [--layers L] [--dense D]
#                      [--sizes "32 128 512"] [--cases "b512 b1 mmap"]
#                      [--timeout S] [--no-sgemm]
# A case that runs past --timeout S (default 480) is stopped and its row says
# so: nothing is extrapolated.  Needs root (drop_caches, cgroups) and python3.
set -u
cd "$(dirname "$0")/.." || exit 1
. bench/lib.sh
bin=build/plain threads=2 layers=4 dense=1 sizes="32 128 512" cases="b512 b1 mmap"
limit_s=480 sgemm=yes
usage="usage: bench/ttft.sh [--bin DIR] [--threads N] [--layers L] [--dense D] [--sizes LIST] [--cases LIST] [--timeout S] [--no-sgemm]"
while [ $# -gt 0 ]; do
	case $1 in
	--bin) bin=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--layers) layers=$2; shift 2 ;;
	--dense) dense=$2; shift 2 ;;
	--sizes) sizes=$2; shift 2 ;;
	--cases) cases=$2; shift 2 ;;
	--timeout) limit_s=$2; shift 2 ;;
	--no-sgemm) sgemm=no; shift ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done
bench_need_build "$bin"
bench_need_root "drop_caches, memory cgroup"
bench_need python3 "the FLOP count"
mkdir -p models
model=models/ttft-r1slice-L$layers-D$dense-q4_k_m.gguf
if [ ! -f "$model" ]; then
	echo "bench/ttft.sh: making $model (check df first: about 6.5 GB per MoE layer)" >&2
	"$bin/moepager-mkmodel" --preset r1slice --layers "$layers" --dense "$dense" --quant q4_k_m \
		--quiet -o "$model.tmp" && mv "$model.tmp" "$model" || exit 1
fi
size=$(stat -L -c %s "$model")
limit=$((size / 3))
log=build/bench-ttft
mkdir -p "$log"
tmp=$(mktemp -d)
trap 'bench_cg_remove; rm -rf "$tmp"' EXIT

# every case in a memory cgroup of the same limit (bench/lib.sh)
bench_cg_make moepager-ttft "$limit" ||
	echo "bench/ttft.sh: no memory cgroup could be made; the runs are held by --mem-limit only" >&2
# cg_run OUT CMD...: runs CMD in the cgroup under `timeout`; writes to OUT the
# storage bytes read by CMD (the shell's read_bytes gains its reaped child's).
cg_run() {
	out=$1; shift
	bench_cg_run sh -c 'out=$1 lim=$2; shift 2
		r0=$(sed -n "s/^read_bytes: //p" /proc/$$/io)
		timeout "$lim" "$@"; rc=$?
		r1=$(sed -n "s/^read_bytes: //p" /proc/$$/io)
		echo $((r1 - r0)) >"$out"; exit $rc' x "$out" "$limit_s" "$@"
}

# ---- prompts of exactly N tokens: the shortest prefix of the text that the
# model's tokenizer (the built-in vocabulary depends on the vocab size only)
# makes N tokens of, found on a tiny model with the same vocabulary ----
vocab=$("$bin/moepager-gguf" info "$model" --json |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["deepseek2.vocab_size"].split()[1])')
"$bin/moepager-mkmodel" --preset tiny --vocab "$vocab" --quiet -o "$tmp/vocab.gguf" || exit 1
text=tests/data/pride-and-prejudice.txt
ntok() { # ntok CHARS: prompt tokens of the first CHARS bytes of the text
	head -c "$1" $text >"$tmp/p.txt"
	"$bin/moepager" -m "$tmp/vocab.gguf" --raw -f "$tmp/p.txt" -n 0 -t 1 --no-profile 2>&1 >/dev/null |
		sed -n 's/.*prompt \([0-9]*\) tokens.*/\1/p'
}
prefix() { # prefix N: the shortest byte count giving at least N tokens
	lo=1 hi=$(stat -c %s $text)
	if [ "$(ntok "$hi")" -lt "$1" ]; then
		echo "bench/ttft.sh: $text makes fewer than $1 tokens" >&2; exit 1
	fi
	while [ $lo -lt $hi ]; do
		mid=$(((lo + hi) / 2))
		if [ "$(ntok $mid)" -ge "$1" ]; then hi=$mid; else lo=$((mid + 1)); fi
	done
	echo $lo
}

# ---- the prefill's FLOPs for N tokens, from the tensor shapes ----
"$bin/moepager-gguf" tensors "$model" --json >"$tmp/tensors.json" || exit 1
"$bin/moepager-gguf" info "$model" --json >"$tmp/info.json" || exit 1
flops() { # flops N: floating-point operations of an N-token prefill (bench/flops.py)
	python3 bench/flops.py "$tmp/tensors.json" "$tmp/info.json" "$1"
}

bytes_of() { # "12.5 GiB" -> bytes
	awk '{m = $2 == "GiB" ? 1073741824 : $2 == "MiB" ? 1048576 : $2 == "KiB" ? 1024 : 1; printf "%.0f", $1 * m}'
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, $(free -g | awk '/^Mem/ {print $2}') GiB RAM, load average $(cut -d' ' -f1 /proc/loadavg) at start"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); command: bench/ttft.sh --bin $bin --threads $threads --layers $layers --dense $dense --sizes \"$sizes\" --cases \"$cases\" --timeout $limit_s"
echo "model: $model ($size bytes, $dense dense + $((layers - dense)) MoE layers, Q4_K_M); --mem-limit and memory cgroup $limit bytes (a third)$( [ -n "$bench_cg" ] || echo ' (NO cgroup: none could be made)')"
echo
echo "| prompt tokens | case | time to first token (s) | whole run (s) | pager read from disk (GB) | storage read_bytes (GB) | prefill GFLOP | GFLOP/s |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for n in $sizes; do
	chars=$(prefix "$n") || exit 1
	head -c "$chars" $text >"$tmp/prompt-$n.txt"
	fl=$(flops "$n")
	for c in $cases; do
		case $c in
		b512) name="-b 512, pool"; args="-b 512 --mem-limit $limit" ;;
		b1) name="-b 1, pool"; args="-b 1 --mem-limit $limit" ;;
		mmap) name="--io mmap -b 512, cgroup only"; args="-b 512 --io mmap" ;;
		*) echo "bench/ttft.sh: unknown case '$c' (expected b512, b1 or mmap)" >&2; exit 2 ;;
		esac
		drop
		err=$log/$n-$c.err
		t0=$(date +%s.%N)
		# shellcheck disable=SC2086
		cg_run "$tmp/rb" "$bin/moepager" -m "$model" --raw -f "$tmp/prompt-$n.txt" -n 1 --ignore-eos --temp 0 \
			-t "$threads" --no-profile $args >/dev/null 2>"$err"
		rc=$?
		t1=$(date +%s.%N)
		wall=$(echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}')
		if [ $rc = 124 ]; then
			echo "| $n | $name | not measured: stopped after $limit_s s | | | | | |"
			continue
		elif [ $rc != 0 ]; then
			echo "| $n | $name | failed (exit $rc): $(tail -n 1 "$err") | | | | | |"
			continue
		fi
		toks=$(sed -n 's/.*prompt \([0-9]*\) tokens in.*/\1/p' "$err")
		ttft=$(sed -n 's/.*prompt [0-9]* tokens in \([0-9.]*\) s.*/\1/p' "$err")
		pread=$(sed -n 's/.*read \([0-9.]*\) \([KMG]i*B\) from disk.*/\1 \2/p' "$err" | bytes_of)
		pread=$( [ -n "$pread" ] && echo "$pread" | awk '{printf "%.2f", $1 / 1e9}' || echo n/a)
		rb=$(awk '{printf "%.2f", $1 / 1e9}' "$tmp/rb")
		[ "$toks" = "$n" ] || toks="$toks (asked $n)"
		echo "$ttft" >"$tmp/t-$n-$c"
		gf=$(echo "$fl $ttft" | awk '{printf "%.0f %.1f", $1 / 1e9, $1 / 1e9 / $2}')
		echo "| $toks | $name | $ttft | $wall | $pread | $rb | ${gf% *} | ${gf#* } |"
	done
done
echo
echo "Time to first token of -b 1 and of --io mmap over that of -b 512 (– where a case was not measured):"
echo
echo "| prompt tokens | -b 1 ÷ -b 512 | mmap ÷ -b 512 |"
echo "| ---: | ---: | ---: |"
ratio() { # ratio N CASE: CASE's time to first token over -b 512's
	if [ -f "$tmp/t-$1-$2" ] && [ -f "$tmp/t-$1-b512" ]; then
		awk -v b="$(cat "$tmp/t-$1-b512")" '{ printf "%.2f×", $1 / b }' "$tmp/t-$1-$2"
	else
		echo "–"
	fi
}
for n in $sizes; do echo "| $n | $(ratio "$n" b1) | $(ratio "$n" mmap) |"; done
echo
echo "Each case's moepager report: $log/N-CASE.err"
if [ $sgemm = yes ] && [ -x "$bin/bench/matmul" ]; then
	echo
	echo "bench/matmul --threads $threads --types Q4_K on the same machine, right after:"
	"$bin/bench/matmul" --threads "$threads" --types Q4_K | grep -i 'sgemm'
fi
