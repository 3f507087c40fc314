#!/bin/sh
# bench/server.sh — what prefix reuse saves in moepager-server (issue 16).
#
# One server on a synthetic model (small Q4_K_M, a third of the routed experts
# in the pool: 134M).  A conversation's second turn is sent twice, the same
# request both times: once right after its first turn (the KV cache holds the
# first turn: only the new tokens run) and once after an unrelated
# conversation replaced the cache (the whole prompt runs).  Prints the time to
# the first streamed token of each, the prompt tokens each ran (from usage),
# and their ratio, all measured in this one run.
#
# usage: bench/server.sh [--bin DIR] [--model FILE] [--turn1-words N]
set -u
cd "$(dirname "$0")/.." || exit 1
bin=build/plain model=models/small-q4_k_m.gguf words=150
while [ $# -gt 0 ]; do
	case $1 in
	--bin) bin=$2; shift 2 ;;
	--model) model=$2; shift 2 ;;
	--turn1-words) words=$2; shift 2 ;;
	*) echo "usage: bench/server.sh [--bin DIR] [--model FILE] [--turn1-words N]" >&2; exit 2 ;;
	esac
done
[ -x "$bin/moepager-server" ] || { echo "bench/server.sh: build $bin first" >&2; exit 1; }
command -v curl >/dev/null || { echo "bench/server.sh: needs curl" >&2; exit 1; }
if [ ! -f "$model" ]; then
	mkdir -p "$(dirname "$model")"
	"$bin/moepager-mkmodel" --preset small --quant q4_k_m --quiet -o "$model.tmp" && mv "$model.tmp" "$model" || exit 1
fi
log=$(mktemp) body=$(mktemp)
"$bin/moepager-server" -m "$model" --cache-budget 134M --port 0 --no-profile --temp 0 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$log" "$body"' EXIT
i=0
until grep -q serving "$log"; do
	sleep 0.5; i=$((i + 1))
	[ $i -lt 240 ] && kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
done
url=http://127.0.0.1:$(sed -n 's/.*:\([0-9]*\)\/v1 .*/\1/p' "$log")/v1/chat/completions
text=$(awk -v n="$words" 'BEGIN { for (i = 0; i < n; i++) printf "word%d ", i % 50 }')
turn1="{\"role\":\"user\",\"content\":\"Summarise: $text\"}"
turn2="{\"messages\":[$turn1,{\"role\":\"assistant\",\"content\":\"A list of words.\"},{\"role\":\"user\",\"content\":\"Which word comes first?\"}],\"max_tokens\":1,\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
ask() { curl -s -N -o "$body" -w '%{time_starttransfer}' "$url" -d "$1"; }
field() { grep -o "\"$1\":[0-9]*" "$body" | tail -n 1 | sed 's/.*://'; }
ask "{\"messages\":[$turn1],\"max_tokens\":4}" >/dev/null
warm=$(ask "$turn2"); warm_new=$(field new_prompt_tokens); total=$(field prompt_tokens)
ask '{"messages":[{"role":"system","content":"Something else entirely."},{"role":"user","content":"Hi"}],"max_tokens":1}' >/dev/null
cold=$(ask "$turn2"); cold_new=$(field new_prompt_tokens)
echo "| second turn ($total prompt tokens) | prompt tokens run | time to first token |"
echo "| --- | --- | --- |"
echo "| after its first turn (prefix reused) | $warm_new | $warm s |"
echo "| after another conversation | $cold_new | $cold s |"
awk -v c="$cold" -v w="$warm" 'BEGIN { printf "ratio (cold / reused): %.1fx\n", c / w }'
