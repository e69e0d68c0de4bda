#!/usr/bin/env bash
# Wall time and peak RSS of `cerebellum build` vs stock llama-quantize for the
# same recipe (stock Q4_K_M), on cb-dense-12l and cb-hybrid-moe, side by side.
# Also checks the two outputs are byte-identical.
# usage: bench/build_vs_stock.sh [BUILD_DIR] [THREADS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$ROOT/build}"
THREADS="${2:-2}"
source "$ROOT/bench/llama_bin.sh"
LLAMA_BIN="$(stock_bin "$BUILD")" || exit 2
MODELS="$ROOT/../shared/models"
CLI="$BUILD/cerebellum"
[[ -x "$CLI" ]] || { echo "no $CLI: build first (cmake --build $BUILD)" >&2; exit 2; }
if [[ ! -x /usr/bin/time ]]; then
  echo "installing GNU time (/usr/bin/time -v)" >&2
  (apt-get install -y time >/dev/null 2>&1 || sudo apt-get install -y time >/dev/null 2>&1) \
    || { echo "cannot install 'time'" >&2; exit 2; }
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# runs "$@" under /usr/bin/time -v, prints "wall_s peak_rss_kb"
measure() {
  /usr/bin/time -v "$@" >"$TMP/out.log" 2>"$TMP/time.log" || { cat "$TMP/out.log" "$TMP/time.log" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$TMP/time.log")
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$TMP/time.log")
  echo "$wall $rss"
}

printf "%-24s %-8s %10s %12s %12s %10s\n" model tool wall_s peak_rss_MB out_bytes identical
for model in cb-dense-12l-F16.gguf cb-hybrid-moe-F16.gguf; do
  src="$MODELS/$model"
  cat "$src" > /dev/null  # warm the page cache for both
  read -r s_wall s_rss < <(measure "$LLAMA_BIN/llama-quantize" "$src" "$TMP/stock.gguf" Q4_K_M "$THREADS")
  read -r c_wall c_rss < <(measure "$CLI" -q build --source "$src" --base Q4_K_M --out "$TMP/ours.gguf" --threads "$THREADS")
  same=no; cmp -s "$TMP/stock.gguf" "$TMP/ours.gguf" && same=yes
  printf "%-24s %-8s %10.2f %12.1f %12d %10s\n" "$model" stock "$s_wall" "$(echo "$s_rss/1024" | bc -l)" "$(stat -c %s "$TMP/stock.gguf")" -
  printf "%-24s %-8s %10.2f %12.1f %12d %10s\n" "$model" build "$c_wall" "$(echo "$c_rss/1024" | bc -l)" "$(stat -c %s "$TMP/ours.gguf")" "$same"
done
