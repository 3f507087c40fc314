#!/bin/sh
# bench/decode.sh — decode at memory speed? (issue 15 item 4)  One run, one
# report in Markdown:
#
#  1. the machine's read bandwidth with --threads threads (bench/kernels'
#     STREAM-like sum over 1 GiB) and the cost of one thread-pool region;
#  2. in RAM (page cache warmed, no pool): decode ms per token on `small` and
#     on an r1slice of --ram-layers layers, each next to its bound = bytes a
#     token touches ÷ that read bandwidth.  Bytes a token touches, from the
#     file's tensor table: every resident tensor but the embedding, one
#     embedding row, and top-k of each layer's routed experts (top-k ÷ experts
#     of the *_exps tensors); the KV cache (a few hundred positions) is left
#     out;
#  3. out of core on an r1slice of --ooc-layers layers (--dense of them dense)
#     with --mem-limit a third of the file, in a memory cgroup of that third,
#     page cache dropped before each case: tokens/s with --io auto and prefetch
#     on, with --prefetch none, and with --io mmap (no pool, the cgroup only);
#     stall share (the 'waiting for experts' phase over the step time); disk
#     bytes per token (the pager's reads; for mmap the process's storage
#     read_bytes less the resident weights' bytes); and the bound
#     max(disk bytes per token ÷ fio's random-read bandwidth on the same file,
#     compute time per token = step time − waits);
#  4. the --timings breakdown of every case (ms per decode token by phase).
#
# Prompts are one word (--raw, a token or two), so per-token figures are the
# decode's: the prompt's reads are at most one token's worth.
#
# usage: bench/decode.sh [--bin DIR] [--threads N] [--tokens N] [--models DIR]
#                        [--ram-layers L] [--ooc-layers L] [--dense D]
#                        [--parts "bw ram ooc"] [--cases "auto nopf mmap"]
#                        (a case more: pfd1 = prefetch with --prefetch-depth 1)
#                        [--timeout S]
# Models are made once into --models DIR (default models/; the out-of-core
# r1slice is ~6.5 GB per MoE layer: check df).  Needs root (drop_caches,
# cgroups), python3 and fio.  The memory cgroup and the page-cache drop are
# bench/lib.sh's.
set -u
cd "$(dirname "$0")/.." || exit 1
. bench/lib.sh
bin=build/plain threads=2 tokens=48 models=models ram_layers=2 ooc_layers=6 dense=1
parts="bw ram ooc" cases="auto nopf mmap" limit_s=300
usage="usage: bench/decode.sh [--bin DIR] [--threads N] [--tokens N] [--models DIR] [--ram-layers L] [--ooc-layers L] [--dense D] [--parts LIST] [--cases LIST] [--timeout S]"
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
	case $1 in
	--bin) bin=$2 ;;
	--threads) threads=$2 ;;
	--tokens) tokens=$2 ;;
	--models) models=$2 ;;
	--ram-layers) ram_layers=$2 ;;
	--ooc-layers) ooc_layers=$2 ;;
	--dense) dense=$2 ;;
	--parts) parts=$2 ;;
	--cases) cases=$2 ;;
	--timeout) limit_s=$2 ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
	shift 2
done
for x in moepager moepager-mkmodel moepager-gguf bench/kernels; do
	[ -x "$bin/$x" ] || { echo "bench/decode.sh: build first ($bin/$x)" >&2; exit 1; }
done
bench_need_root "drop_caches, memory cgroup"
bench_need python3 "the tables"
bench_need fio "the disk's bandwidth; apt-get install fio"
has() { case " $parts " in *" $1 "*) return 0 ;; esac; return 1; }
mkdir -p "$models"
log=build/bench-decode
mkdir -p "$log"
tmp=$(mktemp -d)
trap 'bench_cg_remove; rm -rf "$tmp"' EXIT

# make PRESET [ARGS...]: the model's path, made once into $models
make_model() {
	p=$1; shift
	m=$models/$p$(echo "$*" | tr -d ' -' | sed 's/layers/-L/; s/dense/-D/')-q4_k_m.gguf
	if [ ! -f "$m" ]; then
		echo "bench/decode.sh: making $m" >&2
		"$bin/moepager-mkmodel" --preset "$p" "$@" --quant q4_k_m --quiet -o "$m.tmp" &&
			mv "$m.tmp" "$m" >&2 || exit 1
	fi
	echo "$m"
}

# bytes MODEL: "resident bytes-per-token routed-bytes-per-token" from the tensor table
bytes() {
	"$bin/moepager-gguf" tensors "$1" --json >"$tmp/t.json" &&
	"$bin/moepager-gguf" info "$1" --json >"$tmp/i.json" || exit 1
	python3 - "$tmp/t.json" "$tmp/i.json" <<'PY'
import json, sys
ts = json.load(open(sys.argv[1]))
md = {k: v.split()[-1] for k, v in json.load(open(sys.argv[2]))["metadata"].items()}
E, K = int(md["deepseek2.expert_count"]), int(md["deepseek2.expert_used_count"])
res = routed = 0
for t in ts:
    if t["name"] == "token_embd.weight":
        res += t["bytes"] // t["shape"][1]          # one row
    elif "_exps." in t["name"]:
        routed += t["bytes"] * K // E
    else:
        res += t["bytes"]
print(res, routed)
PY
}

# run NAME OUT-PREFIX ARGS...: moepager with --timings on a one-word prompt;
# stderr to OUT.err; returns moepager's status
run() {
	name=$1 out=$2; shift 2
	"$bin/moepager" --raw -p "Once" -n "$tokens" --ignore-eos --temp 0 -t "$threads" --no-profile \
		--timings "$@" >/dev/null 2>"$out.err"
}

# parse ERR: "tokens ms_per_token step_ms p0 .. p7 wait_share pager_disk_bytes pc_bytes steps"
parse() {
	python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
units = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
m = re.search(r"prompt (\d+) tokens in [0-9.]+ s.*decode (\d+) tokens in ([0-9.]+) s", t)
pt, n, s = (int(m.group(1)), int(m.group(2)), float(m.group(3))) if m else (0, 0, 0)
tm = re.search(r"timings per decode token \((\d+) tokens, ([0-9.]+) ms each\):(.*)", t)
ph = [float(x) for x in re.findall(r" ([0-9.]+) ms \(", tm.group(3))] if tm else []
step = float(tm.group(2)) if tm else 0
rd = re.search(r"read ([0-9.]+) (\w+) from disk, copied ([0-9.]+) (\w+) from the page cache", t)
disk = float(rd.group(1)) * units[rd.group(2)] if rd else -1
pc = float(rd.group(3)) * units[rd.group(4)] if rd else -1
if len(ph) != 8 or not n:
    print("FAIL"); sys.exit()
print(n, 1000 * s / n, step, *ph, ph[5] / step if step else 0, int(disk), int(pc), pt + n)
PY
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, $(free -g | awk '/^Mem/ {print $2}') GiB RAM, load average $(cut -d' ' -f1-3 /proc/loadavg) at start (shared: other jobs run on it)"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); command: bench/decode.sh --bin $bin --threads $threads --tokens $tokens --models $models --ram-layers $ram_layers --ooc-layers $ooc_layers --dense $dense --parts \"$parts\" --cases \"$cases\" --timeout $limit_s"
echo "prompt: --raw -p Once, then $tokens tokens (--ignore-eos --temp 0), -t $threads"
echo

# ---- 1. read bandwidth and the thread pool's cost ----
bw=""
if has bw || has ram; then
	"$bin/bench/kernels" --threads "$threads" --mb 1024 --types Q4_K --paths none >"$log/kernels.txt" 2>&1 ||
		{ echo "bench/decode.sh: bench/kernels failed: $(tail -n 1 "$log/kernels.txt")" >&2; exit 1; }
	bw=$(awk -F'|' '/\(memory read\)/ { gsub(/ /, "", $7); print $7 }' "$log/kernels.txt")
	[ -n "$bw" ] || { echo "bench/decode.sh: no read bandwidth in $log/kernels.txt" >&2; exit 1; }
	echo "Read bandwidth, $threads threads (bench/kernels, 1 GiB): **$bw GB/s**. One thread-pool region (wake, run, join), median µs after the caller worked alone for a gap:"
	echo
	sed -n '/^| gap before/,/^$/p' "$log/kernels.txt"
fi

phase_head="| case | ms per token | attn | ffn | shared | router | routed | wait | head | other |"
phase_rule="| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
: >"$tmp/phases"
phase_row() { # phase_row NAME PARSED
	echo "$2" | awk -v n="$1" '{ printf "| %s | %.2f |", n, $3; for (i = 4; i <= 11; i++) printf " %.2f |", $i; printf "\n" }' >>"$tmp/phases"
}

# ---- 2. in RAM ----
if has ram; then
	echo "In RAM (no pool; page cache warmed by reading the file first), ms per decode token (wall time of the decode ÷ tokens):"
	echo
	echo "| model | file GB | MB touched per token | bound ms (÷ $bw GB/s) | ms per token | tokens/s | ÷ bound |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
	for spec in "small" "r1slice --layers $ram_layers --dense $dense"; do
		# shellcheck disable=SC2086
		m=$(make_model $spec) || exit 1
		name=$(basename "$m" .gguf)
		cat "$m" >/dev/null
		if ! run "$name" "$log/ram-$name"  -m "$m"; then
			echo "| $name | failed: $(tail -n 1 "$log/ram-$name.err") | | | | | |"
			continue
		fi
		r=$(parse "$log/ram-$name.err")
		b=$(bytes "$m")
		echo "$r $b $(stat -L -c %s "$m") $bw" | awk -v n="$name" '{
			touched = $16 + $17; bound = touched / ($19 * 1e9) * 1e3
			printf "| %s | %.2f | %.1f | %.2f | %.2f | %.1f | %.2f× |\n", n, $18 / 1e9, touched / 1e6, bound, $2, 1000 / $2, $2 / bound }'
		phase_row "in RAM, $name" "$r"
	done
	echo
fi

# ---- 3. out of core ----
if has ooc; then
	m=$(make_model r1slice --layers "$ooc_layers" --dense "$dense") || exit 1
	size=$(stat -L -c %s "$m")
	limit=$((size / 3))
	bench_cg_make moepager-decode "$limit" ||
		echo "bench/decode.sh: no memory cgroup could be made; the pool cases are held by --mem-limit only" >&2
	drop() { bench_drop "$m"; }
	# snap SEG: "decode steps timed, disk bytes, page-cache bytes, decode ns" of a stats segment
	snap() {
		"$bin/moepager-stat" --json "$1" 2>/dev/null | python3 -c 'import json, sys
d = json.load(sys.stdin); t = d["timings"] or {}
print(t.get("tokens", 0), d["io"]["disk_bytes"], d["io"]["page_cache_bytes"], t.get("total_ns", 0))'
	}
	poll() { # poll SEG OUT: a snapshot every 0.5 s until killed
		while :; do
			[ -f "$1" ] && snap "$1" >>"$2"
			sleep 0.5
		done
	}
	# cg_run OUT CMD...: CMD in the cgroup under timeout; OUT gets its storage read_bytes
	cg_run() {
		out=$1; shift
		(
			bench_cg_enter || exit 1
			read -r self _ </proc/self/stat
			r0=$(sed -n "s/^read_bytes: //p" /proc/"$self"/io)
			timeout "$limit_s" "$@"; rc=$?
			r1=$(sed -n "s/^read_bytes: //p" /proc/"$self"/io)
			echo $((r1 - r0)) >"$out"; exit $rc
		)
	}
	drop
	fio --name=decode --filename="$m" --readonly --rw=randread --bs=4M --iodepth=16 --ioengine=io_uring \
		--direct=1 --runtime=10 --time_based --minimal >"$tmp/fio" 2>"$log/fio.err" || true
	fio_mbs=$(awk -F';' 'NF > 7 { printf "%.0f", $7 * 1024 / 1e6 }' "$tmp/fio")
	[ -n "$fio_mbs" ] || { echo "bench/decode.sh: fio failed: $(cat "$log/fio.err")" >&2; exit 1; }
	b=$(bytes "$m")
	res=${b% *}
	echo "Out of core: $(basename "$m") ($(awk -v s="$size" 'BEGIN { printf "%.1f GB", s / 1e9 }'), $dense dense + $((ooc_layers - dense)) MoE layers, Q4_K_M; $(awk -v r="$res" 'BEGIN { printf "%.2f GB", r / 1e9 }') resident), --mem-limit and memory cgroup $limit bytes (a third)$( [ -n "$bench_cg" ] || echo ' (NO cgroup)'), page cache dropped before each case; fio random 4 MiB reads, depth 16, O_DIRECT, io_uring, on the same file: **$fio_mbs MB/s**."
	echo
	echo "| case | tokens/s | ms per token | stall share | disk MB per token | disk MB/s in decode | bound ms | ÷ bound | tokens/s ÷ mmap's |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	: >"$tmp/ooc"
	for c in $cases; do
		case $c in
		auto) name="--io auto, prefetch on"; args="--mem-limit $limit" ;;
		nopf) name="--io auto, --prefetch none"; args="--mem-limit $limit --prefetch none" ;;
		pfd1) name="--io auto, --prefetch-depth 1"; args="--mem-limit $limit --prefetch-depth 1" ;;
		mmap) name="--io mmap (cgroup only)"; args="--io mmap" ;;
		*) echo "bench/decode.sh: unknown case '$c' (expected auto, nopf, pfd1 or mmap)" >&2; exit 2 ;;
		esac
		drop
		seg=$tmp/$c.stats
		rm -f "$seg" "$tmp/poll"
		[ $c = mmap ] || args="$args --keep-stats --stats-file $seg"
		[ $c = mmap ] || { poll "$seg" "$tmp/poll" & poller=$!; }
		# shellcheck disable=SC2086
		cg_run "$tmp/rb" "$bin/moepager" -m "$m" --raw -p "Once" -n "$tokens" --ignore-eos --temp 0 \
			-t "$threads" --no-profile --timings $args >/dev/null 2>"$log/ooc-$c.err"
		rc=$?
		[ $c = mmap ] || { kill $poller; wait $poller 2>/dev/null; }
		dec="0 0 0 0"
		if [ $c != mmap ] && [ -f "$seg" ]; then
			snap "$seg" >>"$tmp/poll"
			# the decode's own reads: from the first snapshot with a decode step to the last
			dec=$(awk '$1 >= 1 && !a { a = $0 } END { split(a, f, " ")
				if (a && $1 > f[1]) print $1 - f[1], $2 - f[2], $3 - f[3], $4 - f[4]; else print 0, 0, 0, 0 }' "$tmp/poll")
			cp "$tmp/poll" "$log/ooc-$c.poll"
		fi
		rm -f "$seg"
		if [ $rc != 0 ]; then
			why=$( [ $rc = 124 ] && echo "stopped after $limit_s s" || echo "failed (exit $rc): $(tail -n 1 "$log/ooc-$c.err")")
			echo "| $name | $why | | | | | | |"
			continue
		fi
		r=$(parse "$log/ooc-$c.err")
		[ "$r" != FAIL ] || { echo "| $name | no figures in $log/ooc-$c.err | | | | | | |"; continue; }
		echo "$c $r $(cat "$tmp/rb") $dec" >>"$tmp/ooc"
		phase_row "out of core, $name" "$r"
	done
	# columns of $tmp/ooc: 1 case, 2 tokens, 3 ms/token, 4 step ms, 5-12 phases,
	# 13 wait share, 14 pager disk bytes, 15 page-cache bytes, 16 steps, 17 read_bytes,
	# 18-21 the decode's own: steps, disk bytes, page-cache bytes, ns (stats segment)
	awk -v fio="$fio_mbs" -v res="$res" '
		{ c[NR] = $0 } $1 == "mmap" { mm = 1000 / $3 }
		END {
			for (i = 1; i <= NR; i++) {
				split(c[i], f, " ")
				name = f[1] == "auto" ? "--io auto, prefetch on" : f[1] == "nopf" ? "--io auto, --prefetch none" : f[1] == "pfd1" ? "--io auto, --prefetch-depth 1" : "--io mmap (cgroup only)"
				if (f[1] == "mmap" || !f[18]) {
					disk = (f[17] - res) / f[16]; bound = "–"; ratio = "–"; rate = "–"
					dtxt = sprintf("%.0f (whole run)", disk / 1e6)
				} else {
					disk = (f[19] + f[20]) / f[18]; dtxt = sprintf("%.0f", disk / 1e6)
					rate = sprintf("%.0f", f[19] / 1e6 / (f[21] / 1e9))
					b = disk / (fio * 1e6) * 1e3; comp = f[4] - f[10]
					if (comp > b) b = comp
					bound = sprintf("%.0f", b); ratio = sprintf("%.2f×", f[3] / b)
				}
				stall = f[1] == "mmap" ? "n/a (faults)" : sprintf("%.1f%%", 100 * f[13])
				printf "| %s | %.2f | %.0f | %s | %s | %s | %s | %s | %s |\n", name, 1000 / f[3], f[3], stall,
				       dtxt, rate, bound, ratio, mm ? sprintf("%.2f×", 1000 / f[3] / mm) : "–"
			}
		}' "$tmp/ooc"
	echo
	echo "stall share: the 'waiting for experts' phase over the decode step time (--timings). Disk bytes per token: the pager's disk reads and page-cache copies between the first stats-segment snapshot (every 0.5 s) that shows a decode step and the run's end, over the decode steps between them; disk MB/s in decode: those disk bytes over those steps' time. For mmap (no segment): the process's storage read_bytes less the resident weights, over all steps, the prompt's included. bound = max(disk bytes per token ÷ fio's MB/s, step time − waits)."
	echo
fi

if [ -s "$tmp/phases" ]; then
	echo "Where a decode token's time went (--timings, ms per token):"
	echo
	echo "$phase_head"
	echo "$phase_rule"
	cat "$tmp/phases"
	echo
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); each case's moepager report: $log/"
