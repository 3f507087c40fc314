# server-lib.sh — sourced by the moepager-server tests: a scratch folder with
# the tiny model, servers started on a free port with a watchdog, case lines
# for tests/driver, and cleanup that kills everything the test started.
# Needs: b (build dir).  Sets: tmp, model; start() sets spid and port.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/moepager-server-test.XXXXXX") || exit 99
model=$tmp/tiny.gguf
pids=""
fail=0
# a sanitizer build runs several times slower: give it more time
if [ -n "${MP_SANITIZED:-}" ]; then slow=4; else slow=1; fi
cleanup() {
	for p in $pids; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

ok() { echo "case $1: ok"; }
bad() { n=$1; shift; echo "case $n: FAILED $*"; fail=1; }

"$b/moepager-mkmodel" --preset tiny --quant q8_0 --quiet -o "$model" || { echo "mkmodel failed"; exit 99; }

# start NAME ARGS... — runs the server on the tiny model, waits for its port;
# a watchdog kills it after 120 s (x slow) whatever happens.
start() {
	log=$tmp/$1.log; shift
	"$b/moepager-server" -m "$model" --port 0 --no-profile -c 512 -t 2 --cache-budget 3M "$@" 2>"$log" &
	spid=$!
	pids="$pids $spid"
	( sleep $((120 * slow)); kill -9 "$spid" 2>/dev/null ) >/dev/null 2>&1 &
	pids="$pids $!"
	port=
	i=0
	while [ $i -lt $((100 * slow)) ]; do
		port=$(sed -n 's/.*serving .* on http:.*:\([0-9][0-9]*\)\/v1 .*/\1/p' "$log")
		[ -n "$port" ] && return 0
		kill -0 "$spid" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	echo "the server did not start:"; cat "$log"
	return 1
}

# stop_server PID SIGNAL — signals it and waits (at most 30 s x slow) for its exit status in $rc.
stop_server() {
	kill -"$2" "$1" 2>/dev/null
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt $((300 * slow)) ]; do sleep 0.1; i=$((i + 1)); done
	if kill -0 "$1" 2>/dev/null; then rc=timeout; kill -9 "$1"; else wait "$1"; rc=$?; fi
}

# metric NAME — the value of one sample line of GET /metrics.
metric() {
	curl -s --max-time 10 "http://127.0.0.1:$port/metrics" | grep "^$1 " | sed 's/.* //'
}
