#!/usr/bin/env bash
# Runs every libFuzzer target (fuzz/*_fuzz.cc, ASan + UBSan) on a seed corpus
# from ../shared and prints executions, crashes, hangs (> 1 s) and sanitizer
# reports per target; JSON lines in $BUILD/fuzz/results.jsonl.
#   bench/fuzz.sh [--runs N | --seconds S] [--build DIR]
# Default: 1,000,000 executions per target (the acceptance bar, docs/errors.md).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=1000000 SECONDS_PER_TARGET="" BUILD=build-san
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift ;;
    --seconds) SECONDS_PER_TARGET="$2"; shift ;;
    --build) BUILD="$2"; shift ;;
    *) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$BUILD/recipe_fuzz" ] || CB_SAN_BUILD="$BUILD" bash scripts/sanitize.sh --build-only
OUT="$BUILD/fuzz"
# One run per build dir: a second would delete the first's corpus under it.
exec 9>"$BUILD/fuzz.lock"
flock -n 9 || { echo "fuzz.sh: another run holds $BUILD/fuzz.lock" >&2; exit 2; }
rm -rf "$OUT"; mkdir -p "$OUT/corpus" "$OUT/artifacts"
python3 bench/fuzz_seeds.py ../shared "$OUT/seeds" "$(pwd)/build/cerebellum"
# malloc_context_size=0: ~2x executions (no allocation stacks; rerun a finding
# without it for the full report).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:malloc_context_size=0" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$(pwd)/scripts/lsan.supp"
if [ -n "$SECONDS_PER_TARGET" ]; then LIMIT="-max_total_time=$SECONDS_PER_TARGET"; else LIMIT="-runs=$RUNS"; fi
fail=0
printf '%-20s %12s %8s %8s %s\n' target executions crashes hangs seconds
for bin in "$BUILD"/*_fuzz; do
  t=$(basename "$bin")
  mkdir -p "$OUT/corpus/$t" "$OUT/seeds/$t"
  start=$(date +%s.%N)
  set +e
  "$bin" "$OUT/corpus/$t" "$OUT/seeds/$t" $LIMIT -timeout=1 -rss_limit_mb=4096 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$t-" >"$OUT/$t.log" 2>&1
  rc=$?
  set -e
  secs=$(python3 -c "import time; print(round(time.time()-$start, 1))")
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/$t.log" | grep -o '[0-9]*$' || echo 0)
  crashes=$(ls "$OUT/artifacts" | grep -c "^$t-crash-\|^$t-leak-\|^$t-oom-" || true)
  hangs=$(ls "$OUT/artifacts" | grep -c "^$t-timeout-" || true)
  sanitizer=$(grep -c "ERROR: AddressSanitizer\|runtime error:\|ERROR: LeakSanitizer" "$OUT/$t.log" || true)
  sanitizer=${sanitizer:-0}
  printf '%-20s %12s %8s %8s %s\n' "$t" "${execs:-0}" "$crashes" "$hangs" "$secs"
  printf '{"target":"%s","executions":%s,"crashes":%s,"hangs":%s,"sanitizer_reports":%s,"exit_code":%s,"seconds":%s}\n' \
    "$t" "${execs:-0}" "$crashes" "$hangs" "$sanitizer" "$rc" "$secs" >>"$OUT/results.jsonl"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ] || [ "$hangs" -ne 0 ] || [ "$sanitizer" -ne 0 ]; then
    fail=1; echo "  finding: $OUT/$t.log, $OUT/artifacts/$t-*" >&2
  fi
done
exit $fail
