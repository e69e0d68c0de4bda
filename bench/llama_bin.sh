# Sourced by the bench scripts: where the stock llama.cpp tools are.
#   stock_bin BUILD_DIR  -> prints the bin/ of the llama.cpp that BUILD_DIR's
#                           cerebellum links (its CMakeCache's LLAMA_LIB), so the
#                           stock tools are always the same build as ours; $LLAMA_BIN
#                           overrides. Exits 2 naming what is missing.
stock_bin() {
  if [ -n "${LLAMA_BIN:-}" ]; then echo "$LLAMA_BIN"; return; fi
  local cache="$1/CMakeCache.txt" lib
  lib="$(sed -n 's/^LLAMA_LIB:FILEPATH=//p' "$cache" 2>/dev/null)"
  [ -n "$lib" ] || { echo "no LLAMA_LIB in $cache: build first (bash scripts/setup.sh), or set LLAMA_BIN" >&2; exit 2; }
  local bin
  bin="$(cd "$(dirname "$lib")/../bin" 2>/dev/null && pwd)" && [ -x "$bin/llama-quantize" ] || {
    echo "no stock tools next to $lib (expected $(dirname "$lib")/../bin/llama-quantize): set LLAMA_BIN" >&2; exit 2; }
  echo "$bin"
}
