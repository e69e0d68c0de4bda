#!/usr/bin/env bash
# Builds and runs bench/row_stats.cc (the scoring kernel alone, no model) with
# the flags the library uses for src/eval/logits.cc: -O3 -fno-trapping-math.
#   bash bench/row_stats.sh [VOCAB=128256] [ROWS=448]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${TMPDIR:-/tmp}/cb-row-stats-$$"
trap 'rm -f "$bin"' EXIT
g++ -std=c++20 -O3 -DNDEBUG -fno-trapping-math -pthread -Isrc -Iinclude bench/row_stats.cc src/eval/logits.cc \
  src/common/parallel.cc -o "$bin"
lscpu | grep -E '^Model name|^CPU\(s\)' || true
"$bin" "$@"
