#!/bin/sh
# kernels.sh — runs bench/kernels (matvec weight bandwidth against memory
# read bandwidth) from a build tree, on every CPU by default.
#   bench/kernels.sh [BUILD_DIR] [bench/kernels options...]
# BUILD_DIR defaults to build/plain (as ./quickstart makes it).
set -eu
cd "$(dirname "$0")/.."
dir=build/plain
if [ $# -gt 0 ] && [ -d "$1" ]; then dir=$1; shift; fi
[ -x "$dir/bench/kernels" ] || make -C "$dir" bench/kernels >/dev/null
exec "$dir/bench/kernels" "$@"
